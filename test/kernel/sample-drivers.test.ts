// The tool against the kernel's own sample vGPU drivers (issue 8, field readiness): mdpy
// (REGION only, fixed mode per type) and mbochs (DMABUF only; the guest programs bochs DISPI
// registers). Each mdev is held by a "VMM" child (test/kernel/sample-vmm.ts) that also plays the
// guest; the tool attaches by pid (pidfd_getfd of the VMM's device fd) as `vgpu-flip assign
// --pid` does, with vkms as the monitor, and reads the screen back through vkms' writeback.
// What mbochs needs from the engine: vkms refuses the real commit of its dma-buf (no vmap), so
// the engine falls back to copying and says so; the dma-buf's size is stride*height (not page
// aligned) and it is exported read-only (user space cannot mmap it at all); and each dmabuf_id
// may be exported only once while the device is open (mbochs 6.1: a second
// VFIO_DEVICE_GET_GFX_DMABUF of a live id hands out another fd of the same dma_buf without a
// reference -> use after free; a re-export after the release drops the page references a
// second time -> Bad page state). A SingleExportGuard refuses repeats in this process so a
// wrong engine fails this test instead of wrecking the VM for the rest of the suite.
// Needs the rig's sample drivers; fails (never skips) without them:
//   bash test/rig/vm.sh --check-dmesg --sample-drivers -- npx vitest run --configLoader runner --project kernel test/kernel/sample-drivers.test.ts
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareRegion, type CapturedFrame } from '../../src/capture/writeback.js';
import { DRM_FORMAT_XRGB8888 } from '../../src/binding/constants.js';
import { native } from '../../src/binding/index.js';
import { drawPattern, patternPixel } from '../../src/flip/pattern.js';
import { openSession, type Session } from '../../src/flip/session.js';
import type { AssignedEvent, EngineErrorEvent, FallbackEvent, FrameEvent } from '../../src/flip/events.js';
import type { FlipEngine } from '../../src/flip/engine.js';
import { VfioDevice, VfioGroupBusyError } from '../../src/vfio/index.js';
import { readVgpu } from '../../src/vfio/sysfs.js';
import { findVkmsCard } from './kms-helpers.js';
import { displayState, sleep, waitFor } from './flip-helpers.js';
import { SampleVmm, createSampleMdev, removeSampleMdev } from './sample-vmm.js';
import { SingleExportGuard, VfioIoctlTrace } from './vfio-ioctl-trace.js';

const PAGE = 4096;
const BAD_KERNEL_LOG = /WARNING:|BUG:|Oops|KASAN|Call Trace|refcount_t|refcount:|UBSAN|list_(add|del) corruption|general protection|Bad page state|bad page|kernel BUG/;

function dmesgProblems(): string[] {
  return execFileSync('dmesg', { encoding: 'utf8' })
    .split('\n')
    .filter((l) => BAD_KERNEL_LOG.test(l));
}

/** Where the engine put the guest primary on the CRTC. */
function primaryDst(a: AssignedEvent): { x: number; y: number; w: number; h: number } {
  const p = a.layout.assignments.find((x) => x.guest === 'primary');
  if (!p) throw new Error(`no primary in the layout: ${JSON.stringify(a.layout)}`);
  return p.dst;
}

/** 'ok' or what is wrong: the capture shows pattern `seed` (w x h) at (x, y). */
function showsPattern(f: CapturedFrame, x: number, y: number, w: number, h: number, seed: number): string {
  const r = compareRegion(f, x, y, w, h, (gx, gy) => patternPixel(gx, gy, w, h, seed));
  if (r.total !== w * h) return `only ${r.total} of ${w * h} pixels on screen`;
  return r.mismatches === 0 ? 'ok' : `pattern ${seed} ${w}x${h} at ${x},${y}: ${r.mismatches} pixels wrong (first ${JSON.stringify(r.first)})`;
}

/**
 * Capture until `check` says 'ok' (the engine copies asynchronously; TCG is slow) or the time
 * is up; returns the last verdict. The assertion on it stays exact.
 */
async function captureUntil(e: FlipEngine, check: (f: CapturedFrame) => string, timeoutMs = 10_000, abort: () => string | null = () => null): Promise<string> {
  const end = Date.now() + timeoutMs;
  let verdict = 'no capture';
  for (;;) {
    const why = abort();
    if (why !== null) return why;
    verdict = check(await e.capture());
    if (verdict === 'ok' || Date.now() > end) return verdict;
    await sleep(200);
  }
}

interface EngineLog {
  assigned: AssignedEvent[];
  fallbacks: FallbackEvent[];
  errors: EngineErrorEvent[];
  /** the first 1000 frames */
  frames: FrameEvent[];
  frameCount: number;
  /** every guest buffer id shown (dmabuf_id / region index) */
  ids: Set<number>;
  /** every present path of a frame */
  paths: Set<string>;
  bytesCopied: number;
}

/** The engine's event log of one session. */
function record(e: FlipEngine): EngineLog {
  const log: EngineLog = { assigned: [], fallbacks: [], errors: [], frames: [], frameCount: 0, ids: new Set(), paths: new Set(), bytesCopied: 0 };
  e.on('assigned', (x) => log.assigned.push(x));
  e.on('fallback', (x) => log.fallbacks.push(x));
  e.on('error', (x) => log.errors.push(x));
  e.on('frame', (x) => {
    log.frameCount++;
    if (x.id > 0) log.ids.add(x.id);
    log.paths.add(x.path);
    log.bytesCopied += x.bytesCopied;
    if (log.frames.length < 1000) log.frames.push(x);
  });
  return log;
}

let card = '';
let dmesgAtStart: string[] = [];

beforeAll(() => {
  card = findVkmsCard();
  dmesgAtStart = dmesgProblems();
});

describe('mdpy (REGION only, fixed mode) held by a VMM', () => {
  const W = 640;
  const H = 480;
  let uuid = '';
  let vmm: SampleVmm | null = null;
  let session: Session | null = null;

  beforeAll(async () => {
    uuid = createSampleMdev('mdpy-vga');
    vmm = await SampleVmm.start(uuid, 'mdpy');
  });

  afterAll(async () => {
    try {
      await session?.close();
    } finally {
      await vmm?.stop();
      if (uuid) removeSampleMdev(uuid);
    }
  });

  it('the VMM holds the group; through its fd PROBE says REGION only and the query is the type\'s fixed mode; pwrite lands at offset 0', async () => {
    expect(readVgpu(uuid).holders.map((h) => h.pid)).toEqual([vmm!.pid]);
    expect(() => VfioDevice.open(uuid)).toThrow(VfioGroupBusyError);
    // the guest read its mode from the vendor capability in config space
    expect(vmm!.ready.fb).toEqual({ format: DRM_FORMAT_XRGB8888, width: W, height: H, stride: W * 4, offset: 0 });
    const d = VfioDevice.fromPid(vmm!.pid, { uuid });
    try {
      const p = d.probe();
      expect(p.region.supported).toBe(true);
      expect(p.dmabuf.supported).toBe(false);
      expect(p.drm_fb.supported).toBe(false);
      const q = d.queryPlane('primary', 'region');
      // size is the whole video memory (roundup_pow_of_two(640*480*4)), id the display region 16
      expect(q).toMatchObject({ ready: true, drmFormat: DRM_FORMAT_XRGB8888, width: W, height: H, stride: W * 4, size: 2 * 1024 * 1024, id: 16 });
      // mdpy 6.1 ignores the position of a read/write in video memory: a pwrite 16 rows in lands
      // at byte 0 (why the guest and the copy path use mmap)
      const mark = Buffer.from([0x44, 0x33, 0x22, 0x11]);
      expect(native.pwrite(d.fd, BigInt(vmm!.ready.regions['display']!.offset + 16 * W * 4), mark)).toBe(4);
      expect(await vmm!.peek(0, 4)).toEqual(mark);
      expect(await vmm!.peek(16 * W * 4, 4)).not.toEqual(mark);
    } finally {
      d.close();
    }
  });

  it('REGION path by pid: the guest\'s pixels on screen, copies counted, a redraw followed, display restored on close', async () => {
    const stateBefore = displayState(card);
    await vmm!.draw(drawPattern(W, H, 3));
    session = openSession({ pid: vmm!.pid, vgpu: uuid, planes: ['primary'], crtc: 0, device: card, writeback: true });
    expect(session.path).toBe('region');
    const e = session.engine;
    const log = record(e);
    const assigned = e.waitAssigned(20_000);
    e.start();
    const a = await assigned;
    expect(a.paths).toEqual({ primary: 'copy' });
    const dst = primaryDst(a);
    expect(dst).toMatchObject({ w: W, h: H });
    expect(await captureUntil(e, (f) => showsPattern(f, dst.x, dst.y, W, H, 3))).toBe('ok');

    // the guest draws the next frame in place: the copy follows
    await vmm!.draw(drawPattern(W, H, 4));
    expect(await captureUntil(e, (f) => showsPattern(f, dst.x, dst.y, W, H, 4))).toBe('ok');

    const st = e.stats.planes.primary!;
    // the first frame and the redraw (into the other, never written buffer: whole; a redraw
    // caught half way adds copies of the rows that differ)
    expect(st.copies).toBeGreaterThanOrEqual(2);
    expect(st.bytesCopied).toBeGreaterThanOrEqual(2 * W * H * 4);
    expect(log.frameCount).toBeGreaterThan(0);
    expect([...log.paths]).toEqual(['copy']);
    expect([...log.ids]).toEqual([16]);
    expect(log.fallbacks).toEqual([]);
    expect(log.errors.map((x) => `${x.stage}: ${x.message}`)).toEqual([]);

    await session.close();
    session = null;
    expect(displayState(card)).toBe(stateBefore);
    // the VMM still holds its device
    expect(vmm!.child.exitCode).toBeNull();
    expect(readVgpu(uuid).holders.map((h) => h.pid)).toEqual([vmm!.pid]);
  });
});

describe('mbochs (DMABUF only, bochs DISPI registers) held by a VMM', () => {
  // mbochs-medium: 16 MB of video memory, enough for a second buffer and a 1024x768 mode
  let uuid = '';
  let vmm: SampleVmm | null = null;
  let session: Session | null = null;
  let trace: VfioIoctlTrace | null = null;
  let guard: SingleExportGuard | null = null;
  /** a repeated export the guard refused, as the verdict of a wait */
  const refused = (): string | null => (guard && guard.refused.length ? guard.refused.join('; ') : null);

  beforeAll(async () => {
    uuid = createSampleMdev('mbochs-medium');
    vmm = await SampleVmm.start(uuid, 'mbochs');
  });

  afterAll(async () => {
    trace?.close();
    try {
      guard?.restore();
      await session?.close();
    } finally {
      await vmm?.stop();
      if (uuid) removeSampleMdev(uuid);
    }
  });

  it('the guest programs 800x600 through DISPI; the query (by pid) reports it: stride*height, not page aligned; the instruments count one export', async () => {
    const r0 = await vmm!.regs();
    expect(r0).toMatchObject({ ID: 0xb0c5, ENABLE: 0, VIDEO_MEMORY_64K: (16 * 1024 * 1024) / 65536 });
    const d = VfioDevice.fromPid(vmm!.pid, { uuid });
    try {
      const p = d.probe();
      expect(p.dmabuf.supported).toBe(true);
      expect(p.region.supported).toBe(false);
      expect(p.drm_fb.supported).toBe(false);
      // display off: "not ready" (size 0), not an error
      expect(d.queryPlane('primary', 'dmabuf')).toMatchObject({ ready: false, size: 0 });
      // two buffers of 800x600 (virtual height 1216: the second one starts at row 608, whose
      // byte offset 608*3200 is page aligned, which mbochs requires to export it)
      const m = await vmm!.setMode({ width: 800, height: 600, virtHeight: 1216 });
      expect(m.regs).toMatchObject({ XRES: 800, YRES: 600, BPP: 32, ENABLE: 0x41, VIRT_WIDTH: 800, VIRT_HEIGHT: 1216, X_OFFSET: 0, Y_OFFSET: 0 });
      expect(m.fb).toMatchObject({ width: 800, height: 600, stride: 3200, offset: 0 });
      // the first query after a mode change fails with ENOMEM in mbochs 6.1 (it allocates the
      // dmabuf entry but does not use it); the next one succeeds
      let q;
      try {
        q = d.queryPlane('primary', 'dmabuf');
      } catch (e) {
        expect(e).toMatchObject({ code: 'ENOMEM' });
        q = d.queryPlane('primary', 'dmabuf');
      }
      expect(q).toMatchObject({ ready: true, drmFormat: DRM_FORMAT_XRGB8888, width: 800, height: 600, stride: 3200, size: 800 * 600 * 4 });
      expect(q.size % PAGE).not.toBe(0);
      expect(q.id).toBeGreaterThan(0);
      // mbochs 6.1: a pwrite at BAR0 + 0 lands 8192 bytes further in video memory (it subtracts
      // the MMIO BAR's offset instead of the memory BAR's); the guest draws through its mmap
      const mark = Buffer.from([0x88, 0x77, 0x66, 0x55]);
      expect(native.pwrite(d.fd, BigInt(vmm!.ready.regions['bar0']!.offset), mark)).toBe(4);
      expect(await vmm!.peek(8192, 4)).toEqual(mark);
      expect(await vmm!.peek(0, 4)).not.toEqual(mark);

      // the instruments, on one export made here of ANOTHER mode's buffer (720x400): an id may
      // be exported only once while the device is open -- mbochs takes its page references when
      // the query creates the buffer and drops them at every release, so even a re-export after
      // the first dma-buf was released frees the pages twice (Bad page state). The syscall
      // tracepoint sees one GET_GFX_DMABUF (the one asked for here). The dma-buf is
      // exported read-only, so it cannot be mapped at all: a writable mmap is EACCES, and a
      // read-only MAP_SHARED one loses VM_SHARED (read-only file), which mbochs refuses (EINVAL)
      await vmm!.setMode({ width: 720, height: 400 });
      let q2;
      try {
        q2 = d.queryPlane('primary', 'dmabuf');
      } catch (e) {
        expect(e).toMatchObject({ code: 'ENOMEM' });
        q2 = d.queryPlane('primary', 'dmabuf');
      }
      expect(q2).toMatchObject({ ready: true, width: 720, height: 400, stride: 2880, size: 2880 * 400 });
      expect(q2.id).not.toBe(q.id);
      trace = new VfioIoctlTrace();
      const fd = native.vfioGetGfxDmabuf(d.fd, q2.id);
      try {
        expect(trace.count('GET_GFX_DMABUF')).toBe(1);
        expect(() => native.mmap(fd, 0n, PAGE, true)).toThrow(expect.objectContaining({ code: 'EACCES' }));
        expect(() => native.mmap(fd, 0n, q2.size, false)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
        expect(() => native.mmap(fd, 0n, PAGE, false)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
      } finally {
        native.close(fd); // released now; its id (q2.id) must never be exported again
        trace.close();
        trace = null;
      }
      // back to the 800x600 mode: the same buffer (dmabuf_id) as before, never exported
      await vmm!.setMode({ width: 800, height: 600, virtHeight: 1216 });
      expect(d.queryPlane('primary', 'dmabuf')).toMatchObject({ ready: true, width: 800, height: 600, id: q.id });
    } finally {
      d.close();
    }
  });

  it('DMABUF by pid: vkms refuses the commit, the engine falls back to copying and says so; the guest\'s pixels, in-place redraws, a page flip and a mode change are followed; one GET_GFX_DMABUF per dmabuf_id', async () => {
    const stateBefore = displayState(card);
    await vmm!.draw(drawPattern(800, 600, 7));
    trace = new VfioIoctlTrace();
    guard = new SingleExportGuard();
    session = openSession({ pid: vmm!.pid, vgpu: uuid, planes: ['primary'], crtc: 0, device: card, writeback: true });
    expect(session.path).toBe('dmabuf');
    const e = session.engine;
    const log = record(e);
    e.start();
    const state = (): string => `errors: ${JSON.stringify(log.errors.map((x) => `${x.stage}: ${x.message}`))}; assigned: ${JSON.stringify(log.assigned.map((x) => x.paths))}; frames ${log.frameCount}; ${e.whyNotAssigned()}`;
    await waitFor(() => log.fallbacks.length > 0 || refused() !== null, 20_000, 'a fallback event (vkms cannot vmap an mbochs dma-buf)').catch((err: Error) => {
      throw new Error(`${err.message}; ${state()}`);
    });
    expect(refused()).toBeNull();
    expect(log.fallbacks[0]).toMatchObject({ plane: 'primary', from: 'dmabuf', to: 'copy' });
    expect(log.fallbacks[0]!.reason).not.toBe('');
    await waitFor(() => log.assigned.some((x) => x.paths.primary === 'copy') || refused() !== null, 20_000, 'an assignment on the copy path').catch((err: Error) => {
      throw new Error(`${err.message}; ${state()}`);
    });
    expect(refused()).toBeNull();
    const a = log.assigned.filter((x) => x.paths.primary === 'copy').at(-1)!;
    const dst = primaryDst(a);
    expect(dst).toMatchObject({ w: 800, h: 600 });
    expect(await captureUntil(e, (f) => showsPattern(f, dst.x, dst.y, 800, 600, 7), 10_000, refused)).toBe('ok');
    expect(log.paths.has('copy')).toBe(true);

    // the guest redraws in place (same buffer, same dmabuf_id): the copy follows
    await vmm!.draw(drawPattern(800, 600, 8));
    expect(await captureUntil(e, (f) => showsPattern(f, dst.x, dst.y, 800, 600, 8), 10_000, refused)).toBe('ok');

    // a page flip as bochs-drm does it: draw into the back buffer (row 608), then pan to it
    // (DISPI Y_OFFSET): a new dmabuf_id
    const back = 608 * 3200;
    expect(back % PAGE).toBe(0);
    await vmm!.draw(drawPattern(800, 600, 9), back);
    const flip = await vmm!.pan(0, 608);
    expect(flip.fb.offset).toBe(back);
    // the engine takes the new dmabuf_id (export, refused by vkms, copied); the copy reads
    // where mbochs' registers say the plane is, so the pixels may follow the pan even a
    // frame before, and then the new buffer's copy equals the screen: nothing to commit, no
    // frame carries its id. So: wait for its export, then for the pixels
    const exportsBeforePan = guard.attempts.size;
    await waitFor(() => guard!.attempts.size > exportsBeforePan || refused() !== null, 20_000, 'the panned buffer (a new dmabuf_id) exported');
    expect(refused()).toBeNull();
    expect(await captureUntil(e, (f) => showsPattern(f, dst.x, dst.y, 800, 600, 9), 10_000, refused)).toBe('ok');

    // a mode change by the guest: 1024x768 (the CRTC's size: full screen)
    await vmm!.setMode({ width: 1024, height: 768 });
    await vmm!.draw(drawPattern(1024, 768, 10));
    await waitFor(() => log.assigned.some((x) => primaryDst(x).w === 1024 && primaryDst(x).h === 768), 20_000, 'a re-plan after the mode change to 1024x768');
    const b = log.assigned.filter((x) => primaryDst(x).w === 1024).at(-1)!;
    const dst2 = primaryDst(b);
    expect(await captureUntil(e, (f) => showsPattern(f, dst2.x, dst2.y, 1024, 768, 10), 10_000, refused)).toBe('ok');
    await sleep(300);
    // an idle guest is compared with the screen, not copied again: no copy, no commit
    const idle0 = { copies: e.stats.planes.primary!.copies, commits: e.stats.commits };
    await sleep(1000);
    expect({ copies: e.stats.planes.primary!.copies, commits: e.stats.commits }).toEqual(idle0);

    // the kernel's count: every dmabuf_id was exported exactly once, every one shown among them
    const ids = [...guard.attempts.keys()].sort((x, y) => x - y);
    expect(ids.length).toBeGreaterThanOrEqual(3); // 800x600 @0, 800x600 @608 rows, 1024x768
    expect([...log.ids].filter((id) => !guard!.attempts.has(id))).toEqual([]);
    expect(trace.overrun()).toBe(0);
    // the addon asked once per id, and the kernel saw exactly that many exports in all
    expect(Object.fromEntries(guard.attempts)).toEqual(Object.fromEntries(ids.map((id) => [id, 1])));
    expect(trace.count('GET_GFX_DMABUF')).toBe(ids.length);
    expect(trace.count('QUERY_GFX_PLANE')).toBeGreaterThan(0);

    const st = e.stats.planes.primary!;
    expect(st.copies).toBeGreaterThan(1);
    expect(log.bytesCopied).toBeGreaterThan(0);
    // the only errors allowed are mbochs' transient ENOMEM on the first query after a mode change
    expect(log.errors.filter((x) => !(x.stage === 'query' && x.kernel?.code === 'ENOMEM')).map((x) => `${x.stage}: ${x.message}`)).toEqual([]);

    await session.close();
    session = null;
    expect(displayState(card)).toBe(stateBefore);
    expect(vmm!.child.exitCode).toBeNull();
  });

  it('the kernel log stays clean after the VMM closes its fds and the mdev is removed', async () => {
    trace?.close();
    trace = null;
    guard?.restore();
    guard = null;
    await session?.close();
    session = null;
    await vmm?.stop();
    vmm = null;
    removeSampleMdev(uuid);
    uuid = '';
    await sleep(500);
    expect(dmesgProblems().filter((l) => !dmesgAtStart.includes(l))).toEqual([]);
  });
});

describe('the kernel log', () => {
  it('has no new WARNING / BUG / list corruption / bad page state', () => {
    expect(dmesgProblems().filter((l) => !dmesgAtStart.includes(l))).toEqual([]);
  });
});
