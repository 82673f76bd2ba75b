// Issue 10's bench cases for the tool, per path (DRM_FB, DMABUF, REGION), with and without the
// vGPU's display event: an idle guest (what does looking at nothing cost?), and a guest flipping
// at a steady rate under a CPU hog (how many vblanks from its flip to the screen?).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { DrmDevice } from '../kms/index.js';
import { native } from '../binding/index.js';
import { DRM_PLANE_TYPES, PLANE_PATH_FLAGS } from '../vfio/index.js';
import type { FrameEvent } from '../flip/events.js';
import { drawPattern } from '../flip/pattern.js';
import type { EnginePath } from '../present/guest.js';
import type { SimGuestDriver } from './sim-guest.js';
import { measure, perSecond, sleep, startTool } from './tool.js';
import { runGuest, startHogs } from './cbin.js';
import { vendorFlipToScreen, flipToScreen, type GuestFlip, type LatencySummary, type ShownFrame } from './latency.js';

export interface IdleCase {
  case: 'idle';
  path: EnginePath | 'qemu-poll30';
  events: boolean;
  seconds: number;
  ioctlsPerSecond: number;
  callsPerSecond: Record<string, number>;
  cpuUsPerSecond: number;
  commits: number;
  errors: number;
}

export interface FlipCase {
  case: 'flip';
  path: EnginePath | 'qemu-poll30';
  events: boolean;
  fps: number;
  hogs: number;
  seconds: number;
  /** guest flip -> on screen, in vblanks of the output */
  onScreen: LatencySummary;
  ioctlsPerSecond: number;
  cpuUsPerSecond: number;
  /** CPU per frame on screen */
  cpuUsPerFrame: number;
  commits: number;
  errors: number;
}

/** The output's mode: the guest uses its size. */
export function outputMode(dev: DrmDevice): { W: number; H: number; periodUs: number } {
  const m = dev.snapshot().crtcs[0]!.mode;
  if (!m) throw new Error(`bench: CRTC 0 of ${dev.path} has no mode`);
  return { W: m.hdisplay, H: m.vdisplay, periodUs: 1e6 / (m.vrefresh || 60) };
}

/**
 * Give the guest a primary of the output's size with `buffers` buffers (REGION: 1, the plane
 * at offset 0) and a first frame. Returns the flip offsets and, for DMABUF, which buffer each
 * dmabuf_id is (vgpu-sim keeps one id per buffer state), learned by flipping through them.
 */
export function prepareGuest(dev: DrmDevice, sim: SimGuestDriver, buffers: number, learnIds: boolean): { offsets: number[]; bufOfId: Map<number, number> | null } {
  const { W, H } = outputMode(dev);
  sim.setPrimary(W, H, buffers);
  sim.presentPrimary(drawPattern(W, H, 0));
  const { offsets } = sim.primaryLayout;
  if (!learnIds) return { offsets, bufOfId: null };
  const bufOfId = new Map<number, number>();
  offsets.forEach((off, j) => {
    writeFileSync(path.join(sim.dir, 'primary', 'flip'), String(off));
    bufOfId.set(native.vfioQueryGfxPlane(sim.vfio.fd, PLANE_PATH_FLAGS.dmabuf, DRM_PLANE_TYPES.primary).id, j);
  });
  return { offsets, bufOfId };
}

/** An idle guest (one frame, then nothing) for `seconds`: the tool's ioctls and CPU per second. */
export async function idleCase(dev: DrmDevice, sim: SimGuestDriver, p: EnginePath, events: boolean, seconds: number): Promise<IdleCase> {
  prepareGuest(dev, sim, p === 'region' ? 1 : 3, false);
  const t = await startTool(dev, sim, p, events);
  try {
    await sleep(1000); // the first frames (a REGION guest's first copy) are not idle
    const commits0 = t.out.stats.commits;
    const errors0 = t.out.stats.errors;
    const end = measure(t.counter);
    await sleep(seconds * 1000);
    const m = end();
    return {
      case: 'idle', path: p, events, seconds: m.seconds,
      ioctlsPerSecond: m.ioctls / m.seconds, callsPerSecond: perSecond(m.calls, m.seconds), cpuUsPerSecond: m.cpuUs / m.seconds,
      commits: t.out.stats.commits - commits0, errors: t.out.stats.errors - errors0,
    };
  } finally {
    await t.stop();
  }
}

/** The guest's flips as the flip-loop guest reported them. */
export const guestFlips = (raw: [number, number, number, number][]): GuestFlip[] => raw.map(([t0, t1, buf, t2]) => ({ t0, t1, buf, ...(t2 ? { t2 } : {}) }));

/**
 * A guest flipping at `fps` for `seconds` from its own process beside `nHogs` CPU hogs: guest
 * flip -> on screen (DMABUF: the frame's dmabuf_id says which flip it shows; REGION: what was
 * drawn before the commit; DRM_FB: vgpu-sim's in-kernel flip, waited for by the guest).
 */
export async function flipCase(dev: DrmDevice, sim: SimGuestDriver, bin: string, p: EnginePath, events: boolean, fps: number, seconds: number, nHogs: number): Promise<FlipCase> {
  const { offsets, bufOfId } = prepareGuest(dev, sim, p === 'region' ? 1 : 6, p === 'dmabuf');
  const { periodUs } = outputMode(dev);
  const t = await startTool(dev, sim, p, events);
  const frames: ShownFrame[] = [];
  t.out.on('frame', (e: FrameEvent) => {
    if (!e.vblankUs || e.sequence === 0) return; // the assignment, DRM_FB's follows
    frames.push({ vblankUs: e.vblankUs, committedUs: e.vblankUs - e.latencyUs, buf: bufOfId ? (bufOfId.get(e.id) ?? -1) : null });
  });
  let hogs: { n: number; stop(): void } | null = null;
  try {
    await sleep(500);
    hogs = startHogs(bin, nHogs);
    const commits0 = t.out.stats.commits;
    const errors0 = t.out.stats.errors;
    const end = measure(t.counter);
    const lay = sim.primaryLayout;
    const g = await runGuest(bin, path.join(sim.dir, 'primary', 'flip'), offsets, fps, Math.round(fps * seconds), {
      ...(p === 'region' ? { draw: { vram: path.join(sim.dir, 'vram'), stride: lay.stride, height: lay.height } } : {}),
      ...(p === 'drm_fb' ? { kflipWait: path.join(sim.dir, 'primary', 'kflip_wait') } : {}),
    });
    await sleep(150); // the last flip reaches the screen
    const m = end();
    hogs.stop();
    hogs = null;
    const flips = guestFlips(g.value.flips);
    const onScreen = p === 'drm_fb' ? vendorFlipToScreen(flips, periodUs) : flipToScreen(flips, frames, periodUs);
    const commits = t.out.stats.commits - commits0;
    return {
      case: 'flip', path: p, events, fps, hogs: nHogs, seconds: m.seconds, onScreen,
      ioctlsPerSecond: m.ioctls / m.seconds, cpuUsPerSecond: m.cpuUs / m.seconds,
      cpuUsPerFrame: m.cpuUs / Math.max(1, p === 'drm_fb' ? flips.length : onScreen.shown),
      commits, errors: t.out.stats.errors - errors0,
    };
  } finally {
    hogs?.stop();
    await t.stop();
  }
}
