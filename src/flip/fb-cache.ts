// Framebuffer cache of one guest plane, keyed by the vendor driver's dmabuf_id. Pure logic: the
// actual framebuffer removal is a callback, so the eviction rules are unit-tested on the host.
//
// Rules:
// - bounded, least recently used evicted first;
// - the framebuffer on screen and the one committed but not yet flipped are pinned: an entry
//   evicted (or invalidated) while pinned is removed only after the flip that replaced it
//   completed (flipCompleted());
// - an entry whose buffer description changed (size, format, stride, modifier) is replaced;
// - a dmabuf_id whose import failed is remembered and not retried until `retryAfterFrames`
//   frames have passed (or the description changed).

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

export interface FbEntry {
  dmabufId: number;
  fbId: number;
  desc: BufferDesc;
  /** frames it was used on (for statistics) */
  uses: number;
}

interface FailedImport {
  desc: BufferDesc;
  frame: number;
  reason: string;
  count: number;
}

export interface FbCacheStats {
  hits: number;
  misses: number;
  imports: number;
  evictions: number;
  failedImports: number;
}

export class FbCache {
  private readonly entries = new Map<number, FbEntry>(); // insertion order = LRU order
  private readonly failed = new Map<number, FailedImport>();
  /** fbs waiting for the flip that stops showing them */
  private deferred: number[] = [];
  private onScreen = 0;
  private pending = 0;
  readonly stats: FbCacheStats = { hits: 0, misses: 0, imports: 0, evictions: 0, failedImports: 0 };

  constructor(
    readonly capacity: number,
    private readonly removeFb: (fbId: number) => void,
    readonly retryAfterFrames = 120,
  ) {
    if (!(capacity >= 1)) throw new RangeError(`FbCache: capacity must be >= 1 (got ${capacity})`);
  }

  get size(): number {
    return this.entries.size;
  }

  /** The cached entry for this id with a matching description (marks it most recently used). */
  lookup(dmabufId: number, desc: BufferDesc): FbEntry | undefined {
    const e = this.entries.get(dmabufId);
    if (!e) {
      this.stats.misses++;
      return undefined;
    }
    if (!sameDesc(e.desc, desc)) {
      // same id, different buffer (the guest changed mode): drop the stale fb
      this.entries.delete(dmabufId);
      this.release(e.fbId);
      this.stats.misses++;
      return undefined;
    }
    this.entries.delete(dmabufId);
    this.entries.set(dmabufId, e);
    e.uses++;
    this.stats.hits++;
    return e;
  }

  /** Is a failed import of this id still to be skipped at this frame? Returns the reason then. */
  failedReason(dmabufId: number, desc: BufferDesc, frame: number): string | null {
    const f = this.failed.get(dmabufId);
    if (!f) return null;
    if (!sameDesc(f.desc, desc) || frame - f.frame >= this.retryAfterFrames) {
      this.failed.delete(dmabufId);
      return null;
    }
    return f.reason;
  }

  recordFailure(dmabufId: number, desc: BufferDesc, frame: number, reason: string): number {
    const prev = this.failed.get(dmabufId);
    const count = (prev?.count ?? 0) + 1;
    this.failed.set(dmabufId, { desc: { ...desc }, frame, reason, count });
    this.stats.failedImports++;
    return count;
  }

  /** Add a freshly imported framebuffer; evicts the least recently used unpinned entries beyond capacity. */
  insert(dmabufId: number, fbId: number, desc: BufferDesc): FbEntry {
    const old = this.entries.get(dmabufId);
    if (old) {
      this.entries.delete(dmabufId);
      if (old.fbId !== fbId) this.release(old.fbId);
    }
    this.failed.delete(dmabufId);
    const e: FbEntry = { dmabufId, fbId, desc: { ...desc }, uses: 1 };
    this.entries.set(dmabufId, e);
    this.stats.imports++;
    this.trim();
    return e;
  }

  /** A commit showing fbId (0: plane off) was queued. */
  committed(fbId: number): void {
    this.pending = fbId;
  }

  /** A commit showing fbId completed synchronously (blocking commit). */
  committedAndFlipped(fbId: number): void {
    this.pending = fbId;
    this.flipCompleted();
  }

  /** The flip of the last commit completed: the old fb is off screen, deferred removals happen now. */
  flipCompleted(): void {
    this.onScreen = this.pending;
    const keep: number[] = [];
    for (const fb of this.deferred) {
      if (fb === this.onScreen || fb === this.pending) keep.push(fb);
      else this.removeFb(fb);
    }
    this.deferred = keep;
    this.trim();
  }

  /** The fb currently on screen (0 when none / not ours). */
  get scanout(): number {
    return this.onScreen;
  }

  /** fbs whose removal waits for a flip */
  get deferredCount(): number {
    return this.deferred.length;
  }

  isPinned(fbId: number): boolean {
    return fbId !== 0 && (fbId === this.onScreen || fbId === this.pending);
  }

  private release(fbId: number): void {
    if (this.isPinned(fbId)) {
      if (!this.deferred.includes(fbId)) this.deferred.push(fbId);
    } else {
      this.removeFb(fbId);
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
      this.removeFb(e.fbId);
    }
  }

  /**
   * Forget every cached buffer (the guest was reset: its dmabuf_ids may now name other
   * buffers). fbs on screen or pending are removed after the flip that replaces them.
   */
  invalidateAll(): void {
    for (const e of this.entries.values()) this.release(e.fbId);
    this.entries.clear();
    this.failed.clear();
  }

  /** Every fb (cached and deferred); for leak checks. */
  liveFbs(): number[] {
    return [...new Set([...[...this.entries.values()].map((e) => e.fbId), ...this.deferred])];
  }

  /**
   * Remove everything. Call only once no plane shows these fbs any more (after the display was
   * restored): removing an fb that is on screen would make the kernel disable its plane.
   * Returns the errors of removals that failed (the rest were still removed).
   */
  clear(): unknown[] {
    const errors: unknown[] = [];
    for (const fb of this.liveFbs()) {
      try {
        this.removeFb(fb);
      } catch (e) {
        errors.push(e);
      }
    }
    this.entries.clear();
    this.deferred = [];
    this.failed.clear();
    this.onScreen = 0;
    this.pending = 0;
    return errors;
  }
}
