// `npm run bench` (inside the test rig's VM). Groups (--cases, default all, in this order):
//   fast     N guest flips per path, each as soon as the previous frame is on screen (paths.ts)
//   cloop    the C reference loop against the tool's DMABUF fast loop: CPU per frame and ratio
//   idle     an idle guest for 10 s per path, with and without the display event, and QEMU's poll
//   flip     a guest flipping at 60 and 30 fps under a CPU hog (--hogs N): guest flip -> screen in vblanks
//   guests   1, 2 and 4 guests on one output;  outputs  two outputs (the rig's --display2)
// `--json`: one JSON object per case on stdout (JSON lines; the readable lines go to stderr).
// Benchmarks print figures; they never assert timing.
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DrmDevice } from '../kms/index.js';
import type { EnginePath } from '../present/guest.js';
import { findCard, openGuest } from './setup.js';
import type { GuestDriver } from './guest-driver.js';
import type { SimGuestDriver } from './sim-guest.js';
import { benchGuests, formatMulti } from './multi.js';
import { benchOutputs, formatOutputs } from './outputs.js';
import { benchDrmFb, benchPath, drmFbUnavailable, formatTable, type BenchResult, type BenchUnavailable } from './paths.js';
import { flipCase, idleCase } from './cases.js';
import { cLoop, pollFlip, pollIdle } from './reference.js';
import { buildFlipLoop } from './cbin.js';
import { fmtCase, fmtRatio, Report } from './report.js';

export { formatTable, type BenchResult } from './paths.js';

const GROUPS = ['fast', 'cloop', 'idle', 'flip', 'guests', 'outputs'] as const;
type Group = (typeof GROUPS)[number];

interface Options {
  frames: number;
  json: boolean;
  groups: Set<Group>;
  idleSeconds: number;
  flipSeconds: number;
  rounds: number;
  /** CPU hogs in the VM during the flip cases */
  hogs: number;
  card?: string;
  guest?: 'vgpu-sim' | 'loopback';
}

function parseArgs(args: string[]): Options {
  const arg = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const num = (name: string, dflt: number, int = true): number => {
    const v = Number(arg(name) ?? dflt);
    if (!(v > 0) || (int && !Number.isInteger(v))) throw new Error(`${name} ${arg(name)}: expected a positive ${int ? 'integer' : 'number'}`);
    return v;
  };
  const groups = (arg('--cases') ?? GROUPS.join(',')).split(',').filter(Boolean);
  for (const g of groups) if (!(GROUPS as readonly string[]).includes(g)) throw new Error(`--cases: unknown group ${g} (groups: ${GROUPS.join(', ')})`);
  const guest = arg('--guest') as Options['guest'];
  return {
    frames: num('--frames', Number(process.env['BENCH_FRAMES'] ?? 200)),
    json: args.includes('--json'),
    groups: new Set(groups as Group[]),
    idleSeconds: num('--idle-seconds', 10, false),
    flipSeconds: num('--flip-seconds', 5, false),
    rounds: num('--rounds', 2),
    hogs: num('--hogs', 1),
    ...(arg('--device') ? { card: arg('--device')! } : {}),
    ...(guest ? { guest } : {}),
  };
}

/** fast: the three paths side by side (the table). */
async function fast(dev: DrmDevice, guest: GuestDriver, o: Options, r: Report): Promise<void> {
  const cols: (BenchResult | BenchUnavailable)[] = [];
  r.say(`bench fast: ${o.frames} guest flips per path`);
  const why = drmFbUnavailable(guest);
  if (why) cols.push({ path: 'drm_fb', unavailable: why });
  else {
    try {
      cols.push(await benchDrmFb(dev, guest as SimGuestDriver, o.frames));
    } catch (e) {
      cols.push({ path: 'drm_fb', unavailable: `the DRM_FB run failed: ${(e as Error).message}` });
    }
  }
  for (const p of ['dmabuf', 'region'] as const) cols.push(await benchPath(dev, guest, p, o.frames));
  r.say(formatTable(cols));
  for (const c of cols) r.add({ case: 'fast', ...c });
  const d = cols.find((c): c is BenchResult => c.path === 'dmabuf' && !('unavailable' in c))!;
  const ok = d.bytesCopiedPerFrame === 0 && d.ioctlsPerFrame <= 2 + 1e-9;
  r.say(`DMABUF steady state: ${d.bytesCopiedPerFrame} bytes copied, ${d.ioctlsPerFrame.toFixed(2)} ioctls per frame -> ${ok ? 'as expected (0 bytes, <= 2 ioctls)' : 'NOT as expected'}`);
  if (!ok) process.exitCode = 1;
}

async function cloop(dev: DrmDevice, sim: SimGuestDriver, bin: string, o: Options, r: Report): Promise<void> {
  const ratios: number[] = [];
  for (let i = 0; i < o.rounds; i++) {
    r.say(`bench cloop: round ${i + 1} of ${o.rounds} (${o.frames} frames each after 60 of warm-up, the tool then the C loop)`);
    // a long warm-up: under TCG the JIT's compile threads would count as the tool's CPU
    const tool = await benchPath(dev, sim, 'dmabuf', o.frames, 60);
    const c = await cLoop(dev, sim, bin, o.frames, 60);
    r.add({ ...c, round: i + 1, tool: { fps: tool.fps, cpuUsPerFrame: tool.cpuUsPerFrame, ioctlsPerFrame: tool.ioctlsPerFrame }, ratio: tool.cpuUsPerFrame / c.cpuUsPerFrame },
      fmtRatio(tool, c));
    ratios.push(tool.cpuUsPerFrame / c.cpuUsPerFrame);
  }
  // under TCG the VM's CPU times move with the host's load: one round says little, the spread says how much
  if (ratios.length > 1) {
    const sorted = [...ratios].sort((a, b) => a - b);
    const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
    r.say(`cloop over ${ratios.length} rounds: ratio median ${median.toFixed(2)}x, min ${sorted[0]!.toFixed(2)}x, max ${sorted.at(-1)!.toFixed(2)}x (goal <= 1.2x)`);
  }
}

const PATHS: EnginePath[] = ['drm_fb', 'dmabuf', 'region'];

async function idle(dev: DrmDevice, sim: SimGuestDriver, bin: string, o: Options, r: Report): Promise<void> {
  r.say(`bench idle: an idle guest for ${o.idleSeconds} s per path, without and with the display event`);
  for (const p of PATHS) for (const ev of [false, true]) {
    if (p === 'drm_fb' && drmFbUnavailable(sim)) continue;
    const c = await idleCase(dev, sim, p, ev, o.idleSeconds);
    r.add(c, fmtCase(c));
  }
  const q = await pollIdle(dev, sim, bin, o.idleSeconds);
  r.add(q, fmtCase(q));
}

async function flip(dev: DrmDevice, sim: SimGuestDriver, bin: string, o: Options, r: Report): Promise<void> {
  r.say(`bench flip: a guest flipping for ${o.flipSeconds} s at 60 and 30 fps with ${o.hogs} CPU hog(s) in the VM (${os.availableParallelism()} CPUs)`);
  for (const fps of [60, 30]) {
    for (const p of PATHS) for (const ev of [false, true]) {
      if (p === 'drm_fb' && drmFbUnavailable(sim)) continue;
      const c = await flipCase(dev, sim, bin, p, ev, fps, o.flipSeconds, o.hogs);
      r.add(c, fmtCase(c));
    }
    const q = await pollFlip(dev, sim, bin, fps, o.flipSeconds, o.hogs);
    r.add(q, fmtCase(q));
  }
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const r = new Report(o.json);
  const card = o.card ?? findCard();
  const dev = DrmDevice.open(card, { writeback: false });
  const guest = await openGuest(card, o.guest);
  const sim = guest.kind === 'vgpu-sim' ? (guest as SimGuestDriver) : null;
  const needC = ['cloop', 'idle', 'flip'].some((g) => o.groups.has(g as Group));
  try {
    r.say(`bench: on ${card} (${dev.version.name}); guest: ${guest.description}; commit ${r.rev}; cases ${[...o.groups].join(',')}`);
    const bin = sim && needC ? buildFlipLoop() : null;
    if (o.groups.has('fast')) await fast(dev, guest, o, r);
    if (!sim || !bin) {
      if (needC) r.say(`cloop, idle, flip: not measured: they need a vgpu-sim guest (the guest here is ${guest.description})`);
    } else {
      if (o.groups.has('cloop')) await cloop(dev, sim, bin, o, r);
      if (o.groups.has('idle')) await idle(dev, sim, bin, o, r);
      if (o.groups.has('flip')) await flip(dev, sim, bin, o, r);
    }
    if (o.groups.has('guests')) {
      if (!sim) r.say(`several guests: not measured: they need vgpu-sim instances (the guest here is ${guest.description})`);
      else {
        const rows = [];
        for (const n of [1, 2, 4]) {
          try {
            rows.push(await benchGuests(dev, sim, n, o.frames));
            r.add({ case: 'guests', ...rows[rows.length - 1]! });
          } catch (e) {
            r.say(`several guests: ${n} guests: not measured: ${(e as Error).message}`);
          }
        }
        if (rows.length) r.say(`several guests on one output (DMABUF, each guest flips when its last frame is on screen):\n${formatMulti(rows)}`);
      }
    }
  } finally {
    guest.close();
    dev.close();
  }
  if (o.groups.has('outputs')) {
    const card2 = process.env['VGPU_FLIP_DISPLAY2'];
    if (!card2) r.say("two outputs: not measured: no device with two CRTCs (vkms has one; run the bench with the rig's --display2)");
    else {
      try {
        const two = await benchOutputs(card2, 2, o.frames);
        r.add({ case: 'outputs', ...two }, `two outputs of ${card2} (one guest each, REGION: virtio-gpu imports no foreign dma-buf):\n${formatOutputs(two)}`);
      } catch (e) {
        r.say(`two outputs: not measured: ${(e as Error).message}`);
      }
    }
  }
  const f = r.save();
  if (f) r.say(`results: ${f} (JSON lines)`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(`bench: ${(e as Error).stack ?? e}`);
    process.exit(1);
  });
}
