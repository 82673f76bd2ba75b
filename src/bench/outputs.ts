// The two-output benchmark: one vgpu-sim guest per output on a device with two CRTCs (the rig's
// second display, virtio-gpu with two heads: it imports no foreign dma-buf, so each frame is
// copied: the REGION path), each guest flipping as soon as its previous frame is on screen.
// What it shows: each output keeps its own clock and makes ONE commit per its own vblank, and
// the tool's CPU time per guest frame with two outputs to feed.
import { DrmDevice } from '../kms/index.js';
import { CallCounter } from '../flip/counting.js';
import type { FrameEvent } from '../flip/events.js';
import { drawPattern } from '../flip/pattern.js';
import { Display } from '../present/display.js';
import { Guest, VfioGuestSource } from '../present/guest.js';
import { addGuest } from '../present/compose.js';
import type { Output } from '../present/output.js';
import { createSimMdev, SimGuestDriver } from './sim-guest.js';

export interface OutputsResult {
  outputs: number;
  /** frames (page flips) of each output in the measured interval */
  framesPerOutput: number[];
  seconds: number;
  /** user-space atomic commits per output frame (1: one commit per vblank of each output) */
  commitsPerOutputFrame: number;
  ioctlsPerOutputFrame: number;
  cpuUsPerGuestFrame: number;
  bytesCopiedPerFrame: number;
  errors: number;
}

/** One guest per CRTC of `card` (the first `n` CRTCs), `frames` frames of each output. */
export async function benchOutputs(card: string, n: number, frames: number, warmup = 10): Promise<OutputsResult> {
  const W = 1024;
  const H = 768;
  const counter = new CallCounter();
  const dev = DrmDevice.open(card);
  const sims: SimGuestDriver[] = [];
  const display = new Display(dev, { counter });
  try {
    if (dev.snapshot().crtcs.length < n) throw new Error(`${card} has ${dev.currentSnapshot().crtcs.length} CRTCs, not ${n}`);
    const outs: Output[] = [];
    for (let i = 0; i < n; i++) {
      const s = new SimGuestDriver(createSimMdev(), true);
      sims.push(s);
      s.setPrimary(W, H, 1); // REGION: the plane at offset 0
      s.presentPrimary(drawPattern(W, H, 20 + i));
      const o = display.output({ crtcIndex: i, mode: { width: W, height: H } });
      addGuest(o, new Guest(new VfioGuestSource(s.vfio, display.api), { path: 'region', displayEvents: false }), [{ kind: 'primary' }]);
      outs.push(o);
    }
    const errors: string[] = [];
    for (const o of outs) o.on('error', (x) => errors.push(`${x.stage}: ${x.message}`));
    for (const o of outs) o.start();
    const t0w = Date.now();
    while (!outs.every((o) => o.layout !== null)) {
      if (Date.now() - t0w > 20_000) throw new Error(`bench ${n} outputs: not all assigned: ${outs.map((o) => o.lastProblem).join(' | ')} ${errors.join('; ')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const counts = outs.map(() => 0);
    let measuring = false;
    let before: Record<string, number> = {};
    let cpu0 = process.cpuUsage();
    let t0 = 0;
    let guestCpu = 0;
    let bytes0 = 0;
    const bytes = (): number => outs.reduce((a, o) => a + Object.values(o.stats.planes).reduce((b, p) => b + p.bytesCopied, 0), 0);
    // an unchanged REGION guest is neither copied nor committed: each flip draws the other frame
    const imgs = [drawPattern(W, H, 1), drawPattern(W, H, 2)];
    const nth = outs.map(() => 0);
    const flip = (i: number): void => {
      const g = process.cpuUsage();
      sims[i]!.presentPrimary(imgs[nth[i]!++ % 2]!);
      const d = process.cpuUsage(g);
      guestCpu += d.user + d.system;
    };
    const result = await new Promise<OutputsResult>((resolve, reject) => {
      const timeout = setTimeout(() => reject(new Error(`bench ${n} outputs: only ${counts.join('/')} frames in 180 s (${errors.join('; ') || 'no errors'})`)), 180_000);
      outs.forEach((o, i) => o.on('frame', (f: FrameEvent) => {
        // the assignment's own frame event (no page flip); virtio-gpu has no vblank counter, so
        // its page-flip events carry sequence 0: tell them apart by their timing instead
        if (f.vblankUs === 0 && f.latencyUs === 0) return;
        counts[i]!++;
        if (!measuring && counts.every((c) => c >= warmup)) {
          measuring = true;
          counts.fill(0);
          before = counter.snapshot();
          cpu0 = process.cpuUsage();
          guestCpu = 0;
          bytes0 = bytes();
          t0 = Date.now();
        } else if (measuring && counts.every((c) => c >= frames)) {
          clearTimeout(timeout);
          const after = counter.snapshot();
          const cpu = process.cpuUsage(cpu0);
          const calls: Record<string, number> = {};
          for (const [k, v] of Object.entries(after)) calls[k] = v - (before[k] ?? 0);
          const total = counts.reduce((a, b) => a + b, 0);
          resolve({
            outputs: n,
            framesPerOutput: [...counts],
            seconds: (Date.now() - t0) / 1000,
            commitsPerOutputFrame: (calls['drmAtomicCommit'] ?? 0) / total,
            ioctlsPerOutputFrame: CallCounter.ioctls(calls) / total,
            cpuUsPerGuestFrame: Math.max(0, cpu.user + cpu.system - guestCpu) / total,
            bytesCopiedPerFrame: (bytes() - bytes0) / total,
            errors: outs.reduce((a, o) => a + o.stats.errors, 0),
          });
          return;
        }
        flip(i);
      }));
      for (let i = 0; i < n; i++) flip(i);
    });
    await display.stop();
    return result;
  } finally {
    await display.stop();
    for (const s of sims) s.close();
    dev.close();
  }
}

export function formatOutputs(r: OutputsResult): string {
  return [
    `outputs: ${r.outputs} (frames ${r.framesPerOutput.join(' + ')} in ${r.seconds.toFixed(1)} s)`,
    `commits per output frame: ${r.commitsPerOutputFrame.toFixed(2)}, ioctls per output frame: ${r.ioctlsPerOutputFrame.toFixed(2)}`,
    `CPU per guest frame: ${r.cpuUsPerGuestFrame.toFixed(0)} us (REGION copy, ${(r.bytesCopiedPerFrame / 1048576).toFixed(2)} MiB per frame), errors: ${r.errors}`,
  ].join('\n');
}
