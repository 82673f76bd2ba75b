// Putting guests on outputs: a guest's planes become layers of an output, each with the source
// its guest's display path calls for.
import type { Guest } from './guest.js';
import { Layer, type LayerRequest } from './layer.js';
import type { Output } from './output.js';
import { createSource } from './sources/index.js';
import { newPlaneStats } from './stats.js';

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
