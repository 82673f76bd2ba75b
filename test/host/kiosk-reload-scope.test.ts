// What a kiosk reload brings down and up again (src/kiosk/diff.ts reloadScope): only the outputs
// and VMs a change touches, closed over "a VM's vGPU is shared by all its outputs".
import { describe, expect, it } from 'vitest';
import { reloadScope } from '../../src/kiosk/diff.js';
import { loadConfigText } from '../../src/kiosk/load.js';

const config = (...lines: string[]) => {
  const r = loadConfigText('k.yaml', lines.join('\n') + '\n');
  if (!r.ok) throw new Error(r.problems.map((p) => p.message).join('\n'));
  return r.config;
};

const A = '83b8f4f2-509f-382f-3c1e-e6bfe0fa1001';
const B = '83b8f4f2-509f-382f-3c1e-e6bfe0fa1002';
const C = '83b8f4f2-509f-382f-3c1e-e6bfe0fa1003';
const base = (over: Partial<Record<'left' | 'right' | 'third' | 'a' | 'b' | 'c', string>> = {}) =>
  config(
    'version: 1',
    'outputs:',
    over.left ?? '  - { name: left, match: HDMI-A-1, mode: 1920x1080 }',
    over.right ?? '  - { name: right, match: DP-1 }',
    over.third ?? '  - { name: third, match: DP-2 }',
    'vms:',
    over.a ?? `  - { name: a, mdev: ${A}, planes: { primary: { output: left } } }`,
    over.b ?? `  - { name: b, mdev: ${B}, planes: { primary: { output: right }, overlay: { output: third, placement: center } } }`,
    over.c ?? `  - { name: c, mdev: ${C}, planes: { primary: { output: third } } }`,
  );

const sorted = (s: { outputs: Set<string>; vms: Set<string> }) => ({ outputs: [...s.outputs].sort(), vms: [...s.vms].sort() });

describe('reloadScope', () => {
  it('no change: nothing is brought down', () => {
    expect(sorted(reloadScope(base(), base()))).toEqual({ outputs: [], vms: [] });
  });

  it('an output on its own changes (mode): that output and its VM only', () => {
    const next = base({ left: '  - { name: left, match: HDMI-A-1, mode: 1280x720 }' });
    expect(sorted(reloadScope(base(), next))).toEqual({ outputs: ['left'], vms: ['a'] });
  });

  it('a VM shown on two outputs: changing one of them takes both outputs and every VM on them', () => {
    const next = base({ right: '  - { name: right, match: DP-1, idle: "#112233" }' });
    // right shows b; b is also on third; third also shows c
    expect(sorted(reloadScope(base(), next))).toEqual({ outputs: ['right', 'third'], vms: ['b', 'c'] });
  });

  it("a layer's placement changes: its output and the VMs there; the left output is untouched", () => {
    const next = base({ c: `  - { name: c, mdev: ${C}, planes: { primary: { output: third, placement: center } } }` });
    expect(sorted(reloadScope(base(), next))).toEqual({ outputs: ['right', 'third'], vms: ['b', 'c'] });
  });

  it("a VM's source changes: it and its outputs", () => {
    const D = '83b8f4f2-509f-382f-3c1e-e6bfe0fa1004';
    const next = base({ a: `  - { name: a, mdev: ${D}, planes: { primary: { output: left } } }` });
    expect(sorted(reloadScope(base(), next))).toEqual({ outputs: ['left'], vms: ['a'] });
  });

  it('a VM moves to another output: both outputs (before and after) and what they show', () => {
    const next = base({ a: `  - { name: a, mdev: ${A}, planes: { primary: { output: right, placement: center, z: 5 } } }` });
    expect(sorted(reloadScope(base(), next))).toEqual({ outputs: ['left', 'right', 'third'], vms: ['a', 'b', 'c'] });
  });
});
