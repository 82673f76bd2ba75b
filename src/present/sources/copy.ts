// REGION layers: the guest's framebuffer is read from a VFIO region every frame and compared
// with what is on screen: an unchanged frame is neither copied nor committed; a changed one is
// copied (only the rows that differ) into a dumb framebuffer that is not on screen
// (src/flip/copy.ts: CopyTargets).
import type { GfxPlaneInfo } from '../../binding/types.js';
import type { DrmDevice } from '../../kms/index.js';
import { CopyTargets, type CopySource } from '../../flip/copy.js';
import { FailureStreak } from '../../flip/decide.js';
import type { BufferDesc } from '../../flip/fb-cache.js';
import type { PlaneStats } from '../stats.js';
import type { LayerSource, Pixels, Presentable } from './types.js';

export interface CopyHost {
  openRegion(regionIndex: number, size: number): CopySource;
  /** a copy failed (count it); `report`: also tell the user (every few failures in a row) */
  problem(stage: string, error: unknown, count: number, report: boolean): void;
}

export class RegionCopySource implements LayerSource {
  readonly path = 'copy' as const;
  readonly copying = null;
  private readonly copies: CopyTargets;
  private source: CopySource | null = null;
  private sourceKey = '';
  private readonly streak: FailureStreak;

  constructor(
    dev: DrmDevice,
    private readonly host: CopyHost,
    private readonly stats: PlaneStats,
    reportAfter: number,
  ) {
    this.copies = new CopyTargets(dev);
    this.streak = new FailureStreak(reportAfter);
  }

  obtain(id: number, desc: BufferDesc, info: GfxPlaneInfo): Presentable | null {
    try {
      const key = `${id}:${desc.width}x${desc.height}:${desc.stride}:${info.size}`;
      if (this.sourceKey !== key) {
        this.closeSource();
        this.source = this.host.openRegion(id, info.size || desc.stride * desc.height);
        this.sourceKey = key;
      }
      const r = this.copies.copy(this.source!, desc, true);
      this.streak.ok();
      if (r.unchanged) return { fbId: r.fbId, imported: false, bytes: 0, unchanged: true };
      this.stats.copies++;
      this.stats.bytesCopied += r.bytes;
      return { fbId: r.fbId, imported: false, bytes: r.bytes, ...(r.damage ? { damage: r.damage } : {}) };
    } catch (e) {
      this.stats.errors++;
      this.closeSource();
      const n = this.streak.current + 1;
      this.host.problem('copy', e, n, this.streak.fail());
      return null;
    }
  }

  committing(): void {}

  commitFailed(): void {}

  presented(_p: Presentable | null, fbId: number): void {
    this.copies.presented(fbId);
  }

  flipCompleted(fbId: number): void {
    this.copies.flipCompleted(fbId);
  }

  assigned(p: Presentable): void {
    this.copies.presented(p.fbId);
    this.copies.flipCompleted(p.fbId);
  }

  refuse(): boolean {
    return false;
  }

  liveFbs(): number[] {
    return this.copies.fbIds();
  }

  pixelsOf(fbId: number): Pixels {
    return this.copies.pixelsOf(fbId) ?? { unreadable: `copy framebuffer ${fbId} not found` };
  }

  private closeSource(): void {
    try {
      this.source?.close();
    } catch {
      /* already gone */
    }
    this.source = null;
    this.sourceKey = '';
  }

  release(): unknown[] {
    this.copies.destroy();
    this.closeSource();
    return [];
  }
}
