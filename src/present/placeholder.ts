// What an output shows while none of its guests is on screen (the VM is missing, stopped,
// starting, or its vGPU was removed): a dumb framebuffer of the mode's size on the CRTC's
// primary plane, filled with a colour or an image (a splash, fitted to the mode with its aspect
// kept, centred on black). It goes on screen with one blocking commit; the next assignment
// turns it off (its plane is one of the output's used planes, which an assignment turns off
// unless it uses them) and the buffer is destroyed once that commit is done.
import type { DumbFramebuffer } from '../kms/index.js';
import { DRM_MODE_ATOMIC_ALLOW_MODESET } from '../binding/constants.js';
import type { Output } from './output.js';

/** rgb: 0xRRGGBB. image: XRGB8888 pixels (B, G, R, X bytes), stride width * 4. */
export type PlaceholderFill =
  | { kind: 'color'; rgb: number }
  | { kind: 'image'; width: number; height: number; pixels: Buffer };

export interface ShownPlaceholder {
  fb: DumbFramebuffer;
  planeId: number;
}

/**
 * Scale an image to fit w x h (nearest neighbour, aspect kept, centred), black around it.
 * Pure: returns XRGB8888 pixels with stride w * 4.
 */
export function fitImage(img: { width: number; height: number; pixels: Buffer }, w: number, h: number): Buffer {
  const out = Buffer.alloc(w * h * 4);
  if (img.width <= 0 || img.height <= 0) return out;
  const scale = Math.min(w / img.width, h / img.height);
  const dw = Math.max(1, Math.round(img.width * scale));
  const dh = Math.max(1, Math.round(img.height * scale));
  const x0 = Math.floor((w - dw) / 2);
  const y0 = Math.floor((h - dh) / 2);
  for (let y = 0; y < dh; y++) {
    const sy = Math.min(img.height - 1, Math.floor((y * img.height) / dh));
    for (let x = 0; x < dw; x++) {
      const sx = Math.min(img.width - 1, Math.floor((x * img.width) / dw));
      img.pixels.copy(out, ((y0 + y) * w + x0 + x) * 4, (sy * img.width + sx) * 4, (sy * img.width + sx) * 4 + 4);
    }
  }
  return out;
}

function fillBuffer(fb: DumbFramebuffer, fill: PlaceholderFill): void {
  const m = fb.map();
  const dst = Buffer.from(m.buffer, 0, m.length);
  try {
    const row = Buffer.alloc(fb.width * 4);
    let img: Buffer | null = null;
    if (fill.kind === 'color') {
      for (let x = 0; x < fb.width; x++) row.writeUInt32LE((0xff000000 | fill.rgb) >>> 0, x * 4);
    } else {
      img = fitImage(fill, fb.width, fb.height);
    }
    for (let y = 0; y < fb.height; y++) {
      const src = img ? img.subarray(y * fb.width * 4, (y + 1) * fb.width * 4) : row;
      src.copy(dst, y * fb.pitch);
    }
  } finally {
    m.unmap();
  }
}

/**
 * Put the placeholder on the output's primary plane (with the modeset the output still owes).
 * Replaces a placeholder already shown. Throws (nothing changed on screen) when the device
 * refuses; the caller reports it.
 */
export function showPlaceholder(out: Output, fill: PlaceholderFill): void {
  const snap = out.display.snapshot;
  const plane = snap.planes.find((p) => p.type === 'primary' && p.possibleCrtcIndices.includes(out.crtc.index) && !out.display.outputs.some((o) => o !== out && o.usedHwPlanes.has(p.id)));
  if (!plane) throw new Error(`CRTC ${out.crtc.index} of ${out.display.dev.path} has no free primary plane for the idle placeholder`);
  const fb = out.display.dev.createDumbFramebuffer(out.width, out.height);
  try {
    fillBuffer(fb, fill);
    const req = out.newRequest();
    if (out.needModeset) {
      if (!out.modeBlob) out.modeBlob = out.display.dev.createModeBlob(out.mode);
      req.set(out.crtc.id, 'MODE_ID', out.modeBlob.id);
      req.set(out.crtc.id, 'ACTIVE', 1);
      if (out.connector) req.set(out.connector.id, 'CRTC_ID', out.crtc.id);
    }
    for (const id of out.usedHwPlanes) {
      if (id === plane.id) continue;
      req.set(id, 'FB_ID', 0);
      req.set(id, 'CRTC_ID', 0);
    }
    req.placePlane(plane.id, out.crtc.id, fb.fbId, { w: out.width, h: out.height }, { x: 0, y: 0, w: out.width, h: out.height });
    req.commit(out.needModeset ? DRM_MODE_ATOMIC_ALLOW_MODESET : 0);
    out.stats.commits++;
  } catch (e) {
    fb.destroy();
    throw e;
  }
  out.needModeset = false;
  const old = out.placeholder;
  out.placeholder = { fb, planeId: plane.id };
  out.usedHwPlanes = new Set([plane.id]);
  for (const l of out.layers) {
    l.assignment = null;
    l.fbId = 0;
  }
  out.layout = null;
  old?.fb.destroy();
}

/** After a blocking commit that replaced or turned off the placeholder's plane: free its buffer. */
export function dropPlaceholder(out: Output): void {
  const p = out.placeholder;
  if (!p) return;
  out.placeholder = null;
  p.fb.destroy();
}

/** Show the output's configured placeholder; a refusal is reported (not fatal). */
export function placeIdle(out: Output): void {
  if (!out.opts.placeholder) return;
  try {
    showPlaceholder(out, out.opts.placeholder);
  } catch (e) {
    out.stats.errors++;
    out.report({ stage: 'placeholder', error: e, count: 1, fatal: false });
  }
}

/**
 * Every layer of the output is blanked (its guest not ready with the 'blank' policy): show the
 * placeholder instead of a black CRTC, once. The next assignment takes it off again.
 */
export function idleWhenBlank(out: Output): void {
  if (!out.opts.placeholder || out.placeholder || out.layers.length === 0) return;
  if (!out.layers.every((l) => l.view.blanked || !l.view.shown) || !out.layers.some((l) => l.view.blanked)) return;
  placeIdle(out);
}
