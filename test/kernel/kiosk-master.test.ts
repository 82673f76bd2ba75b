// The kiosk daemon (issue 9) losing DRM master and getting it back, without a restart, the way a
// VT switch or logind takes it: the test takes a duplicate of the daemon's DRM fd (pidfd_getfd:
// the same open file) and drops master on it, becomes master of vkms (card0) itself, puts a
// solid red dumb buffer on the primary plane (read back through vkms' writeback connector), then
// drops master and closes its fd (its framebuffer goes, which turns the CRTC off). Meanwhile the
// guest keeps flipping. Checked: the daemon logs the loss once (no error lines, no failing commit
// per frame), `vgpu-flip status --json` shows the output paused; once the other holder is gone
// the daemon takes master back by itself, plans again with a modeset and the guest's pixels are
// on screen (writeback screenshot through the control socket), its frames count again after a
// guest flip; SIGTERM exits 0 with vkms' state as found. A second case keeps the guest still: no
// frame is due, so no commit can be refused; the daemon's own probe (once a second, isMaster)
// must notice the loss, and the picture must come back when master is free without the guest
// flipping. Fails in CI without vkms or vgpu-sim.
import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../src/binding/index.js';
import { DRM_MODE_ATOMIC_ALLOW_MODESET } from '../../src/binding/constants.js';
import { DrmDevice, isMaster } from '../../src/kms/index.js';
import { captureWriteback, pixelAt } from '../../src/capture/writeback.js';
import { drawPattern, patternPixel } from '../../src/flip/pattern.js';
import { SimGuest, createSimInstance, type SimInstance } from '../../src/vgpu-sim/index.js';
import { request } from '../../src/kiosk/control-client.js';
import type { StatusReport } from '../../src/kiosk/status.js';
import { debugfsFramebuffers, displayState, sleep } from './flip-helpers.js';
import { findVkmsCard } from './kms-helpers.js';
import { cli, daemonLog, mismatches, oneDifferentPixel, readPng, runDaemon, until, type LogLine, type Picture } from './kiosk-helpers.js';

const W = 1024;
const H = 768;
const B = W * H * 4; // the guest's second buffer
const RED = 0xff0000;
const step = (s: string): void => console.error(`[kiosk-master] ${new Date().toISOString()} ${s}`);

async function status(sock: string): Promise<StatusReport> {
  const r = await request(sock, { cmd: 'status' });
  if (!r.ok || r.cmd !== 'status') throw new Error(`status: ${JSON.stringify(r)}`);
  return r.status as StatusReport;
}

async function statusUntil(sock: string, cond: (s: StatusReport) => boolean, what: string, ms = 90_000): Promise<StatusReport> {
  let last: StatusReport | null = null;
  for (const end = Date.now() + ms; ; await sleep(250)) {
    last = await status(sock);
    if (cond(last)) return last;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}: last status ${JSON.stringify(last)}; daemon log: ${daemonLog().slice(-3000)}`);
  }
}

/** Writeback screenshots through the control socket until the whole CRTC shows guest pattern t. */
async function showsGuest(sock: string, t: number, what: string): Promise<Picture> {
  const end = Date.now() + 90_000;
  for (;;) {
    const r = await request(sock, { cmd: 'screenshot', output: 'wall', method: 'writeback' });
    if (!r.ok || r.cmd !== 'screenshot') throw new Error(`screenshot: ${JSON.stringify(r)}`);
    const p = readPng(Buffer.from(r.png, 'base64'));
    const m = mismatches(p, { x: 0, y: 0, w: W, h: H }, (x, y) => patternPixel(x, y, W, H, t) & 0xffffff, 3);
    if (m.bad === 0) return p;
    if (Date.now() > end) throw new Error(`output wall does not show ${what} after 90 s: ${m.bad} sampled pixels differ, first ${m.first}; daemon log: ${daemonLog().slice(-4000)}`);
    await sleep(250);
  }
}

/** The daemon's fds on `card` (readlink of /proc/PID/fd). */
function drmFdsOf(pid: number, card: string): number[] {
  return readdirSync(`/proc/${pid}/fd`).map(Number).filter((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`) === card;
    } catch {
      return false; // closed meanwhile
    }
  });
}

/** The guest showing pattern t (buffer B: the same but one unsampled pixel), a daemon for it on vkms' Virtual-1. */
function startWall(card: string, uuid: string, dir: string, name: string, t: number): { g: SimGuest; sock: string; d: ReturnType<typeof runDaemon>; before: { state: string; fbs: unknown } } {
  const g = new SimGuest(uuid);
  g.setMode('primary', { fourcc: 'XR24', width: W, height: H });
  g.writePixels(0, drawPattern(W, H, t));
  g.writePixels(B, oneDifferentPixel(drawPattern(W, H, t)));
  g.flip('primary', 0);
  const sock = path.join(dir, `${name}.sock`);
  const cfg = path.join(dir, `${name}.yaml`);
  writeFileSync(cfg, [
    'version: 1',
    'outputs:',
    `  - { name: wall, device: ${card}, match: Virtual-1, mode: ${W}x${H} }`,
    'vms:',
    `  - { name: sign, mdev: ${uuid}, planes: { primary: { output: wall, paths: [dmabuf] } } }`,
    `control: { socket: ${sock} }`,
    '',
  ].join('\n'));
  const before = { state: displayState(card), fbs: debugfsFramebuffers(card) };
  return { g, sock, d: runDaemon(cfg), before };
}

/**
 * Master taken from the daemon as logind does it: DROP_MASTER on the daemon's own open file (a
 * pidfd_getfd duplicate), the test's fd becomes master and lights the CRTC with red on the primary
 * plane (every other plane off), checked through writeback. Returns the test's device (master).
 */
function takeMaster(pid: number, card: string): { other: DrmDevice; red: () => number; daemonFds: number[] } {
  const fds = drmFdsOf(pid, card);
  expect(fds.length, `the daemon's fds on ${card}`).toBeGreaterThan(0);
  const other = DrmDevice.open(card, { writeback: true }); // not master: the daemon is
  expect(isMaster(other.fd)).toBe(false);
  const dups = fds.map((fd) => native.pidfdGetFd(pid, fd));
  try {
    const masters = dups.filter((fd) => isMaster(fd));
    expect(masters.length, `master fds among the daemon's ${fds.length} fds on ${card}`).toBe(1);
    native.drmDropMaster(masters[0]!); // the daemon's file is no longer master (as logind does it)
    other.setMaster(); // at once: the daemon's retry comes 100 ms after it notices
    expect(isMaster(other.fd)).toBe(true);
    expect(isMaster(masters[0]!)).toBe(false);
  } finally {
    for (const fd of dups) native.close(fd);
  }
  const snap = other.snapshot();
  const crtc = snap.crtcs[0]!;
  const conn = snap.connectors.find((c) => c.name === 'Virtual-1')!;
  const fb = other.createDumbFramebuffer(W, H);
  const m = fb.map();
  const px = Buffer.from(m.buffer, 0, m.length);
  for (let i = 0; i + 4 <= px.length; i += 4) px.writeUInt32LE(RED, i); // XRGB8888: 0x00RRGGBB
  m.unmap();
  const blob = other.createModeBlob(crtc.mode!);
  const req = other.atomic().set(conn.id, 'CRTC_ID', crtc.id).set(crtc.id, 'ACTIVE', 1).set(crtc.id, 'MODE_ID', blob.id);
  for (const p of snap.planes) {
    if (!p.possibleCrtcIndices.includes(0)) continue;
    if (p.type === 'primary') req.placePlane(p.id, crtc.id, fb.fbId, { w: W, h: H }, { x: 0, y: 0, w: W, h: H });
    else req.set(p.id, 'FB_ID', 0).set(p.id, 'CRTC_ID', 0);
  }
  req.commit(DRM_MODE_ATOMIC_ALLOW_MODESET);
  blob.destroy();
  const red = (): number => pixelAt(captureWriteback(other, { crtcId: crtc.id, mode: crtc.mode!, displayConnectorId: conn.id }), W / 2, H / 2);
  expect(red(), 'our red in the middle').toBe(RED);
  return { other, red, daemonFds: fds };
}

/** The other holder lets go (drops master, closes: its framebuffer and the CRTC it lit go); the daemon takes master back by itself. */
async function giveBack(other: DrmDevice, d: ReturnType<typeof runDaemon>, sock: string): Promise<void> {
  const n = d.events().length;
  other.dropMaster();
  other.close();
  await until(() => masterLines(d.events().slice(n), 'regained').length > 0, 60_000, () => `the daemon's "master regained" line (log: ${d.log()})`);
  await statusUntil(sock, (s) => s.outputs[0]!.state === 'presenting', 'output wall presenting again');
}

/** One 'lost' and one 'regained' line, no error line in the whole log; then SIGTERM, which exits 0. */
async function onceEachThenSigterm(d: ReturnType<typeof runDaemon>, what: string): Promise<void> {
  expect(masterLines(d.events(), 'lost').length).toBe(1);
  expect(masterLines(d.events(), 'regained').length).toBe(1);
  expect(d.events().filter(errorLevel).map((e) => e.msg)).toEqual([]);
  step(what);
  d.p.kill('SIGTERM');
  expect(await d.exited, d.log()).toBe(0);
}

/** After the daemon is gone: vkms as found, no framebuffer left, the vGPU closed with no cached buffer. */
async function restored(card: string, before: { state: string; fbs: unknown }, g: SimGuest, uuid: string): Promise<void> {
  await sleep(200);
  expect(displayState(card)).toBe(before.state);
  expect(debugfsFramebuffers(card)).toEqual(before.fbs);
  expect(g.info(), `vGPU ${uuid}`).toMatchObject({ open: false, cachedBuffers: 0 });
}

const masterLines = (evs: LogLine[], type: string): LogLine[] => evs.filter((e) => e.event === 'master' && e['type'] === type);
const errorLevel = (e: LogLine): boolean => e.level === 50 || e.level === 'error';

describe('kiosk daemon and DRM master', () => {
  let card = '';
  let dir = '';
  let inst: SimInstance | null = null;

  beforeAll(() => {
    card = findVkmsCard();
    const dev = DrmDevice.open(card);
    try {
      const m = dev.snapshot().crtcs[0]?.mode;
      if (m && (m.hdisplay !== W || m.vdisplay !== H)) throw new Error(`vkms CRTC 0 is at ${m.hdisplay}x${m.vdisplay}; the test expects the rig's ${W}x${H}`);
    } finally {
      dev.close();
    }
    inst = createSimInstance('vgpu_sim-small');
    dir = mkdtempSync(path.join(os.tmpdir(), 'kiosk-master-'));
  });

  afterAll(() => {
    if (inst && existsSync(`/sys/bus/mdev/devices/${inst.uuid}`)) inst.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('master taken away (drop on the daemon\'s own file) and given back: paused and logged once, then planned again by itself; SIGTERM restores vkms', async () => {
    const { g, sock, d, before } = startWall(card, inst!.uuid, dir, 'wall', 61);
    let k = 0;
    let flipper: NodeJS.Timeout | null = null;
    let other: DrmDevice | null = null;
    try {
      await until(() => existsSync(sock), 120_000, () => `the control socket (log: ${d.log()})`);
      step('1: the guest on screen');
      await showsGuest(sock, 61, 'guest pattern 61');
      const s0 = await statusUntil(sock, (s) => s.outputs[0]!.state === 'presenting', 'output wall presenting');
      // the guest keeps flipping between its two buffers: a frame is due every few ms, so a
      // daemon that commits while not master would fail (and log) every frame
      flipper = setInterval(() => g.flip('primary', (++k % 2) * B), 50);
      await statusUntil(sock, (s) => s.outputs[0]!.frames > s0.outputs[0]!.frames + 5, 'the flipping guest\'s frames counted');

      step('2: master taken from the daemon\'s open file, the test becomes master');
      const n = d.events().length;
      const taken = takeMaster(d.p.pid!, card);
      other = taken.other;

      step('3: the daemon paused, logged once');
      await until(() => masterLines(d.events().slice(n), 'lost').length > 0, 60_000, () => `the daemon's "master lost" line (log: ${d.log()})`);
      const st = await cli(['status', '--json', '--socket', sock]);
      expect(st.status, st.stderr).toBe(0);
      expect((JSON.parse(st.stdout) as StatusReport).outputs[0]!.state).toBe('paused');
      const pausedFrames = (await status(sock)).outputs[0]!.frames;
      await sleep(3000); // the guest flips ~60 times meanwhile
      const s3 = await statusUntil(sock, (s) => s.outputs[0]!.state === 'paused', 'output wall still paused');
      expect(s3.outputs[0]!.frames, 'frames while not master').toBe(pausedFrames);
      const during = d.events().slice(n);
      expect(masterLines(during, 'lost').length, d.log()).toBe(1);
      expect(during.filter((e) => e.event === 'error' || errorLevel(e)).map((e) => e.msg), 'error lines while master was away').toEqual([]);
      expect(isMaster(other.fd), 'the daemon took master while we hold it').toBe(true);
      expect(taken.red(), 'still our red (the daemon did not commit)').toBe(RED);

      step('4: the other holder lets go: the daemon regains master by itself');
      clearInterval(flipper);
      flipper = null;
      const back = other;
      other = null;
      await giveBack(back, d, sock);
      await showsGuest(sock, 61, 'guest pattern 61 after master came back');
      const f0 = (await status(sock)).outputs[0]!.frames;
      g.flip('primary', (++k % 2) * B);
      await statusUntil(sock, (s) => s.outputs[0]!.frames > f0, 'a frame counted after a guest flip');
      await onceEachThenSigterm(d, '5: SIGTERM');
    } finally {
      if (flipper) clearInterval(flipper);
      other?.close();
      if (d.p.exitCode === null) d.p.kill('SIGKILL');
    }
    await restored(card, before, g, inst!.uuid);
  }, 600_000);

  it('a still guest (no frame due, so no commit to be refused): the daemon notices the loss itself, and the picture is back when master is free, without a guest flip', async () => {
    const { g, sock, d, before } = startWall(card, inst!.uuid, dir, 'still', 63);
    let other: DrmDevice | null = null;
    try {
      await until(() => existsSync(sock), 120_000, () => `the control socket (log: ${d.log()})`);
      step('still 1: the guest on screen, then nothing moves');
      await showsGuest(sock, 63, 'guest pattern 63');
      await statusUntil(sock, (s) => s.outputs[0]!.state === 'presenting', 'output wall presenting');
      const n = d.events().length;

      step('still 2: master taken');
      const taken = takeMaster(d.p.pid!, card);
      other = taken.other;

      step('still 3: paused, though nothing was committed');
      await until(() => masterLines(d.events().slice(n), 'lost').length > 0, 60_000, () => `the daemon's "master lost" line (log: ${d.log()})`);
      const lost = masterLines(d.events().slice(n), 'lost');
      expect(String(lost[0]!['message']), 'found by the probe, not by a refused commit').toMatch(/probe/);
      await statusUntil(sock, (s) => s.outputs[0]!.state === 'paused', 'output wall paused');
      expect(taken.red(), 'our red (the daemon did not commit)').toBe(RED);
      expect(isMaster(other.fd)).toBe(true);

      step('still 4: the other holder lets go: the guest\'s picture comes back by itself');
      const back = other;
      other = null;
      await giveBack(back, d, sock);
      await showsGuest(sock, 63, 'guest pattern 63 after master came back (the guest never flipped)');
      await onceEachThenSigterm(d, 'still 5: SIGTERM');
    } finally {
      other?.close();
      if (d.p.exitCode === null) d.p.kill('SIGKILL');
    }
    await restored(card, before, g, inst!.uuid);
  }, 600_000);
});
