// The debugfs parsers on text recorded from Debian's 6.1 kernel with vkms (test/fixtures/debugfs-*):
// the DRM atomic state dump, the framebuffer list, vgpu-sim's status lines.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDrmFramebuffers, parseDrmState, parseFourcc, parseMode, parseRect, parseRectFp } from '../../src/debugfs/state.js';

const fx = (name: string): string => readFileSync(path.join(import.meta.dirname, '..', 'fixtures', name), 'utf8');

describe('parseDrmState', () => {
  it('idle vkms (fbcon on the primary plane): planes, CRTC, connectors, the fbcon framebuffer', () => {
    const s = parseDrmState(fx('debugfs-vkms-idle-state.txt'));
    expect(s.planes.map((p) => p.id)).toEqual([31, 33, 35, 37, 39, 41, 43, 45, 47, 49]);
    expect(s.planes.map((p) => p.name)).toEqual(Array.from({ length: 10 }, (_, i) => `plane-${i}`));
    const primary = s.planes[0]!;
    expect(primary).toMatchObject({ crtc: 'crtc-0', fbId: 60, crtcPos: { x: 0, y: 0, w: 1024, h: 768 }, srcPos: { x: 0, y: 0, w: 1024, h: 768 }, rotation: 1, normalizedZpos: 0 });
    expect(primary.fb).toMatchObject({ id: 60, allocatedBy: '[fbcon]', format: 'XR24', fourcc: 0x34325258, modifier: 0n, width: 1024, height: 768, imported: false });
    expect(primary.fb!.layers).toEqual([
      expect.objectContaining({ index: 0, width: 1024, height: 768, pitch: 4096, offset: 0, obj: expect.objectContaining({ size: 3145728, imported: false }) }),
    ]);
    expect(primary.fb!.layers[0]!.obj!.extra).toHaveProperty('vmap_use_count');
    expect(primary.extra).toMatchObject({ 'color-encoding': 'ITU-R BT.601 YCbCr', 'color-range': 'YCbCr limited range' });
    for (const p of s.planes.slice(1)) expect(p).toMatchObject({ crtc: null, fbId: 0, fb: null });
    expect(s.crtcs).toEqual([
      expect.objectContaining({ id: 51, name: 'crtc-0', enable: true, active: true, planeMask: 0x1, connectorMask: 1, encoderMask: 1 }),
    ]);
    expect(s.crtcs[0]!.mode).toMatchObject({ name: '1024x768', vrefresh: 60, clock: 65000, hdisplay: 1024, vdisplay: 768, htotal: 1344, vtotal: 806, type: 0x48, flags: 0xa });
    expect(s.connectors).toEqual([
      expect.objectContaining({ id: 52, name: 'Virtual-1', crtc: 'crtc-0', writebackFbId: null }),
      expect.objectContaining({ id: 59, name: 'Writeback-1', crtc: null, writebackFbId: null }),
    ]);
    expect(s.framebuffers.map((f) => f.id)).toEqual([60]);
    expect(s.unknown).toEqual([]);
  });

  it('DMABUF assignment: imported guest buffers on an overlay (positioned) and the cursor plane', () => {
    const s = parseDrmState(fx('debugfs-vkms-dmabuf-state.txt'));
    const on = s.planes.filter((p) => p.fbId !== 0);
    expect(on.map((p) => [p.id, p.crtc, p.fbId])).toEqual([
      [33, 'crtc-0', 62],
      [49, 'crtc-0', 63],
    ]);
    expect(on[0]!.fb).toMatchObject({ allocatedBy: 'node', format: 'XR24', width: 640, height: 480, imported: true });
    expect(on[0]!.crtcPos).toEqual({ x: 100, y: 80, w: 640, h: 480 });
    expect(on[1]!.fb).toMatchObject({ format: 'AR24', fourcc: 0x34325241, width: 64, height: 64, imported: true });
    expect(on[1]!.crtcPos).toEqual({ x: 200, y: 130, w: 64, h: 64 });
    // the primary plane was turned off by the assignment
    expect(s.planes[0]).toMatchObject({ id: 31, crtc: null, fbId: 0 });
    expect(s.crtcs[0]!.planeMask).toBe(0x202);
  });

  it('DRM_FB assignment: vgpu-sim framebuffers (imported into vkms) on the planes', () => {
    const s = parseDrmState(fx('debugfs-vkms-drmfb-state.txt'));
    expect(s.planes.filter((p) => p.fbId).map((p) => [p.id, p.fbId, p.fb!.imported])).toEqual([
      [33, 61, true],
      [49, 62, true],
    ]);
  });

  it('tolerates unknown blocks, spaces for tabs, several layers, a null object and a writeback job', () => {
    const text = [
      'plane[40]: overlay-a',
      '\tcrtc=pipe A',
      '\tfb=7',
      '\t\tallocated by = weston',
      '\t\trefcount=2',
      '\t\tformat=NV12 little-endian (0x3231564e)',
      '\t\tmodifier=0x100000000000001',
      '\t\tsize=1920x1080',
      '\t\tlayers:',
      '\t\t\tsize[0]=1920x1080',
      '\t\t\tpitch[0]=2048',
      '\t\t\toffset[0]=0',
      '\t\t\tobj[0]:',
      '\t\t\t\tname=0',
      '\t\t\t\trefcount=3',
      '\t\t\t\tstart=00010000',
      '\t\t\t\tsize=3317760',
      '\t\t\t\timported=no',
      '\t\t\tsize[1]=960x540',
      '\t\t\tpitch[1]=2048',
      '\t\t\toffset[1]=2211840',
      '\t\t\tobj[1]:(null)',
      '\tcrtc-pos=960x540-10+20',
      '\tsrc-pos=1920.500000x1080.000000+0.250000+0.000000',
      '\trotation=1',
      '\tnormalized-zpos=2',
      '\tscaler-id=1',
      'crtc[50]: pipe A',
      '\tenable=0',
      '\tactive=0',
      '\tmode: "": 0 0 0 0 0 0 0 0 0 0 0x0 0x0',
      'connector[60]: Writeback-1',
      '\tcrtc=pipe A',
      '\tfb=9',
      'private[1]: dpu',
      '\tsomething=1',
      '',
    ].join('\n');
    const s = parseDrmState(text);
    expect(s.planes[0]).toMatchObject({ id: 40, name: 'overlay-a', crtc: 'pipe A', fbId: 7, normalizedZpos: 2, crtcPos: { x: -10, y: 20, w: 960, h: 540 } });
    expect(s.planes[0]!.srcPos).toEqual({ x: 0.25, y: 0, w: 1920.5, h: 1080 });
    expect(s.planes[0]!.extra).toEqual({ 'scaler-id': '1' });
    const fb = s.planes[0]!.fb!;
    expect(fb).toMatchObject({ allocatedBy: 'weston', format: 'NV12', fourcc: 0x3231564e, modifier: 0x100000000000001n, imported: false });
    expect(fb.layers.map((l) => [l.index, l.width, l.height, l.offset, l.obj === null])).toEqual([
      [0, 1920, 1080, 0, false],
      [1, 960, 540, 2211840, true],
    ]);
    expect(s.crtcs[0]).toMatchObject({ enable: false, active: false, mode: null });
    expect(s.connectors[0]).toMatchObject({ name: 'Writeback-1', crtc: 'pipe A', writebackFbId: 9 });
    expect(s.unknown).toEqual(['private[1]: dpu']);
    expect(parseDrmState('')).toEqual({ planes: [], crtcs: [], connectors: [], framebuffers: [], unknown: [] });
  });
});

describe('parseDrmFramebuffers', () => {
  it('every framebuffer of the device: the tool\'s imports and fbcon\'s own', () => {
    const fbs = parseDrmFramebuffers(fx('debugfs-vkms-drmfb-framebuffer.txt'));
    expect(fbs.map((f) => [f.id, f.allocatedBy, f.format, `${f.width}x${f.height}`, f.imported])).toEqual([
      [60, '[fbcon]', 'XR24', '1024x768', false],
      [61, 'node', 'XR24', '640x480', true],
      [62, 'node', 'AR24', '64x64', true],
    ]);
  });
});

describe('field formats', () => {
  it('DRM_RECT_FMT, DRM_RECT_FP_FMT, DRM_MODE_FMT, %p4cc', () => {
    expect(parseRect('64x64-8+700')).toEqual({ x: -8, y: 700, w: 64, h: 64 });
    expect(parseRect('garbage')).toEqual({ x: 0, y: 0, w: 0, h: 0 });
    expect(parseRectFp('64.000000x64.000000-8.500000+0.000000')).toEqual({ x: -8.5, y: 0, w: 64, h: 64 });
    expect(parseMode('"640x480": 60 25175 640 656 752 800 480 490 492 525 0x40 0xa')).toMatchObject({ hdisplay: 640, vdisplay: 480, vrefresh: 60 });
    expect(parseMode('nonsense')).toBeNull();
    expect(parseFourcc('AR24 little-endian (0x34325241)')).toEqual({ name: 'AR24', code: 0x34325241 });
    expect(parseFourcc('R8   little-endian (0x20203852)')).toEqual({ name: 'R8', code: 0x20203852 });
  });
});
