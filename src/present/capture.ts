// Pictures of an output: read back through the device's writeback connector (between two
// frames, or beside the display when the device can clone), or composed in memory from the
// layers' own buffers (src/capture/screenshot.ts says which and why).
import { captureWriteback, type CapturedFrame } from '../capture/writeback.js';
import { chooseMethod, composeLayers, writebackClone, type LayerPicture, type Screenshot, type ScreenshotMethod } from '../capture/screenshot.js';
import type { Output } from './output.js';

/** The composed frame via writeback: presenting pauses, the CRTC goes to writeback for one frame, then back. */
export async function captureOutput(out: Output, timeoutMs = 3000): Promise<CapturedFrame> {
  await out.pause();
  try {
    return captureWriteback(out.display.dev, { crtcId: out.crtc.id, mode: out.mode, displayConnectorId: out.connector?.id ?? null, timeoutMs });
  } finally {
    out.resume();
  }
}

/**
 * What is on the output now, for people: writeback beside the display when the device can,
 * else composed from the layers in memory; 'writeback' routes the CRTC to writeback alone for a
 * frame when it cannot clone.
 */
export async function screenshotOutput(out: Output, method: ScreenshotMethod = 'auto', timeoutMs = 3000): Promise<Screenshot> {
  const dev = out.display.dev;
  const wb = dev.clientCaps.writebackConnectors ? writebackClone(dev.currentSnapshot(), out.crtc.index, out.connector?.id ?? null) : null;
  const how = chooseMethod(method, wb);
  if (how.method !== 'compose') {
    await out.pause();
    try {
      const f = captureWriteback(dev, { crtcId: out.crtc.id, mode: out.mode, displayConnectorId: out.connector?.id ?? null, timeoutMs, alongside: how.method === 'writeback' });
      return { ...f, method: how.method, notes: [how.why] };
    } finally {
      out.resume();
    }
  }
  const z = { primary: 0, overlay: 1, cursor: 2 } as const;
  const layers: LayerPicture[] = [];
  out.layers.forEach((l, i) => {
    const a = l.assignment;
    if (!a || !l.fbId) return;
    layers.push({
      name: l.name === l.kind ? `guest ${l.kind}` : `layer ${l.name}`,
      x: a.dst.x,
      y: a.dst.y,
      width: Math.min(a.src.w, a.dst.w),
      height: Math.min(a.src.h, a.dst.h),
      zpos: a.zpos ?? l.req.z ?? z[l.kind] + 3 * i,
      read: () => l.source.pixelsOf(l.fbId),
    });
  });
  const { frame, notes } = composeLayers(out.width, out.height, layers);
  notes.unshift(how.why, 'only the guest layers are in the picture: anything else on the CRTC (other planes) shows as black');
  return { ...frame, method: 'compose', notes };
}
