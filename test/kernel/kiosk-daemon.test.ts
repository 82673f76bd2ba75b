// `vgpu-flip kiosk --run FILE` (issue 9, the presentation part) as a user runs it: a config with
// one output on the rig's second display (virtio-gpu head 0, matched by connector name) and one
// VM (a vgpu-sim mdev the daemon owns). What the head scans out is read back by QEMU screendump.
// SIGHUP with a broken file keeps the running configuration and logs the problem with its line;
// SIGTERM restores the display and exits 0, leaving the vGPU free. Fails in CI without the display.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VfioDevice } from '../../src/vfio/index.js';
import { drawPattern, patternPixel } from '../../src/flip/pattern.js';
import { SimGuest, createSimInstance, type SimInstance } from '../../src/vgpu-sim/index.js';
import { display2Card, display2CardOrUndefined, display2Head0, screendump } from './display2-helpers.js';
import { sleep, waitFor } from './flip-helpers.js';

const ci = /^(1|true|yes)$/i.test(process.env['CI'] ?? '');
const W = 1024;
const H = 768;

describe.skipIf(display2CardOrUndefined() === undefined && !ci)('kiosk daemon on the second display', () => {
  let inst: SimInstance | null = null;
  let dir = '';
  let head0 = '';

  beforeAll(() => {
    head0 = display2Head0();
    inst = createSimInstance('vgpu_sim-small');
    dir = mkdtempSync(path.join(os.tmpdir(), 'kiosk-'));
  });

  afterAll(() => {
    inst?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('shows the VM on the matched head, refuses a broken reload with its line, restores on SIGTERM', async () => {
    const g = new SimGuest(inst!.uuid);
    g.setMode('primary', { fourcc: 'XR24', width: W, height: H });
    g.writePixels(0, drawPattern(W, H, 51));
    g.flip('primary', 0);
    const cfg = path.join(dir, 'kiosk.yaml');
    const text = [
      'version: 1',
      'outputs:',
      `  - name: wall`,
      `    device: ${display2Card()}`,
      `    match: ${head0}`,
      `    mode: ${W}x${H}`,
      'vms:',
      '  - name: sign',
      `    mdev: ${inst!.uuid}`,
      '    planes:',
      '      primary: { output: wall, paths: [dmabuf] }',
      '',
    ].join('\n');
    writeFileSync(cfg, text);
    const bin = path.join(import.meta.dirname, '..', '..', 'bin', 'vgpu-flip.js');
    const p = spawn(process.execPath, [bin, 'kiosk', '--run', cfg, '--log-format', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => p.on('exit', r));
    const events = (): { event?: string; msg: string; line?: number }[] =>
      err.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { event?: string; msg: string; line?: number });
    try {
      await waitFor(() => events().some((e) => e.event === 'assigned') && events().some((e) => e.event === 'ready'), 30_000, `the daemon's assignment (log: ${err})`);
      expect(events().find((e) => e.event === 'ready')?.msg).toMatch(/ready: outputs wall/);
      const shows = async (t: number): Promise<void> => {
        const end = Date.now() + 20_000;
        for (;;) {
          const s = await screendump(0);
          let bad = 0;
          for (let y = 0; y < H; y += 9) for (let x = 0; x < W; x += 7) if (s.at(x, y) !== (patternPixel(x, y, W, H, t) & 0xffffff)) bad++;
          if (bad === 0 && s.width === W) return;
          if (Date.now() > end) throw new Error(`head 0 does not show guest pattern ${t}: ${bad} sampled pixels differ (${s.width}x${s.height})`);
          await sleep(250);
        }
      };
      await shows(51);
      // a broken reload: refused with the problem's line, the guest stays on screen
      writeFileSync(cfg, text.replace(`mode: ${W}x${H}`, 'mode: 1024by768'));
      p.kill('SIGHUP');
      await waitFor(() => events().some((e) => e.event === 'reload-refused'), 10_000, 'the refused reload');
      expect(events().find((e) => e.event === 'reload-refused' && e.line !== undefined)?.line).toBe(6);
      g.writePixels(0, drawPattern(W, H, 52)); // drawn in place: copied (virtio-gpu cannot import it)
      await shows(52);
      p.kill('SIGTERM');
      expect(await exited, err).toBe(0);
    } finally {
      if (p.exitCode === null) p.kill('SIGKILL');
    }
    expect(events().some((e) => e.event === 'stopping')).toBe(true);
    // the vGPU is free again (the daemon closed its VFIO device)
    const v = VfioDevice.open(inst!.uuid);
    v.close();
  });
});
