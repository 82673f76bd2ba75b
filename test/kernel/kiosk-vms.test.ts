// The kiosk daemon while its VM comes and goes (issue 9), as a user runs it, on the rig's second
// display (virtio-gpu head 0, read back by QEMU screendump): the VM's vGPU does not exist at
// start, so the output shows its idle colour; the mdev is created and the guest draws: the
// guest is on screen; the mdev is removed while the daemon shows it: the daemon releases the
// device at once (the kernel's removal, which waits for every fd of the device, finishes) and
// the idle colour is back; created again: the guest is back. No restart, SIGTERM exits 0.
// A SIGHUP changing one of two outputs brings up only that one. A VM found by its VMM's pid
// file (the kernel's mdpy sample driver, held by a VMM process) goes when the VMM exits and
// comes back when it runs again. Fails in CI without the second display or the sample drivers.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DrmDevice } from '../../src/kms/index.js';
import { drawPattern, patternPixel } from '../../src/flip/pattern.js';
import { SimGuest, createSimInstance, type SimInstance } from '../../src/vgpu-sim/index.js';
import { display2Card, display2CardOrUndefined } from './display2-helpers.js';
import { sleep } from './flip-helpers.js';
import { headShows, runDaemon, until } from './kiosk-helpers.js';
import { SampleVmm, createSampleMdev, removeSampleMdev } from './sample-vmm.js';

const ci = /^(1|true|yes)$/i.test(process.env['CI'] ?? '');
const W = 1024;
const H = 768;
const IDLE = 0x3366cc;

describe.skipIf(display2CardOrUndefined() === undefined && !ci)('kiosk daemon: a VM that comes and goes', () => {
  const uuid = randomUUID();
  let inst: SimInstance | null = null;
  let dir = '';
  let head0 = '';
  let head1 = '';

  beforeAll(() => {
    const dev = DrmDevice.open(display2Card());
    try {
      const heads = dev.snapshot().connectors.filter((c) => !c.writeback).sort((a, b) => a.id - b.id);
      head0 = heads[0]!.name;
      head1 = heads[1]!.name;
    } finally {
      dev.close();
    }
    dir = mkdtempSync(path.join(os.tmpdir(), 'kiosk-vms-'));
  });

  afterAll(() => {
    if (existsSync(`/sys/bus/mdev/devices/${uuid}`)) inst?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });


  const shows = (what: string, want: (x: number, y: number) => number, head = 0, w = W, h = H): Promise<void> => headShows(head, what, want, w, h);

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
    const { p, exited, events, log } = runDaemon(cfg);
    try {
      await until(() => events().some((e) => e.event === 'vm-waiting'), 120000, () => `the daemon waiting for the vGPU (log: ${log()})`);
      await shows('the idle colour', () => IDLE);
      expect(p.exitCode).toBe(null);

      createAndDraw(61);
      await shows('guest pattern 61', (x, y) => patternPixel(x, y, W, H, 61) & 0xffffff);
      expect(events().some((e) => e.event === 'vm-back')).toBe(true);

      // the guest turns its display off (not ready): the idle colour, not a black screen; back on: the guest
      const g = new SimGuest(uuid);
      g.disable('primary');
      await shows('the idle colour while the guest is not ready', () => IDLE);
      g.setMode('primary', { fourcc: 'XR24', width: W, height: H });
      g.writePixels(0, drawPattern(W, H, 63));
      g.flip('primary', 0);
      await shows('guest pattern 63 after it is ready again', (x, y) => patternPixel(x, y, W, H, 63) & 0xffffff);

      // the removal waits until every fd of the device is closed: the daemon must let go
      const rm = spawn('sh', ['-c', `echo 1 > /sys/bus/mdev/devices/${uuid}/remove`], { stdio: 'ignore' });
      const removed = new Promise<number | null>((r) => rm.on('exit', r));
      expect(await Promise.race([removed, sleep(30_000).then(() => 'the removal still waits after 30 s')])).toBe(0);
      await shows('the idle colour after the removal', () => IDLE);
      await until(() => events().some((e) => e.event === 'guest-left'), 60000, () => `the guest-left log line (log: ${log()})`);

      createAndDraw(62);
      await shows('guest pattern 62 after re-creation', (x, y) => patternPixel(x, y, W, H, 62) & 0xffffff);
      expect(events().filter((e) => e.event === 'vm-back')).toHaveLength(2);
      // nothing went wrong on the way (the removal itself is a warning: the guest left)
      const errorLevel = (e: { level?: unknown }): boolean => e.level === 50 || e.level === 'error';
      expect(events().filter(errorLevel).map((e) => e.msg)).toEqual([]);

      p.kill('SIGTERM');
      expect(await exited, log()).toBe(0);
    } finally {
      if (p.exitCode === null) p.kill('SIGKILL');
    }
  });

  it('SIGHUP applies a diff: the output whose configuration changed is brought up again, the other keeps presenting untouched', async () => {
    const u2 = randomUUID();
    const a = createSimInstance('vgpu_sim-small', u2);
    const b = createSimInstance('vgpu_sim-small');
    try {
      for (const [inst, t] of [[a, 71], [b, 72]] as const) {
        const g = new SimGuest(inst.uuid);
        g.setMode('primary', { fourcc: 'XR24', width: W, height: H });
        g.writePixels(0, drawPattern(W, H, t));
        g.flip('primary', 0);
      }
      const cfg = path.join(dir, 'two.yaml');
      const text = (idle1: string) => [
        'version: 1',
        'outputs:',
        `  - { name: one, device: ${display2Card()}, match: ${head0}, mode: ${W}x${H} }`,
        `  - { name: two, device: ${display2Card()}, match: ${head1}, mode: ${W}x${H}, idle: "${idle1}" }`,
        'vms:',
        `  - { name: va, mdev: ${a.uuid}, planes: { primary: { output: one, paths: [region] } } }`,
        `  - { name: vb, mdev: ${b.uuid}, planes: { primary: { output: two, paths: [region] } } }`,
        '',
      ].join('\n');
      writeFileSync(cfg, text('#000000'));
      const { p, exited, events, log } = runDaemon(cfg);
      try {
        await shows('guest 71 on head 0', (x, y) => patternPixel(x, y, W, H, 71) & 0xffffff, 0);
        await shows('guest 72 on head 1', (x, y) => patternPixel(x, y, W, H, 72) & 0xffffff, 1);
        const assignedBefore = events().filter((e) => e.event === 'assigned').map((e) => e.output);
        expect(assignedBefore.sort()).toEqual(['one', 'two']);
        const n = log().length;
        writeFileSync(cfg, text('#446688'));
        p.kill('SIGHUP');
        await until(() => events().some((e) => e.event === 'reload'), 60000, () => `the reload (log: ${log().slice(n)})`);
        const reload = events().find((e) => e.event === 'reload')!;
        expect(reload.kept).toEqual(['one']);
        expect(reload.msg).toMatch(/outputs: ~two\(idle\)/);
        // output two is planned again; output one is not touched (no new assignment, no restore)
        await until(() => events().filter((e) => e.event === 'assigned').length === 3, 60000, () => `output two assigned again (log: ${log().slice(n)})`);
        expect(events().filter((e) => e.event === 'assigned').map((e) => e.output).slice(2)).toEqual(['two']);
        await shows('guest 71 still on head 0', (x, y) => patternPixel(x, y, W, H, 71) & 0xffffff, 0);
        await shows('guest 72 on head 1 again', (x, y) => patternPixel(x, y, W, H, 72) & 0xffffff, 1);
        // the kept output still follows its guest
        new SimGuest(a.uuid).writePixels(0, drawPattern(W, H, 73));
        await shows('guest 73 on head 0 after the reload', (x, y) => patternPixel(x, y, W, H, 73) & 0xffffff, 0);
        p.kill('SIGTERM');
        expect(await exited, log()).toBe(0);
      } finally {
        if (p.exitCode === null) p.kill('SIGKILL');
      }
    } finally {
      a.remove();
      b.remove();
    }
  });

  it('a VM found by its VMM\'s pid file (the kernel\'s mdpy, held by a VMM process): shown; the VMM exits: idle colour; it starts again: shown again', async () => {
    const w = 640;
    const h = 480;
    const mdev = createSampleMdev('mdpy-vga');
    const pidFile = path.join(dir, 'vmm.pid');
    let vmm: SampleVmm | null = await SampleVmm.start(mdev, 'mdpy');
    try {
      writeFileSync(pidFile, `${vmm.pid}\n`);
      await vmm.draw(drawPattern(w, h, 81));
      const cfg = path.join(dir, 'vmm.yaml');
      writeFileSync(cfg, [
        'version: 1',
        'outputs:',
        `  - { name: lab, device: ${display2Card()}, match: ${head0}, mode: ${w}x${h}, idle: "#204060" }`,
        'vms:',
        `  - { name: bench, pidfile: ${pidFile}, planes: { primary: { output: lab, paths: [region] } } }`,
        '',
      ].join('\n'));
      const { p, exited, events, log } = runDaemon(cfg);
      try {
        await shows('the VMM\'s guest (pattern 81)', (x, y) => patternPixel(x, y, w, h, 81) & 0xffffff, 0, w, h);
        // the screen and the log are two channels: the line may be read a little after the pixels show
        const found = new RegExp(`vm bench: VMM pid ${vmm.pid} \\(pid file ${pidFile}\\)`);
        await until(() => found.test(log()), 30_000, () => `the daemon's line naming the VMM found by its pid file (log: ${log()})`);
        // the VMM exits (its fds close): the daemon lets go of its copy of the device fd too
        await vmm.stop();
        vmm = null;
        await shows('the idle colour after the VMM exited', () => 0x204060, 0, w, h);
        await until(() => events().some((e) => e.event === 'guest-left'), 60000, () => `the guest-left line (log: ${log()})`);
        expect(log()).toMatch(/the VMM \(pid \d+\) of vm bench exited/);
        // it starts again (a new pid in the pid file)
        vmm = await SampleVmm.start(mdev, 'mdpy');
        await vmm.draw(drawPattern(w, h, 82));
        writeFileSync(pidFile, `${vmm.pid}\n`);
        await shows('the guest again after the VMM came back (pattern 82)', (x, y) => patternPixel(x, y, w, h, 82) & 0xffffff, 0, w, h);
        p.kill('SIGTERM');
        expect(await exited, log()).toBe(0);
      } finally {
        if (p.exitCode === null) p.kill('SIGKILL');
      }
    } finally {
      await vmm?.stop();
      removeSampleMdev(mdev);
    }
  });

  it('an output whose monitor is not connected at start comes up when it is plugged in (hotplug uevent), with its VM', async () => {
    const card = display2Card().split('/').pop()!;
    const status = `/sys/class/drm/${card}-${head1}/status`;
    const b = createSimInstance('vgpu_sim-small');
    const g = new SimGuest(b.uuid);
    g.setMode('primary', { fourcc: 'XR24', width: W, height: H });
    g.writePixels(0, drawPattern(W, H, 91));
    g.flip('primary', 0);
    writeFileSync(status, 'off');
    writeFileSync(`/sys/class/drm/${card}/uevent`, 'change');
    const cfg = path.join(dir, 'late.yaml');
    writeFileSync(cfg, [
      'version: 1',
      'outputs:',
      `  - { name: late, device: ${display2Card()}, match: ${head1}, mode: ${W}x${H} }`,
      'vms:',
      `  - { name: lv, mdev: ${b.uuid}, planes: { primary: { output: late, paths: [region] } } }`,
      '',
    ].join('\n'));
    const { p, exited, events, log } = runDaemon(cfg);
    try {
      await until(() => events().some((e) => e.event === 'ready'), 120000, () => `the daemon ready (log: ${log()})`);
      expect(log()).toMatch(/output late: no matching connected monitor; its layers wait/);
      writeFileSync(status, 'on');
      writeFileSync(`/sys/class/drm/${card}/uevent`, 'change');
      await until(() => events().some((e) => e.event === 'hotplug'), 60000, () => `the hotplug line (log: ${log()})`);
      await shows('guest 91 on head 1 after the plug', (x, y) => patternPixel(x, y, W, H, 91) & 0xffffff, 1);
      p.kill('SIGTERM');
      expect(await exited, log()).toBe(0);
    } finally {
      if (p.exitCode === null) p.kill('SIGKILL');
      writeFileSync(status, 'on'); // as the rig set it up, not 'detect': QEMU enables head 0 only
      b.remove();
    }
  });
});
