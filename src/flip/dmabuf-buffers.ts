// The DMABUF source of one guest plane: a frame's dmabuf_id -> something a hardware plane can
// show. Consumed like QEMU's hw/vfio/display.c: one VFIO_DEVICE_GET_GFX_DMABUF per dmabuf_id,
// the fd kept with the buffer (see fb-cache.ts for the rules), PRIME import + ADDFB2 once.
//
// Zero copy or copy is decided per buffer, not per plane: a buffer the driver cannot scan out
// (import refused, or TEST_ONLY passed and the real commit failed: vkms maps every framebuffer
// and needs the exporter's vmap, which mbochs lacks) is copied from a CPU mapping of its own fd
// into a dumb framebuffer; a new buffer (the guest changed mode, or reset) is tried zero copy
// again. When no copy is possible either (the dma-buf cannot even be mapped), that is reported
// once with what the user can do, and the buffer is not tried again (no loop of failing calls).
import type { NativeAddon } from '../binding/types.js';
import { DRM_CAP_ADDFB2_MODIFIERS, fourccToString } from '../binding/constants.js';
import { addFb2Modifier } from '../kms/fb-modifier.js';
import type { DrmDevice } from '../kms/index.js';
import { CopyTargets, dmabufView, type CopySource } from './copy.js';
import type { DamageRect } from './damage.js';
import { locateInRegion, withTail } from './dmabuf-tail.js';
import type { VideoMemoryLocator } from '../vfio/video-memory.js';
import { FbCache, newEntry, sameDesc, type BufferDesc, type FbEntry } from './fb-cache.js';

/** What a frame of this plane shows. */
export interface Obtained {
  fbId: number;
  /** a fresh import this frame */
  imported: boolean;
  /** bytes copied this frame (copy fallback) */
  bytes: number;
  /** the guest buffer behind it */
  entry: FbEntry;
  /** true: a copy of the buffer (dumb framebuffer), false: the buffer itself */
  copied: boolean;
  /** copied: the guest's pixels equal what is on screen (nothing to copy or commit) */
  unchanged?: boolean;
  /** copied: the rows that changed (FB_DAMAGE_CLIPS); absent: all */
  damage?: DamageRect[];
}

export interface DmabufHost {
  readonly api: NativeAddon;
  readonly dev: DrmDevice;
  /** VFIO_DEVICE_GET_GFX_DMABUF (a fd the buffers now own) */
  exportDmabuf(id: number): number;
  /** an error to report (the caller counts and emits it) */
  problem(stage: string, error: unknown, count: number): void;
  /** the plane switched between zero copy and copying */
  fallback(reason: string | null): void;
  /** the vGPU's video memory as a mapped region (BAR0), where a dma-buf tail may be read; null: none */
  videoMemory(): CopySource | null;
  /** the vendor driver's way to tell where a plane is in that region (src/vfio/video-memory.ts); null: none known */
  locator(): VideoMemoryLocator | null;
}

/**
 * A CPU source reading the guest's framebuffer from the vGPU's video memory where the vendor
 * driver says it is now (looked up on every read: a guest page flip moves it).
 */
function locatedSource(loc: VideoMemoryLocator, vram: CopySource, desc: BufferDesc): CopySource | { why: string } {
  const shape = { width: desc.width, height: desc.height, stride: desc.stride, format: desc.format };
  const first = loc.locate(shape);
  if ('why' in first) return first;
  let at = first.offset;
  const len = desc.stride * desc.height;
  return {
    kind: 'region',
    read<T>(fn: (pixels: Buffer) => T): T {
      const now = loc.locate(shape);
      if (!('why' in now)) at = now.offset;
      return vram.read((r) => fn(r.subarray(at, at + len)));
    },
    close(): void {
      /* the region belongs to the engine */
    },
  };
}

/** The counters this source keeps (a part of the engine's per-plane statistics). */
export interface DmabufCounters {
  exports: number;
  imports: number;
  cacheHits: number;
  copies: number;
  bytesCopied: number;
  errors: number;
}

const planeDesc = (d: BufferDesc): string => `${d.width}x${d.height} ${fourccToString(d.format)} stride ${d.stride}`;

export class DmabufBuffers {
  readonly cache: FbCache;
  private readonly copies: CopyTargets;
  /** dma-buf fds of buffers freed from the cache, by dmabuf_id (bounded, oldest closed first) */
  private readonly parked = new Map<number, { fd: number; desc: BufferDesc; size: number }>();
  private closing = false;
  /** why the plane is copying now (null: zero copy) */
  private copyingBecause: string | null = null;

  constructor(
    private readonly host: DmabufHost,
    readonly label: string,
    capacity: number,
    /** the plane's statistics (updated here) */
    private readonly counters: DmabufCounters,
  ) {
    this.cache = new FbCache(capacity, (e) => this.free(e));
    this.copies = new CopyTargets(host.dev);
  }

  /** Whether the buffer on screen is a copy (then every frame is copied again: the guest may draw into it). */
  get copying(): string | null {
    return this.copyingBecause;
  }

  /** The framebuffer for this guest buffer now (null: skip this frame, keep the last one). */
  obtain(id: number, desc: BufferDesc, size: number, frame: number): Obtained | null {
    this.cache.setFrame(frame);
    const e = this.bufferFor(id, desc, size);
    if (!e) return null;
    if (e.scanout !== 'refused') {
      if (e.fbId) return { fbId: e.fbId, imported: false, bytes: 0, entry: e, copied: false };
      try {
        e.fbId = this.importFd(e.fd, desc);
        this.counters.imports++;
        return { fbId: e.fbId, imported: true, bytes: 0, entry: e, copied: false };
      } catch (err) {
        this.refuse(e, `the DRM device cannot import it (${(err as Error).message})`);
      }
    }
    return this.copyOf(e, frame);
  }

  /** The buffer cannot be scanned out (the commit failed with it): copy it from now on. */
  refuse(e: FbEntry, reason: string): void {
    if (e.scanout === 'refused') return;
    e.scanout = 'refused';
    e.refused = reason;
    // the imported fb is useless now; it is not on screen (the commit with it failed)
    if (e.fbId && !this.cache.isPinned(e.fbId)) {
      this.removeFb(e.fbId);
      e.fbId = 0;
    }
  }

  /** A commit with this frame went through: the buffer can be scanned out (or the copy is shown). */
  presented(o: Obtained): void {
    if (!o.copied) {
      o.entry.scanout = 'ok';
      if (this.copyingBecause !== null) {
        this.copyingBecause = null;
        this.host.fallback(null);
      }
    } else {
      this.copies.presented(o.fbId);
      const why = `${o.entry.refused ?? 'the buffer cannot be scanned out'}: copying dmabuf_id ${o.entry.dmabufId} (${planeDesc(o.entry.desc)}) instead of scanning it out`;
      if (this.copyingBecause === null) {
        this.copyingBecause = why;
        this.host.fallback(why);
      } else this.copyingBecause = why;
    }
  }

  /** The flip of the last commit completed. */
  flipCompleted(): void {
    this.cache.flipCompleted();
    this.copies.flipCompleted(this.cache.scanout);
  }

  /**
   * The pixels of framebuffer fbId as the plane shows them (for a composed screenshot): one of
   * our copies, or the guest buffer itself through a read-only mapping of its fd.
   */
  pixelsOf(fbId: number): { pixels: Buffer; stride: number; format: number } | { unreadable: string } {
    const copied = this.copies.pixelsOf(fbId);
    if (copied) return copied;
    const e = this.cache.held().find((x) => x.fbId === fbId);
    if (!e) return { unreadable: `framebuffer ${fbId} is not one of this plane's buffers` };
    try {
      e.cpu ??= dmabufView(this.host.api, e.fd, e.size, e.desc);
      const pixels = e.cpu.read((px) => Buffer.from(px));
      return { pixels, stride: e.desc.stride, format: e.desc.format };
    } catch (err) {
      return { unreadable: `dmabuf_id ${e.dmabufId} cannot be mapped (${(err as Error).message.split(' [')[0]})` };
    }
  }

  /** Every fb held (cache, copy targets); for leak checks. */
  liveFbs(): number[] {
    return [...this.cache.liveFbs(), ...this.copies.fbIds()];
  }

  /** Open dma-buf fds held (one per buffer). */
  heldFds(): number[] {
    return [...this.cache.held().map((e) => e.fd).filter((fd) => fd >= 0), ...[...this.parked.values()].map((x) => x.fd)];
  }

  /** Free everything, fds included (after the display was restored); returns the errors of frees that failed. */
  clear(): unknown[] {
    this.closing = true;
    const errors = this.cache.clear();
    for (const x of this.parked.values()) {
      try {
        this.host.api.close(x.fd);
      } catch (err) {
        errors.push(err);
      }
    }
    this.parked.clear();
    this.copies.destroy();
    this.closing = false;
    return errors;
  }

  private bufferFor(id: number, desc: BufferDesc, size: number): FbEntry | null {
    const hit = this.cache.lookup(id, desc);
    if (hit) {
      this.counters.cacheHits++;
      return hit;
    }
    // a buffer freed from the cache keeps its dma-buf fd here: its id comes back without a
    // second export (mbochs corrupts kernel memory when an id is exported again, even after
    // the first export was released)
    const kept = this.parked.get(id);
    if (kept) {
      this.parked.delete(id);
      if (sameDesc(kept.desc, desc)) return this.cache.insert(newEntry(id, desc, size, kept.fd));
      this.host.api.close(kept.fd);
    }
    if (this.cache.exportBlocked(id, desc) !== null) return null;
    let fd: number;
    try {
      fd = this.host.exportDmabuf(id);
    } catch (err) {
      this.counters.errors++;
      const n = this.cache.recordFailure(id, desc, (err as Error).message);
      // once, then rarely: the backoff in the cache spaces the retries
      if (n === 1 || n % 10 === 0) this.host.problem(`VFIO_DEVICE_GET_GFX_DMABUF of dmabuf_id ${id} (${planeDesc(desc)}); retried with backoff`, err, n);
      return null;
    }
    this.counters.exports++;
    return this.cache.insert(newEntry(id, desc, size, fd));
  }

  private capModifiers: boolean | null = null;

  /** PRIME import + ADDFB2; the GEM handle is closed (the framebuffer keeps the buffer). */
  private importFd(dmabufFd: number, desc: BufferDesc): number {
    const { api, dev } = this.host;
    if (this.capModifiers === null) {
      try {
        this.capModifiers = api.drmGetCap(dev.fd, DRM_CAP_ADDFB2_MODIFIERS) !== 0n;
      } catch {
        this.capModifiers = false;
      }
    }
    const mods = addFb2Modifier(desc.modifier, this.capModifiers, dev.path);
    const handle = api.drmPrimeFdToHandle(dev.fd, dmabufFd);
    try {
      return api.drmAddFb2(dev.fd, { width: desc.width, height: desc.height, format: desc.format, handles: [handle], pitches: [desc.stride], offsets: [0], ...mods });
    } finally {
      api.drmGemClose(dev.fd, handle);
    }
  }

  private copyOf(e: FbEntry, frame: number): Obtained | null {
    if (e.copyError !== null) return null;
    try {
      if (!e.cpu) {
        try {
          const v = dmabufView(this.host.api, e.fd, e.size, e.desc);
          e.cpu = v;
          e.unreadable = v.unreadable;
        } catch (mapErr) {
          // not mappable at all (mbochs: read-only export, its mmap needs VM_SHARED): the same
          // pages through the vGPU's video memory, where the vendor driver says the plane is
          const loc = this.host.locator();
          const vram = loc ? this.host.videoMemory() : null;
          const r = loc && vram ? locatedSource(loc, vram, e.desc) : { why: loc ? 'its video memory region cannot be mapped' : 'no known way to find the plane in the vGPU\'s video memory for this vendor driver' };
          if ('why' in r) throw new Error(`${(mapErr as Error).message}; reading it from video memory instead: ${r.why}`, { cause: mapErr });
          e.cpu = r;
          e.unreadable = 0;
          e.refused = `${e.refused ?? 'it cannot be scanned out'}; its dma-buf cannot be mapped, so it is read from the vGPU's video memory (${loc!.name})`;
        }
      }
    } catch (err) {
      e.copyError = (err as Error).message;
      this.counters.errors++;
      this.host.problem(
        `copy fallback for dmabuf_id ${e.dmabufId} (${planeDesc(e.desc)})`,
        new Error(
          `${this.label}: the buffer cannot be scanned out (${e.refused}) and cannot be mapped for copying either (${e.copyError}); ` +
            'the plane keeps its last frame until the guest uses another buffer. Try another CRTC or device (--device), or --path region if the vGPU offers it.',
          { cause: err },
        ),
        1,
      );
      return null;
    }
    if (e.unreadable > 0 && frame >= e.tailRetry) this.readTail(e, frame);
    // compared with what is on screen first (as REGION): an unchanged frame is neither copied
    // nor committed, a changed one copies only its changed rows; a buffer whose tail cannot be
    // read is copied whole (the comparison would stop at the last whole row it has)
    const r = this.copies.copy(e.cpu, e.desc, e.unreadable === 0);
    if (r.unchanged) return { fbId: r.fbId, imported: false, bytes: 0, entry: e, copied: true, unchanged: true };
    this.counters.copies++;
    this.counters.bytesCopied += r.bytes;
    return { fbId: r.fbId, imported: false, bytes: r.bytes, entry: e, copied: true, ...(r.damage ? { damage: r.damage } : {}) };
  }

  private tailReported = false;

  /** Find the unmappable tail of the buffer in the vGPU's video memory (see dmabuf-tail.ts). */
  private readTail(e: FbEntry, frame: number): void {
    const view = e.cpu as CopySource & { readonly length: number };
    let where: number | 'ambiguous' | 'absent' | 'no-region' = 'no-region';
    let region: CopySource | null = null;
    try {
      region = this.host.videoMemory();
      if (region) where = region.read((r) => view.read((p) => locateInRegion(r, p)));
    } catch {
      where = 'no-region';
    }
    if (typeof where === 'number' && region) {
      e.cpu = withTail(view, region, where, view.length + e.unreadable);
      e.unreadable = 0;
      return;
    }
    // the frame is uniform where it is mapped: try again later, when the guest drew something
    e.tailRetry = where === 'ambiguous' ? frame + 60 : Number.MAX_SAFE_INTEGER;
    if (this.tailReported) return;
    this.tailReported = true;
    const why =
      where === 'no-region'
        ? 'the vGPU offers no mapped video memory region to read it from'
        : where === 'ambiguous'
          ? 'its pages match several places of the video memory (a uniform frame); looking again every 60 frames'
          : 'its pages are not in the video memory region';
    this.counters.errors++;
    this.host.problem(
      `copy fallback for dmabuf_id ${e.dmabufId} (${planeDesc(e.desc)})`,
      new Error(`${this.label}: the last ${e.unreadable} bytes of the buffer lie past its last whole page, which the kernel does not map (the driver's dma-buf size ${e.size} is not page aligned), and ${why}: they stay black in the copy`),
      1,
    );
  }

  private removeFb(fbId: number): void {
    if (this.host.dev.closed) return;
    try {
      this.host.api.drmRmFb(this.host.dev.fd, fbId);
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw err;
    }
  }

  /** Free what we hold of one buffer: CPU mapping, framebuffer, and last the dma-buf fd. */
  /**
   * Free what we hold of one buffer: CPU mapping and framebuffer; the dma-buf fd is parked, not
   * closed (see `parked`), unless the session ends.
   */
  private free(e: FbEntry): void {
    try {
      e.cpu?.close();
    } finally {
      e.cpu = null;
      try {
        if (e.fbId) this.removeFb(e.fbId);
      } finally {
        e.fbId = 0;
        if (e.fd >= 0) this.park(e.dmabufId, e.fd, e.desc, e.size);
        e.fd = -1;
      }
    }
  }

  private park(id: number, fd: number, desc: BufferDesc, size: number): void {
    if (this.closing) {
      this.host.api.close(fd);
      return;
    }
    const old = this.parked.get(id);
    if (old && old.fd !== fd) this.host.api.close(old.fd);
    this.parked.delete(id);
    this.parked.set(id, { fd, desc: { ...desc }, size });
    // bounded: a driver that makes a new id per query must not pin fds without end; the
    // oldest parked buffer is the least likely to come back
    while (this.parked.size > PARKED_MAX) {
      const [oldId, o] = this.parked.entries().next().value!;
      this.parked.delete(oldId);
      this.host.api.close(o.fd);
    }
  }
}

/** dma-buf fds of buffers no longer cached that are kept open per plane, at most */
export const PARKED_MAX = 64;
