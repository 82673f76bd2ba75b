// DRM_FB path, pure logic: the watch decisions, the geometry check after a guest mode change,
// the counters / status line, vgpu-sim's debugfs status parsing, resolver selection, and the
// session's path choice errors (raised before any device is opened or the screen changes).
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { GfxPlaneInfo } from '../../src/binding/types.js';
import { DRM_FORMAT_ARGB8888, DRM_FORMAT_XRGB8888, VFIO_GFX_NO_HOTSPOT } from '../../src/binding/constants.js';
import { decideDrmFb, type PlaneView, type QueryOutcome } from '../../src/flip/decide.js';
import {
  commitsPerGuestFlip,
  drmFbStatusLine,
  followsPlan,
  followVerdict,
  vendorFbMismatch,
  GuestFbHistory,
  MAX_RACING_LOOKS,
  openFbIdResolver,
  racingStep,
  shapeKey,
  parseSimStatusInfo,
  ResolverGuestSource,
  SimDebugfsResolver,
  type FbIdResolver,
  type FbIdResolverFactory,
} from '../../src/flip/drmfb.js';
import { choosePath, openSession, UsageError, type ProbeFn } from '../../src/flip/session.js';
import type { GuestSource } from '../../src/flip/engine.js';

function info(o: Partial<GfxPlaneInfo> = {}): GfxPlaneInfo {
  return {
    flags: 0, drmPlaneType: 1, drmFormat: DRM_FORMAT_XRGB8888, drmFormatMod: 0n, width: 1024, height: 768, stride: 4096,
    size: 4096 * 768, xPos: 0, yPos: 0, xHot: VFIO_GFX_NO_HOTSPOT, yHot: VFIO_GFX_NO_HOTSPOT, id: 41, ...o,
  };
}
const ok = (i: GfxPlaneInfo): QueryOutcome => ({ status: 'ok', info: i });
const desc = { width: 1024, height: 768, format: DRM_FORMAT_XRGB8888, modifier: 0n, stride: 4096 };
const shownView = (kind: PlaneView['kind'] = 'primary', id = 41): PlaneView => ({
  kind, shown: { id, desc, x: 0, y: 0, xHot: null, yHot: null }, blanked: false, copyMode: false,
});

describe('decideDrmFb: commit once, then only watch', () => {
  it('first frame and a plane back after reset are (re)planned', () => {
    expect(decideDrmFb({ kind: 'primary', shown: null, blanked: false, copyMode: false }, ok(info()), 'keep')).toMatchObject({ action: 'replan', reason: 'first frame', id: 41 });
    expect(decideDrmFb({ ...shownView(), blanked: true }, ok(info({ id: 50 })), 'keep')).toMatchObject({ action: 'replan', reason: 'guest plane is back' });
  });

  it('the same framebuffer id: nothing to do', () => {
    expect(decideDrmFb(shownView(), ok(info()), 'keep')).toEqual({ action: 'none' });
  });

  it('a guest flip (new id, same shape) is followed, never committed', () => {
    expect(decideDrmFb(shownView(), ok(info({ id: 42 })), 'keep')).toMatchObject({ action: 'follow', id: 42, shapeChange: null, move: false });
    // a copy-mode view (REGION) would flip every frame; DRM_FB ignores it
    expect(decideDrmFb({ ...shownView(), copyMode: true }, ok(info()), 'keep')).toEqual({ action: 'none' });
  });

  it('a guest mode change is followed with a geometry check (re-planned only if the plane cannot show it)', () => {
    const d = decideDrmFb(shownView(), ok(info({ id: 43, width: 800, height: 600, stride: 3200, size: 3200 * 600 })), 'keep');
    expect(d).toMatchObject({ action: 'follow', id: 43, shapeChange: 'guest plane size 1024x768 -> 800x600' });
    expect(decideDrmFb(shownView(), ok(info({ id: 44, drmFormat: DRM_FORMAT_ARGB8888 })), 'keep')).toMatchObject({ action: 'follow', shapeChange: 'guest plane format changed' });
  });

  it('cursor: moves are position-only commits (the kernel follows buffers, not positions)', () => {
    const cur = (o: Partial<GfxPlaneInfo>): GfxPlaneInfo => info({ drmPlaneType: 2, drmFormat: DRM_FORMAT_ARGB8888, width: 64, height: 64, stride: 256, size: 16384, xHot: 0, yHot: 0, ...o });
    const view: PlaneView = { kind: 'cursor', shown: { id: 7, desc: { width: 64, height: 64, format: DRM_FORMAT_ARGB8888, modifier: 0n, stride: 256 }, x: 10, y: 10, xHot: 0, yHot: 0 }, blanked: false, copyMode: false };
    expect(decideDrmFb(view, ok(cur({ id: 7, xPos: 20, yPos: 10 })), 'keep')).toEqual({ action: 'move', x: 20, y: 10, xHot: 0, yHot: 0 });
    expect(decideDrmFb(view, ok(cur({ id: 8, xPos: 20, yPos: 10 })), 'keep')).toMatchObject({ action: 'follow', id: 8, move: true });
    expect(decideDrmFb(view, ok(cur({ id: 8, xPos: 10, yPos: 10 })), 'keep')).toMatchObject({ action: 'follow', id: 8, move: false });
  });

  it('not ready and query errors as on the other paths', () => {
    expect(decideDrmFb(shownView(), { status: 'not-ready' }, 'keep')).toEqual({ action: 'not-ready', blank: false });
    expect(decideDrmFb(shownView(), { status: 'not-ready' }, 'blank')).toEqual({ action: 'not-ready', blank: true });
    const err = new Error('ENOMEM');
    expect(decideDrmFb(shownView(), { status: 'error', error: err }, 'keep')).toEqual({ action: 'query-failed', error: err });
  });
});

describe('followsPlan: did the kernel put the new framebuffer where the plan wants it?', () => {
  const want = { src: { x: 0, y: 0, w: 800, h: 600 }, dst: { x: 0, y: 0, w: 800, h: 600 } };
  const hw = { fbId: 43, crtcId: 37, src: { x: 0, y: 0, w: 800, h: 600 }, dst: { x: 0, y: 0, w: 800, h: 600 } };
  it('yes: same fb, CRTC, source and destination', () => {
    expect(followsPlan(hw, 43, 37, want)).toBeNull();
  });
  it('no: explains why (then the engine re-plans)', () => {
    expect(followsPlan({ ...hw, fbId: 41 }, 43, 37, want)).toMatch(/still shows framebuffer 41, not 43 \(the in-kernel flip failed\?\)/);
    expect(followsPlan({ ...hw, fbId: 0 }, 43, 37, want)).toBe('the hardware plane was turned off');
    expect(followsPlan({ ...hw, crtcId: 38 }, 43, 37, want)).toMatch(/CRTC 38/);
    // centred placement: the kernel kept the old top-left, the plan wants the new centre
    expect(followsPlan(hw, 43, 37, { ...want, dst: { x: 112, y: 84, w: 800, h: 600 } })).toBe('destination 800x600+0+0 instead of 800x600+112+84');
    expect(followsPlan({ ...hw, src: { x: 0, y: 0, w: 1024, h: 768 } }, 43, 37, want)).toBe('source 1024x768+0+0 instead of 800x600+0+0');
  });
});

describe('followVerdict: a guest flipping between two looks is not a failed in-kernel flip', () => {
  const a = info({ id: 41 });
  const b = info({ id: 42 });
  const small = info({ id: 43, width: 800, height: 600, stride: 3200 });
  const h = new GuestFbHistory(4);
  h.note(a);
  h.note(b);
  h.note(small);
  const shapeOf = (fb: number): string | undefined => h.shapeOf(fb);
  it('exact, racing (another recent fb of the same shape), or no', () => {
    expect(followVerdict(42, 42, shapeKey(b), shapeOf)).toBe('exact');
    expect(followVerdict(41, 42, shapeKey(b), shapeOf)).toBe('racing');
    expect(followVerdict(43, 42, shapeKey(b), shapeOf)).toBe('no'); // another shape: a mode change the plane did not follow
    expect(followVerdict(0, 42, shapeKey(b), shapeOf)).toBe('no'); // turned off
    expect(followVerdict(99, 42, shapeKey(b), shapeOf)).toBe('no'); // unknown framebuffer (GETFB2 failed)
  });
  it('a framebuffer never seen in a query but of the guest shape (GETFB2) is racing, not a failure', () => {
    // the fast-guest flake (issue 11): the hardware plane shows a buffer the guest went through
    // between two looks, or the in-kernel commit for the current buffer is still in flight
    const getfb2 = (fb: number): string | undefined => (fb === 77 ? shapeKey(info({ id: 77 })) : fb === 78 ? shapeKey(small) : undefined);
    const both = (fb: number): string | undefined => h.shapeOf(fb) ?? getfb2(fb);
    expect(followVerdict(77, 42, shapeKey(b), both)).toBe('racing');
    expect(followVerdict(78, 42, shapeKey(b), both)).toBe('no');
  });
  it('remembers a bounded number of ids (oldest forgotten first), ignores id 0', () => {
    const r = new GuestFbHistory(2);
    r.note(info({ id: 0 }));
    r.note(a);
    r.note(b);
    r.note(a); // refreshed
    r.note(small);
    expect([r.shapeOf(41), r.shapeOf(42), r.shapeOf(43), r.shapeOf(0)]).toEqual([shapeKey(a), undefined, shapeKey(small), undefined]);
    r.clear();
    expect(r.shapeOf(41)).toBeUndefined();
  });
});

describe('racingStep: when a racing look becomes a failure', () => {
  it('exact resets, no fails at once', () => {
    expect(racingStep('exact', true, 2)).toEqual({ racingLooks: 0, fail: false });
    expect(racingStep('no', false, 0)).toEqual({ racingLooks: 0, fail: true });
  });
  it('never fails while the guest keeps flipping, but asks for another look', () => {
    let n = 0;
    for (let i = 0; i < 50; i++) {
      const r = racingStep('racing', false, n);
      expect(r.fail).toBe(false);
      n = r.racingLooks;
    }
    expect(n).toBe(1);
  });
  it(`fails after ${MAX_RACING_LOOKS} looks in a row with the guest idle (the in-kernel flip failed)`, () => {
    let r = racingStep('racing', false, 0);
    r = racingStep('racing', true, r.racingLooks);
    expect(r).toEqual({ racingLooks: 2, fail: false });
    r = racingStep('racing', true, r.racingLooks);
    expect(r).toEqual({ racingLooks: 3, fail: true });
  });
});

describe('DRM_FB counters', () => {
  it('zero user-space commits per guest flip once assigned', () => {
    const c = { guestFlips: 100, kernelFlipsSeen: 12, commits: 1, assignCommits: 1, errors: 0 };
    expect(commitsPerGuestFlip(c)).toBe(0);
    expect(drmFbStatusLine(c)).toBe('drm_fb (kernel flips) | guest flips 100 | kernel flips seen 12 | user commits 1 (assignments 1, per guest flip 0.00) | errors 0');
  });
  it('falls back to the flips the watch saw when the guest has no counter; null before any flip', () => {
    expect(commitsPerGuestFlip({ guestFlips: null, kernelFlipsSeen: 4, commits: 3, assignCommits: 1, errors: 0 })).toBe(0.5);
    expect(commitsPerGuestFlip({ guestFlips: 0, kernelFlipsSeen: 0, commits: 1, assignCommits: 1, errors: 0 })).toBeNull();
    expect(drmFbStatusLine({ guestFlips: null, kernelFlipsSeen: 0, commits: 1, assignCommits: 1, errors: 2 })).toMatch(/guest flips \? .* per guest flip -\) \| errors 2$/);
  });
});

describe('vgpu-sim debugfs status -> DRM_FB plane info', () => {
  it('an enabled primary', () => {
    const t = 'plane=primary ready=1 size=1228800 enabled=1 fourcc=XR24 width=640 height=480 stride=2560 offset=0x200000 x=0 y=0 xhot=0 yhot=0 modifier=0x0 region_ok=0 kflips=3 kflip_err=0\nreason=ok\n';
    expect(parseSimStatusInfo(t, 'primary')).toEqual({
      flags: 0, drmPlaneType: 1, drmFormat: DRM_FORMAT_XRGB8888, drmFormatMod: 0n, width: 640, height: 480, stride: 2560, size: 1228800,
      xPos: 0, yPos: 0, xHot: VFIO_GFX_NO_HOTSPOT, yHot: VFIO_GFX_NO_HOTSPOT, id: 0,
    });
  });
  it('a cursor with hotspot and a negative position', () => {
    const t = 'plane=cursor ready=1 size=16384 enabled=1 fourcc=AR24 width=64 height=64 stride=256 offset=0x800000 x=-8 y=700 xhot=3 yhot=2 modifier=0x0 region_ok=0 kflips=0 kflip_err=0\nreason=ok\n';
    expect(parseSimStatusInfo(t, 'cursor')).toMatchObject({ drmPlaneType: 2, drmFormat: DRM_FORMAT_ARGB8888, xPos: -8, yPos: 700, xHot: 3, yHot: 2 });
  });
  it('a disabled or unusable plane answers size 0 (like a VFIO query)', () => {
    const t = 'plane=primary ready=0 size=0 enabled=1 fourcc=XR24 width=640 height=480 stride=100 offset=0x0 x=0 y=0 xhot=0 yhot=0 modifier=0x0 region_ok=0 kflips=0 kflip_err=0\nreason=stride 100 smaller than width*cpp 2560\n';
    expect(parseSimStatusInfo(t, 'primary')).toMatchObject({ size: 0, width: 0, height: 0, drmFormat: 0 });
  });
  it('says which field is wrong', () => {
    expect(() => parseSimStatusInfo('plane=primary ready=1 size=12 width=x\n', 'primary')).toThrow(/field width missing or not a number/);
  });
});

describe('fb id resolvers', () => {
  it('finds vgpu-sim instances by their debugfs folder, and explains when there is none', () => {
    const root = mkdtempSync(path.join(tmpdir(), 'drmfb-'));
    const uuid = '4f735b3d-c765-42a3-b5d7-262c97d92ab3';
    expect(() => openFbIdResolver(uuid, { debugfs: root })).toThrow(/is debugfs mounted .* root\?/);
    mkdirSync(path.join(root, 'vgpu_sim', uuid), { recursive: true });
    writeFileSync(path.join(root, 'vgpu_sim', uuid, 'info'), 'type=small vram_size=33554432 max_width=1920 max_height=1080 open=0 cached_buffers=0 next_id=1 drm_fb=1\n');
    const r = openFbIdResolver(uuid, { debugfs: root });
    expect(r).toBeInstanceOf(SimDebugfsResolver);
    expect(r.source).toBe(path.join(root, 'vgpu_sim', uuid, '<plane>', 'fb_id'));
    expect(r.supported()).toBe(true);
    // the plane's shape from status, its id from <plane>/fb_id
    const d = path.join(root, 'vgpu_sim', uuid);
    mkdirSync(path.join(d, 'primary'));
    writeFileSync(path.join(d, 'primary', 'fb_id'), '42\n');
    writeFileSync(path.join(d, 'primary', 'status'), 'plane=primary ready=1 size=1228800 enabled=1 fourcc=XR24 width=640 height=480 stride=2560 offset=0x0 x=0 y=0 xhot=0 yhot=0 modifier=0x0 region_ok=1 kflips=0 kflip_err=0\nreason=ok\n');
    expect(r.planeInfo('primary')).toMatchObject({ id: 42, width: 640, height: 480, stride: 2560, size: 1228800, drmFormat: DRM_FORMAT_XRGB8888 });
    writeFileSync(path.join(d, 'primary', 'fb_id'), '0\n'); // none (e.g. the fb could not be made): size 0
    expect(r.planeInfo('primary')).toMatchObject({ id: 0, size: 0 });
    expect(() => r.planeInfo('cursor')).toThrow(/reading .*cursor\/fb_id failed: ENOENT \(instance removed\? debugfs not mounted\?\)/);
    expect(r.gone()).toBeNull();
    expect(() => openFbIdResolver('00000000-0000-0000-0000-000000000000', { debugfs: root })).toThrow(/is it a vgpu-sim instance/);
    expect(new SimDebugfsResolver('00000000-0000-0000-0000-000000000000', { debugfs: root }).gone()).toMatch(/is gone/);
  });

  it('another vendor attribute plugs in as a factory (e.g. Intel GVT-g)', () => {
    const fake: FbIdResolver = {
      name: 'gvt debugfs', source: '/x/fb_id', fbId: () => 9, planeInfo: () => ({ ...info(), id: 9 }), supported: () => true, gone: () => null,
    };
    const factories: FbIdResolverFactory[] = [{ name: 'none', open: () => null }, { name: 'gvt debugfs', open: () => fake }];
    expect(openFbIdResolver('u', {}, factories)).toBe(fake);
    const src = new ResolverGuestSource(fake);
    expect(src.query('primary', 'drm_fb').id).toBe(9);
    expect(() => src.query('primary', 'dmabuf')).toThrow(/only the DRM_FB path works without the VFIO fd/);
    expect(() => src.getDmabuf()).toThrow(/no dma-buf without the VFIO fd/);
    expect(src.label).toBe('gvt debugfs (/x/fb_id)');
  });
});

describe('choosePath: PROBE order DRM_FB, DMABUF, REGION; a forced path must be supported', () => {
  const probe = (ok: Record<string, boolean | null>): ProbeFn => (p) => (ok[p] === null ? { supported: null, error: { message: 'ENOMEM' } } : { supported: ok[p] ?? false });
  it('takes the first supported one', () => {
    expect(choosePath(probe({ drm_fb: true, dmabuf: true, region: true }))).toEqual({ path: 'drm_fb', check: 'DRM_FB path chosen (PROBE)' });
    expect(choosePath(probe({ drm_fb: false, dmabuf: true, region: true }))).toEqual({ path: 'dmabuf', check: 'DMABUF path chosen (PROBE; not supported: DRM_FB)' });
    expect(choosePath(probe({ drm_fb: null, dmabuf: false, region: true }))).toEqual({ path: 'region', check: 'REGION path chosen (PROBE; not supported: DRM_FB, DMABUF)' });
    expect(() => choosePath(probe({}))).toThrow(/supports none of the DRM_FB, DMABUF and REGION plane paths \(PROBE DRM_FB: EINVAL, DMABUF: EINVAL, REGION: EINVAL\)/);
  });
  it('forced: used when supported, else a clear error with the alternatives', () => {
    expect(choosePath(probe({ drm_fb: true, dmabuf: true }), 'dmabuf')).toEqual({ path: 'dmabuf', check: 'DMABUF path supported (PROBE), as asked' });
    expect(() => choosePath(probe({ dmabuf: true, region: true }), 'drm_fb')).toThrow(/^vGPU does not support the DRM_FB plane path: the vendor driver answers EINVAL to PROBE \(supported: --path dmabuf, --path region\); /);
    expect(() => choosePath(probe({ drm_fb: true, region: null }), 'region')).toThrow(/REGION plane path: PROBE failed: ENOMEM \(supported: --path drm-fb\)$/);
    expect(() => choosePath(probe({}), 'drm_fb', 'vgpu-sim debugfs says DRM_FB is off')).toThrow(/DRM_FB plane path: vgpu-sim debugfs says DRM_FB is off;/);
  });
});

describe('openSession path choice fails before anything is opened', () => {
  const guestSource: GuestSource = {
    label: 'fake',
    query: () => info(),
    getDmabuf: () => {
      throw new Error('no');
    },
    openRegion: () => {
      throw new Error('no');
    },
  };
  it('--path drm-fb on a guest without DRM_FB: a clear error naming what is supported', () => {
    expect(() => openSession({ guestSource, planes: ['primary'], crtc: 0, path: 'drm_fb', device: '/nonexistent/card9' })).toThrow(
      /vGPU does not support the DRM_FB plane path: .*\(supported: --path dmabuf, --path region\)/,
    );
  });
  it('--via debugfs is DRM_FB only and needs no VFIO fd', () => {
    expect(() => openSession({ vgpu: '4f735b3d-c765-42a3-b5d7-262c97d92ab3', via: 'debugfs', path: 'dmabuf', planes: ['primary'], crtc: 0 })).toThrow(UsageError);
    expect(() => openSession({ vgpu: '4f735b3d-c765-42a3-b5d7-262c97d92ab3', via: 'debugfs', pid: 1, planes: ['primary'], crtc: 0 })).toThrow(/exclude each other/);
    expect(() => openSession({ vgpu: 'nope', via: 'debugfs', planes: ['primary'], crtc: 0 })).toThrow(/is not a UUID/);
  });
});

describe('vendorFbMismatch: a DRM_FB id goes on a plane only if GETFB2 agrees with the description', () => {
  const want = { width: 1024, height: 768, format: 0x34325258, stride: 4096 };
  const fb = { id: 9, width: 1024, height: 768, format: 0x34325258, flags: 0, modifier: null, pitches: [4096], offsets: [0] };
  it('accepts a matching framebuffer, names what differs otherwise', () => {
    expect(vendorFbMismatch(fb, 9, want)).toBeNull();
    expect(vendorFbMismatch({ ...fb, width: 800 }, 9, want)).toBe('framebuffer 9 is 800x768 XR24 pitch 4096 but the vendor driver described the guest plane as 1024x768 XR24 pitch 4096');
    expect(vendorFbMismatch(Object.assign(new Error('DRM_IOCTL_MODE_GETFB2: ENOENT [fb 9]'), { code: 'ENOENT' }), 9, want)).toBe(
      'framebuffer 9 cannot be looked up on the host DRM device (GETFB2: DRM_IOCTL_MODE_GETFB2: ENOENT): the vendor driver named a framebuffer that does not exist there (bound to another card?)',
    );
  });
});
