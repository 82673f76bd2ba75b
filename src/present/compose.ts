// Putting guests on outputs: a guest's planes become layers of an output, each with the source
// its guest's display path calls for; a guest that went away leaving.
import type { Guest } from './guest.js';
import { Layer, type LayerRequest } from './layer.js';
import type { Output } from './output.js';
import { createSource } from './sources/index.js';
import { newPlaneStats } from './stats.js';
import { placeIdle } from './placeholder.js';

export interface AddGuestOptions {
  /** framebuffers kept per guest plane (DMABUF, default 8) */
  cacheSize?: number;
  /** cursor x/y from the vendor driver are the plane's top-left (default) or the hotspot's position */
  cursorOrigin?: 'top-left' | 'hotspot';
}

/** Add a guest's planes to an output as layers (planned on its next frame when it is running). */
export function addGuest(out: Output, guest: Guest, planes: LayerRequest[], o: AddGuestOptions = {}): Layer[] {
  if (planes.length === 0) throw new Error(`${guest.label}: no guest plane to show (use --plane primary and/or --plane cursor)`);
  return planes.map((req) => {
    const stats = newPlaneStats();
    const name = req.name ?? req.kind;
    const src = createSource(out, guest, req.kind, stats, { ...(o.cacheSize !== undefined ? { cacheSize: o.cacheSize } : {}), name });
    const layer = new Layer(req, guest, src, stats, out.reportAfter);
    if (o.cursorOrigin) layer.cursorOrigin = o.cursorOrigin;
    return out.add(layer);
  });
}

/** Take a guest's layers off: their hardware planes off (one blocking commit), buffers released. */
export function removeGuest(out: Output, g: Guest): void {
  const gone = out.layers.filter((l) => l.guest === g);
  const req = out.newRequest();
  for (const l of gone) {
    if (!l.assignment) continue;
    req.set(l.assignment.planeId, 'FB_ID', 0);
    req.set(l.assignment.planeId, 'CRTC_ID', 0);
    out.usedHwPlanes.delete(l.assignment.planeId);
  }
  try {
    if (req.size) req.commit(0);
    if (req.size) out.stats.commits++;
  } catch (e) {
    out.stats.errors++;
    out.report({ stage: 'commit (removing a guest)', error: e, count: 1, fatal: false });
  }
  for (const l of gone) {
    for (const err of l.source.release()) out.report({ layer: l, stage: 'cleanup', error: err, count: 1, fatal: false });
    out.layers.splice(out.layers.indexOf(l), 1);
    delete out.stats.planes[l.name];
  }
  g.close();
}

/**
 * A guest that went away (its gone() check says why) leaves the output. When it was the only
 * guest and the output has no placeholder, the output stops and restores the display (true);
 * otherwise its layers come off and, when none is left, the placeholder shows.
 */
export function dropGoneGuest(out: Output, nowUs: number): boolean {
  for (const g of out.guests) {
    const why = g.gone(nowUs);
    if (!why) continue;
    out.stats.errors++;
    const only = out.guests.length === 1 && !out.opts.placeholder;
    out.report({ stage: 'guest', error: new Error(`${why}: ${only ? 'stopping and restoring the display' : 'its layers are taken off the screen'}`), count: 1, fatal: only });
    if (only) {
      void out.stop();
      return true;
    }
    removeGuest(out, g);
    const empty = out.layers.length === 0;
    if (empty) placeIdle(out);
    out.emit('guest-left', { guest: g.label, why, empty });
    return false;
  }
  return false;
}
