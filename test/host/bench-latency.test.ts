// The bench's guest flip -> screen matching (src/bench/latency.ts): two timelines, no VM.
import { describe, expect, it } from 'vitest';
import { vendorFlipToScreen, flipToScreen, inVblanks, percentile, type GuestFlip, type ShownFrame } from '../../src/bench/latency.js';

const P = 16_667;
// a guest flipping every period starting at 1000 us, buffers 0,1,2 in turn; each flip write takes 50 us
const flips = (n: number, every = P): GuestFlip[] => Array.from({ length: n }, (_, k) => ({ t0: 1000 + k * every, t1: 1050 + k * every, buf: k % 3 }));
// vblanks at multiples of P
const vbl = (n: number): number => n * P;

describe('bench latency: guest flip -> on screen', () => {
  it('nearest-rank percentiles and vblank rounding', () => {
    expect(percentile([1, 2, 3, 4], 50)).toBe(2);
    expect(percentile([1, 2, 3, 4], 99)).toBe(4);
    expect(percentile([], 50)).toBe(0);
    expect(inVblanks(10, P)).toBe(1);
    expect(inVblanks(P, P)).toBe(1);
    expect(inVblanks(P + 1, P)).toBe(2);
  });

  it('every flip committed right away and shown at the next vblank: 1 vblank each, nothing skipped', () => {
    const fl = flips(10);
    const frames: ShownFrame[] = fl.map((f, k) => ({ committedUs: f.t1 + 100, vblankUs: vbl(k + 1), buf: f.buf }));
    expect(flipToScreen(fl, frames, P)).toEqual({ flips: 10, shown: 10, skipped: 0, p50: 1, p99: 1, max: 1 });
  });

  it('a frame shown two vblanks late counts 2, and a flip replaced before its frame is skipped', () => {
    const fl = flips(4);
    const frames: ShownFrame[] = [
      { committedUs: fl[0]!.t1 + 100, vblankUs: vbl(1), buf: 0 },
      // flip 1 missed its vblank (committed late) and flip 2 came before the commit: frame shows buf 2
      { committedUs: fl[2]!.t1 + 100, vblankUs: vbl(3), buf: 2 },
      { committedUs: fl[3]!.t1 + 100, vblankUs: vbl(4), buf: 0 },
    ];
    const r = flipToScreen(fl, frames, P);
    expect(r).toMatchObject({ flips: 4, shown: 3, skipped: 1, max: 2 });
  });

  it('the buffer decides: a frame committed after a flip but showing the previous buffer does not count it', () => {
    const fl = flips(2);
    const frames: ShownFrame[] = [
      { committedUs: fl[0]!.t1 + 100, vblankUs: vbl(1), buf: 0 },
      // committed after flip 1 finished, but its look saw buffer 0 (flip 1 raced the look)
      { committedUs: fl[1]!.t1 + 10, vblankUs: vbl(2), buf: 0 },
      { committedUs: vbl(2) + 100, vblankUs: vbl(3), buf: 1 },
    ];
    const r = flipToScreen(fl, frames, P);
    expect(r).toMatchObject({ flips: 2, shown: 2, skipped: 0, max: 2 });
  });

  it('without a buffer (REGION) the commit time decides; flips after the last frame are not counted', () => {
    const fl = flips(5);
    const frames: ShownFrame[] = [0, 1, 2].map((k) => ({ committedUs: fl[k]!.t1 + 100, vblankUs: vbl(k + 1), buf: null }));
    expect(flipToScreen(fl, frames, P)).toEqual({ flips: 3, shown: 3, skipped: 0, p50: 1, p99: 1, max: 1 });
  });

  it('a poller that looks every 30 ms: 60 fps flips are skipped and shown up to 3 vblanks late', () => {
    const fl = flips(60);
    const frames: ShownFrame[] = [];
    for (let t = 30_000; t < 60 * P; t += 30_000) {
      const last = [...fl].reverse().find((f) => f.t1 <= t);
      if (last) frames.push({ committedUs: t, vblankUs: Math.ceil(t / P) * P, buf: last.buf });
    }
    const r = flipToScreen(fl, frames, P);
    expect(r.skipped).toBeGreaterThan(20);
    expect(r.max).toBeGreaterThanOrEqual(2);
    expect(r.max).toBeLessThanOrEqual(3);
  });

  it('DRM_FB: on screen when the vendor driver says its flip is made', () => {
    const fl: GuestFlip[] = [{ t0: 0, t1: 10, buf: 0, t2: 10_000 }, { t0: 20_000, t1: 20_010, buf: 1, t2: 20_010 + 2 * P }];
    expect(vendorFlipToScreen(fl, P)).toEqual({ flips: 2, shown: 2, skipped: 0, p50: 1, p99: 2, max: 2 });
  });
});
