// src/wayland/protocol.ts is generated from Debian's protocol XML (scripts/wayland-gen.mjs).
// When the XML is installed the file must be what the generator writes now (stale otherwise).
// Without the XML the test is skipped locally but FAILS with CI=true (setup.sh installs
// libwayland-dev and wayland-protocols; test/run-all.mjs also counts skips as failures in CI).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs script without declarations
import { generate, OUTPUT, parseXml, readSources, ROOT, SOURCES } from '../../scripts/wayland-gen.mjs';
import { INTERFACES, wl_registry, wp_drm_lease_device_v1, wp_drm_lease_request_v1 } from '../../src/wayland/protocol.js';

const ci = /^(1|true|yes)$/i.test(process.env['CI'] ?? '');
const missing = (SOURCES as { path: string; pkg: string }[]).filter((s) => !existsSync(s.path));

describe('wayland protocol: generated from the XML', () => {
  it.skipIf(missing.length > 0 && !ci)('src/wayland/protocol.ts is what scripts/wayland-gen.mjs generates (run it after changing the generator)', () => {
    expect(missing.map((s) => `${s.path} (apt-get install -y ${s.pkg})`), 'protocol XML missing: bash setup.sh installs it').toEqual([]);
    const committed = readFileSync(path.join(ROOT as string, OUTPUT as string), 'utf8');
    expect(committed, 'stale: run `node scripts/wayland-gen.mjs` and commit src/wayland/protocol.ts').toBe(generate(readSources()));
  });

  it('signatures the client relies on', () => {
    expect(Object.keys(INTERFACES)).toEqual(['wl_display', 'wl_registry', 'wl_callback', 'wp_drm_lease_device_v1', 'wp_drm_lease_connector_v1', 'wp_drm_lease_request_v1', 'wp_drm_lease_v1']);
    expect(wl_registry.requests[0].args).toEqual([
      { name: 'name', type: 'uint' },
      { name: 'id', type: 'new_id' },
    ]);
    expect(wp_drm_lease_device_v1.events.map((e) => `${e.opcode}:${e.name}(${e.args.map((a) => a.type).join(',')})${e.destructor ? ' destructor' : ''}`)).toEqual([
      '0:drm_fd(fd)',
      '1:connector(new_id)',
      '2:done()',
      '3:released() destructor',
    ]);
    expect(wp_drm_lease_request_v1.enums[0]?.entries.map((e) => `${e.value}:${e.name}`)).toEqual(['0:wrong_device', '1:duplicate_connector', '2:empty_lease']);
  });

  it('the XML reader: attributes, entities, comments, self-closing tags, and errors with a line', () => {
    const doc = parseXml('<?xml version="1.0"?>\n<!-- c <x> -->\n<p a="1 &amp; 2" b=\'&#x41;\'><q/><r>t &lt;</r></p>', 'x.xml');
    const p = doc.children[0];
    expect(p.attrs).toEqual({ a: '1 & 2', b: 'A' });
    expect(p.children.map((c: { tag: string }) => c.tag)).toEqual(['q', 'r']);
    expect(p.children[1].text).toBe('t <');
    expect(() => parseXml('<a>\n<b></a>', 'y.xml')).toThrow('y.xml:2: </a> closes <b>');
  });
});
