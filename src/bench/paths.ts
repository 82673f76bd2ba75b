// The fast cases: N guest flips through the DRM_FB path (the kernel flips), the DMABUF path and
// the copy path side by side, each guest flip as soon as the previous frame is on screen. Per
// guest frame: ioctls by kind (counted in the display's wrapper around the addon), user-space
// commits, bytes copied, CPU time of the tool (process.cpuUsage minus the guest's own flip
// calls, which run in this process), flip latency in vblanks.
import type { DrmDevice } from '../kms/index.js';
import { CallCounter, IOCTL_CALLS } from '../flip/counting.js';
import type { FrameEvent } from '../flip/events.js';
import { drawPattern } from '../flip/pattern.js';
import { native } from '../binding/index.js';
import type { GuestDriver } from './guest-driver.js';
import type { SimGuestDriver } from './sim-guest.js';
import { nowUs, startTool } from './tool.js';

export type BenchPath = 'drm_fb' | 'dmabuf' | 'region';

/** A path that could not be measured here, and why. */
export interface BenchUnavailable {
  path: BenchPath;
  unavailable: string;
}

export interface BenchResult {
  path: BenchPath;
  guest: string;
  frames: number;
  seconds: number;
  fps: number;
  ioctlsPerFrame: number;
  callsPerFrame: Record<string, number>;
  /** user-space atomic commits per guest frame (DRM_FB: 0, the kernel flips) */
  commitsPerFrame: number;
  bytesCopiedPerFrame: number;
  cpuUsPerFrame: number;
  /** commit -> flip complete */
  flipLatencyVblanks: { avg: number; max: number };
  /** guest flip -> on screen */
  guestToScreenVblanks: { avg: number; max: number };
  imports: number;
  errors: number;
  /** DRM_FB: flips vgpu-sim made in the kernel during the window (status kflips) */
  kernelFlips?: number;
}

const avg = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** The fields every path's result has: the window and the calls per frame. */
function perFrame(guest: GuestDriver, calls: Record<string, number>, frames: number, seconds: number) {
  const callsPerFrame: Record<string, number> = {};
  for (const [k, v] of Object.entries(calls)) callsPerFrame[k] = v / frames;
  return { guest: guest.description, frames, seconds, fps: frames / seconds, ioctlsPerFrame: CallCounter.ioctls(calls) / frames, callsPerFrame };
}

export async function benchPath(dev: DrmDevice, guest: GuestDriver, p: 'dmabuf' | 'region', frames: number, warmup = 10): Promise<BenchResult> {
  const snap = dev.snapshot();
  const mode = snap.crtcs[0]!.mode;
  if (!mode) throw new Error(`bench: CRTC 0 of ${dev.path} has no mode`);
  const W = mode.hdisplay;
  const H = mode.vdisplay;
  guest.setPrimary(W, H, p === 'region' ? 1 : 3);
  guest.presentPrimary(drawPattern(W, H, 0));
  // the fast loop: no display event (the guest flips right after each flip event and the
  // output looks at once: the per-frame work the C reference loop does)
  const t = await startTool(dev, guest, p, false);
  const { counter, out: engine, errors } = t;
  const period = 1e6 / (mode.vrefresh || 60);
  const results: { lat: number; g2s: number }[] = [];
  let flippedAt = 0;
  let total = 0;
  let before: Record<string, number> = {};
  let after: Record<string, number> = {};
  let cpu: NodeJS.CpuUsage = { user: 0, system: 0 };
  let t1 = 0;
  let cpu0 = process.cpuUsage();
  let t0 = 0;
  let guestCpuUs = 0;
  // REGION: an unchanged guest is neither copied nor committed, so the guest draws a new frame
  // (two whole patterns in turn: the worst case, every row changed) before each flip
  const frameImgs = p === 'region' ? [drawPattern(W, H, 1), drawPattern(W, H, 2)] : [];
  let nthFrame = 0;
  const guestFlip = (): void => {
    const g0 = process.cpuUsage();
    if (frameImgs.length) guest.presentPrimary(frameImgs[nthFrame++ % 2]!);
    else guest.flipPrimary();
    const g = process.cpuUsage(g0);
    guestCpuUs += g.user + g.system;
  };
  const done = new Promise<void>((resolve, reject) => {
    const timeout = setTimeout(() => reject(new Error(`bench ${p}: only ${total} of ${warmup + frames} frames within 120 s (errors: ${errors.join('; ') || 'none'})`)), 120_000);
    engine.on('frame', (e: FrameEvent) => {
      if (e.sequence === 0) return; // the assignment commit itself
      total++;
      if (total > warmup) results.push({ lat: e.latencyVblanks, g2s: Math.max(1, Math.ceil(((e.vblankUs || nowUs()) - flippedAt) / period)) });
      if (total === warmup) {
        before = counter.snapshot();
        cpu0 = process.cpuUsage();
        guestCpuUs = 0;
        t0 = nowUs();
      }
      if (total >= warmup + frames) {
        // the window ends with this frame's flip event (before the engine looks again)
        after = counter.snapshot();
        cpu = process.cpuUsage(cpu0);
        t1 = nowUs();
        clearTimeout(timeout);
        resolve();
        return;
      }
      // the guest flips right away: the engine looks again at once after this event
      guestFlip();
      flippedAt = nowUs();
    });
  });
  guestFlip();
  flippedAt = nowUs();
  await done;
  const seconds = (t1 - t0) / 1e6;
  const calls: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0)) calls[k] = v - (before[k] ?? 0);
  await t.stop();
  const s = engine.stats.planes.primary!;
  return {
    path: p,
    ...perFrame(guest, calls, frames, seconds),
    commitsPerFrame: (calls['drmAtomicCommit'] ?? 0) / frames,
    bytesCopiedPerFrame: p === 'region' || s.copies ? s.bytesCopied / Math.max(1, s.copies) : 0,
    cpuUsPerFrame: Math.max(0, cpu.user + cpu.system - guestCpuUs) / frames,
    flipLatencyVblanks: { avg: avg(results.map((r) => r.lat)), max: Math.max(...results.map((r) => r.lat)) },
    guestToScreenVblanks: { avg: avg(results.map((r) => r.g2s)), max: Math.max(...results.map((r) => r.g2s)) },
    imports: s.imports,
    errors: engine.stats.errors,
  };
}

/** Why DRM_FB cannot be measured with this guest, or null when it can. */
export function drmFbUnavailable(guest: GuestDriver): string | null {
  if (guest.kind !== 'vgpu-sim' || !guest.vfio) return `the ${guest.kind} guest has no DRM_FB plane type (it needs a vendor driver that exposes host framebuffers: vgpu-sim)`;
  const a = guest.vfio.probePath('drm_fb');
  if (a.supported === true) return null;
  if (a.supported === false) {
    return 'vgpu-sim answers EINVAL to PROBE|DRM_FB: it is not bound to a host card (load it with host_card=card0, e.g. `bash test/rig/vm.sh --param vgpu_sim.host_card=card0 ...`)';
  }
  return `PROBE|DRM_FB failed: ${a.error?.message}`;
}

const kflipsOf = (g: SimGuestDriver): number => Number(/\bkflips=(\d+)/.exec(g.status('primary'))?.[1] ?? NaN);

/**
 * DRM_FB: one assignment, then the guest flips `frames` times and the kernel (vgpu-sim's
 * in-kernel atomic commit, made by a worker) moves the hardware plane; the tool only watches.
 * After each flip the bench waits for that commit (debugfs kflip_wait): the vblank counter
 * before the flip and after the wait is the guest flip -> screen latency.
 */
export async function benchDrmFb(dev: DrmDevice, guest: SimGuestDriver, frames: number, warmup = 10): Promise<BenchResult> {
  const snap = dev.snapshot();
  const mode = snap.crtcs[0]!.mode;
  if (!mode) throw new Error(`bench: CRTC 0 of ${dev.path} has no mode`);
  const W = mode.hdisplay;
  const H = mode.vdisplay;
  guest.setPrimary(W, H, 3);
  guest.presentPrimary(drawPattern(W, H, 0));
  const t = await startTool(dev, guest, 'drm_fb', false);
  const { counter, out: engine, errors } = t;
  try {
    const lat: number[] = [];
    const yieldToEngine = (): Promise<void> => new Promise((r) => setImmediate(r));
    for (let i = 0; i < warmup; i++) {
      guest.flipPrimary();
      guest.kflipWait();
      await yieldToEngine();
    }
    const before = counter.snapshot();
    const k0 = kflipsOf(guest);
    const commits0 = engine.stats.commits;
    let guestCpuUs = 0;
    const cpu0 = process.cpuUsage();
    const t0 = nowUs();
    for (let i = 0; i < frames; i++) {
      // the guest's flip and the bench's own vblank probes (not counted as the tool's work)
      const g0 = process.cpuUsage();
      const seq0 = native.drmWaitVblank(dev.fd, 0);
      guest.flipPrimary(); // vgpu-sim's worker makes the in-kernel commit ...
      guest.kflipWait(); // ... done here (the flip is on screen)
      const seq1 = native.drmWaitVblank(dev.fd, 0);
      const g = process.cpuUsage(g0);
      guestCpuUs += g.user + g.system;
      lat.push(seq1 - seq0);
      await yieldToEngine();
    }
    const t1 = nowUs();
    const cpu = process.cpuUsage(cpu0);
    // one more look of the engine's watch, so the window ends as the other paths' do
    await new Promise((r) => setTimeout(r, 150));
    const calls = counter.since(before);
    const kernelFlips = kflipsOf(guest) - k0;
    const commits = engine.stats.commits - commits0;
    if (errors.length) throw new Error(`DRM_FB engine errors: ${errors.join('; ')}`);
    if (kernelFlips !== frames) throw new Error(`vgpu-sim made ${kernelFlips} in-kernel flips for ${frames} guest flips (status kflips)`);
    const s = engine.stats.planes.primary!;
    return {
      path: 'drm_fb',
      ...perFrame(guest, calls, frames, (t1 - t0) / 1e6),
      commitsPerFrame: commits / frames,
      bytesCopiedPerFrame: s.copies ? s.bytesCopied / s.copies : 0,
      cpuUsPerFrame: Math.max(0, cpu.user + cpu.system - guestCpuUs) / frames,
      flipLatencyVblanks: { avg: avg(lat), max: Math.max(...lat) },
      guestToScreenVblanks: { avg: avg(lat), max: Math.max(...lat) },
      imports: s.imports,
      errors: engine.stats.errors,
      kernelFlips,
    };
  } finally {
    await t.stop();
  }
}

const COLUMN: Record<BenchPath, string> = { drm_fb: 'DRM_FB (kernel flips)', dmabuf: 'DMABUF (zero copy)', region: 'copy (REGION)' };

export function formatTable(cols: (BenchResult | BenchUnavailable)[]): string {
  const rs = cols.filter((c): c is BenchResult => !('unavailable' in c));
  const names = [...new Set(rs.flatMap((r) => Object.keys(r.callsPerFrame)))].sort();
  const cell = (f: (r: BenchResult) => string) => cols.map((c) => ('unavailable' in c ? 'unavailable' : f(c)));
  const rows: [string, ...string[]][] = [
    ['', ...cols.map((c) => COLUMN[c.path])],
    ['guest frames', ...cell((r) => String(r.frames))],
    ['fps', ...cell((r) => r.fps.toFixed(1))],
    ['ioctls per frame', ...cell((r) => r.ioctlsPerFrame.toFixed(2))],
    ...names.map((n): [string, ...string[]] => [`  ${n}${IOCTL_CALLS.has(n) ? '' : ' (syscall)'}`, ...cell((r) => (r.callsPerFrame[n] ?? 0).toFixed(2))]),
    ['user-space commits per frame', ...cell((r) => r.commitsPerFrame.toFixed(2))],
    ['bytes copied per frame', ...cell((r) => String(Math.round(r.bytesCopiedPerFrame)))],
    ['tool CPU time per frame (us)', ...cell((r) => r.cpuUsPerFrame.toFixed(0))],
    ['flip latency (vblanks, commit->flip)', ...cell((r) => `${r.flipLatencyVblanks.avg.toFixed(2)} (max ${r.flipLatencyVblanks.max})`)],
    ['guest flip -> screen (vblanks)', ...cell((r) => `${r.guestToScreenVblanks.avg.toFixed(2)} (max ${r.guestToScreenVblanks.max})`)],
    ['imports (whole run)', ...cell((r) => String(r.imports))],
    ['errors', ...cell((r) => String(r.errors))],
  ];
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const ws = cols.map((_, i) => Math.max(...rows.map((r) => (r[i + 1] ?? '').length)));
  const table = rows.map((r) => [r[0].padEnd(w0), ...r.slice(1).map((c, i) => c.padStart(ws[i]!))].join('  ')).join('\n');
  const notes = [
    'per guest frame; tool CPU time = this process minus the guest\'s own flip calls (DRM_FB: vgpu-sim\'s worker commits in the kernel, the bench waits for it)',
    ...cols.filter((c): c is BenchUnavailable => 'unavailable' in c).map((c) => `${COLUMN[c.path]}: unavailable: ${c.unavailable}`),
    ...rs.filter((r) => r.kernelFlips !== undefined).map((r) => `${COLUMN[r.path]}: ${r.kernelFlips} of ${r.frames} guest flips were made by vgpu-sim's in-kernel commit (status kflips)`),
  ];
  return `${table}\n\n${notes.join('\n')}`;
}

