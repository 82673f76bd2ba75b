// When an output looks at its layers next: the one place that paces frames without a flip
// event to wake it (after a page-flip event or a guest's display event the output looks at
// once; this decides the timer in between). Pure: output.ts feeds it, tests drive it.
//
// Rules, first match wins:
//  1. Failing kernel calls (commits, or every layer's query, several times in a row): back off,
//     one period doubling per failure up to 2 s. Never a tight loop of a failing ioctl.
//  2. Every layer waits for its guest's display event (nothing due): a slow tick (500 ms) that
//     only checks the guests still exist; no ioctl. The event wakes the output at once.
//  3. Only DRM_FB layers, polled: the kernel flips, we watch for changes every watch interval.
//  4. Polled layers that found nothing new for `idleAfterLooks` looks in a row (QEMU's idle
//     idea, for vGPUs without a display event): each further unchanged look doubles the wait,
//     from one period up to `idleMaxMs`; the first look that finds a change comes back to rule 5.
//  5. Otherwise: the next vblank, estimated from the last flip event, plus half a millisecond.
export interface PaceInput {
  /** the mode's frame period */
  periodUs: number;
  /** time since the last flip event (or start) */
  sinceVblankUs: number;
  /** kernel calls failing in a row (0: none) */
  failing: number;
  /** no layer is due until its guest's display event */
  allWaitingOnEvents: boolean;
  /** every layer is a DRM_FB layer */
  allDrmFb: boolean;
  watchIntervalMs: number;
  /** looks in a row that found nothing new to show */
  idleLooks: number;
  idleAfterLooks: number;
  /** 0: never back off */
  idleMaxMs: number;
}

/** Defaults for rule 4: two seconds of an unchanged guest at 60 Hz, then at most 10 looks a second. */
export const IDLE_AFTER_LOOKS = 120;
export const IDLE_MAX_MS = 100;

export function nextLookDelayMs(p: PaceInput): number {
  const periodMs = Math.max(1, Math.round(p.periodUs / 1000));
  if (p.failing > 0) return Math.min(2000, periodMs * 2 ** Math.min(p.failing - 1, 7));
  if (p.allWaitingOnEvents) return 500;
  if (p.allDrmFb) return p.watchIntervalMs;
  if (p.idleMaxMs > 0 && p.idleLooks >= p.idleAfterLooks) {
    const k = Math.min(p.idleLooks - p.idleAfterLooks + 1, 16);
    return Math.max(periodMs, Math.min(p.idleMaxMs, periodMs * 2 ** k));
  }
  const rem = p.periodUs - (p.sinceVblankUs % p.periodUs);
  return Math.max(1, Math.round((rem + 500) / 1000));
}
