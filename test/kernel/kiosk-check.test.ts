// `vgpu-flip kiosk --check FILE` against the machine (issue 9), on the rig's second display
// (virtio-gpu, two heads with one primary and one cursor plane each): a configuration that fits
// passes with the planes TEST_ONLY accepted (the vGPU's own plane size, read from it: a guest
// smaller than the head would not fit, the primary plane cannot be positioned there); a mode
// the connector does not offer, a connector that is not there and two guests side by side on a
// head with one primary plane are each named; exit 3. The display state is the same afterwards
// (TEST_ONLY only). Fails in CI without the second display.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DrmDevice } from '../../src/kms/index.js';
import { drawPattern } from '../../src/flip/pattern.js';
import { SimGuest, createSimInstance, type SimInstance } from '../../src/vgpu-sim/index.js';
import { display2Card, display2CardOrUndefined } from './display2-helpers.js';

const ci = /^(1|true|yes)$/i.test(process.env['CI'] ?? '');

describe.skipIf(display2CardOrUndefined() === undefined && !ci)('kiosk --check against this machine', () => {
  let a: SimInstance | null = null;
  let b: SimInstance | null = null;
  let c: SimInstance | null = null;
  let dir = '';
  let head0 = '';
  const bin = path.join(import.meta.dirname, '..', '..', 'bin', 'vgpu-flip.js');

  const state = (): string => {
    const dev = DrmDevice.open(display2Card());
    try {
      const s = dev.snapshot();
      return JSON.stringify({ crtcs: s.crtcs.map((c) => [c.id, c.active, c.mode?.name ?? null]), planes: s.planes.map((p) => [p.id, p.fbId, p.crtcId]), conns: s.connectors.map((c) => [c.id, c.crtcId]) });
    } finally {
      dev.close();
    }
  };
  const check = (lines: string[]): { code: number | null; out: string; err: string; json: { machine: { ok: boolean; outputs: { name: string; planes: string | null; mode: string | null }[]; findings: { severity: string; message: string; output?: string }[] } } } => {
    const f = path.join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(f, lines.join('\n') + '\n');
    const t = spawnSync(process.execPath, [bin, 'kiosk', '--check', f], { encoding: 'utf8', timeout: 60_000 });
    const j = spawnSync(process.execPath, [bin, 'kiosk', '--check', f, '--json'], { encoding: 'utf8', timeout: 60_000 });
    return { code: t.status, out: t.stdout, err: t.stderr, json: JSON.parse(j.stdout) };
  };

  beforeAll(() => {
    const dev = DrmDevice.open(display2Card());
    try {
      head0 = dev.snapshot().connectors.filter((c) => !c.writeback).sort((x, y) => x.id - y.id)[0]!.name;
    } finally {
      dev.close();
    }
    // a: the head's size (virtio-gpu's primary plane cannot be positioned or scaled); b, c: half of it
    a = createSimInstance('vgpu_sim-small');
    b = createSimInstance('vgpu_sim-small');
    c = createSimInstance('vgpu_sim-small');
    for (const [i, w] of [[a, 1024], [b, 512], [c, 512]] as const) {
      const g = new SimGuest(i.uuid);
      g.setMode('primary', { fourcc: 'XR24', width: w, height: 768 });
      g.writePixels(0, drawPattern(w, 768, 3));
      g.flip('primary', 0);
    }
    dir = mkdtempSync(path.join(os.tmpdir(), 'kiosk-check-'));
  });

  afterAll(() => {
    a?.remove();
    b?.remove();
    c?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a configuration that fits: exit 0, the planes TEST_ONLY accepted, the screen untouched', () => {
    const before = state();
    const r = check([
      'version: 1',
      'outputs:',
      `  - { name: wall, device: ${display2Card()}, match: ${head0}, mode: 1024x768 }`,
      'vms:',
      `  - { name: sign, mdev: ${a!.uuid}, planes: { primary: { output: wall } } }`,
    ]);
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).toMatch(new RegExp(`wall: ${head0} on ${display2Card()}, CRTC 0, 1024x768@\\d+; TEST_ONLY: `));
    expect(r.out).toMatch(/and this machine fits it\n$/);
    expect(r.json.machine.ok).toBe(true);
    expect(r.json.machine.outputs[0]!.planes).toMatch(/sign\/primary/);
    expect(state()).toBe(before);
  });

  it('a mode not offered, a connector not there, two guests on a head with one primary plane: each named, exit 3', () => {
    const before = state();
    const r = check([
      'version: 1',
      'outputs:',
      `  - { name: wall, device: ${display2Card()}, match: ${head0}, mode: 333x222 }`,
      `  - { name: gone, device: ${display2Card()}, match: HDMI-A-7 }`,
      `  - { name: pair, device: ${display2Card()}, match: "*", mode: 1024x768 }`,
      'vms:',
      `  - { name: l, mdev: ${b!.uuid}, planes: { primary: { output: pair, placement: "0,0" } } }`,
      `  - { name: r, mdev: ${c!.uuid}, planes: { primary: { output: pair, placement: "512,0", z: 1 } } }`,
    ]);
    expect(r.code, r.out + r.err).toBe(3);
    const f = r.json.machine.findings.map((x) => `${x.severity} ${x.output ?? ''}: ${x.message}`);
    expect(f).toEqual(expect.arrayContaining([
      expect.stringMatching(new RegExp(`^problem wall: ${head0} does not offer 333x222 \\(it offers 1024x768@`)),
      expect.stringMatching(/^warning gone: no connected connector of .* matches it now/),
      expect.stringMatching(/^problem pair: no hardware plane layout passes TEST_ONLY: /),
    ]));
    expect(r.out).toMatch(/this machine does not fit it: 2 problems\n$/);
    expect(state()).toBe(before);
  });
});
