// The kiosk daemon while its VM comes and goes (issue 9), as a user runs it, on the rig's second
// display (virtio-gpu head 0, read back by QEMU screendump): the VM's vGPU does not exist at
// start, so the output shows its idle colour; the mdev is created and the guest draws: the
// guest is on screen; the mdev is removed while the daemon shows it: the daemon releases the
// device at once (the kernel's removal, which waits for every fd of the device, finishes) and
// the idle colour is back; created again: the guest is back. No restart, SIGTERM exits 0.
// Fails in CI without the second display.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DrmDevice } from '../../src/kms/index.js';
import { drawPattern, patternPixel } from '../../src/flip/pattern.js';
import { SimGuest, createSimInstance, type SimInstance } from '../../src/vgpu-sim/index.js';
import { display2Card, display2CardOrUndefined, screendump } from './display2-helpers.js';
import { sleep, waitFor } from './flip-helpers.js';

const ci = /^(1|true|yes)$/i.test(process.env['CI'] ?? '');
const W = 1024;
const H = 768;
const IDLE = 0x3366cc;

describe.skipIf(display2CardOrUndefined() === undefined && !ci)('kiosk daemon: a VM that comes and goes', () => {
  const uuid = randomUUID();
  let inst: SimInstance | null = null;
  let dir = '';
  let head0 = '';

  beforeAll(() => {
    const dev = DrmDevice.open(display2Card());
    try {
      head0 = dev.snapshot().connectors.filter((c) => !c.writeback).sort((a, b) => a.id - b.id)[0]!.name;
    } finally {
      dev.close();
    }
    dir = mkdtempSync(path.join(os.tmpdir(), 'kiosk-vms-'));
  });

  afterAll(() => {
    if (existsSync(`/sys/bus/mdev/devices/${uuid}`)) inst?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Wait until head 0 shows `want(x, y)` at every sampled pixel. */
  async function shows(what: string, want: (x: number, y: number) => number): Promise<void> {
    const end = Date.now() + 30_000;
    for (;;) {
      const s = await screendump(0);
      let bad = 0;
      let first = '';
      for (let y = 0; y < H; y += 9) {
        for (let x = 0; x < W; x += 7) {
          if (s.width === W && s.at(x, y) === want(x, y)) continue;
          if (!bad++) first = `(${x},${y}) is #${s.at(x, y).toString(16)}`;
        }
      }
      if (bad === 0) return;
      if (Date.now() > end) throw new Error(`head 0 does not show ${what} after 30 s: ${bad} sampled pixels differ, first ${first} (${s.width}x${s.height})`);
      await sleep(250);
    }
  }

  function createAndDraw(t: number): void {
    inst = createSimInstance('vgpu_sim-small', uuid);
    const g = new SimGuest(uuid);
    g.setMode('primary', { fourcc: 'XR24', width: W, height: H });
    g.writePixels(0, drawPattern(W, H, t));
    g.flip('primary', 0);
  }

  it('idle colour while the vGPU is missing, the guest once it exists, the colour again when it is removed, the guest again when re-created', async () => {
    const cfg = path.join(dir, 'kiosk.yaml');
    writeFileSync(cfg, [
      'version: 1',
      'outputs:',
      '  - name: wall',
      `    device: ${display2Card()}`,
      `    match: ${head0}`,
      `    mode: ${W}x${H}`,
      `    idle: "#${IDLE.toString(16)}"`,
      'vms:',
      '  - name: sign',
      `    mdev: ${uuid}`,
      '    planes:',
      '      primary: { output: wall, paths: [dmabuf] }',
      '',
    ].join('\n'));
    const bin = path.join(import.meta.dirname, '..', '..', 'bin', 'vgpu-flip.js');
    const p = spawn(process.execPath, [bin, 'kiosk', '--run', cfg, '--log-format', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => p.on('exit', r));
    const events = (): { event?: string; msg: string; level?: unknown }[] =>
      err.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { event?: string; msg: string; level?: unknown });
    try {
      await waitFor(() => events().some((e) => e.event === 'vm-waiting'), 30_000, `the daemon waiting for the vGPU (log: ${err})`);
      await shows('the idle colour', () => IDLE);
      expect(p.exitCode).toBe(null);

      createAndDraw(61);
      await shows('guest pattern 61', (x, y) => patternPixel(x, y, W, H, 61) & 0xffffff);
      expect(events().some((e) => e.event === 'vm-back')).toBe(true);

      // the removal waits until every fd of the device is closed: the daemon must let go
      const rm = spawn('sh', ['-c', `echo 1 > /sys/bus/mdev/devices/${uuid}/remove`], { stdio: 'ignore' });
      const removed = new Promise<number | null>((r) => rm.on('exit', r));
      expect(await Promise.race([removed, sleep(30_000).then(() => 'the removal still waits after 30 s')])).toBe(0);
      await shows('the idle colour after the removal', () => IDLE);
      await waitFor(() => events().some((e) => e.event === 'guest-left'), 10_000, `the guest-left log line (log: ${err})`);

      createAndDraw(62);
      await shows('guest pattern 62 after re-creation', (x, y) => patternPixel(x, y, W, H, 62) & 0xffffff);
      expect(events().filter((e) => e.event === 'vm-back')).toHaveLength(2);
      // nothing went wrong on the way (the removal itself is a warning: the guest left)
      const errorLevel = (e: { level?: unknown }): boolean => e.level === 50 || e.level === 'error';
      expect(events().filter(errorLevel).map((e) => e.msg)).toEqual([]);

      p.kill('SIGTERM');
      expect(await exited, err).toBe(0);
    } finally {
      if (p.exitCode === null) p.kill('SIGKILL');
    }
  });
});
