// Damage of copied frames (src/flip/damage.ts, CopyTarget's comparison in src/flip/copy.ts):
// which rows FB_DAMAGE_CLIPS names, and the blob layout (struct drm_mode_rect).
import { describe, expect, it } from 'vitest';
import { RowDamage, mergeRuns, packDamageClips } from '../../src/flip/damage.js';
import { CopyTarget, type CopySource } from '../../src/flip/copy.js';
import type { DrmDevice } from '../../src/kms/index.js';

const XRGB8888 = 0x34325258;

/** dumb framebuffers in memory: what CopyTarget needs of a DrmDevice */
function fakeDevice(): DrmDevice {
  let next = 100;
  return {
    createDumbFramebuffer: (w: number, h: number) => {
      const pitch = w * 4;
      const mem = new Uint8Array(pitch * h);
      return { fbId: next++, pitch, map: () => mem, destroy: () => {} };
    },
  } as unknown as DrmDevice;
}

const W = 8;
const H = 6;
const desc = { width: W, height: H, stride: W * 4, format: XRGB8888, modifier: 0n, offset: 0 } as never;
function guest(rows: number[]): CopySource {
  const b = Buffer.alloc(W * 4 * H);
  rows.forEach((v, y) => b.fill(v, y * W * 4, (y + 1) * W * 4));
  return { kind: 'region', read: (fn) => fn(b), close: () => {} };
}

describe('RowDamage and mergeRuns', () => {
  it('keeps runs of rows as full-width rectangles, x2/y2 exclusive', () => {
    const d = new RowDamage();
    for (const y of [0, 1, 2, 5, 9, 10]) d.add(y);
    expect(d.rects(640)).toEqual([
      { x1: 0, y1: 0, x2: 640, y2: 3 },
      { x1: 0, y1: 5, x2: 640, y2: 6 },
      { x1: 0, y1: 9, x2: 640, y2: 11 },
    ]);
    expect(new RowDamage().empty).toBe(true);
  });

  it('closes the smallest gaps first when there are too many runs', () => {
    expect(mergeRuns([[0, 1], [3, 4], [10, 11], [12, 13]], 2)).toEqual([[0, 4], [10, 13]]);
    expect(mergeRuns([[0, 1], [3, 4], [10, 11]], 1)).toEqual([[0, 11]]);
    expect(mergeRuns([[0, 1]], 4)).toEqual([[0, 1]]);
  });

  it('packs struct drm_mode_rect: four little-endian __s32', () => {
    const b = packDamageClips([{ x1: 0, y1: 2, x2: 640, y2: 4 }]);
    expect([...new Int32Array(b.buffer, b.byteOffset, 4)]).toEqual([0, 2, 640, 4]);
  });
});

describe('CopyTarget damage', () => {
  it('the first frames are whole; then the rows that differ from the screen or from the buffer written', () => {
    const t = new CopyTarget(fakeDevice(), desc);
    const a = t.copy(guest([1, 1, 1, 1, 1, 1]), desc, true); // first copy: whole, no damage given
    expect(a.damage).toBeUndefined();
    t.presented(a.fbId);
    const b = t.copy(guest([1, 2, 1, 1, 1, 1]), desc, true); // other buffer, never written: whole
    expect(b.rows).toBe(H);
    expect(b.damage).toEqual([{ x1: 0, y1: 0, x2: W, y2: H }]);
    t.presented(b.fbId);
    // the screen shows frame b, buffer a holds frame a: row 1 is back to a's value (differs from
    // the screen only: named, not written), row 4 is new (differs from both: written and named)
    const c = t.copy(guest([1, 1, 1, 1, 3, 1]), desc, true);
    expect(c.fbId).toBe(a.fbId);
    expect(c.rows).toBe(1); // only row 4 had to be written into buffer a
    expect(c.damage).toEqual([{ x1: 0, y1: 1, x2: W, y2: 2 }, { x1: 0, y1: 4, x2: W, y2: 5 }]);
    t.presented(c.fbId);
    expect(t.copy(guest([1, 1, 1, 1, 3, 1]), desc, true)).toMatchObject({ unchanged: true, bytes: 0 });
  });

  it('a row the screen shows but the buffer does not is written and named (per-buffer uploads)', () => {
    const t = new CopyTarget(fakeDevice(), desc);
    t.presented(t.copy(guest([1, 1, 1, 1, 1, 1]), desc, true).fbId); // A = 1s, on screen
    t.presented(t.copy(guest([1, 1, 5, 1, 1, 1]), desc, true).fbId); // B on screen, row 2 = 5
    t.presented(t.copy(guest([1, 1, 5, 1, 1, 6]), desc, true).fbId); // into A: rows 2 and 5 written
    const d = t.copy(guest([1, 1, 5, 1, 1, 6]), desc, true);
    expect(d.unchanged).toBe(true); // equals the screen (A): nothing, even though B is older
    const e = t.copy(guest([1, 1, 5, 7, 1, 6]), desc, true); // into B: B lacks row 5's 6
    expect(e.rows).toBe(2);
    expect(e.damage).toEqual([{ x1: 0, y1: 3, x2: W, y2: 4 }, { x1: 0, y1: 5, x2: W, y2: 6 }]);
  });
});
