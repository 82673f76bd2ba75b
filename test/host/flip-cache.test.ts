import { describe, expect, it } from 'vitest';
import { FbCache, newEntry, type BufferDesc, type FbEntry } from '../../src/flip/fb-cache.js';
import { decide, classifyQuery, commitFailure, FailureStreak, type PlaneView } from '../../src/flip/decide.js';
import { copyRows, mappableLengths } from '../../src/flip/copy.js';
import { addFb2Modifier } from '../../src/kms/fb-modifier.js';
import { CallCounter } from '../../src/flip/counting.js';
import { DRM_FORMAT_XRGB8888, DRM_FORMAT_ARGB8888 } from '../../src/binding/constants.js';
import type { GfxPlaneInfo } from '../../src/binding/types.js';

const desc = (w = 640, h = 480): BufferDesc => ({ width: w, height: h, format: DRM_FORMAT_XRGB8888, modifier: 0n, stride: w * 4 });

/** A cache whose frees are recorded by framebuffer id (entry i gets fd 1000+i, fb 100+i). */
function cache(capacity: number, opts: ConstructorParameters<typeof FbCache>[2] = {}, onFree?: (e: FbEntry) => void) {
  const freed: number[] = [];
  const c = new FbCache(capacity, (e) => {
    onFree?.(e);
    freed.push(e.fbId || e.fd);
  }, opts);
  const add = (id: number, d = desc()): FbEntry => {
    const e = newEntry(id, d, d.stride * d.height, 1000 + id);
    e.fbId = 100 + id;
    return c.insert(e);
  };
  return { c, freed, add };
}

describe('FbCache', () => {
  it('hits by dmabuf_id, evicts least recently used beyond capacity', () => {
    const { c, freed, add } = cache(2);
    add(1);
    add(2);
    expect(c.lookup(1, desc())?.fbId).toBe(101); // 1 is now most recent
    add(3);
    expect(freed).toEqual([102]);
    expect(c.lookup(2, desc())).toBeUndefined();
    expect(c.stats).toMatchObject({ hits: 1, misses: 1, imports: 3, evictions: 1 });
  });

  it('never frees the buffer on screen or the pending one; frees it after the flip that replaced it', () => {
    const { c, freed, add } = cache(1);
    add(1);
    c.committedAndFlipped(101); // on screen
    add(2); // over capacity, but 101 is pinned, 102 is newest
    expect(freed).toEqual([]);
    c.committed(102); // pending flip to 102
    expect(freed).toEqual([]);
    c.flipCompleted(); // 101 left the screen: now it can go
    expect(freed).toEqual([101]);
    expect(c.liveFbs()).toEqual([102]);
  });

  it('a changed buffer description for the same id drops the stale buffer (deferred while on screen)', () => {
    const { c, freed, add } = cache(4);
    add(7, desc(640, 480));
    c.committedAndFlipped(107);
    expect(c.lookup(7, desc(800, 600))).toBeUndefined();
    expect(freed).toEqual([]);
    expect(c.deferredCount).toBe(1);
    // the old export of id 7 is still held: exporting id 7 again now would be a second fd of it
    expect(c.exportBlocked(7, desc(800, 600))).toMatch(/earlier buffer of dmabuf_id 7 is still held/);
    c.committed(0);
    c.flipCompleted();
    expect(freed).toEqual([107]);
  });

  it('one export per dmabuf_id: an evicted buffer still on screen comes back on lookup (same fd), never exported again', () => {
    const { c, freed, add } = cache(1);
    const e1 = add(1);
    c.committedAndFlipped(101);
    add(2); // 1 is evicted but pinned: deferred
    c.committed(102);
    const back = c.lookup(1, desc());
    expect(back).toBe(e1);
    expect(back!.fd).toBe(1001);
    expect(freed).toEqual([]);
  });

  it('a freed dmabuf_id is not exported again for quarantineFrames frames', () => {
    const { c, freed, add } = cache(1, { quarantineFrames: 10 });
    c.setFrame(100);
    add(1);
    add(2); // evicts 1 (not pinned): freed at frame 100
    expect(freed).toEqual([101]);
    c.setFrame(105);
    expect(c.exportBlocked(1, desc())).toMatch(/released 5 frames ago/);
    c.setFrame(110);
    expect(c.exportBlocked(1, desc())).toBeNull();
  });

  it('a failed export is retried with exponential backoff (1, 2, 4 ... frames, capped), at once for a new description', () => {
    const { c } = cache(4, { retryAfterFrames: 8 });
    const blockedAt = (frame: number): boolean => {
      c.setFrame(frame);
      return c.exportBlocked(5, desc()) !== null;
    };
    c.setFrame(100);
    expect(c.recordFailure(5, desc(), 'ENOMEM')).toBe(1);
    expect(blockedAt(100)).toBe(true);
    expect(blockedAt(101)).toBe(false); // 1 frame later
    expect(c.recordFailure(5, desc(), 'ENOMEM')).toBe(2);
    expect(blockedAt(102)).toBe(true);
    expect(blockedAt(103)).toBe(false); // 2 frames later
    for (let i = 3; i <= 10; i++) c.recordFailure(5, desc(), 'ENOMEM');
    expect(blockedAt(103 + 7)).toBe(true);
    expect(blockedAt(103 + 8)).toBe(false); // capped at retryAfterFrames
    c.setFrame(104);
    expect(c.exportBlocked(5, desc(800, 600))).toBeNull(); // another buffer: try now
  });

  it('clear() frees cached and deferred buffers and reports errors of frees that failed', () => {
    const { c, freed, add } = cache(4, {}, (e) => {
      if (e.fbId === 103) throw new Error('ENOENT');
    });
    add(1);
    add(2);
    add(3);
    const errors = c.clear();
    expect(freed.sort()).toEqual([101, 102]);
    expect(errors).toHaveLength(1);
    expect(c.size).toBe(0);
  });
});

describe('mappableLengths, copyRows with a short source', () => {
  it('a dma-buf whose size is not page aligned: whole size first, then the whole pages', () => {
    expect(mappableLengths(800 * 600 * 4)).toEqual([1920000, 1916928]); // mbochs 800x600
    expect(mappableLengths(1024 * 768 * 4)).toEqual([3145728]);
    expect(mappableLengths(100)).toEqual([100]);
  });
  it('copies the rows that are there and, with partial, the start of the last one', () => {
    const src = Buffer.alloc(10 * 2 + 4, 7); // 2 whole rows of stride 10, then 4 bytes
    const dst = Buffer.alloc(16 * 3);
    expect(copyRows(src, 10, dst, 16, 8, 3)).toBe(16);
    expect(copyRows(src, 10, dst, 16, 8, 3, true)).toBe(20);
    expect([...dst.subarray(32, 38)]).toEqual([7, 7, 7, 7, 0, 0]);
  });
});

describe('commitFailure: which failed commits may demote a buffer to copying', () => {
  const err = (code: string): Error => Object.assign(new Error(code), { code });
  it('EBUSY is a retry, EACCES is not being master, EINVAL/ERANGE are about the buffer', () => {
    expect(commitFailure(err('EBUSY'))).toBe('busy');
    expect(commitFailure(err('EACCES'))).toBe('master');
    expect(commitFailure(err('EPERM'))).toBe('master');
    expect(commitFailure(err('ENODEV'))).toBe('device');
    expect(commitFailure(err('EINVAL'))).toBe('buffer');
    expect(commitFailure(err('ERANGE'))).toBe('buffer');
  });
});

describe('addFb2Modifier', () => {
  it('passes LINEAR explicitly with the cap, nothing without; refuses a tiled buffer without the cap', () => {
    expect(addFb2Modifier(0n, true, 'card0')).toEqual({ modifiers: [0n] });
    expect(addFb2Modifier(0n, false, 'card0')).toEqual({});
    expect(addFb2Modifier(0x00ffffffffffffffn, true, 'card0')).toEqual({});
    expect(addFb2Modifier(0x0100000000000001n, true, 'card0')).toEqual({ modifiers: [0x0100000000000001n] });
    expect(() => addFb2Modifier(0x0100000000000001n, false, '/dev/dri/card0')).toThrow(
      '/dev/dri/card0 does not accept framebuffer modifiers (DRM_CAP_ADDFB2_MODIFIERS is 0) and the guest buffer has modifier 0x100000000000001 (not linear): it cannot be shown without copying',
    );
  });
});

const info = (o: Partial<GfxPlaneInfo> = {}): GfxPlaneInfo => ({
  flags: 2, drmPlaneType: 1, drmFormat: DRM_FORMAT_XRGB8888, drmFormatMod: 0n, width: 640, height: 480, stride: 2560,
  size: 2560 * 480, xPos: 0, yPos: 0, xHot: 0xffffffff, yHot: 0xffffffff, id: 1, ...o,
});
const shownView = (kind: 'primary' | 'cursor', i: GfxPlaneInfo, extra: Partial<PlaneView> = {}): PlaneView => ({
  kind,
  shown: {
    id: i.id, desc: { width: i.width, height: i.height, format: i.drmFormat, modifier: i.drmFormatMod, stride: i.stride },
    x: i.xPos, y: i.yPos, xHot: i.xHot === 0xffffffff ? null : i.xHot, yHot: i.yHot === 0xffffffff ? null : i.yHot,
  },
  blanked: false,
  copyMode: false,
  ...extra,
});

describe('presenter decisions', () => {
  it('first frame: replan; unchanged id and position: nothing; new id: flip', () => {
    const v: PlaneView = { kind: 'primary', shown: null, blanked: false, copyMode: false };
    expect(decide(v, { status: 'ok', info: info() }, 'keep')).toMatchObject({ action: 'replan', reason: 'first frame' });
    const s = shownView('primary', info());
    expect(decide(s, { status: 'ok', info: info() }, 'keep')).toEqual({ action: 'none' });
    expect(decide(s, { status: 'ok', info: info({ id: 2 }) }, 'keep')).toMatchObject({ action: 'flip', id: 2 });
  });

  it('size or format change: replan', () => {
    const s = shownView('primary', info());
    expect(decide(s, { status: 'ok', info: info({ width: 800, height: 600, stride: 3200 }) }, 'keep')).toMatchObject({
      action: 'replan', reason: 'guest plane size 640x480 -> 800x600',
    });
    expect(decide(s, { status: 'ok', info: info({ drmFormat: DRM_FORMAT_ARGB8888 }) }, 'keep')).toMatchObject({ action: 'replan' });
  });

  it('cursor: position and hotspot updates move without a new buffer; signed positions', () => {
    const c = info({ drmPlaneType: 2, width: 64, height: 64, stride: 256, xPos: 10, yPos: 10, id: 9 });
    const s = shownView('cursor', c);
    expect(decide(s, { status: 'ok', info: { ...c, xPos: -5, yPos: 20 } }, 'keep')).toEqual({ action: 'move', x: -5, y: 20, xHot: null, yHot: null });
    expect(decide(s, { status: 'ok', info: { ...c, xHot: 3, yHot: 4 } }, 'keep')).toEqual({ action: 'move', x: 10, y: 10, xHot: 3, yHot: 4 });
    // the primary ignores guest position changes (placement is the user's)
    const p = shownView('primary', info());
    expect(decide(p, { status: 'ok', info: info({ xPos: 5 }) }, 'keep')).toEqual({ action: 'none' });
  });

  it('not ready: keep (no commit) or blank once; back again: replan', () => {
    const s = shownView('primary', info());
    expect(decide(s, { status: 'not-ready' }, 'keep')).toEqual({ action: 'not-ready', blank: false });
    expect(decide(s, { status: 'not-ready' }, 'blank')).toEqual({ action: 'not-ready', blank: true });
    const blanked = { ...s, blanked: true };
    expect(decide(blanked, { status: 'not-ready' }, 'blank')).toEqual({ action: 'not-ready', blank: false });
    expect(decide(blanked, { status: 'ok', info: info() }, 'blank')).toMatchObject({ action: 'replan', reason: 'guest plane is back' });
    // never shown: nothing to blank
    expect(decide({ kind: 'primary', shown: null, blanked: false, copyMode: false }, { status: 'not-ready' }, 'blank')).toEqual({ action: 'not-ready', blank: false });
  });

  it('size 0 from the driver is "not ready", a thrown error is a failed query (retried)', () => {
    expect(classifyQuery(() => info({ width: 0, height: 0, size: 0 }))).toEqual({ status: 'not-ready' });
    const err = Object.assign(new Error('VFIO_DEVICE_QUERY_GFX_PLANE: ENOMEM'), { op: 'VFIO_DEVICE_QUERY_GFX_PLANE', path: '', errno: 12, code: 'ENOMEM' });
    const q = classifyQuery(() => {
      throw err;
    });
    expect(q).toEqual({ status: 'error', error: err });
    expect(decide(shownView('primary', info()), q, 'keep')).toEqual({ action: 'query-failed', error: err });
  });

  it('copy mode flips every frame (the guest may have drawn)', () => {
    const s = shownView('primary', info(), { copyMode: true });
    expect(decide(s, { status: 'ok', info: info() }, 'keep')).toMatchObject({ action: 'flip' });
  });

  it('failure streaks report every N failures in a row', () => {
    const f = new FailureStreak(3);
    expect([f.fail(), f.fail(), f.fail(), f.fail()]).toEqual([false, false, true, false]);
    expect(f.ok()).toBe(4);
    expect(f.current).toBe(0);
  });
});

describe('copy and counting helpers', () => {
  it('copyRows honours both strides and counts bytes', () => {
    const src = Buffer.alloc(4 * 10);
    for (let i = 0; i < src.length; i++) src[i] = i;
    const dst = Buffer.alloc(4 * 16);
    const n = copyRows(src, 10, dst, 16, 8, 4);
    expect(n).toBe(32);
    expect([...dst.subarray(16, 24)]).toEqual([10, 11, 12, 13, 14, 15, 16, 17]);
    expect(dst[24]).toBe(0);
  });

  it('CallCounter counts calls by name and ioctls', () => {
    const c = new CallCounter();
    const api = c.wrap({ drmAtomicCommit: () => 1, close: () => undefined, vfioQueryGfxPlane: () => 2 });
    const before = c.snapshot();
    api.drmAtomicCommit();
    api.vfioQueryGfxPlane();
    api.close();
    expect(c.since(before)).toEqual({ drmAtomicCommit: 1, vfioQueryGfxPlane: 1, close: 1 });
    expect(CallCounter.ioctls(c.since(before))).toBe(2);
  });
});
