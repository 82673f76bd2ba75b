// The bench's reference lines, run by src/bench/flip-loop.c in the same VM on the same kind of
// guest, with the tool's own DRM master fd and the vGPU's VFIO fd (the tool is stopped
// meanwhile): the C reference loop (the DMABUF path's per-frame work with raw ioctls: what the
// tool's CPU per frame is compared to) and a QEMU-like consumer polling every 30 ms.
import path from 'node:path';
import type { DrmDevice } from '../kms/index.js';
import { captureState, restoreState } from '../kms/index.js';
import { native } from '../binding/index.js';
import type { SimGuestDriver } from './sim-guest.js';
import { runFlipLoop, runGuest, startHogs } from './cbin.js';
import { flipToScreen, type ShownFrame } from './latency.js';
import { guestFlips, outputMode, prepareGuest, type FlipCase, type IdleCase } from './cases.js';
import { sleep } from './tool.js';

interface Owned {
  fbs: number[];
  handles: number[];
}

export interface CLoopResult {
  case: 'c-loop';
  frames: number;
  seconds: number;
  fps: number;
  cpuUsPerFrame: number;
  ioctlsPerFrame: number;
}

/**
 * Run a flip-loop display mode on CRTC 0's primary plane with the tool's fds; the display is
 * restored afterwards and the framebuffers it made are removed (they belong to the shared fd).
 */
async function onDisplay<T extends Owned>(dev: DrmDevice, sim: SimGuestDriver, bin: string, mode: string, args: (string | number)[], meanwhile?: () => Promise<void>): Promise<T> {
  const snap = dev.snapshot();
  const crtc = snap.crtcs[0]!;
  const plane = snap.planes.find((p) => p.type === 'primary' && p.possibleCrtcIndices.includes(crtc.index));
  if (!plane) throw new Error(`${dev.path}: no primary plane for CRTC ${crtc.id}`);
  const saved = captureState(snap, { crtcIds: [crtc.id] });
  let r: T | null = null;
  try {
    const run = runFlipLoop<T>(bin, [mode, 3, 4, plane.id, crtc.id, ...args], [sim.vfio.fd, dev.fd]);
    await meanwhile?.();
    r = (await run).value;
    return r;
  } finally {
    restoreState(dev, saved);
    for (const fb of r?.fbs ?? []) native.drmRmFb(dev.fd, fb);
    for (const h of r?.handles ?? []) native.drmGemClose(dev.fd, h);
  }
}

/** The C reference loop: `frames` guest flips, each as soon as the previous one is on screen. */
export async function cLoop(dev: DrmDevice, sim: SimGuestDriver, bin: string, frames: number, warmup = 10): Promise<CLoopResult> {
  const { offsets } = prepareGuest(dev, sim, 3, false);
  const r = await onDisplay<Owned & { frames: number; seconds: number; fps: number; cpu_us_per_frame: number; ioctls_per_frame: number }>(
    dev, sim, bin, 'loop', [frames, warmup, path.join(sim.dir, 'primary', 'flip'), offsets.join(',')]);
  return { case: 'c-loop', frames: r.frames, seconds: r.seconds, fps: r.fps, cpuUsPerFrame: r.cpu_us_per_frame, ioctlsPerFrame: r.ioctls_per_frame };
}

interface PollOut extends Owned {
  frames: [number, number, number][];
  seconds: number;
  commits: number;
  ioctls_per_second: number;
  cpu_us_per_second: number;
}

/** QEMU-like: a look every 30 ms at an idle guest. */
export async function pollIdle(dev: DrmDevice, sim: SimGuestDriver, bin: string, seconds: number): Promise<IdleCase> {
  prepareGuest(dev, sim, 3, false);
  const r = await onDisplay<PollOut>(dev, sim, bin, 'poll30', [seconds, 30]);
  return {
    case: 'idle', path: 'qemu-poll30', events: false, seconds: r.seconds, ioctlsPerSecond: r.ioctls_per_second,
    callsPerSecond: {}, cpuUsPerSecond: r.cpu_us_per_second, commits: r.commits, errors: 0,
  };
}

/** QEMU-like: a guest flipping at `fps` under a CPU hog, looked at every 30 ms. */
export async function pollFlip(dev: DrmDevice, sim: SimGuestDriver, bin: string, fps: number, seconds: number, nHogs: number): Promise<FlipCase> {
  const { offsets, bufOfId } = prepareGuest(dev, sim, 6, true);
  const { periodUs } = outputMode(dev);
  const hogs = startHogs(bin, nHogs);
  let flips: [number, number, number, number][] = [];
  try {
    const r = await onDisplay<PollOut>(dev, sim, bin, 'poll30', [seconds + 1.5, 30], async () => {
      await sleep(700); // the poller has placed the plane
      flips = (await runGuest(bin, path.join(sim.dir, 'primary', 'flip'), offsets, fps, Math.round(fps * seconds))).value.flips;
    });
    const frames: ShownFrame[] = r.frames.map(([committedUs, vblankUs, id]) => ({ committedUs, vblankUs, buf: bufOfId!.get(id) ?? -1 }));
    const onScreen = flipToScreen(guestFlips(flips), frames, periodUs);
    return {
      case: 'flip', path: 'qemu-poll30', events: false, fps, hogs: hogs.n, seconds: r.seconds, onScreen,
      ioctlsPerSecond: r.ioctls_per_second, cpuUsPerSecond: r.cpu_us_per_second,
      cpuUsPerFrame: (r.cpu_us_per_second * r.seconds) / Math.max(1, r.commits), commits: r.commits, errors: 0,
    };
  } finally {
    hogs.stop();
  }
}
