// pace.ts: when an output looks next without an event to wake it (pure rules).
import { describe, expect, it } from 'vitest';
import { IDLE_AFTER_LOOKS, IDLE_MAX_MS, nextLookDelayMs, type PaceInput } from '../../src/present/pace.js';

const base: PaceInput = {
  periodUs: 16667, sinceVblankUs: 4000, failing: 0, allWaitingOnEvents: false, allDrmFb: false,
  watchIntervalMs: 100, idleLooks: 0, idleAfterLooks: IDLE_AFTER_LOOKS, idleMaxMs: IDLE_MAX_MS,
};

describe('nextLookDelayMs', () => {
  it('waits for the next vblank, estimated from the last flip event', () => {
    expect(nextLookDelayMs(base)).toBe(13); // 12.667 ms left + 0.5
    expect(nextLookDelayMs({ ...base, sinceVblankUs: 16600 })).toBe(1);
    expect(nextLookDelayMs({ ...base, sinceVblankUs: 16667 * 5 + 4000 })).toBe(13);
  });

  it('backs off while kernel calls fail, doubling from one period up to 2 s', () => {
    expect([1, 2, 3, 4, 8, 20].map((failing) => nextLookDelayMs({ ...base, failing }))).toEqual([17, 34, 68, 136, 2000, 2000]);
  });

  it('failures win over everything else; waiting on display events is a slow tick, DRM_FB the watch interval', () => {
    expect(nextLookDelayMs({ ...base, failing: 2, allWaitingOnEvents: true, allDrmFb: true })).toBe(34);
    expect(nextLookDelayMs({ ...base, allWaitingOnEvents: true, allDrmFb: true })).toBe(500);
    expect(nextLookDelayMs({ ...base, allDrmFb: true, idleLooks: 1000 })).toBe(100);
  });

  it('an unchanged polled guest is looked at less and less often, never less than 10 times a second by default', () => {
    const at = (idleLooks: number): number => nextLookDelayMs({ ...base, idleLooks });
    expect(at(IDLE_AFTER_LOOKS - 1)).toBe(13); // still every vblank
    expect([0, 1, 2, 3, 100].map((k) => at(IDLE_AFTER_LOOKS + k))).toEqual([34, 68, 100, 100, 100]);
  });

  it('the idle back-off can be turned off or capped otherwise', () => {
    expect(nextLookDelayMs({ ...base, idleLooks: 10_000, idleMaxMs: 0 })).toBe(13);
    expect(nextLookDelayMs({ ...base, idleLooks: 10_000, idleMaxMs: 250 })).toBe(250);
    expect(nextLookDelayMs({ ...base, idleLooks: 5, idleAfterLooks: 5, idleMaxMs: 10 })).toBe(17); // never below a period
  });
});
