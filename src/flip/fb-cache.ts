// The guest buffers of one guest plane, keyed by the vendor driver's dmabuf_id, consumed the way
// QEMU's hw/vfio/display.c does (the consumer vendor drivers are tested with). Pure logic: what
// a buffer holds in the kernel (dma-buf fd, framebuffer, CPU mapping) is freed by a callback, so
// the rules are unit-tested on the host.
//
// Rules:
// - ONE VFIO_DEVICE_GET_GFX_DMABUF per dmabuf_id: the fd is kept in the entry, and when the
//   entry is freed its owner (dmabuf-buffers.ts) keeps the fd for the id's return. (The kernel's
//   sample driver mbochs hands out a second fd for the same dma-buf without taking a reference,
//   and drops its page references on every release: exporting an id again, even after the first
//   export was released, corrupts kernel memory.)
// - A dmabuf_id freed less than `quarantineFrames` frames ago (default 2) is not exported again
//   yet: the kernel may still hold the old dma-buf for a moment through the state of the commit
//   that took it off screen (cleaned up by the commit worker after the flip event);
//   `exportBlocked` says why and the frame is skipped (the plane keeps its last frame).
// - A dmabuf_id the driver reports again names the same buffer (QEMU relies on it too): entries
//   are not dropped when the guest resets; one whose description changed is replaced.
// - Bounded, least recently used freed first; the framebuffer on screen and the one committed
//   but not yet flipped are pinned: an entry evicted (or invalidated) while pinned is freed
//   only after the flip that replaced it completed (flipCompleted()); looked up again before
//   that, it comes back (the same fd, no new export).
// - An entry whose buffer description changed (size, format, stride, modifier) is replaced.
// - A failed export is retried with backoff: after 1, 2, 4, ... frames, at most
//   `retryAfterFrames` apart (or at once when the description changed).
import type { CopySource } from './copy.js';

/** What the vendor driver said about the buffer behind a dmabuf_id. */
export interface BufferDesc {
  width: number;
  height: number;
  format: number;
  modifier: bigint;
  stride: number;
}

export function sameDesc(a: BufferDesc, b: BufferDesc): boolean {
  return a.width === b.width && a.height === b.height && a.format === b.format && a.modifier === b.modifier && a.stride === b.stride;
}

/** Can this buffer go on a hardware plane as it is? */
export type ScanoutVerdict = 'untried' | 'ok' | 'refused';

/** One guest buffer and everything we hold of it. */
export interface FbEntry {
  dmabufId: number;
  desc: BufferDesc;
  /** bytes the vendor driver reported (plane info size) */
  size: number;
  /** the dma-buf fd of the one export of this id (-1: none) */
  fd: number;
  /** the imported framebuffer (0: not imported, or refused) */
  fbId: number;
  scanout: ScanoutVerdict;
  /** why it cannot be scanned out (import or commit refused it) */
  refused: string | null;
  /** CPU view for the copy path, made on first use */
  cpu: CopySource | null;
  /** why no copy can be made of it (reported once; retried only for a new buffer) */
  copyError: string | null;
  /** bytes at its end the CPU view cannot read (a dma-buf tail past the last whole page) */
  unreadable: number;
  /** the frame from which finding that tail elsewhere is tried again */
  tailRetry: number;
  /** frames it was used on (for statistics) */
  uses: number;
}

export function newEntry(dmabufId: number, desc: BufferDesc, size: number, fd: number): FbEntry {
  return { dmabufId, desc: { ...desc }, size, fd, fbId: 0, scanout: 'untried', refused: null, cpu: null, copyError: null, unreadable: 0, tailRetry: 0, uses: 1 };
}

interface FailedExport {
  desc: BufferDesc;
  frame: number;
  reason: string;
  count: number;
}

export interface FbCacheStats {
  hits: number;
  misses: number;
  /** entries inserted (= exports) */
  imports: number;
  evictions: number;
  failedImports: number;
}

export interface FbCacheOptions {
  /** most frames between two tries of a failed export (default 120) */
  retryAfterFrames?: number;
  /** frames a freed dmabuf_id is not exported again (default 2) */
  quarantineFrames?: number;
}

export class FbCache {
  private readonly entries = new Map<number, FbEntry>(); // insertion order = LRU order
  private readonly failed = new Map<number, FailedExport>();
  private readonly freedAt = new Map<number, number>();
  /** entries waiting for the flip that stops showing them */
  private deferred: FbEntry[] = [];
  private onScreen = 0;
  private pending = 0;
  private frame = 0;
  readonly retryAfterFrames: number;
  readonly quarantineFrames: number;
  readonly stats: FbCacheStats = { hits: 0, misses: 0, imports: 0, evictions: 0, failedImports: 0 };

  constructor(
    readonly capacity: number,
    private readonly free: (e: FbEntry) => void,
    opts: FbCacheOptions = {},
  ) {
    if (!(capacity >= 1)) throw new RangeError(`FbCache: capacity must be >= 1 (got ${capacity})`);
    this.retryAfterFrames = opts.retryAfterFrames ?? 120;
    this.quarantineFrames = opts.quarantineFrames ?? 2;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The engine's frame counter (quarantine and backoff count in frames). */
  setFrame(frame: number): void {
    this.frame = frame;
  }

  /** The entry for this id with a matching description (marks it most recently used). */
  lookup(dmabufId: number, desc: BufferDesc): FbEntry | undefined {
    let e = this.entries.get(dmabufId);
    if (!e) {
      // evicted but still pinned on screen: take it back (same fd, no second export)
      const i = this.deferred.findIndex((d) => d.dmabufId === dmabufId && sameDesc(d.desc, desc));
      if (i >= 0) {
        e = this.deferred.splice(i, 1)[0]!;
        this.entries.set(dmabufId, e);
      }
    }
    if (!e) {
      this.stats.misses++;
      return undefined;
    }
    if (!sameDesc(e.desc, desc)) {
      // same id, different buffer (the guest changed mode): drop the stale entry
      this.entries.delete(dmabufId);
      this.release(e);
      this.stats.misses++;
      return undefined;
    }
    this.entries.delete(dmabufId);
    this.entries.set(dmabufId, e);
    e.uses++;
    this.stats.hits++;
    return e;
  }

  /**
   * Why this id must not be exported now (null: go ahead): an older buffer of the same id is
   * still held, it was freed too recently, or its last export failed and the backoff runs.
   */
  exportBlocked(dmabufId: number, desc: BufferDesc): string | null {
    if (this.entries.has(dmabufId) || this.deferred.some((d) => d.dmabufId === dmabufId)) {
      return `an earlier buffer of dmabuf_id ${dmabufId} is still held (on screen); exporting it again is unsafe`;
    }
    const at = this.freedAt.get(dmabufId);
    if (at !== undefined) {
      if (this.frame - at < this.quarantineFrames) return `dmabuf_id ${dmabufId} was released ${this.frame - at} frames ago; waiting ${this.quarantineFrames} frames before exporting it again`;
      this.freedAt.delete(dmabufId);
    }
    const f = this.failed.get(dmabufId);
    if (f) {
      if (!sameDesc(f.desc, desc)) {
        this.failed.delete(dmabufId);
        return null;
      }
      const wait = Math.min(this.retryAfterFrames, 2 ** Math.min(f.count - 1, 16));
      if (this.frame - f.frame < wait) return f.reason;
    }
    return null;
  }

  /** Record a failed export; returns how many in a row failed for this id. */
  recordFailure(dmabufId: number, desc: BufferDesc, reason: string): number {
    const prev = this.failed.get(dmabufId);
    const count = (prev && sameDesc(prev.desc, desc) ? prev.count : 0) + 1;
    this.failed.set(dmabufId, { desc: { ...desc }, frame: this.frame, reason, count });
    this.stats.failedImports++;
    return count;
  }

  /** Add a freshly exported buffer; frees the least recently used unpinned entries beyond capacity. */
  insert(e: FbEntry): FbEntry {
    const old = this.entries.get(e.dmabufId);
    if (old && old !== e) {
      this.entries.delete(e.dmabufId);
      this.release(old);
    }
    this.failed.delete(e.dmabufId);
    this.freedAt.delete(e.dmabufId);
    this.entries.set(e.dmabufId, e);
    this.stats.imports++;
    this.trim();
    return e;
  }

  /** A commit showing fbId (0: plane off, or a copy) was queued. */
  committed(fbId: number): void {
    this.pending = fbId;
  }

  /** A commit showing fbId completed synchronously (blocking commit). */
  committedAndFlipped(fbId: number): void {
    this.pending = fbId;
    this.flipCompleted();
  }

  /** The flip of the last commit completed: the old fb is off screen, deferred frees happen now. */
  flipCompleted(): void {
    this.onScreen = this.pending;
    const keep: FbEntry[] = [];
    for (const e of this.deferred) {
      if (this.isPinned(e.fbId)) keep.push(e);
      else this.doFree(e);
    }
    this.deferred = keep;
    this.trim();
  }

  /** The fb currently on screen (0 when none / not ours). */
  get scanout(): number {
    return this.onScreen;
  }

  /** entries whose freeing waits for a flip */
  get deferredCount(): number {
    return this.deferred.length;
  }

  isPinned(fbId: number): boolean {
    return fbId !== 0 && (fbId === this.onScreen || fbId === this.pending);
  }

  /** Every entry held (cached and deferred). */
  held(): FbEntry[] {
    return [...this.entries.values(), ...this.deferred];
  }

  private doFree(e: FbEntry): void {
    this.freedAt.set(e.dmabufId, this.frame);
    this.free(e);
  }

  private release(e: FbEntry): void {
    if (this.isPinned(e.fbId)) {
      if (!this.deferred.includes(e)) this.deferred.push(e);
    } else {
      this.doFree(e);
    }
  }

  private trim(): void {
    if (this.entries.size <= this.capacity) return;
    // the most recently used entry is about to be committed: never evict it
    const newest = [...this.entries.keys()].pop();
    for (const [id, e] of this.entries) {
      if (this.entries.size <= this.capacity) break;
      if (id === newest || this.isPinned(e.fbId)) continue;
      this.entries.delete(id);
      this.stats.evictions++;
      this.doFree(e);
    }
  }

  /** Every framebuffer held (cached and deferred); for leak checks. */
  liveFbs(): number[] {
    return [...new Set(this.held().map((e) => e.fbId).filter((fb) => fb !== 0))];
  }

  /**
   * Free everything. Call only once no plane shows these fbs any more (after the display was
   * restored): removing an fb that is on screen would make the kernel disable its plane.
   * Returns the errors of frees that failed (the rest were still freed).
   */
  clear(): unknown[] {
    const errors: unknown[] = [];
    for (const e of this.held()) {
      try {
        this.free(e);
      } catch (err) {
        errors.push(err);
      }
    }
    this.entries.clear();
    this.deferred = [];
    this.failed.clear();
    this.freedAt.clear();
    this.onScreen = 0;
    this.pending = 0;
    return errors;
  }
}
