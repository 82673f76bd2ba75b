// Cross-field checks of a kiosk configuration: what one field cannot say about another. They
// read the document as parsed YAML (plain data, not yet accepted by the schema) defensively,
// so they run even when the schema found problems elsewhere and EVERY problem is listed at
// once. Each problem names the path; the reporter adds file and line:column.
import type { YamlPath } from './problems.js';
import { DEFAULT_Z } from './model.js';
import { closest, CONNECTOR_NAME_RE, MODE_RE, parseMatch, parseMode, POSITION_RE, UUID_RE } from './values.js';

export interface CheckReporter {
  /** a problem at `path` (with `key`: at the key of the last segment rather than its value) */
  report(path: YamlPath, message: string, opts?: { key?: boolean }): void;
  /** the line of `path`, to point from one problem to the other place involved */
  lineOf(path: YamlPath): number;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

const SOURCES = ['domain', 'pidfile', 'mdev', 'create'] as const;
const SCREEN_PLANES = ['primary', 'overlay'] as const;

interface Layer {
  vm: string;
  plane: 'primary' | 'overlay' | 'cursor';
  path: YamlPath;
  output: string;
  z: number;
  zExplicit: boolean;
  placement: string | undefined;
}

export function checkConfig(data: unknown, r: CheckReporter): void {
  if (!isObj(data)) return; // the schema says what is wrong with the whole file
  const outputs = list(data['outputs']);
  const vms = list(data['vms']);
  const outputNames = checkNames(outputs, 'outputs', 'output', r);
  checkNames(vms, 'vms', 'VM', r);
  checkMatchers(outputs, r);
  checkSources(vms, r);
  const layers = collectLayers(vms, outputNames, r);
  checkStacking(layers, r);
  checkBounds(outputs, layers, r);
}

/** duplicate names; returns name -> index of the first with that name */
function checkNames(items: unknown[], key: string, what: string, r: CheckReporter): Map<string, number> {
  const seen = new Map<string, number>();
  items.forEach((it, i) => {
    const name = isObj(it) ? str(it['name']) : undefined;
    if (name === undefined) return;
    const first = seen.get(name);
    if (first !== undefined) {
      r.report([key, i, 'name'], `duplicate ${what} name "${name}": ${key}[${first}] (line ${r.lineOf([key, first, 'name'])}) has it too; give each ${what} its own name`);
    } else seen.set(name, i);
  });
  return seen;
}

/** two outputs that would claim the same connector: the second never matches */
function checkMatchers(outputs: unknown[], r: CheckReporter): void {
  const seen = new Map<string, number>();
  outputs.forEach((o, i) => {
    if (!isObj(o)) return;
    const match = str(o['match']);
    const lease = o['lease'] !== undefined && o['lease'] !== false;
    if (lease && o['device'] !== undefined) {
      r.report(['outputs', i, 'device'], 'a leased output is on the compositor\'s DRM device: remove device (or lease)');
    }
    if (match === undefined || match === '*') return;
    const m = parseMatch(match);
    if (lease && m.kind === 'edid') {
      r.report(['outputs', i, 'match'], `"${match}": a leased output is matched by the connector name the compositor offers (see \`vgpu-flip inspect --leases\`) or *, not by EDID identity`);
      return;
    }
    const device = lease ? '(leased)' : (str(o['device'])?.replace(/^\/dev\/dri\//, '') ?? '(first KMS card)');
    const key = `${device} ${m.kind === 'connector' ? m.name : m.kind === 'edid' ? m.identity : '*'}`;
    const first = seen.get(key);
    if (first !== undefined) {
      r.report(['outputs', i, 'match'], `outputs[${first}] (line ${r.lineOf(['outputs', first, 'match'])}) already matches ${match} on the same device, so this output would never match; remove one or match another monitor`);
    } else seen.set(key, i);
    if (m.kind === 'edid' && CONNECTOR_NAME_RE.test(m.identity.split(' ')[0] ?? '')) {
      r.report(['outputs', i, 'match'], `"${match}" starts with a connector name but has spaces: write the connector alone (${m.identity.split(' ')[0]}) or an EDID identity "MAKE MODEL SERIAL"`);
    }
  });
}

/** exactly one way to find each VM; no vGPU claimed twice */
function checkSources(vms: unknown[], r: CheckReporter): void {
  const claims = new Map<string, YamlPath>();
  const claim = (what: string, path: YamlPath, label: string): void => {
    const prev = claims.get(what);
    if (prev) {
      r.report(path, `${label} is also used by ${prev[0]}[${prev[1]}] (line ${r.lineOf(prev)}): one vGPU (or VMM) can be shown by one VM entry only`);
    } else claims.set(what, path);
  };
  vms.forEach((v, i) => {
    if (!isObj(v)) return;
    const given = SOURCES.filter((k) => v[k] !== undefined);
    if (given.length === 0) {
      r.report(['vms', i], `VM ${str(v['name']) ?? i} says nothing about how to find it: add one of domain: NAME, pidfile: PATH, mdev: UUID or create: { parent, type }`);
    }
    for (const k of given.slice(1)) {
      r.report(['vms', i, k], `"${k}" and "${given[0]}" are both given: a VM is found exactly one way; keep one of domain, pidfile, mdev, create`, { key: true });
    }
    if (v['vgpu'] !== undefined && (given[0] === 'mdev' || given[0] === 'create')) {
      r.report(['vms', i, 'vgpu'], `"vgpu" picks one of a VMM's vGPUs (with domain or pidfile); with ${given[0]} the vGPU is already named: remove it`, { key: true });
    }
    const uuid = (s: unknown): string | undefined => (typeof s === 'string' && UUID_RE.test(s) ? s.toLowerCase() : undefined);
    const domain = str(v['domain']);
    if (domain !== undefined) claim(`domain ${domain}`, ['vms', i, 'domain'], `libvirt domain "${domain}"`);
    const pidfile = str(v['pidfile']);
    if (pidfile !== undefined) claim(`pidfile ${pidfile}`, ['vms', i, 'pidfile'], `pid file ${pidfile}`);
    const mdev = uuid(v['mdev']);
    if (mdev) claim(`uuid ${mdev}`, ['vms', i, 'mdev'], `vGPU ${mdev}`);
    const created = isObj(v['create']) ? uuid(v['create']['uuid']) : undefined;
    if (created) claim(`uuid ${created}`, ['vms', i, 'create', 'uuid'], `vGPU ${created}`);
    const vgpu = uuid(v['vgpu']);
    if (vgpu) claim(`uuid ${vgpu}`, ['vms', i, 'vgpu'], `vGPU ${vgpu}`);
  });
}

/** the layers (VM planes), with unknown outputs, missing primaries and cursor rules reported */
function collectLayers(vms: unknown[], outputNames: Map<string, number>, r: CheckReporter): Layer[] {
  const layers: Layer[] = [];
  const known = [...outputNames.keys()];
  const checkOutput = (path: YamlPath, name: string): boolean => {
    if (outputNames.has(name)) return true;
    const near = closest(name, known);
    r.report(path, `unknown output "${name}"${near ? `; did you mean "${near}"?` : ''} (the outputs are: ${known.join(', ') || 'none'}); name one of them or add an output named "${name}"`);
    return false;
  };
  vms.forEach((v, i) => {
    if (!isObj(v) || !isObj(v['planes'])) return;
    const vm = str(v['name']) ?? `vms[${i}]`;
    const planes = v['planes'];
    const base: YamlPath = ['vms', i, 'planes'];
    if (!isObj(planes['primary'])) {
      r.report(base, `VM ${vm} shows no primary plane: add planes.primary with an output (the cursor and overlay planes go over it)`);
    }
    for (const plane of SCREEN_PLANES) {
      const p = planes[plane];
      if (!isObj(p)) continue;
      const output = str(p['output']);
      if (output !== undefined) checkOutput([...base, plane, 'output'], output);
      const placement = str(p['placement']);
      if (plane === 'overlay' && p['placement'] === undefined) {
        r.report([...base, plane], `the overlay plane of VM ${vm} needs a placement ("X,Y" or center): filling the output would hide the planes under it`);
      }
      if (output !== undefined) layers.push(layer(vm, plane, [...base, plane], output, p, placement));
    }
    const cursor = planes['cursor'];
    if (isObj(cursor)) {
      const primaryOut = isObj(planes['primary']) ? str(planes['primary']['output']) : undefined;
      const output = str(cursor['output']) ?? primaryOut;
      if (str(cursor['output']) !== undefined) {
        if (checkOutput([...base, 'cursor', 'output'], output!) && primaryOut !== undefined && outputNames.has(primaryOut) && output !== primaryOut) {
          r.report([...base, 'cursor', 'output'], `the cursor of VM ${vm} is on output "${output}" but its primary plane on "${primaryOut}": the cursor follows the pointer over the primary plane; remove cursor.output or make it "${primaryOut}"`);
        }
      }
      if (output !== undefined) layers.push(layer(vm, 'cursor', [...base, 'cursor'], output, cursor, undefined));
    }
  });
  return layers.filter((l) => outputNames.has(l.output));
}

function layer(vm: string, plane: Layer['plane'], path: YamlPath, output: string, p: Obj, placement: string | undefined): Layer {
  const z = typeof p['z'] === 'number' && Number.isInteger(p['z']) ? p['z'] : undefined;
  const eff = placement ?? (plane === 'primary' ? 'fill' : undefined);
  return { vm, plane, path, output, z: z ?? DEFAULT_Z[plane], zExplicit: z !== undefined, placement: eff };
}

const describe = (l: Layer): string => `VM ${l.vm} ${l.plane}`;
const zPath = (l: Layer): YamlPath => (l.zExplicit ? [...l.path, 'z'] : l.path);

/** per output: distinct z values, nothing under a layer that fills the output, no identical positions */
function checkStacking(layers: Layer[], r: CheckReporter): void {
  const byOutput = new Map<string, Layer[]>();
  for (const l of layers) byOutput.set(l.output, [...(byOutput.get(l.output) ?? []), l]);
  for (const [output, ls] of byOutput) {
    for (let i = 0; i < ls.length; i++) {
      const a = ls[i]!;
      for (const b of ls.slice(0, i)) {
        if (a.z === b.z) {
          r.report(zPath(a), `${describe(a)} and ${describe(b)} (line ${r.lineOf(b.path)}) are both at z ${a.z}${a.zExplicit ? '' : ' (the default)'} on output "${output}": planes sharing an output need different z values; set z on one of them`);
        }
        if (a.vm !== b.vm && a.placement && a.placement === b.placement && POSITION_RE.test(a.placement)) {
          r.report([...a.path, 'placement'], `${describe(a)} and ${describe(b)} (line ${r.lineOf(b.path)}) are both placed at ${a.placement} on output "${output}": one would cover the other; move one of them`);
        }
      }
    }
    for (const top of ls.filter((l) => l.placement === 'fill')) {
      for (const under of ls.filter((l) => l.z < top.z)) {
        r.report(top.path, `${describe(top)} fills output "${output}" at z ${top.z}, above ${describe(under)} (z ${under.z}, line ${r.lineOf(under.path)}), which would never be visible: place it ("X,Y" or center) or give it a lower z`);
      }
    }
  }
}

/** with a fixed WIDTHxHEIGHT mode, a position must be on the output */
function checkBounds(outputs: unknown[], layers: Layer[], r: CheckReporter): void {
  const sizes = new Map<string, { w: number; h: number }>();
  for (const o of outputs) {
    if (!isObj(o)) continue;
    const name = str(o['name']);
    const mode = str(o['mode']);
    if (name === undefined || mode === undefined || !MODE_RE.test(mode)) continue;
    const m = parseMode(mode);
    if (m.kind === 'size') sizes.set(name, { w: m.width, h: m.height });
  }
  for (const l of layers) {
    const size = sizes.get(l.output);
    const pos = l.placement ? POSITION_RE.exec(l.placement) : null;
    if (!size || !pos) continue;
    const [x, y] = [Number(pos[1]), Number(pos[2])];
    if (x >= size.w || y >= size.h) {
      r.report([...l.path, 'placement'], `${l.placement} is outside output "${l.output}" (${size.w}x${size.h}): ${describe(l)} would not be visible; X must be below ${size.w} and Y below ${size.h}`);
    }
  }
}
