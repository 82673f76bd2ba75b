#!/usr/bin/env node
// Generate src/wayland/protocol.ts (the interfaces vgpu-flip's Wayland client speaks) from the
// protocol XML Debian ships:
//   /usr/share/wayland/wayland.xml                                     libwayland-dev
//   /usr/share/wayland-protocols/staging/drm-lease/drm-lease-v1.xml    wayland-protocols
//
//   node scripts/wayland-gen.mjs            write src/wayland/protocol.ts
//   node scripts/wayland-gen.mjs --check    exit 1 when the committed file differs (stale)
//   node scripts/wayland-gen.mjs --stdout   print it
// test/host/wayland-protocol.test.ts runs the same check (and fails in CI when the XML is absent).
// No dependencies: the XML is parsed by the small reader below (elements, attributes, comments).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const OUTPUT = 'src/wayland/protocol.ts';

/** the sources and, from each, the interfaces used */
export const SOURCES = [
  { path: '/usr/share/wayland/wayland.xml', pkg: 'libwayland-dev', interfaces: ['wl_display', 'wl_registry', 'wl_callback'] },
  {
    path: '/usr/share/wayland-protocols/staging/drm-lease/drm-lease-v1.xml',
    pkg: 'wayland-protocols',
    interfaces: ['wp_drm_lease_device_v1', 'wp_drm_lease_connector_v1', 'wp_drm_lease_request_v1', 'wp_drm_lease_v1'],
  },
];

const ENTITIES = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
const unescape = (/** @type {string} */ s) =>
  s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, e) => {
    if (e[0] === '#') return String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    return ENTITIES[/** @type {keyof typeof ENTITIES} */ (e)] ?? m;
  });

/**
 * @typedef {{ tag: string, attrs: Record<string, string>, children: XmlNode[], text: string, line: number }} XmlNode
 * @param {string} xml
 * @param {string} file for error messages
 * @returns {XmlNode}
 */
export function parseXml(xml, file) {
  /** @type {XmlNode} */
  const root = { tag: '#root', attrs: {}, children: [], text: '', line: 1 };
  const stack = [root];
  const lineAt = (/** @type {number} */ i) => xml.slice(0, i).split('\n').length;
  const re = /<!--[\s\S]*?-->|<\?[\s\S]*?\?>|<!\[CDATA\[([\s\S]*?)\]\]>|<![^>]*>|<\/([A-Za-z_][\w.-]*)\s*>|<([A-Za-z_][\w.-]*)((?:\s+[\w.-]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>|([^<]+)/g;
  let m;
  let last = 0;
  while ((m = re.exec(xml)) !== null) {
    if (m.index !== last) throw new Error(`${file}:${lineAt(last)}: cannot parse XML here`);
    last = re.lastIndex;
    const top = /** @type {XmlNode} */ (stack[stack.length - 1]);
    if (m[1] !== undefined) top.text += m[1];
    else if (m[2] !== undefined) {
      if (top.tag !== m[2]) throw new Error(`${file}:${lineAt(m.index)}: </${m[2]}> closes <${top.tag}>`);
      stack.pop();
    } else if (m[3] !== undefined) {
      /** @type {Record<string, string>} */
      const attrs = {};
      for (const a of (m[4] ?? '').matchAll(/([\w.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) attrs[/** @type {string} */ (a[1])] = unescape(a[2] ?? a[3] ?? '');
      const node = { tag: m[3], attrs, children: [], text: '', line: lineAt(m.index) };
      top.children.push(node);
      if (m[5] !== '/') stack.push(node);
    } else if (m[6] !== undefined) top.text += unescape(m[6]);
  }
  if (last !== xml.length) throw new Error(`${file}:${lineAt(last)}: cannot parse XML here`);
  if (stack.length !== 1) throw new Error(`${file}: <${stack[stack.length - 1]?.tag}> is not closed`);
  return root;
}

const kids = (/** @type {XmlNode} */ n, /** @type {string} */ tag) => n.children.filter((c) => c.tag === tag);
const ARG_TYPES = new Set(['int', 'uint', 'fixed', 'string', 'object', 'new_id', 'array', 'fd']);

/** @param {XmlNode} iface @param {XmlNode} msg @param {number} opcode @param {string} file */
function message(iface, msg, opcode, file) {
  const args = kids(msg, 'arg').map((a) => {
    const where = `${file}:${a.line}: ${iface.attrs.name}.${msg.attrs.name}.${a.attrs.name}`;
    if (!a.attrs.name || !ARG_TYPES.has(a.attrs.type ?? '')) throw new Error(`${where}: unknown argument type ${a.attrs.type}`);
    /** @type {Record<string, unknown>} */
    const o = { name: a.attrs.name, type: a.attrs.type };
    if (a.attrs.interface) o.interface = a.attrs.interface;
    if (a.attrs['allow-null'] === 'true') o.nullable = true;
    if (a.attrs.enum) o.enum = a.attrs.enum;
    return o;
  });
  return { name: msg.attrs.name, opcode, since: Number(msg.attrs.since ?? 1), destructor: msg.attrs.type === 'destructor', args };
}

/** one object literal on one line: {"a": 1} -> { a: 1 } */
const flat = (/** @type {unknown} */ v) =>
  JSON.stringify(v)
    .replace(/"([a-z_]+)":/g, '$1: ')
    .replace(/,(?=[a-z_]+: |\{|")/g, ', ')
    .replace(/^\{/, '{ ')
    .replace(/\}$/, ' }')
    .replace(/\[\{/g, '[{ ')
    .replace(/\}\]/g, ' }]')
    .replace(/\}, \{/g, ' }, { ');

/** an interface as readable TypeScript: one message / enum entry per line */
function formatInterface(/** @type {any} */ s) {
  const lines = [`export const ${s.name} = {`, `  name: ${JSON.stringify(s.name)},`, `  version: ${s.version},`];
  for (const kind of ['requests', 'events']) {
    lines.push(`  ${kind}: [`);
    for (const m of s[kind]) lines.push(`    ${flat(m)},`);
    lines.push('  ],');
  }
  lines.push('  enums: [');
  for (const e of s.enums) {
    lines.push(`    { name: ${JSON.stringify(e.name)}, bitfield: ${e.bitfield}, entries: [`);
    for (const x of e.entries) lines.push(`      ${flat(x)},`);
    lines.push('    ] },');
  }
  lines.push('  ],', '} as const satisfies InterfaceSpec;');
  return lines;
}

/** @param {string} s */
const num = (s) => (/^0x/i.test(s) ? parseInt(s, 16) : Number(s));

/**
 * The text of src/wayland/protocol.ts from the XML texts (in SOURCES order).
 * @param {{ path: string, pkg: string, interfaces: string[], xml: string }[]} sources
 */
export function generate(sources) {
  const out = [];
  const header = [
    '// GENERATED by scripts/wayland-gen.mjs: do not edit. Regenerate: node scripts/wayland-gen.mjs',
    '// (test/host/wayland-protocol.test.ts fails when this file is stale). Sources:',
  ];
  /** @type {unknown[]} */
  const specs = [];
  for (const src of sources) {
    const doc = parseXml(src.xml, src.path);
    const protocol = kids(doc, 'protocol')[0];
    if (!protocol) throw new Error(`${src.path}: no <protocol>`);
    header.push(`//   ${src.path} (Debian package ${src.pkg}), protocol "${protocol.attrs.name}": ${src.interfaces.join(', ')}`);
    const copyright = kids(protocol, 'copyright')[0]?.text.trim().split('\n')[0]?.trim();
    if (copyright) header.push(`//     ${copyright} (the protocol's copyright notice; see the XML for its licence)`);
    for (const name of src.interfaces) {
      const iface = kids(protocol, 'interface').find((i) => i.attrs.name === name);
      if (!iface) throw new Error(`${src.path}: no interface ${name}`);
      specs.push({
        name,
        version: Number(iface.attrs.version),
        requests: kids(iface, 'request').map((r, i) => message(iface, r, i, src.path)),
        events: kids(iface, 'event').map((e, i) => message(iface, e, i, src.path)),
        enums: kids(iface, 'enum').map((e) => ({
          name: e.attrs.name,
          bitfield: e.attrs.bitfield === 'true',
          entries: kids(e, 'entry').map((x) => ({ name: x.attrs.name, value: num(x.attrs.value ?? ''), summary: x.attrs.summary ?? '' })),
        })),
      });
    }
  }
  out.push(...header, '');
  out.push("import type { InterfaceSpec } from './wire.js';", '');
  for (const s of /** @type {any[]} */ (specs)) out.push(...formatInterface(s), '');
  const names = specs.map((s) => /** @type {{ name: string }} */ (s).name);
  out.push(`/** every interface above, by name */`);
  out.push(`export const INTERFACES: Readonly<Record<string, InterfaceSpec>> = { ${names.join(', ')} };`, '');
  return out.join('\n');
}

/** read the XML sources; throws naming the missing file and its package */
export function readSources() {
  return SOURCES.map((s) => {
    if (!existsSync(s.path)) throw new Error(`${s.path} is missing: apt-get install -y ${s.pkg} (setup.sh installs it)`);
    return { ...s, xml: readFileSync(s.path, 'utf8') };
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const text = generate(readSources());
  const file = path.join(ROOT, OUTPUT);
  if (process.argv.includes('--stdout')) process.stdout.write(text);
  else if (process.argv.includes('--check')) {
    const same = existsSync(file) && readFileSync(file, 'utf8') === text;
    console.log(same ? `${OUTPUT} is up to date` : `${OUTPUT} is stale: run node scripts/wayland-gen.mjs`);
    process.exitCode = same ? 0 : 1;
  } else {
    writeFileSync(file, text);
    console.log(`wrote ${OUTPUT}`);
  }
}
