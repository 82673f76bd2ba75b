import { describe, expect, it } from 'vitest';
import { FbCache, type BufferDesc } from '../../src/flip/fb-cache.js';
import { decide, classifyQuery, FailureStreak, type PlaneView } from '../../src/flip/decide.js';
import { copyRows } from '../../src/flip/copy.js';
import { CallCounter } from '../../src/flip/counting.js';
import { DRM_FORMAT_XRGB8888, DRM_FORMAT_ARGB8888 } from '../../src/binding/constants.js';
import type { GfxPlaneInfo } from '../../src/binding/types.js';

const desc = (w = 640, h = 480): BufferDesc => ({ width: w, height: h, format: DRM_FORMAT_XRGB8888, modifier: 0n, stride: w * 4 });

describe('FbCache', () => {
  it('hits by dmabuf_id, evicts least recently used beyond capacity', () => {
    const removed: number[] = [];
    const c = new FbCache(2, (fb) => removed.push(fb));
    c.insert(1, 101, desc());
    c.insert(2, 102, desc());
    expect(c.lookup(1, desc())?.fbId).toBe(101); // 1 is now most recent
    c.insert(3, 103, desc());
    expect(removed).toEqual([102]);
    expect(c.lookup(2, desc())).toBeUndefined();
    expect(c.stats).toMatchObject({ hits: 1, misses: 1, imports: 3, evictions: 1 });
  });

  it('never removes the fb on screen or the pending one; removes it after the flip that replaced it', () => {
    const removed: number[] = [];
    const c = new FbCache(1, (fb) => removed.push(fb));
    c.insert(1, 101, desc());
    c.committedAndFlipped(101); // on screen
    c.insert(2, 102, desc()); // over capacity, but 101 is pinned, 102 is newest
    expect(removed).toEqual([]);
    c.committed(102); // pending flip to 102
    expect(removed).toEqual([]);
    c.flipCompleted(); // 101 left the screen: now it can go
    expect(removed).toEqual([101]);
    expect(c.liveFbs()).toEqual([102]);
  });

  it('a changed buffer description for the same id drops the stale fb (deferred while on screen)', () => {
    const removed: number[] = [];
    const c = new FbCache(4, (fb) => removed.push(fb));
    c.insert(7, 107, desc(640, 480));
    c.committedAndFlipped(107);
    expect(c.lookup(7, desc(800, 600))).toBeUndefined();
    expect(removed).toEqual([]);
    expect(c.deferredCount).toBe(1);
    c.insert(7, 207, desc(800, 600));
    c.committed(207);
    c.flipCompleted();
    expect(removed).toEqual([107]);
  });

  it('remembers failed imports and retries only after N frames or a new description', () => {
    const c = new FbCache(4, () => undefined, 10);
    expect(c.recordFailure(5, desc(), 100, 'EINVAL')).toBe(1);
    expect(c.failedReason(5, desc(), 101)).toBe('EINVAL');
    expect(c.failedReason(5, desc(), 109)).toBe('EINVAL');
    expect(c.failedReason(5, desc(800, 600), 105)).toBeNull();
    c.recordFailure(5, desc(), 200, 'EINVAL');
    expect(c.failedReason(5, desc(), 210)).toBeNull();
  });

  it('clear() removes cached and deferred fbs and reports removal errors', () => {
    const removed: number[] = [];
    const c = new FbCache(4, (fb) => {
      if (fb === 103) throw new Error('ENOENT');
      removed.push(fb);
    });
    c.insert(1, 101, desc());
    c.insert(2, 102, desc());
    c.insert(3, 103, desc());
    const errors = c.clear();
    expect(removed.sort()).toEqual([101, 102]);
    expect(errors).toHaveLength(1);
    expect(c.size).toBe(0);
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

describe('FbCache.invalidateAll', () => {
  it('drops everything but removes the on-screen fb only after the next flip', () => {
    const removed: number[] = [];
    const c = new FbCache(4, (fb) => removed.push(fb));
    c.insert(1, 101, desc());
    c.insert(2, 102, desc());
    c.committedAndFlipped(102);
    c.invalidateAll();
    expect(removed).toEqual([101]);
    expect(c.lookup(2, desc())).toBeUndefined();
    c.insert(2, 202, desc());
    c.committedAndFlipped(202);
    expect(removed).toEqual([101, 102]);
  });
});
