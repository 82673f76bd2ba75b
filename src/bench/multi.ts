// The multi-guest benchmark: 1, 2 and 4 vgpu-sim guests on one output (DMABUF path), each
// guest flipping as soon as its previous frame is on screen. What it shows: the output makes
// ONE atomic commit per vblank whatever the number of guests, and the tool's CPU time per
// guest frame. (Two outputs need a second CRTC: vkms has one; see the rig's second display.)
import type { DrmDevice } from '../kms/index.js';
import { FlipEngine } from '../flip/engine.js';
import { CallCounter } from '../flip/counting.js';
import type { FrameEvent } from '../flip/events.js';
import { drawPattern } from '../flip/pattern.js';
import { Guest, VfioGuestSource } from '../present/guest.js';
import { addGuest } from '../present/compose.js';
import { createSimMdev, SimGuestDriver } from './sim-guest.js';

export interface MultiResult {
  guests: number;
  vblanks: number;
  guestFrames: number;
  seconds: number;
  /** user-space atomic commits per vblank (1 = every guest's change in one commit) */
  commitsPerVblank: number;
  ioctlsPerVblank: number;
  cpuUsPerGuestFrame: number;
  errors: number;
}

/** `n` guests in a row across CRTC 0, `vblanks` frames of the output. */
export async function benchGuests(dev: DrmDevice, first: SimGuestDriver, n: number, vblanks: number, warmup = 10): Promise<MultiResult> {
  const mode = dev.snapshot().crtcs[0]!.mode;
  if (!mode) throw new Error(`bench: CRTC 0 of ${dev.path} has no mode`);
  const w = Math.floor(mode.hdisplay / n) & ~7;
  const h = Math.min(mode.vdisplay, 480);
  const created: SimGuestDriver[] = [];
  const sims = [first];
  try {
    for (let i = 1; i < n; i++) {
      const s = new SimGuestDriver(createSimMdev(), true);
      created.push(s);
      sims.push(s);
    }
    sims.forEach((s, i) => {
      s.setPrimary(w, h, 3);
      s.presentPrimary(drawPattern(w, h, i));
    });
    const counter = new CallCounter();
    const place = (i: number) => ({ kind: 'position' as const, x: i * w, y: 0 });
    const e = new FlipEngine({ drm: dev, vfio: sims[0]!.vfio, crtcIndex: 0, planes: [{ kind: 'primary', name: 'g0', z: 0, placement: place(0) }], counter, displayEvents: false });
    for (let i = 1; i < n; i++) addGuest(e, new Guest(new VfioGuestSource(sims[i]!.vfio, e.display.api), { path: 'dmabuf', displayEvents: false }), [{ kind: 'primary', name: `g${i}`, z: i, placement: place(i) }]);
    const errors: string[] = [];
    e.on('error', (x) => errors.push(`${x.layer ?? ''} ${x.stage}: ${x.message}`));
    e.start();
    const t0w = Date.now();
    while ((e.assignedLayout?.assignments.length ?? 0) < n) {
      if (Date.now() - t0w > 15_000) throw new Error(`bench ${n} guests: not all assigned: ${e.whyNotAssigned()} ${errors.join('; ')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const seqs = new Set<number>();
    let guestFrames = 0;
    let before: Record<string, number> = {};
    let cpu0 = process.cpuUsage();
    let t0 = 0;
    let guestCpu = 0;
    const flip = (i: number): void => {
      const g = process.cpuUsage();
      sims[i]!.flipPrimary();
      const d = process.cpuUsage(g);
      guestCpu += d.user + d.system;
    };
    const result = await new Promise<MultiResult>((resolve, reject) => {
      const timeout = setTimeout(() => reject(new Error(`bench ${n} guests: only ${seqs.size} vblanks in 120 s (${errors.join('; ') || 'no errors'})`)), 120_000);
      e.on('frame', (f: FrameEvent) => {
        if (f.sequence === 0) return;
        if (!seqs.has(f.sequence)) {
          seqs.add(f.sequence);
          if (seqs.size === warmup) {
            before = counter.snapshot();
            cpu0 = process.cpuUsage();
            guestCpu = 0;
            guestFrames = 0;
            t0 = Date.now();
          }
          if (seqs.size === warmup + vblanks) {
            const after = counter.snapshot();
            const cpu = process.cpuUsage(cpu0);
            const calls: Record<string, number> = {};
            for (const [k, v] of Object.entries(after)) calls[k] = v - (before[k] ?? 0);
            clearTimeout(timeout);
            resolve({
              guests: n,
              vblanks,
              guestFrames,
              seconds: (Date.now() - t0) / 1000,
              commitsPerVblank: (calls['drmAtomicCommit'] ?? 0) / vblanks,
              ioctlsPerVblank: CallCounter.ioctls(calls) / vblanks,
              cpuUsPerGuestFrame: Math.max(0, cpu.user + cpu.system - guestCpu) / Math.max(1, guestFrames),
              errors: e.stats.errors,
            });
            return;
          }
        }
        if (seqs.size >= warmup) guestFrames++;
        flip(Number(f.layer!.slice(1)));
      });
      for (let i = 0; i < n; i++) flip(i);
    });
    await e.stop();
    return result;
  } finally {
    for (const s of created) s.close();
  }
}

export function formatMulti(rows: MultiResult[]): string {
  const head = ['guests', 'vblanks', 'guest frames', 'commits/vblank', 'ioctls/vblank', 'CPU us/guest frame', 'errors'];
  const lines = rows.map((r) => [String(r.guests), String(r.vblanks), String(r.guestFrames), r.commitsPerVblank.toFixed(2), r.ioctlsPerVblank.toFixed(2), r.cpuUsPerGuestFrame.toFixed(0), String(r.errors)]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  return [fmt(head), ...lines.map(fmt)].join('\n');
}
