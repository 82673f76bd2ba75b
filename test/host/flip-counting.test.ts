// The per-frame helpers made cheap for issue 10: the call counter's wrappers (made once, not a
// closure per call) and AtomicRequest (no key or label strings per set()) keep their behaviour.
import { describe, expect, it } from 'vitest';
import { CallCounter } from '../../src/flip/counting.js';
import { AtomicRequest, PropertyIndex } from '../../src/kms/atomic.js';
import type { KmsSnapshot } from '../../src/kms/types.js';

describe('CallCounter.wrap', () => {
  it('counts calls of the functions the api has, with its own this', () => {
    const c = new CallCounter();
    const api = { base: 10, vfioQueryGfxPlane(this: { base: number }, x: number) { return this.base + x; }, close: () => undefined };
    const w = c.wrap(api);
    expect(w.vfioQueryGfxPlane(1)).toBe(11);
    expect(w.vfioQueryGfxPlane(2)).toBe(12);
    w.close();
    expect(w.base).toBe(10);
    expect(c.snapshot()).toEqual({ vfioQueryGfxPlane: 2, close: 1 });
  });

  it('calls a function replaced on the api after wrapping (a test guard), and counts it', () => {
    const c = new CallCounter();
    const api: { vfioGetGfxDmabuf: (id: number) => number } = { vfioGetGfxDmabuf: (id) => id };
    const w = c.wrap(api);
    api.vfioGetGfxDmabuf = () => -1;
    expect(w.vfioGetGfxDmabuf(5)).toBe(-1);
    expect(c.snapshot()).toEqual({ vfioGetGfxDmabuf: 1 });
  });

  it('counts functions a proxy makes up on access, and methods of a prototype', () => {
    const c = new CallCounter();
    class Api {
      drmGetCap(): number {
        return 1;
      }
    }
    const p = new Proxy(new Api(), { get: (t, k) => (k === 'drmAddFb2' ? () => 42 : Reflect.get(t, k)) }) as Api & { drmAddFb2(): number };
    const w = c.wrap(p);
    expect(w.drmAddFb2()).toBe(42);
    expect(w.drmGetCap()).toBe(1);
    const before = c.snapshot();
    w.drmAddFb2();
    expect(c.since(before)).toEqual({ drmAddFb2: 1 });
    expect(CallCounter.ioctls(c.snapshot())).toBe(3);
  });
});

const snap = {
  path: '/dev/dri/card9',
  crtcs: [{ id: 38, properties: { ACTIVE: { id: 20, immutable: false } } }],
  connectors: [],
  planes: [{ id: 31, type: 'primary', properties: { FB_ID: { id: 17, immutable: false }, CRTC_ID: { id: 18, immutable: false }, type: { id: 9, immutable: true } } }],
} as unknown as KmsSnapshot;

describe('AtomicRequest', () => {
  it('keeps the last value of a property set twice, in first-set order; describe names them', () => {
    const calls: unknown[] = [];
    const req = new AtomicRequest(3, new PropertyIndex(snap), { drmAtomicCommit: (_fd, props) => (calls.push(props), []) });
    req.set(31, 'FB_ID', 5).set(38, 'ACTIVE', 1).set(31, 'FB_ID', 6);
    expect(req.size).toBe(2);
    expect(req.props()).toEqual([[31, 17, 6], [38, 20, 1]]);
    expect(req.describe()).toBe('plane 31 (primary).FB_ID=6, CRTC 38.ACTIVE=1');
    req.commit(0);
    // what was committed stays as it was when the request changes afterwards
    req.set(31, 'FB_ID', 7).set(31, 'CRTC_ID', 38);
    req.commit(0);
    expect(calls).toEqual([[[31, 17, 6], [38, 20, 1]], [[31, 17, 7], [38, 20, 1], [31, 18, 38]]]);
  });

  it('still refuses unknown and immutable properties and non-integers', () => {
    const req = new AtomicRequest(3, new PropertyIndex(snap), { drmAtomicCommit: () => [] });
    expect(() => req.set(31, 'NOPE', 1)).toThrow(/has no property "NOPE"/);
    expect(() => req.set(31, 'type', 1)).toThrow(/immutable/);
    expect(() => req.set(31, 'FB_ID', 1.5)).toThrow(/not an integer/);
    expect(req.size).toBe(0);
  });
});
