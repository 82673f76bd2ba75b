// The source for a layer, by its guest's display path.
import type { GuestPlaneKind } from '../../flip/planner.js';
import type { Guest } from '../guest.js';
import type { Output } from '../output.js';
import type { PlaneStats } from '../stats.js';
import { RegionCopySource } from './copy.js';
import { DmabufSource } from './dmabuf.js';
import { DrmFbSource } from './drm-fb.js';
import type { LayerSource } from './types.js';

export interface SourceOptions {
  /** framebuffers kept per guest plane (DMABUF, default 8) */
  cacheSize?: number;
  /** the layer's name in events (default: the kind) */
  name?: string;
}

export function createSource(out: Output, guest: Guest, kind: GuestPlaneKind, stats: PlaneStats, o: SourceOptions = {}): LayerSource {
  const { api, dev } = out.display;
  const who = o.name && o.name !== kind ? { plane: kind, layer: o.name } : { plane: kind };
  const report = (stage: string, error: unknown, count: number): void => {
    out.stats.errors++;
    const layer = out.layers.find((l) => l.name === (o.name ?? kind));
    out.report({ stage, error, count, fatal: false, ...(layer ? { layer } : {}) });
  };
  switch (guest.path) {
    case 'drm_fb':
      return new DrmFbSource(api, dev, guest.label, { problem: (stage, error) => report(stage, error, 1) });
    case 'region':
      return new RegionCopySource(dev, {
        openRegion: (i, size) => guest.source.openRegion(i, size),
        problem: (stage, error, count, rep) => (rep ? report(stage, error, count) : void out.stats.errors++),
      }, stats, out.reportAfter);
    case 'dmabuf':
      return new DmabufSource({
        api,
        dev,
        exportDmabuf: (id) => guest.source.getDmabuf(id),
        problem: (stage, error, count) => report(stage, error, count),
        videoMemory: () => guest.videoMemory(),
        locator: () => guest.locator(),
        fallback: (reason) =>
          out.emit('fallback', reason === null ? { ...who, from: 'copy', to: 'dmabuf', reason: 'zero copy again: the guest buffer can be scanned out' } : { ...who, from: 'dmabuf', to: 'copy', reason }),
      }, `${guest.label} ${kind} plane`, o.cacheSize ?? 8, stats);
  }
}

