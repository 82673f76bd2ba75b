// Reading back the composed frame through a writeback connector (vkms' Writeback-1).
// On Linux 6.1 the virtual connector's encoder and the writeback encoder are not clones, so the
// capture commit routes the CRTC to the writeback connector alone (the display connector's
// CRTC_ID = 0 in the same commit, ALLOW_MODESET), then a second commit routes it back.
// The process that owns the display (DRM master) must take the capture itself.
import { native } from '../binding/index.js';
import type { ModeInfo } from '../binding/types.js';
import { DRM_FORMAT_XRGB8888, DRM_MODE_ATOMIC_ALLOW_MODESET } from '../binding/constants.js';
import { OUT_FENCE, type DrmDevice } from '../kms/index.js';
import type { ConnectorSnapshot, KmsSnapshot } from '../kms/types.js';
import { encodePng, xrgb8888ToRgb } from './png.js';

export interface CapturedFrame {
  width: number;
  height: number;
  /** bytes per row of `pixels` */
  stride: number;
  /** XRGB8888, little endian (B, G, R, X) */
  pixels: Buffer;
  /** how long the fence took, ms */
  waitMs: number;
}

export interface CaptureOptions {
  crtcId: number;
  mode: ModeInfo;
  /** the connector showing the CRTC now (routed back after the capture); null: leave it off */
  displayConnectorId: number | null;
  /** ms to wait for the writeback fence (default 3000) */
  timeoutMs?: number;
  /**
   * drive the writeback connector beside the display (its encoder can clone the display's):
   * the display keeps its picture. Default: route the CRTC to writeback alone for one frame.
   */
  alongside?: boolean;
}

export function findWritebackConnector(s: KmsSnapshot, crtcIndex: number): ConnectorSnapshot | null {
  return (
    s.connectors.find(
      (c) =>
        c.writeback &&
        c.encoders.some((id) => {
          const e = s.encoders.find((x) => x.id === id);
          return e !== undefined && (e.possibleCrtcs & (1 << crtcIndex)) !== 0;
        }),
    ) ?? null
  );
}

/** Capture the CRTC's composed output once. The device must have the writeback client cap. */
export function captureWriteback(dev: DrmDevice, o: CaptureOptions): CapturedFrame {
  if (!dev.clientCaps.writebackConnectors) {
    throw new Error(`${dev.path}: capturing needs DRM_CLIENT_CAP_WRITEBACK_CONNECTORS (open the device with { writeback: true })`);
  }
  const snap = dev.currentSnapshot();
  const crtc = snap.crtcs.find((c) => c.id === o.crtcId);
  if (!crtc) throw new Error(`capture: CRTC ${o.crtcId} not found on ${dev.path}`);
  const wb = findWritebackConnector(snap, crtc.index);
  if (!wb) {
    throw new Error(
      `capture: ${dev.path} (${snap.driver.name}) has no writeback connector for CRTC ${crtc.index} ` +
        '(for vkms: modprobe vkms enable_writeback=1)',
    );
  }
  const width = o.mode.hdisplay;
  const height = o.mode.vdisplay;
  const fb = dev.createDumbFramebuffer(width, height, DRM_FORMAT_XRGB8888);
  try {
    const req = dev.atomic();
    req.set(wb.id, 'CRTC_ID', o.crtcId);
    req.set(wb.id, 'WRITEBACK_FB_ID', fb.fbId);
    req.set(wb.id, 'WRITEBACK_OUT_FENCE_PTR', OUT_FENCE);
    if (o.displayConnectorId && !o.alongside) req.set(o.displayConnectorId, 'CRTC_ID', 0);
    const t0 = Date.now();
    const fences = req.commit(DRM_MODE_ATOMIC_ALLOW_MODESET);
    const fence = fences[0] ?? -1;
    let waitMs = 0;
    try {
      if (fence < 0) throw new Error(`capture on ${dev.path}: the kernel returned no writeback fence`);
      const ok = native.pollWait(fence, o.timeoutMs ?? 3000);
      waitMs = Date.now() - t0;
      if (!ok) throw new Error(`capture on ${dev.path}: the writeback fence did not signal within ${o.timeoutMs ?? 3000} ms`);
    } finally {
      if (fence >= 0) native.close(fence);
      // route the CRTC back to the display (the writeback job is one-shot)
      const back = dev.atomic();
      back.set(wb.id, 'CRTC_ID', 0);
      if (o.displayConnectorId && !o.alongside) back.set(o.displayConnectorId, 'CRTC_ID', o.crtcId);
      back.commit(DRM_MODE_ATOMIC_ALLOW_MODESET);
    }
    const m = fb.map();
    const pixels = Buffer.from(Buffer.from(m.buffer, 0, m.length)); // copy out before unmapping
    return { width, height, stride: fb.pitch, pixels, waitMs };
  } finally {
    fb.destroy();
  }
}

/** The XRGB8888 pixel at (x, y) as 0xRRGGBB. */
export function pixelAt(f: CapturedFrame, x: number, y: number): number {
  return f.pixels.readUInt32LE(y * f.stride + x * 4) & 0xffffff;
}

export function frameToPng(f: CapturedFrame): Buffer {
  return encodePng(f.width, f.height, xrgb8888ToRgb(f.pixels, f.width, f.height, f.stride), 3);
}

export interface RegionCompare {
  /** pixels compared */
  total: number;
  mismatches: number;
  first: { x: number; y: number; got: number; want: number } | null;
}

/**
 * Compare a rectangle of the capture with expected pixels (want(x, y) in guest coordinates
 * returns 0xRRGGBB, or null to skip that pixel), placed at (dx, dy); off-screen parts are skipped.
 */
export function compareRegion(
  f: CapturedFrame,
  dx: number,
  dy: number,
  w: number,
  h: number,
  want: (x: number, y: number) => number | null,
): RegionCompare {
  const r: RegionCompare = { total: 0, mismatches: 0, first: null };
  for (let y = 0; y < h; y++) {
    const sy = dy + y;
    if (sy < 0 || sy >= f.height) continue;
    for (let x = 0; x < w; x++) {
      const sx = dx + x;
      if (sx < 0 || sx >= f.width) continue;
      const wv = want(x, y);
      if (wv === null) continue;
      r.total++;
      const got = pixelAt(f, sx, sy);
      if (got !== (wv & 0xffffff)) {
        r.mismatches++;
        r.first ??= { x: sx, y: sy, got, want: wv & 0xffffff };
      }
    }
  }
  return r;
}
