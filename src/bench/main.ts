// `npm run bench` (inside the test rig's VM): N guest flips through the DMABUF path and the copy
// path side by side. Per presented frame: ioctls by kind (counted in the engine's wrapper around
// the addon), bytes copied, CPU time (process.cpuUsage), flip latency in vblanks.
import { writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DrmDevice } from '../kms/index.js';
import { FlipEngine } from '../flip/engine.js';
import { CallCounter, IOCTL_CALLS } from '../flip/counting.js';
import type { FrameEvent } from '../flip/events.js';
import { drawPattern } from '../flip/pattern.js';
import { findCard, openGuest } from './setup.js';
import type { GuestDriver } from './guest-driver.js';

export interface BenchResult {
  path: 'dmabuf' | 'region';
  guest: string;
  frames: number;
  seconds: number;
  fps: number;
  ioctlsPerFrame: number;
  callsPerFrame: Record<string, number>;
  bytesCopiedPerFrame: number;
  cpuUsPerFrame: number;
  /** commit -> flip complete */
  flipLatencyVblanks: { avg: number; max: number };
  /** guest flip -> on screen */
  guestToScreenVblanks: { avg: number; max: number };
  imports: number;
  errors: number;
}

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

export async function benchPath(dev: DrmDevice, guest: GuestDriver, p: 'dmabuf' | 'region', frames: number, warmup = 10): Promise<BenchResult> {
  const snap = dev.snapshot();
  const mode = snap.crtcs[0]!.mode;
  if (!mode) throw new Error(`bench: CRTC 0 of ${dev.path} has no mode`);
  const W = mode.hdisplay;
  const H = mode.vdisplay;
  guest.setPrimary(W, H, p === 'region' ? 1 : 3);
  guest.presentPrimary(drawPattern(W, H, 0));
  const counter = new CallCounter();
  const engine = new FlipEngine({
    drm: dev,
    ...(guest.vfio ? { vfio: guest.vfio } : { guest: () => guest.source!() }),
    crtcIndex: 0,
    planes: [{ kind: 'primary' }],
    path: p,
    counter,
  });
  const errors: string[] = [];
  engine.on('error', (e) => errors.push(`${e.stage}: ${e.message}`));
  const assigned = engine.waitAssigned(10_000);
  engine.start();
  await assigned;
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
  const done = new Promise<void>((resolve, reject) => {
    const timeout = setTimeout(() => reject(new Error(`bench ${p}: only ${total} of ${warmup + frames} frames within 120 s (errors: ${errors.join('; ') || 'none'})`)), 120_000);
    engine.on('frame', (e: FrameEvent) => {
      if (e.sequence === 0) return; // the assignment commit itself
      total++;
      if (total > warmup) results.push({ lat: e.latencyVblanks, g2s: Math.max(1, Math.ceil(((e.vblankUs || nowUs()) - flippedAt) / period)) });
      if (total === warmup) {
        before = counter.snapshot();
        cpu0 = process.cpuUsage();
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
      guest.flipPrimary();
      flippedAt = nowUs();
    });
  });
  guest.flipPrimary();
  flippedAt = nowUs();
  await done;
  const seconds = (t1 - t0) / 1e6;
  const calls: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0)) calls[k] = v - (before[k] ?? 0);
  await engine.stop();
  const callsPerFrame: Record<string, number> = {};
  for (const [k, v] of Object.entries(calls)) callsPerFrame[k] = v / frames;
  const s = engine.stats.planes.primary!;
  const avg = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  return {
    path: p,
    guest: guest.description,
    frames,
    seconds,
    fps: frames / seconds,
    ioctlsPerFrame: CallCounter.ioctls(calls) / frames,
    callsPerFrame,
    bytesCopiedPerFrame: p === 'region' || s.copies ? s.bytesCopied / Math.max(1, s.copies) : 0,
    cpuUsPerFrame: (cpu.user + cpu.system) / frames,
    flipLatencyVblanks: { avg: avg(results.map((r) => r.lat)), max: Math.max(...results.map((r) => r.lat)) },
    guestToScreenVblanks: { avg: avg(results.map((r) => r.g2s)), max: Math.max(...results.map((r) => r.g2s)) },
    imports: s.imports,
    errors: engine.stats.errors,
  };
}

export function formatTable(rs: BenchResult[]): string {
  const names = [...new Set(rs.flatMap((r) => Object.keys(r.callsPerFrame)))].sort();
  const rows: [string, ...string[]][] = [
    ['', ...rs.map((r) => (r.path === 'dmabuf' ? 'DMABUF (zero copy)' : 'copy (REGION)'))],
    ['frames', ...rs.map((r) => String(r.frames))],
    ['fps', ...rs.map((r) => r.fps.toFixed(1))],
    ['ioctls per frame', ...rs.map((r) => r.ioctlsPerFrame.toFixed(2))],
    ...names.map((n): [string, ...string[]] => [`  ${n}${IOCTL_CALLS.has(n) ? '' : ' (syscall)'}`, ...rs.map((r) => (r.callsPerFrame[n] ?? 0).toFixed(2))]),
    ['bytes copied per frame', ...rs.map((r) => String(Math.round(r.bytesCopiedPerFrame)))],
    ['CPU time per frame (us)', ...rs.map((r) => r.cpuUsPerFrame.toFixed(0))],
    ['flip latency (vblanks, commit->flip)', ...rs.map((r) => `${r.flipLatencyVblanks.avg.toFixed(2)} (max ${r.flipLatencyVblanks.max})`)],
    ['guest flip -> screen (vblanks)', ...rs.map((r) => `${r.guestToScreenVblanks.avg.toFixed(2)} (max ${r.guestToScreenVblanks.max})`)],
    ['imports (whole run)', ...rs.map((r) => String(r.imports))],
    ['errors', ...rs.map((r) => String(r.errors))],
  ];
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const ws = rs.map((_, i) => Math.max(...rows.map((r) => (r[i + 1] ?? '').length)));
  return rows.map((r) => [r[0].padEnd(w0), ...r.slice(1).map((c, i) => c.padStart(ws[i]!))].join('  ')).join('\n');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const arg = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const frames = Number(arg('--frames') ?? process.env['BENCH_FRAMES'] ?? 200);
  const card = arg('--device') ?? findCard();
  const dev = DrmDevice.open(card, { writeback: false });
  const guest = await openGuest(card, arg('--guest') as 'vgpu-sim' | 'loopback' | undefined);
  const results: BenchResult[] = [];
  try {
    console.log(`bench: ${frames} guest flips per path on ${card} (${dev.version.name}); guest: ${guest.description}`);
    for (const p of ['dmabuf', 'region'] as const) results.push(await benchPath(dev, guest, p, frames));
  } finally {
    guest.close();
    dev.close();
  }
  console.log(formatTable(results));
  const d = results[0]!;
  const ok = d.bytesCopiedPerFrame === 0 && d.ioctlsPerFrame <= 2 + 1e-9;
  console.log(`\nDMABUF steady state: ${d.bytesCopiedPerFrame} bytes copied, ${d.ioctlsPerFrame.toFixed(2)} ioctls per frame -> ${ok ? 'as expected (0 bytes, <= 2 ioctls)' : 'NOT as expected'}`);
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  const outDir = path.join(root, '.vm-out');
  if (existsSync(outDir)) {
    try {
      writeFileSync(path.join(outDir, 'bench.json'), JSON.stringify(results, null, 2) + '\n');
      console.log(`results: ${path.join(outDir, 'bench.json')}`);
    } catch {
      /* read-only: the table above is the result */
    }
  }
  if (!ok) process.exitCode = 1;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(`bench: ${(e as Error).stack ?? e}`);
    process.exit(1);
  });
}
