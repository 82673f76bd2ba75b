// DMABUF layers: one VFIO_DEVICE_GET_GFX_DMABUF per dmabuf_id, PRIME import + ADDFB2 once, a
// per-buffer copy when the device cannot scan a buffer out (src/flip/dmabuf-buffers.ts).
import type { GfxPlaneInfo } from '../../binding/types.js';
import { DmabufBuffers, type DmabufHost } from '../../flip/dmabuf-buffers.js';
import type { BufferDesc } from '../../flip/fb-cache.js';
import type { PlaneStats } from '../stats.js';
import type { LayerSource, Pixels, Presentable } from './types.js';

export class DmabufSource implements LayerSource {
  readonly path = 'dmabuf' as const;
  readonly bufs: DmabufBuffers;

  constructor(host: DmabufHost, label: string, cacheSize: number, stats: PlaneStats) {
    this.bufs = new DmabufBuffers(host, label, cacheSize, stats);
  }

  get copying(): string | null {
    return this.bufs.copying;
  }

  obtain(id: number, desc: BufferDesc, info: GfxPlaneInfo, frame: number): Presentable | null {
    const got = this.bufs.obtain(id, desc, info.size, frame);
    if (!got) return null;
    return { fbId: got.fbId, imported: got.imported, bytes: got.bytes, got, ...(got.unchanged ? { unchanged: true } : {}), ...(got.damage ? { damage: got.damage } : {}) };
  }

  committing(fbId: number): void {
    this.bufs.cache.committed(fbId);
  }

  commitFailed(fbId: number): void {
    this.bufs.cache.committed(fbId);
  }

  presented(p: Presentable | null): void {
    if (p?.got) this.bufs.presented(p.got);
  }

  flipCompleted(): void {
    this.bufs.flipCompleted();
  }

  assigned(p: Presentable): void {
    this.bufs.cache.committedAndFlipped(p.fbId);
    this.bufs.flipCompleted();
    if (p.got) this.bufs.presented(p.got);
  }

  refuse(p: Presentable, reason: string): boolean {
    if (!p.got || p.got.copied || p.got.entry.scanout !== 'untried') return false;
    this.bufs.refuse(p.got.entry, reason);
    return true;
  }

  liveFbs(): number[] {
    return this.bufs.liveFbs();
  }

  pixelsOf(fbId: number): Pixels {
    return this.bufs.pixelsOf(fbId);
  }

  release(): unknown[] {
    return this.bufs.clear();
  }
}
