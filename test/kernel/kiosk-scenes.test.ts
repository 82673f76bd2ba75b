// The kiosk daemon (issue 9) in the scenes of its issue, as a user runs it (`vgpu-flip kiosk
// --run`, a child process), on vkms (card0, Virtual-1 at 1024x768) whose picture is read back
// through the control socket's `vgpu-flip screenshot --method writeback` (vkms' writeback
// connector, routed alone for a frame: 6.1's vkms cannot clone it beside Virtual-1):
//  1. two vgpu-sim VMs side by side plus the left one's cursor: both guests at their places and
//     the cursor; the left guest resets (its planes off: its half goes black, the right one stays)
//     and draws again: back without a restart; Virtual-1 forced off (status + the card's change
//     uevent, what a replug looks like): the output pauses; on again: planned again, the right
//     guest's new frame shown; SIGTERM: vkms' state as found (debugfs state), no framebuffer,
//     dma-buf or DRM client left, both vGPUs closed with no exported buffer cached.
//  2. a VM found by its VMM's pid file (the kernel's mdpy-xga, held by a VMM process), a PNG
//     splash as idle: the VMM exits: the splash's pixels (scaled 4x); it runs again: the VM's.
//  3. (with the rig's second display) a valid `vgpu-flip reload` moving the VM on vkms to
//     another position while the other VM, on virtio-gpu head 0, keeps flipping: its frame
//     counter (status --json) goes on increasing across the reload and its output is not
//     assigned again; the moved guest is at its new place; the daemon's fds, vkms' framebuffers
//     and the dma-bufs are as many as before the reload.
// Fails in CI without vkms, vgpu-sim, the sample drivers or (3) the second display.
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DrmDevice } from '../../src/kms/index.js';
import { cursorPixel, drawCursor, drawPattern, patternPixel } from '../../src/flip/pattern.js';
import { SimGuest, createSimInstance, type SimInstance } from '../../src/vgpu-sim/index.js';
import { request } from '../../src/kiosk/control-client.js';
import type { StatusReport } from '../../src/kiosk/status.js';
import { display2Card, display2CardOrUndefined, display2Head0 } from './display2-helpers.js';
import { debugfsFile, debugfsFramebuffers, displayState, dmabufCount, sleep } from './flip-helpers.js';
import { findVkmsCard } from './kms-helpers.js';
import { cli, daemonLog, mismatches, oneDifferentPixel, readPng, runDaemon, until, type Picture } from './kiosk-helpers.js';
import { SampleVmm, createSampleMdev, removeSampleMdev } from './sample-vmm.js';

const ci = /^(1|true|yes)$/i.test(process.env['CI'] ?? '');
const W = 1024;
const H = 768;
const HW = W / 2;
const CUR = HW * H * 4; // the cursor's buffer in video memory, after the primary's (page aligned)

const mask = (v: number): number => v & 0xffffff;
const step = (s: string): void => console.error(`[kiosk-scenes] ${new Date().toISOString()} ${s}`);

/** A vgpu-sim guest (debugfs only: the daemon owns the VFIO device) drawing pattern t at w x h. */
function draw(uuid: string, w: number, h: number, t: number, offset = 0): void {
  const g = new SimGuest(uuid);
  g.setMode('primary', { fourcc: 'XR24', width: w, height: h, offset });
  g.writePixels(offset, drawPattern(w, h, t));
  g.flip('primary', offset);
}

function cursorAt(uuid: string, x: number, y: number): void {
  const g = new SimGuest(uuid);
  g.writePixels(CUR, drawCursor(64));
  g.setMode('cursor', { fourcc: 'AR24', width: 64, height: 64, stride: 256, offset: CUR, x, y, xhot: 0, yhot: 0 });
}

/** The picture of an output through the control socket (in-process client: a CLI start takes seconds under TCG). */
async function shot(sock: string, output: string): Promise<Picture> {
  const r = await request(sock, { cmd: 'screenshot', output, method: 'writeback' });
  if (!r.ok || r.cmd !== 'screenshot') throw new Error(`screenshot of ${output}: ${JSON.stringify(r)}`);
  return readPng(Buffer.from(r.png, 'base64'));
}

async function status(sock: string): Promise<StatusReport> {
  const r = await request(sock, { cmd: 'status' });
  if (!r.ok || r.cmd !== 'status') throw new Error(`status: ${JSON.stringify(r)}`);
  return r.status as StatusReport;
}

type Check = (p: Picture) => { bad: number; first: string };

/** Screenshots until `check` finds no difference (90 s: the daemon shares two TCG cores with the test). */
async function shows(sock: string, output: string, what: string, check: Check): Promise<Picture> {
  const end = Date.now() + 90_000;
  for (;;) {
    const p = await shot(sock, output);
    const r = check(p);
    if (r.bad === 0) return p;
    if (Date.now() > end) throw new Error(`output ${output} does not show ${what} after 90 s: ${r.bad} sampled pixels differ, first ${r.first}; daemon log: ${daemonLog().slice(-4000)}`);
    await sleep(250);
  }
}

/** Wait for a status report that satisfies cond; the message carries the last report and the log. */
async function statusUntil(sock: string, cond: (s: StatusReport) => boolean, what: string, ms = 90_000): Promise<StatusReport> {
  let last: StatusReport | null = null;
  const end = Date.now() + ms;
  for (;;) {
    last = await status(sock);
    if (cond(last)) return last;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}: last status ${JSON.stringify(last)}; daemon log: ${daemonLog().slice(-3000)}`);
    await sleep(250);
  }
}

const both = (...checks: Check[]): Check => (p) => {
  for (const c of checks) {
    const r = c(p);
    if (r.bad) return r;
  }
  return { bad: 0, first: '' };
};

/** Guest t on the left half with the cursor at (cx, cy) (none: null). */
const leftHalf = (t: number, cur: { x: number; y: number } | null): Check => (p) =>
  mismatches(p, { x: 0, y: 0, w: HW, h: H }, (x, y) => {
    if (cur && x >= cur.x && x < cur.x + 64 && y >= cur.y && y < cur.y + 64) {
      const c = cursorPixel(x - cur.x, y - cur.y);
      if (c >>> 24) return mask(c);
    }
    return mask(patternPixel(x, y, HW, H, t));
  }, 3);
const rightHalf = (t: number): Check => (p) => mismatches(p, { x: HW, y: 0, w: HW, h: H }, (x, y) => mask(patternPixel(x - HW, y, HW, H, t)), 3);
const black = (r: { x: number; y: number; w: number; h: number }): Check => (p) => mismatches(p, r, () => 0);

describe('kiosk daemon scenes on vkms', () => {
  let card = '';
  let cardName = '';
  let dir = '';
  const insts: SimInstance[] = [];

  beforeAll(() => {
    card = findVkmsCard();
    cardName = path.basename(card);
    const dev = DrmDevice.open(card);
    try {
      const m = dev.snapshot().crtcs[0]?.mode;
      if (m && (m.hdisplay !== W || m.vdisplay !== H)) throw new Error(`vkms CRTC 0 is at ${m.hdisplay}x${m.vdisplay}; the test expects the rig's ${W}x${H}`);
    } finally {
      dev.close();
    }
    dir = mkdtempSync(path.join(os.tmpdir(), 'kiosk-scenes-'));
  });

  afterAll(() => {
    writeFileSync(`/sys/class/drm/${cardName}-Virtual-1/status`, 'detect'); // vkms' connector: detect is connected
    for (const i of insts) if (existsSync(`/sys/bus/mdev/devices/${i.uuid}`)) i.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('two VMs side by side and a cursor; a guest reset; a guest resolution change; Virtual-1 off and on; SIGTERM restores vkms and leaves no kernel object', async () => {
    const left = createSimInstance('vgpu_sim-small');
    const right = createSimInstance('vgpu_sim-small');
    insts.push(left, right);
    draw(left.uuid, HW, H, 11);
    cursorAt(left.uuid, 100, 120);
    draw(right.uuid, HW, H, 12);
    const sock = path.join(dir, 'wall.sock');
    const cfg = path.join(dir, 'wall.yaml');
    writeFileSync(cfg, [
      'version: 1',
      'outputs:',
      `  - { name: wall, device: ${card}, match: Virtual-1, mode: ${W}x${H}, idle: "#203040" }`,
      'vms:',
      '  - name: left',
      `    mdev: ${left.uuid}`,
      '    planes:',
      '      primary: { output: wall, placement: "0,0", z: 0, paths: [dmabuf] }',
      '      cursor: { z: 2, paths: [dmabuf] }',
      '  - name: right',
      `    mdev: ${right.uuid}`,
      '    planes:',
      `      primary: { output: wall, placement: "${HW},0", z: 1, paths: [dmabuf] }`,
      `control: { socket: ${sock} }`,
      '',
    ].join('\n'));
    // what the kernel holds before the daemon runs (nobody of this test has card0 open)
    const before = { state: displayState(card), fbs: debugfsFramebuffers(card), dmabufs: dmabufCount(), clients: debugfsFile(card, 'clients') };
    const d = runDaemon(cfg);
    try {
      await until(() => existsSync(sock), 120_000, () => `the control socket (log: ${d.log()})`);
      step('1: both guests and the cursor');
      await shows(sock, 'wall', 'guest 11 with its cursor at (100,120) left, guest 12 right', both(leftHalf(11, { x: 100, y: 120 }), rightHalf(12)));
      // the CLI, once: the writeback connector read it (routed alone: vkms cannot clone it)
      const png = path.join(dir, 'wall.png');
      const c = await cli(['screenshot', '--socket', sock, '--output', 'wall', '--method', 'writeback', png]);
      expect(c.status, c.stderr).toBe(0);
      expect(c.stdout).toMatch(/output wall, 1024x768, read back by the writeback connector alone/);
      const pic = readPng(png);
      expect(leftHalf(11, { x: 100, y: 120 })(pic)).toEqual({ bad: 0, first: '' });
      expect(rightHalf(12)(pic)).toEqual({ bad: 0, first: '' });
      const s1 = await status(sock);
      expect(s1.outputs[0]!.layers.map((l) => `${l.name}:${l.path}`).sort()).toEqual(['left/cursor:dmabuf', 'left/primary:dmabuf', 'right/primary:dmabuf']);

      step('2: the left guest resets');
      new SimGuest(left.uuid).reset();
      await statusUntil(sock, (s) => s.outputs[0]!.layers.filter((l) => l.vm === 'left').every((l) => !l.ready), 'the left guest not ready');
      // never a stale frame: its half is black (no plane shows it), the right guest stays
      await shows(sock, 'wall', 'black on the left, guest 12 right', both(black({ x: 0, y: 0, w: HW, h: H }), rightHalf(12)));
      draw(left.uuid, HW, H, 13);
      cursorAt(left.uuid, 200, 300);
      await shows(sock, 'wall', 'guest 13 with its cursor at (200,300) left after its reset, guest 12 right', both(leftHalf(13, { x: 200, y: 300 }), rightHalf(12)));
      expect(d.p.exitCode).toBe(null);

      step('2b: the right guest changes resolution (512x768 -> 400x300), no restart');
      draw(right.uuid, 400, 300, 15, CUR + 64 * 64 * 4);
      await shows(sock, 'wall', 'guest 13 left, guest 15 at 400x300 at the right half\'s top-left, black around it', both(
        leftHalf(13, { x: 200, y: 300 }),
        (p) => mismatches(p, { x: HW, y: 0, w: 400, h: 300 }, (x, y) => mask(patternPixel(x - HW, y, 400, 300, 15)), 3),
        black({ x: HW + 400, y: 0, w: HW - 400, h: H }),
        black({ x: HW, y: 300, w: 400, h: H - 300 }),
      ));
      expect(d.p.exitCode).toBe(null);

      step('3: Virtual-1 off and on');
      const n = d.events().length;
      const force = (how: string): void => {
        writeFileSync(`/sys/class/drm/${cardName}-Virtual-1/status`, how);
        writeFileSync(`/sys/class/drm/${cardName}/uevent`, 'change');
      };
      force('off');
      await until(() => d.events().slice(n).some((e) => e.event === 'output' && e['action'] === 'paused'), 60_000, () => `the output paused (log: ${d.log()})`);
      await statusUntil(sock, (s) => s.outputs[0]!.state === 'paused', 'output wall paused');
      draw(right.uuid, HW, H, 14, CUR + 64 * 64 * 4); // the right guest goes on: a new frame while the monitor is away
      force('detect');
      await until(() => d.events().slice(n).some((e) => e.event === 'output' && e['action'] === 'replanned'), 60_000, () => `the output planned again (log: ${d.log()})`);
      await statusUntil(sock, (s) => s.outputs[0]!.state === 'presenting', 'output wall presenting again');
      await shows(sock, 'wall', 'guest 13 and its cursor left, guest 14 right after the replug', both(leftHalf(13, { x: 200, y: 300 }), rightHalf(14)));
      const errorLevel = (e: { level?: unknown }): boolean => e.level === 50 || e.level === 'error';
      expect(d.events().filter(errorLevel).map((e) => e.msg)).toEqual([]);

      step('4: SIGTERM');
      d.p.kill('SIGTERM');
      expect(await d.exited, d.log()).toBe(0);
    } finally {
      if (d.p.exitCode === null) d.p.kill('SIGKILL');
    }
    await sleep(200);
    expect(displayState(card)).toBe(before.state);
    expect(debugfsFramebuffers(card)).toEqual(before.fbs);
    expect(dmabufCount()).toBe(before.dmabufs);
    expect(debugfsFile(card, 'clients')).toBe(before.clients);
    for (const i of [left, right]) expect(new SimGuest(i.uuid).info(), `vGPU ${i.uuid}`).toMatchObject({ open: false, cachedBuffers: 0 });
  }, 600_000);

  it('a VM found by its VMM\'s pid file: the VMM exits: the PNG splash; it runs again: the VM again', async () => {
    // the splash: 256x192, fitted to 1024x768 (4x, nearest neighbour)
    const splashRgb = (x: number, y: number): number => ((x * 3) & 0xff) << 16 | ((y * 5) & 0xff) << 8 | ((x ^ y) & 0xff);
    const img = new PNG({ width: 256, height: 192 });
    for (let y = 0; y < 192; y++) {
      for (let x = 0; x < 256; x++) {
        const v = splashRgb(x, y);
        img.data.set([v >> 16, (v >> 8) & 0xff, v & 0xff, 255], (y * 256 + x) * 4);
      }
    }
    const splash = path.join(dir, 'splash.png');
    writeFileSync(splash, PNG.sync.write(img));
    const mdev = createSampleMdev('mdpy-xga');
    const pidFile = path.join(dir, 'vmm.pid');
    let vmm: SampleVmm | null = await SampleVmm.start(mdev, 'mdpy');
    try {
      await vmm.draw(drawPattern(W, H, 21));
      writeFileSync(pidFile, `${vmm.pid}\n`);
      const sock = path.join(dir, 'lab.sock');
      const cfg = path.join(dir, 'lab.yaml');
      writeFileSync(cfg, [
        'version: 1',
        'outputs:',
        `  - { name: lab, device: ${card}, match: Virtual-1, mode: ${W}x${H}, idle: ${splash} }`,
        'vms:',
        `  - { name: bench, pidfile: ${pidFile}, planes: { primary: { output: lab, paths: [region] } } }`,
        `control: { socket: ${sock} }`,
        '',
      ].join('\n'));
      const d = runDaemon(cfg);
      const whole = (t: number): Check => (p) => mismatches(p, { x: 0, y: 0, w: W, h: H }, (x, y) => mask(patternPixel(x, y, W, H, t)), 3);
      try {
        await until(() => existsSync(sock), 120_000, () => `the control socket (log: ${d.log()})`);
        await shows(sock, 'lab', 'the VMM\'s guest (pattern 21)', whole(21));
        await vmm.stop();
        vmm = null;
        await until(() => d.events().some((e) => e.event === 'guest-left'), 60_000, () => `the guest-left line (log: ${d.log()})`);
        await shows(sock, 'lab', 'the splash', (p) => mismatches(p, { x: 0, y: 0, w: W, h: H }, (x, y) => splashRgb(x >> 2, y >> 2), 3));
        vmm = await SampleVmm.start(mdev, 'mdpy');
        await vmm.draw(drawPattern(W, H, 22));
        writeFileSync(pidFile, `${vmm.pid}\n`);
        await shows(sock, 'lab', 'the guest again after its VMM came back (pattern 22)', whole(22));
        d.p.kill('SIGTERM');
        expect(await d.exited, d.log()).toBe(0);
      } finally {
        if (d.p.exitCode === null) d.p.kill('SIGKILL');
      }
    } finally {
      await vmm?.stop();
      removeSampleMdev(mdev);
    }
  }, 400_000);

  it.skipIf(display2CardOrUndefined() === undefined && !ci)('a valid reload moves the VM on vkms; the VM on the second display keeps counting frames and is not assigned again', async () => {
    const head0 = display2Head0();
    const steady = createSimInstance('vgpu_sim-small');
    const mover = createSimInstance('vgpu_sim-small');
    insts.push(steady, mover);
    const B = W * H * 4;
    const g = new SimGuest(steady.uuid);
    g.setMode('primary', { fourcc: 'XR24', width: W, height: H });
    g.writePixels(0, drawPattern(W, H, 41));
    // buffer B differs from A in its last pixel (no check samples it): every flip is a changed
    // frame, which the copy fallback (virtio-gpu cannot import vgpu-sim's dma-bufs) copies and
    // commits; a frame equal to the screen it would neither copy nor commit (issue 10)
    g.writePixels(B, oneDifferentPixel(drawPattern(W, H, 41)));
    g.flip('primary', 0);
    // the steady guest keeps flipping between its two buffers: frames keep coming
    let k = 0;
    const flipper = setInterval(() => g.flip('primary', (++k % 2) * B), 50);
    const MW = 400;
    const MH = 300;
    draw(mover.uuid, MW, MH, 42);
    const sock = path.join(dir, 'two.sock');
    const cfg = path.join(dir, 'two.yaml');
    const text = (at: string): string => [
      'version: 1',
      'outputs:',
      `  - { name: wall, device: ${card}, match: Virtual-1, mode: ${W}x${H} }`,
      `  - { name: side, device: ${display2Card()}, match: ${head0}, mode: ${W}x${H} }`,
      'vms:',
      `  - { name: steady, mdev: ${steady.uuid}, planes: { primary: { output: side, paths: [dmabuf] } } }`,
      `  - { name: mover, mdev: ${mover.uuid}, planes: { primary: { output: wall, placement: "${at}", paths: [dmabuf] } } }`,
      `control: { socket: ${sock} }`,
      '',
    ].join('\n');
    writeFileSync(cfg, text('0,0'));
    const moverAt = (x0: number, y0: number): Check => both(
      (p) => mismatches(p, { x: x0, y: y0, w: MW, h: MH }, (x, y) => mask(patternPixel(x - x0, y - y0, MW, MH, 42)), 3),
      // the rest of the CRTC is black
      (p) => mismatches(p, { x: 0, y: 0, w: W, h: H }, (x, y) => (x >= x0 && x < x0 + MW && y >= y0 && y < y0 + MH ? p.at(x, y) : 0), 7),
    );
    const d = runDaemon(cfg);
    const steadyFrames = (s: StatusReport): number => s.outputs.find((o) => o.name === 'side')!.layers[0]?.frames ?? 0;
    try {
      await until(() => existsSync(sock), 120_000, () => `the control socket (log: ${d.log()})`);
      await shows(sock, 'wall', 'the mover at (0,0)', moverAt(0, 0));
      const s0 = await statusUntil(sock, (s) => steadyFrames(s) > 5, 'the steady guest\'s frames counted');
      const assignedSide = (): number => d.events().filter((e) => e.event === 'assigned' && e.output === 'side').length;
      expect(assignedSide()).toBe(1);
      // what the daemon holds now: the reload gives back what it takes (the mover's vGPU, its framebuffers)
      await sleep(500); // the control connections of the screenshots closed
      const held = (): { fds: number; fbs: number; dmabufs: number } => ({ fds: readdirSync(`/proc/${d.p.pid}/fd`).length, fbs: debugfsFramebuffers(card).length, dmabufs: dmabufCount() });
      const heldBefore = held();
      // sample the steady guest's frame counter all along the reload
      const samples: { at: number; frames: number; state: string }[] = [];
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const s = await status(sock);
          samples.push({ at: Date.now(), frames: steadyFrames(s), state: s.outputs.find((o) => o.name === 'side')!.state });
          await sleep(200);
        }
      })();
      await sleep(1000);
      const before = samples.at(-1)!.frames;
      const asked = Date.now();
      writeFileSync(cfg, text('600,400'));
      const r = await cli(['reload', '--socket', sock]);
      const done = Date.now();
      expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
      const reload = d.events().find((e) => e.event === 'reload')!;
      expect(reload.kept).toEqual(['side']);
      await shows(sock, 'wall', 'the mover at (600,400) after the reload', moverAt(600, 400));
      await until(() => samples.some((x) => x.at > done + 1000), 30_000, () => 'status samples after the reload');
      sampling = false;
      await sampler;
      const across = samples.filter((x) => x.at >= asked - 1000);
      for (let i = 1; i < across.length; i++) expect(across[i]!.frames, JSON.stringify(across)).toBeGreaterThanOrEqual(across[i - 1]!.frames);
      expect(across.every((x) => x.state === 'presenting'), JSON.stringify(across)).toBe(true);
      const after = samples.filter((x) => x.at > done);
      expect(after[0]!.frames, JSON.stringify(across)).toBeGreaterThan(before);
      expect(samples.at(-1)!.frames).toBeGreaterThan(steadyFrames(s0));
      // the steady output was not touched: no new assignment, no restore
      expect(assignedSide()).toBe(1);
      await sleep(500);
      expect(held(), 'fds of the daemon, framebuffers of vkms, dma-bufs after the reload').toEqual(heldBefore);
      d.p.kill('SIGTERM');
      expect(await d.exited, d.log()).toBe(0);
    } finally {
      clearInterval(flipper);
      if (d.p.exitCode === null) d.p.kill('SIGKILL');
    }
  }, 400_000);
});
