// The difference of two kiosk configurations (src/kiosk/diff.ts), for a SIGHUP reload.
import { describe, expect, it } from 'vitest';
import { diffConfigs, diffSummary } from '../../src/kiosk/diff.js';
import { loadConfigText } from '../../src/kiosk/load.js';

const config = (...lines: string[]) => {
  const r = loadConfigText('k.yaml', lines.join('\n') + '\n');
  if (!r.ok) throw new Error(r.problems.map((p) => p.message).join('\n'));
  return r.config;
};

const BASE = [
  'version: 1',
  'outputs:',
  '  - { name: left, match: HDMI-A-1, mode: 1920x1080 }',
  '  - { name: right, match: DP-1 }',
  'vms:',
  '  - name: a',
  '    domain: a',
  '    planes: { primary: { output: left }, cursor: {} }',
  '  - name: b',
  '    mdev: 83b8f4f2-509f-382f-3c1e-e6bfe0fa1001',
  '    planes: { primary: { output: right, placement: center } }',
];

describe('kiosk config diff', () => {
  it('the same configuration, written differently, is no change', () => {
    const again = config(
      'version: 1',
      'outputs:',
      '  - name: left',
      '    mode: 1920x1080',
      '    match: HDMI-A-1',
      '    idle: black',
      '  - { name: right, match: DP-1, mode: preferred, modeset: true }',
      'vms:',
      '  - { name: a, domain: a, planes: { cursor: { z: 2 }, primary: { output: left, placement: fill, z: 0 } } }',
      '  - name: b',
      '    mdev: 83B8F4F2-509F-382F-3C1E-E6BFE0FA1001',
      '    planes: { primary: { output: right, placement: center, paths: [drm-fb, dmabuf, region] } }',
    );
    const d = diffConfigs(config(...BASE), again);
    expect(d.empty).toBe(true);
    expect(d.outputs.unchanged).toEqual(['left', 'right']);
    expect(d.layers.unchanged).toEqual(['a/primary', 'a/cursor', 'b/primary']);
    expect(diffSummary(d)).toBe('no change');
  });

  it('added, removed and changed outputs and layers, with the fields that changed', () => {
    const after = config(
      'version: 1',
      'outputs:',
      '  - { name: left, match: HDMI-A-1, mode: 1920x1080@60, idle: "#000010" }',
      '  - { name: tv, match: HDMI-A-2 }',
      'vms:',
      '  - name: a',
      '    domain: a',
      '    planes: { primary: { output: left, placement: "0,0" } }',
      '  - name: c',
      '    create: { parent: "0000:00:02.0", type: i915-GVTg_V5_4 }',
      '    planes: { primary: { output: tv }, cursor: {} }',
      'log: { format: json }',
    );
    const d = diffConfigs(config(...BASE), after);
    expect(d.outputs).toEqual({ added: ['tv'], removed: ['right'], changed: [{ name: 'left', fields: ['mode', 'idle'] }], unchanged: [] });
    expect(d.layers).toEqual({
      added: ['c/primary', 'c/cursor'],
      removed: ['a/cursor', 'b/primary'],
      changed: [{ name: 'a/primary', fields: ['placement'] }],
      unchanged: [],
    });
    expect(d.vms).toEqual({ added: ['c'], removed: ['b'], changed: [], unchanged: ['a'] });
    expect([d.control, d.log, d.empty]).toEqual([false, true, false]);
    expect(diffSummary(d)).toBe('outputs: +tv -right ~left(mode,idle); vms: +c -b; layers: +c/primary +c/cursor -a/cursor -b/primary ~a/primary(placement); logging');
  });

  it('a VM found another way changes all its layers ("source"), even when they are the same', () => {
    const before = config(...BASE);
    const after = config(...BASE.map((l) => l.replace('    domain: a', '    pidfile: /run/qemu/a.pid')));
    const d = diffConfigs(before, after);
    expect(d.vms.changed).toEqual([{ name: 'a', fields: ['source'] }]);
    expect(d.layers.changed).toEqual([{ name: 'a/primary', fields: ['source'] }, { name: 'a/cursor', fields: ['source'] }]);
    expect(d.layers.unchanged).toEqual(['b/primary']);
    expect(d.outputs.changed).toEqual([]);
  });

  it('moving a layer to another output, z and path changes; the control socket', () => {
    const after = config(...BASE.map((l) => l.replace('{ output: right, placement: center }', '{ output: left, placement: "10,10", z: 5, paths: [region] }')), 'control: { group: kiosk }');
    const d = diffConfigs(config(...BASE), after);
    expect(d.layers.changed).toEqual([{ name: 'b/primary', fields: ['output', 'placement', 'z', 'paths'] }]);
    expect(d.control).toBe(true);
  });
});
