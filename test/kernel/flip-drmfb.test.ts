// The DRM_FB direct flip path end to end (issue 5, tool side): vgpu-sim bound to vkms
// (host_card), one assignment through openSession + FlipEngine, then the guest flips 100 times
// and changes resolution once while the tool only watches. Pixels are read back through vkms'
// writeback connector at several flips; the absence of user-space commits is checked with the
// engine's counters AND the kernel's own view: the syscalls:sys_enter_ioctl tracepoint
// filtered on DRM_IOCTL_MODE_ATOMIC (plus the legacy SETPLANE / PAGE_FLIP), and vgpu-sim's
// count of in-kernel commits (status kflips). Then guest reset, instance removal while the
// tool holds the VFIO fd, `--via debugfs` with a "VMM" holding the group, module unload attempt.
// Run in the VM:
//   bash test/rig/vm.sh --check-dmesg -- npx vitest run --configLoader runner --project kernel test/kernel/flip-drmfb.test.ts
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareRegion, captureWriteback, type CapturedFrame } from '../../src/capture/writeback.js';
import { DrmDevice } from '../../src/kms/index.js';
import { cursorPixel, drawCursor, drawPattern, patternPixel, solid } from '../../src/flip/pattern.js';
import { openSession, UsageError, type Session } from '../../src/flip/session.js';
import { commitsPerGuestFlip, SimDebugfsResolver } from '../../src/flip/drmfb.js';
import { VfioDevice, VfioGroupBusyError } from '../../src/vfio/index.js';
import { SimGuest, createSimInstance, type SimInstance } from '../../src/vgpu-sim/index.js';
import { findVkmsCard } from './kms-helpers.js';
import { debugfsFile, fdCount, sleep, waitFor } from './flip-helpers.js';
import { IoctlTrace } from './ioctl-trace.js';

const PARAM = '/sys/module/vgpu_sim/parameters/host_card';
const KEEP = '/sys/module/vgpu_sim/parameters/keep_last_frame';
const PAGE = 4096;
const align = (n: number): number => Math.ceil(n / PAGE) * PAGE;

// DRM_IOCTL_MODE_ATOMIC = DRM_IOWR(0xBC, struct drm_mode_atomic /* 56 bytes */), and the legacy
// ways to move a plane: DRM_IOCTL_MODE_SETPLANE (0xB7, 48 bytes), DRM_IOCTL_MODE_PAGE_FLIP (0xB0, 24 bytes)
const PLANE_IOCTLS = { 0xc03864bc: 'ATOMIC', 0xc03064b7: 'SETPLANE', 0xc01864b0: 'PAGE_FLIP' } as const;

/** Counts the ioctls that can move a plane, as the kernel sees them (ioctl-trace.ts). */
class PlaneIoctlTrace extends IoctlTrace {
  constructor() {
    super(PLANE_IOCTLS);
  }
  /** the traced calls so far, e.g. ['node-123 ATOMIC'] */
  calls(): string[] {
    return this.ioctls().map((c) => `${c.task} ${c.name}`);
  }
}

function dmesgProblems(): string[] {
  const log = execFileSync('dmesg', { encoding: 'utf8' });
  return log.split('\n').filter((l) => /WARNING:|BUG:|Oops|KASAN|Call Trace|refcount_t|UBSAN|list_(add|del) corruption|general protection/.test(l));
}

const stampColor = (i: number): number => ((i * 0x2f5a1b) ^ 0x13579b) & 0xffffff;
const STAMP_ROWS = 8;

function stamp(w: number, color: number): Buffer {
  const b = Buffer.alloc(w * 4 * STAMP_ROWS);
  for (let i = 0; i < b.length; i += 4) b.writeUInt32LE((0xff000000 | color) >>> 0, i);
  return b;
}

/** The capture shows frame `i` of a buffer drawn with pattern `seed` (w x h at x0,y0): stamp rows + pattern. */
function showsFrame(f: CapturedFrame, x0: number, y0: number, w: number, h: number, seed: number, i: number | null): string {
  const top = i === null ? { mismatches: 0, first: null } : compareRegion(f, x0, y0, w, STAMP_ROWS, () => stampColor(i));
  const rest = compareRegion(f, x0, y0 + STAMP_ROWS, w, h - STAMP_ROWS, (x, y) => patternPixel(x, y + STAMP_ROWS, w, h, seed));
  if (top.mismatches === 0 && rest.mismatches === 0) return 'ok';
  return `frame ${i}: stamp ${top.mismatches} wrong (first ${JSON.stringify(top.first)}), pattern ${rest.mismatches} wrong (first ${JSON.stringify(rest.first)})`;
}

let card = '';
let inst: SimInstance | null = null;
let inst2: SimInstance | null = null;
let inst3: SimInstance | null = null;
let guest: SimGuest;
let session: Session | null = null;
let trace: PlaneIoctlTrace | null = null;
let vmm: VfioDevice | null = null;
let W = 0;
let H = 0;

beforeAll(() => {
  card = findVkmsCard();
  inst = createSimInstance('vgpu_sim-small');
  guest = new SimGuest(inst.uuid);
});

afterAll(async () => {
  trace?.close();
  writeFileSync(KEEP, '0');
  try {
    await session?.close();
  } finally {
    vmm?.close();
    inst?.remove();
    inst2?.remove();
    inst3?.remove();
  }
});

describe('DRM_FB direct flip through the engine', () => {
  it('probes DRM_FB first; a forced path the vGPU lacks fails before the screen changes', async () => {
    const cur = readFileSync(PARAM, 'utf8').trim();
    const stateBefore = debugfsFile(card, 'state');
    if (cur === '' || cur === '(null)') {
      // not bound yet: --path drm-fb must fail clearly, nothing on screen changes
      expect(() => openSession({ vgpu: inst!.uuid, planes: ['primary'], crtc: 0, device: card, path: 'drm_fb' })).toThrow(
        /does not support the DRM_FB plane path: the vendor driver answers EINVAL to PROBE \(supported: --path dmabuf, --path region\); vgpu-sim offers DRM_FB once bound/,
      );
      expect(debugfsFile(card, 'state')).toBe(stateBefore);
      writeFileSync(PARAM, path.basename(card));
    }
    // --via debugfs is DRM_FB only
    expect(() => openSession({ vgpu: inst!.uuid, planes: ['primary'], crtc: 0, device: card, via: 'debugfs', path: 'dmabuf' })).toThrow(UsageError);
    expect(guest.info().drmFb).toBe(true);
    expect(debugfsFile(card, 'state')).toBe(stateBefore);
  });

  it('one assignment, then 100 guest flips shown by the kernel: sampled captures match, zero user-space commits', async () => {
    const m = DrmDevice.open(card);
    try {
      const mode = m.snapshot().crtcs[0]!.mode!;
      W = mode.hdisplay;
      H = mode.vdisplay;
    } finally {
      m.close();
    }
    const B = align(W * H * 4);
    guest.setMode('primary', { fourcc: 'XR24', width: W, height: H });
    guest.writePixels(0, drawPattern(W, H, 1));
    guest.writePixels(B, drawPattern(W, H, 2));
    guest.writePixels(0, stamp(W, stampColor(0)));

    session = openSession({ vgpu: inst!.uuid, planes: ['primary'], crtc: 0, device: card, writeback: true });
    expect(session.path).toBe('drm_fb');
    expect(session.checks.join('\n')).toMatch(/DRM_FB path chosen \(PROBE\)/);
    const e = session.engine;
    const errors: string[] = [];
    e.on('error', (x) => errors.push(`${x.stage}: ${x.message}`));
    trace = new PlaneIoctlTrace();
    const assigned = e.waitAssigned(10_000);
    e.start();
    const a = await assigned;
    expect(a.paths).toEqual({ primary: 'drm_fb' });
    expect(a.layout.assignments.map((x) => `${x.guest}:${x.planeType}`)).toEqual(['primary:primary']);
    // the instrument works: it saw the assignment (TEST_ONLY + the commit)
    expect(trace.calls().filter((c) => c.endsWith('ATOMIC')).length).toBeGreaterThanOrEqual(2);
    expect(e.stats).toMatchObject({ commits: 1, assignCommits: 1 });
    const fbA = guest.fbId('primary');
    expect(a.layout.assignments[0]!.planeId).toBeGreaterThan(0);

    let f = await e.capture();
    expect(showsFrame(f, 0, 0, W, H, 1, 0)).toBe('ok');

    trace.clear();
    const commits0 = e.stats.commits;
    const k0 = guest.status('primary').kflips;
    const flips0 = guest.flipCount();
    const samples = new Set([1, 2, 3, 10, 33, 50, 77, 99, 100]);
    const checked: number[] = [];
    for (let i = 1; i <= 100; i++) {
      const back = i % 2 === 1 ? B : 0;
      guest.writePixels(back, stamp(W, stampColor(i))); // the guest draws the new frame, then flips
      guest.flip('primary', back);
      if (samples.has(i)) {
        await sleep(120); // let the watch see it (it must not commit)
        trace.pause();
        f = await e.capture();
        trace.resume();
        expect(showsFrame(f, 0, 0, W, H, back === 0 ? 1 : 2, i)).toBe('ok');
        checked.push(i);
      } else if (i % 10 === 0) {
        await sleep(110);
      }
    }
    await sleep(250);
    expect(checked).toHaveLength(samples.size);
    expect(guest.flipCount() - flips0).toBe(100);
    const st = guest.status('primary');
    expect(st.kflips - k0).toBe(100); // the kernel moved the plane 100 times ...
    expect(st.kflipErr).toBe(0);
    expect(trace.calls()).toEqual([]); // ... and user space did not commit once (kernel's count)
    expect(e.stats.commits).toBe(commits0); // (engine's count)
    expect(e.stats.kernelFlips).toBeGreaterThanOrEqual(10); // it watched the flips go by
    const c = e.drmFbCounters();
    expect(c.guestFlips).toBe(100);
    expect(commitsPerGuestFlip(c)).toBe(0);
    expect(e.drmFbStatus()).toMatch(/guest flips 100 \| kernel flips seen \d+ \| user commits 1 \(assignments 1, per guest flip 0\.00\)/);
    expect(guest.fbId('primary')).toBe(fbA); // the last flip went back to buffer A (offset 0)
    expect(errors).toEqual([]);
  });

  it('a guest flipping as fast as it can from another process (3 buffers, one never seen): followed without re-planning or committing', async () => {
    const e = session!.engine;
    const B = align(W * H * 4);
    trace!.clear();
    const commits0 = e.stats.commits;
    const s0 = guest.status('primary');
    const [k0, c0, i0] = [s0.kflips, s0.kflipCoalesced, s0.kflipIdle];
    const seen0 = e.stats.kernelFlips;
    const replans: string[] = [];
    const onAssigned = (x: { reason: string }): void => void replans.push(x.reason);
    e.on('assigned', onAssigned);
    const flip = path.join(guest.dir, 'primary', 'flip');
    // 300 flips, i = 2..301: the last goes to buffer B (301 % 3 = 1), not to A where the plane
    // starts, so the engine has a flip to follow however the looks fall
    const sh = spawn('sh', ['-c', `i=2; while [ $i -le 301 ]; do echo $(( (i % 3) * ${B} )) > ${flip}; i=$((i+1)); done`], { stdio: 'ignore' });
    const code = await new Promise<number | null>((resolve) => sh.on('exit', resolve));
    expect(code).toBe(0);
    // the guest's writes returned without waiting for the host (vgpu-sim flips in a worker):
    // each of the 300 changes was moved to the host plane, taken by a later flip not made yet
    // (coalesced), or found the plane already there
    await waitFor(() => !guest.status('primary').kflipPending, 10_000, 'the in-kernel flips done');
    // the engine follows the last flip (A -> B) by itself: a look, no commit
    await waitFor(() => e.stats.kernelFlips > seen0, 10_000, 'the engine following the kernel\'s flips');
    await sleep(250);
    e.off('assigned', onAssigned);
    const st = guest.status('primary');
    const kflips = st.kflips - k0;
    const taken = kflips + (st.kflipCoalesced - c0) + (st.kflipIdle - i0);
    expect({ replans, taken, kflipErr: st.kflipErr }).toEqual({ replans: [], taken: 300, kflipErr: 0 });
    expect(kflips).toBeGreaterThan(0);
    console.log(`300 guest flips from a shell loop: ${kflips} in-kernel commits, ${st.kflipCoalesced - c0} coalesced, ${st.kflipIdle - i0} with nothing to move`);
    expect(e.stats.commits).toBe(commits0);
    expect(trace!.calls()).toEqual([]);
    trace!.pause();
    const f = await e.capture();
    trace!.resume();
    expect(showsFrame(f, 0, 0, W, H, 2, 99)).toBe('ok'); // the last flip went to buffer B (frame 99, drawn by the test before)
    // and none after the capture either (the watch looks again after resuming)
    e.on('assigned', onAssigned);
    await sleep(350);
    e.off('assigned', onAssigned);
    expect(replans).toEqual([]);
    expect(e.stats.commits).toBe(commits0);
  });

  it('guest resolution change: re-planned once onto a plane that can show it, then flips need no commit again', async () => {
    const e = session!.engine;
    const reasons: string[] = [];
    e.on('assigned', (x) => reasons.push(x.reason));
    const assign0 = e.stats.assignCommits;
    const w = 800;
    const h = 600;
    const C = 2 * align(W * H * 4);
    const D = C + align(w * h * 4);
    guest.writePixels(C, drawPattern(w, h, 3));
    guest.writePixels(D, drawPattern(w, h, 4));
    guest.writePixels(C, stamp(w, stampColor(200)));
    trace!.clear();
    const commits0 = e.stats.commits;
    guest.setMode('primary', { fourcc: 'XR24', width: w, height: h, offset: C });
    // vkms' primary plane must cover the CRTC: the kernel could not follow, the tool re-plans
    expect(guest.status('primary').kflipErr).toBeLessThan(0);
    await waitFor(() => reasons.length > 0, 5000, 're-plan after the mode change');
    expect(reasons[0]).toMatch(/primary: guest plane size \d+x\d+ -> 800x600; the hardware plane still shows framebuffer/);
    expect(e.assignedLayout!.assignments.map((x) => x.planeType)).toEqual(['overlay']);
    expect(e.stats.commits - commits0).toBe(1);
    expect(e.stats.assignCommits - assign0).toBe(1);
    trace!.pause();
    let f = await e.capture();
    trace!.resume();
    expect(showsFrame(f, 0, 0, w, h, 3, 200)).toBe('ok');
    expect(compareRegion(f, w, 0, W - w, H, () => 0).mismatches).toBe(0); // nothing else on the CRTC

    trace!.clear();
    const commits1 = e.stats.commits;
    for (let i = 201; i <= 220; i++) {
      const back = i % 2 === 1 ? D : C;
      guest.writePixels(back, stamp(w, stampColor(i)));
      guest.flip('primary', back);
      if (i % 5 === 0) await sleep(110);
    }
    await sleep(200);
    trace!.pause();
    f = await e.capture();
    trace!.resume();
    expect(showsFrame(f, 0, 0, w, h, 3, 220)).toBe('ok');
    expect(trace!.calls()).toEqual([]);
    expect(e.stats.commits).toBe(commits1);
    expect(reasons).toHaveLength(1);
  });

  it('guest reset: the kernel turns the plane off, the tool reports it without committing, re-plans when the guest is back', async () => {
    const e = session!.engine;
    const events: string[] = [];
    e.on('not-ready', (x) => events.push(`not-ready:${x.action}`));
    e.on('assigned', (x) => events.push(`assigned:${x.reason}`));
    const commits0 = e.stats.commits;
    guest.reset();
    await waitFor(() => events.includes('not-ready:blank'), 3000, 'not-ready after the reset');
    await sleep(150);
    expect(e.stats.commits).toBe(commits0);
    trace!.pause();
    let f = await e.capture(); // the host display keeps working
    trace!.resume();
    expect(compareRegion(f, 0, 0, W, H, () => 0).mismatches).toBe(0);
    guest.setMode('primary', { fourcc: 'XR24', width: W, height: H });
    await waitFor(() => events.some((x) => x === 'assigned:primary: guest plane is back'), 3000, 're-plan after the reset');
    expect(e.stats.commits).toBe(commits0 + 1);
    trace!.pause();
    f = await e.capture();
    trace!.resume();
    expect(showsFrame(f, 0, 0, W, H, 1, null)).toBe('ok');
  });

  it('keep_last_frame=1: the kernel keeps the last frame on a guest reset, and so does the tool (no commit)', async () => {
    const e = session!.engine;
    const events: string[] = [];
    e.on('not-ready', (x) => events.push(`not-ready:${x.action}`));
    e.on('assigned', (x) => events.push(`assigned:${x.reason}`));
    const commits0 = e.stats.commits;
    writeFileSync(KEEP, '1');
    try {
      guest.reset();
      await waitFor(() => events.includes('not-ready:keep'), 3000, 'not-ready (keep) after the reset');
      await sleep(150);
      expect(e.stats.commits).toBe(commits0);
      trace!.pause();
      const f = await e.capture();
      trace!.resume();
      expect(showsFrame(f, 0, 0, W, H, 1, null)).toBe('ok');
    } finally {
      writeFileSync(KEEP, '0');
    }
    guest.setMode('primary', { fourcc: 'XR24', width: W, height: H });
    await waitFor(() => events.includes('assigned:primary: guest plane is back'), 3000, 're-plan after the reset');
    expect(e.stats.commits).toBe(commits0 + 1);
  });

  it('instance removal while the tool holds the VFIO fd: it stops, restores the display and lets the removal finish', async () => {
    const s = session!;
    const stopped: string[] = [];
    s.engine.on('stopped', (x) => stopped.push(x.message));
    trace!.close();
    trace = null;
    const uuid = inst!.uuid;
    // the removal waits until every VFIO fd of the device is closed: run it in another process
    const rm = spawn('sh', ['-c', `echo 1 > /sys/bus/mdev/devices/${uuid}/remove`], { stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => rm.on('exit', (code) => resolve(code)));
    const why = await Promise.race([s.done, sleep(8000).then(() => 'timeout')]);
    expect(why).toMatch(new RegExp(`vGPU ${uuid} was removed`));
    expect(stopped).toEqual([expect.stringMatching(/^display restored/)]);
    expect(s.vfio!.closed).toBe(true);
    expect(await Promise.race([exited, sleep(10_000).then(() => 'timeout')])).toBe(0);
    inst = null;
    await s.close();
    session = null;
    // the host display keeps working: another client can take over and read it back
    const d = DrmDevice.open(card, { writeback: true });
    try {
      d.setMaster();
      const snap = d.snapshot();
      const crtc = snap.crtcs[0]!;
      expect(crtc.active).toBe(true);
      const conn = snap.connectors.find((x) => x.crtcId === crtc.id && !x.writeback) ?? null;
      const f = captureWriteback(d, { crtcId: crtc.id, mode: crtc.mode!, displayConnectorId: conn?.id ?? null });
      expect(f.width).toBe(W);
    } finally {
      d.close();
    }
    expect(dmesgProblems()).toEqual([]);
  });

  it('--via debugfs while a VMM holds the VFIO group: same fb id as VFIO, flips need no commit; unload refused; removal handled', async () => {
    inst2 = createSimInstance('vgpu_sim-small');
    const g = new SimGuest(inst2.uuid);
    const w = 640;
    const h = 480;
    const B = align(w * h * 4);
    g.setMode('primary', { fourcc: 'XR24', width: w, height: h });
    g.writePixels(0, drawPattern(w, h, 5));
    g.writePixels(B, drawPattern(w, h, 6));
    vmm = VfioDevice.open(inst2.uuid); // the "VMM"
    expect(() => openSession({ vgpu: inst2!.uuid, planes: ['primary'], crtc: 0, device: card })).toThrow(VfioGroupBusyError);

    session = openSession({ vgpu: inst2.uuid, planes: ['primary'], crtc: 0, device: card, writeback: true, via: 'debugfs' });
    expect(session.path).toBe('drm_fb');
    expect(session.vfio).toBeNull();
    expect(session.resolver!.fbId('primary')).toBe(vmm.queryPlane('primary', 'drm_fb').id);
    expect(session.resolver!.fbId('primary')).toBe(g.fbId('primary'));
    expect((session.resolver as SimDebugfsResolver).fbIdByName('primary')).toBe(session.resolver!.fbId('primary')); // write the plane, read the id
    const e = session.engine;
    const events: string[] = [];
    e.on('assigned', (x) => events.push(`assigned:${x.reason}`));
    e.on('error', (x) => events.push(`error:${x.stage}:${x.fatal}:${x.message}`));
    const assigned = e.waitAssigned(10_000);
    e.start();
    expect((await assigned).layout.assignments[0]!.planeType).toBe('overlay');
    trace = new PlaneIoctlTrace();
    const commits0 = e.stats.commits;
    for (let i = 1; i <= 20; i++) {
      const back = i % 2 === 1 ? B : 0;
      g.writePixels(back, stamp(w, stampColor(300 + i)));
      g.flip('primary', back);
      if (i % 5 === 0) await sleep(110);
    }
    await sleep(200);
    expect(trace.calls()).toEqual([]);
    expect(e.stats.commits).toBe(commits0);
    expect(e.stats.kernelFlips).toBeGreaterThan(0);
    expect(vmm.queryPlane('primary', 'drm_fb').id).toBe(session.resolver!.fbId('primary'));
    let f = await e.capture();
    expect(showsFrame(f, 0, 0, w, h, 5, 320)).toBe('ok');

    // module unload attempt while assigned: refused, the display keeps following the guest
    const rmmod = spawnSync('rmmod', ['vgpu_sim'], { encoding: 'utf8' });
    expect(rmmod.status, rmmod.stderr).not.toBe(0);
    expect(existsSync('/sys/module/vgpu_sim')).toBe(true);
    g.writePixels(B, stamp(w, stampColor(321)));
    g.flip('primary', B);
    await sleep(150);
    f = await e.capture();
    expect(showsFrame(f, 0, 0, w, h, 6, 321)).toBe('ok');
    expect(e.stats.commits).toBe(commits0);

    // the VMM goes away: its framebuffers go with the VFIO device (the plane goes off); the
    // attribute gives a new id, the tool re-plans once and shows the guest again
    vmm.close();
    vmm = null;
    await waitFor(() => events.some((x) => /^assigned:primary: .*turned off/.test(x)), 3000, 're-plan after the VMM closed the device');
    f = await e.capture();
    expect(showsFrame(f, 0, 0, w, h, 6, 321)).toBe('ok');

    // instance removal: the tool notices, restores the display and stops
    const uuid = inst2.uuid;
    inst2.remove();
    inst2 = null;
    const why = await Promise.race([session.done, sleep(5000).then(() => 'timeout')]);
    expect(why).toMatch(new RegExp(`vgpu-sim instance ${uuid} is gone`));
    expect(events.filter((x) => x.startsWith('error:guest:true'))).toHaveLength(1);
    await session.close();
    session = null;
    expect(dmesgProblems()).toEqual([]);
  });

  it('primary + cursor: cursor image flips are followed by the kernel, cursor moves are position-only commits', async () => {
    inst3 = createSimInstance('vgpu_sim-small');
    const g = new SimGuest(inst3.uuid);
    const B = align(W * H * 4);
    const CUR = 2 * B;
    const CUR2 = CUR + PAGE * 4;
    g.setMode('primary', { fourcc: 'XR24', width: W, height: H });
    g.writePixels(0, drawPattern(W, H, 7));
    g.writePixels(B, drawPattern(W, H, 8));
    g.writePixels(CUR, drawCursor(64));
    g.writePixels(CUR2, Buffer.from(solid(64, 64, 0x3366cc).map((v, i) => (i % 4 === 3 ? 0xff : v))));
    g.setMode('cursor', { fourcc: 'AR24', width: 64, height: 64, offset: CUR, x: 100, y: 50, xhot: 0, yhot: 0 });
    const fds0 = fdCount();
    session = openSession({ vgpu: inst3.uuid, planes: ['primary', 'cursor'], crtc: 0, device: card, writeback: true });
    const e = session.engine;
    const assigned = e.waitAssigned(10_000);
    e.start();
    const a = await assigned;
    expect(a.layout.assignments.map((x) => `${x.guest}:${x.planeType}`)).toEqual(['primary:primary', 'cursor:cursor']);
    expect(a.paths).toEqual({ primary: 'drm_fb', cursor: 'drm_fb' });
    const cursorAt = (f: CapturedFrame, x: number, y: number, img: 'arrow' | 'solid'): number =>
      compareRegion(f, x, y, 64, 64, (cx, cy) => (img === 'solid' ? 0x3366cc : cursorPixel(cx, cy) >>> 24 ? cursorPixel(cx, cy) & 0xffffff : null)).mismatches;
    let f = await e.capture();
    expect(cursorAt(f, 100, 50, 'arrow')).toBe(0);
    expect(compareRegion(f, 300, 300, 64, 64, (x, y) => patternPixel(x + 300, y + 300, W, H, 7)).mismatches).toBe(0);
    const commits0 = e.stats.commits;
    const k0 = g.status('cursor').kflips;

    // the guest changes the cursor image: the kernel flips the cursor plane, no commit of ours
    g.flip('cursor', CUR2);
    g.flip('primary', B);
    await sleep(250);
    expect(g.status('cursor').kflips - k0).toBe(1);
    expect(e.stats.commits).toBe(commits0);
    f = await e.capture();
    expect(cursorAt(f, 100, 50, 'solid')).toBe(0);
    expect(compareRegion(f, 300, 300, 64, 64, (x, y) => patternPixel(x + 300, y + 300, W, H, 8)).mismatches).toBe(0);

    // the guest moves the cursor: the kernel does not follow positions, the tool commits them
    g.move('cursor', 400, 300);
    await sleep(250);
    expect(e.stats.commits).toBe(commits0 + 1);
    expect(e.stats.assignCommits).toBe(1);
    expect(e.stats.planes.cursor!.moves).toBe(1);
    f = await e.capture();
    expect(cursorAt(f, 400, 300, 'solid')).toBe(0);
    await session.close();
    session = null;
    expect(fdCount()).toBe(fds0); // no fd left behind (DRM, VFIO container/group/device)
  });

  it('the CLI: `vgpu-flip assign` picks DRM_FB by itself; its JSON summary shows zero user-space commits per guest flip', async () => {
    const bin = path.join(import.meta.dirname, '..', '..', 'bin', 'vgpu-flip.js');
    const bad = spawnSync(process.execPath, [bin, 'assign', '--vgpu', inst3!.uuid, '--via', 'debugfs', '--path', 'region', '--once'], { encoding: 'utf8', timeout: 60_000 });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/--via debugfs works with the DRM_FB path only/);

    const g = new SimGuest(inst3!.uuid);
    const B = align(W * H * 4);
    const cli = spawn(process.execPath, [bin, 'assign', '--vgpu', inst3!.uuid, '--device', card, '--duration', '6', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    cli.stdout.on('data', (d: Buffer) => (out += d.toString()));
    cli.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => cli.on('exit', resolve));
    await waitFor(() => out.includes('"type":"assigned"'), 30_000, `the CLI's assignment (stderr: ${err})`);
    for (let i = 1; i <= 20; i++) {
      g.flip('primary', i % 2 === 1 ? 0 : B);
      await sleep(20);
    }
    expect(await exited, err).toBe(0);
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as { type: string; [k: string]: unknown });
    expect(lines.find((l) => l.type === 'assigned')).toMatchObject({ paths: { primary: 'drm_fb' } });
    expect(lines.find((l) => l.type === 'summary')).toMatchObject({ drmFb: { guestFlips: 20, commits: 1, assignCommits: 1, errors: 0 } });
  });
});
