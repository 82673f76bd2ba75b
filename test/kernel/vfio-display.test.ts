// Kernel test of the whole device path with vgpu_sim: the "guest" programs a display plane
// through vgpu-sim's debugfs, the VFIO layer queries it and exports a dma-buf, the KMS layer
// imports it into vkms and shows it on an overlay plane; then everything is undone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../src/binding/index.js';
import { DRM_FORMAT_MOD_LINEAR, DRM_FORMAT_XRGB8888, DRM_MODE_ATOMIC_ALLOW_MODESET } from '../../src/binding/constants.js';
import { hasCode } from '../../src/binding/errors.js';
import { DrmDevice } from '../../src/kms/device.js';
import { preferredMode } from '../../src/kms/mode.js';
import { captureState, restoreState } from '../../src/kms/state.js';
import { VfioDevice } from '../../src/vfio/device.js';
import { SimGuest, createSimInstance, type SimInstance } from '../../src/vgpu-sim/index.js';
import { findVkmsCard, readDebugfsState } from './kms-helpers.js';

let sim: SimInstance | null = null;
let vfio: VfioDevice | null = null;
let guest: SimGuest;

beforeAll(() => {
  sim = createSimInstance('vgpu_sim-small');
  vfio = VfioDevice.open(sim.uuid);
  guest = new SimGuest(sim.uuid);
});

afterAll(() => {
  vfio?.close();
  sim?.remove();
});

describe('vGPU plane -> dma-buf -> vkms overlay', () => {
  it('reports "not ready" (size 0) before the guest enables its display', () => {
    guest.reset();
    const p = vfio!.queryPlane('primary', 'dmabuf');
    expect(p.ready).toBe(false);
    expect(p.size).toBe(0);
  });

  it('queries the guest plane, exports it and shows it on a vkms overlay', () => {
    const W = 320;
    const H = 240;
    guest.setMode('primary', { fourcc: 'XR24', width: W, height: H });
    const px = Buffer.alloc(W * H * 4);
    for (let i = 0; i < W * H; i++) px.writeUInt32LE((0xff000000 | (i & 0xffffff)) >>> 0, i * 4);
    guest.writePixels(0, px);

    const plane = vfio!.queryPlane('primary', 'dmabuf');
    expect(plane).toMatchObject({ ready: true, drmFormat: DRM_FORMAT_XRGB8888, width: W, height: H, stride: W * 4 });
    expect(plane.drmFormatMod).toBe(DRM_FORMAT_MOD_LINEAR);

    const dmabuf = vfio!.getDmabuf(plane.id);
    const dev = DrmDevice.open(findVkmsCard());
    try {
      const s = dev.snapshot();
      const saved = captureState(s);
      const crtc = s.crtcs[0]!;
      const conn = s.connectors.find((c) => c.name === 'Virtual-1')!;
      const primary = s.planes.find((p) => p.type === 'primary')!;
      const overlay = s.planes.find((p) => p.type === 'overlay')!;
      const mode = preferredMode(conn.modes)!;
      const bg = dev.createDumbFramebuffer(mode.hdisplay, mode.vdisplay);
      const blob = dev.createModeBlob(mode);
      const fbId = dev.importDmabuf(dmabuf, { width: W, height: H, format: plane.drmFormat, modifier: plane.drmFormatMod, stride: plane.stride });
      native.close(dmabuf);

      const req = dev.atomic()
        .set(conn.id, 'CRTC_ID', crtc.id).set(crtc.id, 'ACTIVE', 1).set(crtc.id, 'MODE_ID', blob.id)
        .set(primary.id, 'FB_ID', bg.fbId).set(primary.id, 'CRTC_ID', crtc.id)
        .set(primary.id, 'SRC_W', mode.hdisplay << 16).set(primary.id, 'SRC_H', mode.vdisplay << 16)
        .set(primary.id, 'CRTC_W', mode.hdisplay).set(primary.id, 'CRTC_H', mode.vdisplay)
        .set(overlay.id, 'FB_ID', fbId).set(overlay.id, 'CRTC_ID', crtc.id)
        .set(overlay.id, 'SRC_W', W << 16).set(overlay.id, 'SRC_H', H << 16)
        .set(overlay.id, 'CRTC_X', 16).set(overlay.id, 'CRTC_Y', 16).set(overlay.id, 'CRTC_W', W).set(overlay.id, 'CRTC_H', H);
      expect(req.testOnly(DRM_MODE_ATOMIC_ALLOW_MODESET)).toEqual({ ok: true });
      req.commit(DRM_MODE_ATOMIC_ALLOW_MODESET);
      const after = dev.snapshot().planes.find((p) => p.id === overlay.id)!;
      expect(after).toMatchObject({ fbId, crtcId: crtc.id, crtc: { x: 16, y: 16, w: W, h: H } });
      const state = readDebugfsState(dev.path);
      if (state !== null) expect(state).toMatch(/imported=yes/);

      restoreState(dev, saved);
      dev.rmFb(fbId);
      bg.destroy();
      blob.destroy();
      expect(dev.liveFramebuffers()).toEqual([]);
    } finally {
      dev.close();
    }
  });

  it('cursor planes: signed position and hotspot', () => {
    guest.setMode('cursor', { fourcc: 'AR24', width: 64, height: 64, offset: 1 << 20, x: -8, y: 5, xhot: 3, yhot: 4 });
    const c = vfio!.queryPlane('cursor', 'dmabuf');
    expect(c).toMatchObject({ type: 'cursor', ready: true, x: -8, y: 5, hotspot: { x: 3, y: 4 } });
  });

  it('a transient driver error names the ioctl and errno, and the next query works', () => {
    guest.injectFault('query', 'ENOMEM', 1);
    let err: unknown;
    try {
      vfio!.queryPlane('primary', 'dmabuf');
    } catch (e) {
      err = e;
    }
    expect(hasCode(err, 'ENOMEM')).toBe(true);
    expect((err as Error).message).toMatch(/VFIO_DEVICE_QUERY_GFX_PLANE/);
    expect(vfio!.queryPlane('primary', 'dmabuf').ready).toBe(true);
  });
});
