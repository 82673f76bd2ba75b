// Guest flip -> on screen, from two timelines: the guest's flips (its own clock readings around
// each flip write, CLOCK_MONOTONIC) and the frames that reached the screen (page-flip event
// time, commit time, which guest buffer). Pure: the bench collects, this matches.

/** One guest flip: before and after its flip write (us), and which of its buffers it showed. */
export interface GuestFlip {
  t0: number;
  t1: number;
  buf: number;
  /** DRM_FB: when the vendor driver said its in-kernel flip was made (0: not asked) */
  t2?: number;
}

/**
 * One frame on screen: its page-flip event time, when it was committed, and the guest buffer
 * it shows (null: not known, e.g. REGION copies one buffer: the frame holds what the guest had
 * drawn when it was looked at, just before the commit).
 */
export interface ShownFrame {
  vblankUs: number;
  committedUs: number;
  buf: number | null;
}

export interface LatencySummary {
  /** guest flips measured (the ones before the last frame on screen) */
  flips: number;
  /** flips that were on screen themselves */
  shown: number;
  /** flips replaced by a newer one before they reached the screen (dropped frames) */
  skipped: number;
  /** vblanks from each flip to the first frame showing it or something newer: 1 = the next vblank */
  p50: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentile of sorted values (0 for none). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function summarize(vblanks: number[], shown: number, skipped: number): LatencySummary {
  const s = [...vblanks].sort((a, b) => a - b);
  return { flips: s.length, shown, skipped, p50: percentile(s, 50), p99: percentile(s, 99), max: s.length ? s[s.length - 1]! : 0 };
}

/** vblanks of a delay: 1 for anything up to one period (the next vblank), 2 up to two, ... */
export const inVblanks = (us: number, periodUs: number): number => Math.max(1, Math.ceil(us / periodUs));

/**
 * The newest guest flip a frame shows: the last one finished before the frame was committed
 * (its look came before the commit) whose buffer is the frame's, when the frame names one; -1
 * when none.
 */
function shownIndex(flips: readonly GuestFlip[], f: ShownFrame): number {
  let lo = 0;
  let hi = flips.length; // first flip finished after the commit
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (flips[mid]!.t1 <= f.committedUs) lo = mid + 1;
    else hi = mid;
  }
  for (let k = lo - 1; k >= 0; k--) if (f.buf === null || flips[k]!.buf === f.buf) return k;
  return -1;
}

/** Guest flips (in time order) against frames on screen: each flip's vblanks to the screen. */
export function flipToScreen(flips: readonly GuestFlip[], frames: readonly ShownFrame[], periodUs: number): LatencySummary {
  const byTime = [...frames].sort((a, b) => a.vblankUs - b.vblankUs);
  const vblanks: number[] = [];
  let shown = 0;
  let skipped = 0;
  let next = 0; // the first flip not on screen yet
  for (const f of byTime) {
    const k = shownIndex(flips, f);
    for (; next <= k; next++) {
      vblanks.push(inVblanks(f.vblankUs - flips[next]!.t1, periodUs));
      if (next === k) shown++;
      else skipped++;
    }
  }
  return summarize(vblanks, shown, skipped);
}

/**
 * DRM_FB: the vendor driver moves the host plane itself (vgpu-sim: a worker's blocking commit,
 * waited for with kflip_wait after each flip): the flip is on screen at t2.
 */
export function vendorFlipToScreen(flips: readonly GuestFlip[], periodUs: number): LatencySummary {
  return summarize(flips.map((f) => inVblanks((f.t2 ?? f.t1) - f.t1, periodUs)), flips.length, 0);
}
