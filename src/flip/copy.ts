// The copy path (last resort): the guest's pixels are read through a CPU mapping (the VFIO
// region of a REGION plane, or an mmap of the dma-buf when a driver cannot scan it out) and
// copied into double-buffered dumb framebuffers. Every byte copied is counted.
import type { Mapping, NativeAddon } from '../binding/types.js';
import { DMA_BUF_SYNC_END, DMA_BUF_SYNC_READ, DMA_BUF_SYNC_START, fourccToString } from '../binding/constants.js';
import type { DrmDevice, DumbFramebuffer } from '../kms/index.js';
import type { BufferDesc } from './fb-cache.js';
import { RowDamage, type DamageRect } from './damage.js';

export function bytesPerPixel(format: number): number {
  switch (fourccToString(format)) {
    case 'XR24': case 'AR24': case 'XB24': case 'AB24': case 'RX24': case 'BX24': case 'RA24': case 'BA24':
    case 'XR30': case 'XB30': case 'AR30': case 'AB30':
      return 4;
    case 'RG16': case 'BG16': case 'XR15': case 'AR15':
      return 2;
    case 'RG24': case 'BG24':
      return 3;
    case 'XR4H': case 'AR4H': case 'XR48': case 'AR48':
      return 8;
    default:
      throw new Error(`copy path: format ${fourccToString(format)} is not a single-plane RGB format`);
  }
}

/**
 * Copy `rows` rows of `rowBytes` from src (stride srcStride) to dst (stride dstStride). Returns
 * bytes copied. A source shorter than the frame (a dma-buf tail that cannot be mapped) ends the
 * copy; with `partial` the part of the last row that is there is copied too.
 */
export function copyRows(src: Buffer, srcStride: number, dst: Buffer, dstStride: number, rowBytes: number, rows: number, partial = false): number {
  if (srcStride === dstStride && srcStride === rowBytes) {
    const n = Math.min(rowBytes * rows, src.length, dst.length);
    src.copy(dst, 0, 0, n);
    return n;
  }
  let n = 0;
  for (let y = 0; y < rows; y++) {
    const s = y * srcStride;
    const d = y * dstStride;
    if (d + rowBytes > dst.length) break;
    if (s + rowBytes > src.length) {
      if (partial && s < src.length) n += src.copy(dst, d, s, src.length);
      break;
    }
    src.copy(dst, d, s, s + rowBytes);
    n += rowBytes;
  }
  return n;
}

/** A CPU view of guest pixels. */
export interface CopySource {
  readonly kind: 'region' | 'dmabuf';
  /** run fn with the pixels (sync brackets for dma-bufs) */
  read<T>(fn: (pixels: Buffer) => T): T;
  close(): void;
  /** a region: whether it is mapped (else every read is a pread of the whole length) */
  readonly mapped?: boolean;
}

/** The mapped framebuffer of a REGION plane: region `index` of the VFIO device, from offset 0. */
export function regionSource(api: NativeAddon, deviceFd: number, regionIndex: number, size: number): CopySource {
  const info = api.vfioRegionInfo(deviceFd, regionIndex);
  const length = Math.min(Number(info.size), Math.max(size, 1));
  let map: Mapping | null = null;
  try {
    map = api.mmap(deviceFd, info.offset, length, false);
  } catch (e) {
    // not mmap-able: pread the region each time
    if (e instanceof Error) e.message += ` [mapping VFIO region ${regionIndex} for the copy path; falling back to pread]`;
  }
  return {
    kind: 'region',
    get mapped(): boolean {
      return map !== null;
    },
    read<T>(fn: (pixels: Buffer) => T): T {
      if (map) return fn(Buffer.from(map.buffer, 0, map.length));
      return fn(api.pread(deviceFd, info.offset, length));
    },
    close(): void {
      map?.unmap();
      map = null;
    },
  };
}

const PAGE = 4096;

/**
 * How much of a dma-buf of `size` bytes can be mapped: an exporter's size need not be page
 * aligned (mbochs: stride * height), and dma_buf_mmap refuses a mapping that reaches past the
 * last whole page (vm_pgoff + pages > size >> PAGE_SHIFT: EINVAL). So first the whole size
 * (page aligned exporters), then the whole pages only. Pure; for the host tests.
 */
export function mappableLengths(size: number): number[] {
  const whole = Math.floor(size / PAGE) * PAGE;
  return whole === size || whole === 0 ? [size] : [size, whole];
}

/**
 * A CPU view of a dma-buf for the copy path. Does not own the fd (the buffer cache does).
 * Read only (exporters may export read-only); maps what the kernel allows (see
 * mappableLengths): a tail beyond the last whole page that cannot be mapped is reported in
 * `unreadable` and left as it is in the copy (the copy target keeps its previous contents there).
 */
export function dmabufView(api: NativeAddon, dmabufFd: number, size: number, desc: BufferDesc): CopySource & { readonly length: number; readonly unreadable: number } {
  if (desc.modifier !== 0n && desc.modifier !== 0x00ffffffffffffffn) {
    throw new Error(`the buffer has modifier 0x${desc.modifier.toString(16)} (tiled): a linear CPU copy of it would be garbage`);
  }
  const want = Math.max(size, desc.stride * desc.height);
  let map: Mapping | null = null;
  let first: unknown = null;
  for (const len of mappableLengths(want)) {
    try {
      map = api.mmap(dmabufFd, 0n, len, false);
      break;
    } catch (e) {
      first ??= e;
    }
  }
  if (!map) {
    if (first instanceof Error) first.message += ` [mapping dma-buf fd ${dmabufFd} (${want} bytes) read-only for the copy path]`;
    throw first;
  }
  const m = map;
  let open = true;
  return {
    kind: 'dmabuf',
    length: m.length,
    unreadable: want - m.length,
    read<T>(fn: (pixels: Buffer) => T): T {
      api.dmabufSync(dmabufFd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ);
      try {
        return fn(Buffer.from(m.buffer, 0, m.length));
      } finally {
        api.dmabufSync(dmabufFd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ);
      }
    },
    close(): void {
      if (open) m.unmap();
      open = false;
    },
  };
}

/** One copy: the framebuffer to show, what it cost, and (with damage) what changed. */
export interface CopyResult {
  fbId: number;
  bytes: number;
  /** the frame equals the one on screen: nothing was copied, nothing to commit */
  unchanged?: boolean;
  /** rows written */
  rows?: number;
  /** the rows that changed since the frame on screen or in this buffer; absent: all */
  damage?: DamageRect[];
}

/** Two dumb framebuffers of the guest's shape; copy() fills the back one and returns its fb id. */
export class CopyTarget {
  private readonly fbs: DumbFramebuffer[] = [];
  private readonly maps: Buffer[] = [];
  /** which buffers hold a copied frame (damage: a fresh buffer is written whole) */
  private readonly written: boolean[] = [false, false];
  /** index of the buffer on screen */
  private front = 0;
  bytesCopied = 0;
  copies = 0;

  constructor(dev: DrmDevice, readonly desc: BufferDesc) {
    try {
      for (let i = 0; i < 2; i++) {
        const fb = dev.createDumbFramebuffer(desc.width, desc.height, desc.format);
        this.fbs.push(fb);
        const m = fb.map();
        this.maps.push(Buffer.from(m.buffer, 0, m.length));
      }
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  matches(desc: BufferDesc): boolean {
    return desc.width === this.desc.width && desc.height === this.desc.height && desc.format === this.desc.format;
  }

  /**
   * Copy a frame into the buffer that is not on screen; returns its fb id and the bytes copied.
   * Until presented() names it, the next copy goes to the same buffer again (a failed or
   * retried commit never makes us write into the scanout buffer).
   * `damage`: compare with what is there first. A frame equal, row by row, to the one on screen
   * is not copied at all (`unchanged`: nothing to commit); otherwise only the rows that differ
   * from the target buffer's are written (it holds the frame before the one on screen), and
   * `damage` names the rows that changed (damage.ts; absent: the whole frame).
   */
  copy(src: CopySource, srcDesc: BufferDesc, damage = false): CopyResult {
    const back = this.front === 0 ? 1 : 0;
    const fb = this.fbs[back]!;
    const dst = this.maps[back]!;
    const rowBytes = srcDesc.width * bytesPerPixel(srcDesc.format);
    if (!damage || this.copies === 0) {
      const bytes = src.read((pixels) => copyRows(pixels, srcDesc.stride, dst, fb.pitch, rowBytes, srcDesc.height, true));
      this.bytesCopied += bytes;
      this.copies++;
      if (damage) this.written[back] = true;
      return { fbId: fb.fbId, bytes };
    }
    const front = this.maps[this.front]!;
    const pitch = fb.pitch;
    const frontKnown = this.written[this.front] === true;
    const fresh = this.written[back] !== true;
    const r = src.read((pixels) => {
      const rows = Math.min(srcDesc.height, Math.floor(pixels.length / srcDesc.stride), Math.floor(dst.length / pitch));
      const changed = new RowDamage();
      // the rows the screen already shows: all of them means nothing to copy or commit
      const onScreen = new Uint8Array(rows);
      // an idle guest's frame equals the screen: one comparison of the whole frame says so
      // (padding past rowBytes may differ: then row by row decides)
      const whole = rows * pitch;
      if (frontKnown && srcDesc.stride === pitch && pixels.length >= whole && front.length >= whole && pixels.compare(front, 0, whole, 0, whole) === 0) {
        return { bytes: 0, rows: 0, changed };
      }
      let same = frontKnown;
      for (let y = 0; frontKnown && y < rows; y++) {
        const s0 = y * srcDesc.stride;
        const d0 = y * pitch;
        onScreen[y] = pixels.compare(front, d0, d0 + rowBytes, s0, s0 + rowBytes) === 0 ? 1 : 0;
        if (!onScreen[y]) same = false;
      }
      if (same) return { bytes: 0, rows: 0, changed };
      let n = 0;
      let copied = 0;
      for (let y = 0; y < rows; y++) {
        const s0 = y * srcDesc.stride;
        const d0 = y * pitch;
        const inBack = !fresh && pixels.compare(dst, d0, d0 + rowBytes, s0, s0 + rowBytes) === 0;
        if (!inBack) {
          pixels.copy(dst, d0, s0, s0 + rowBytes);
          n += rowBytes;
          copied++;
        }
        if (!onScreen[y] || !inBack) changed.add(y);
      }
      return { bytes: n, rows: copied, changed };
    });
    if (r.changed.empty) return { fbId: this.fbs[this.front]!.fbId, bytes: 0, unchanged: true, rows: 0 };
    this.written[back] = true;
    this.bytesCopied += r.bytes;
    this.copies++;
    return { fbId: fb.fbId, bytes: r.bytes, rows: r.rows, damage: r.changed.rects(srcDesc.width) };
  }

  /** The pixels of framebuffer fbId if it is one of ours (a copy of them). */
  pixelsOf(fbId: number): { pixels: Buffer; stride: number; format: number } | null {
    const i = this.fbs.findIndex((f) => f.fbId === fbId);
    if (i < 0) return null;
    return { pixels: Buffer.from(this.maps[i]!), stride: this.fbs[i]!.pitch, format: this.desc.format };
  }

  /** A commit showing fbId went through: it is the front buffer now. */
  presented(fbId: number): void {
    const i = this.fbs.findIndex((f) => f.fbId === fbId);
    if (i >= 0) this.front = i;
  }

  fbIds(): number[] {
    return this.fbs.map((f) => f.fbId);
  }

  destroy(): void {
    for (const fb of this.fbs) {
      try {
        fb.destroy();
      } catch {
        /* the device close releases it */
      }
    }
    this.fbs.length = 0;
    this.maps.length = 0;
  }
}

/**
 * The copy targets of one guest plane: the current one (of the guest's shape) and older ones
 * that may still be on screen after a guest mode change; those are destroyed only after the
 * flip that stops showing them (destroying a framebuffer on screen turns the plane off).
 */
export class CopyTargets {
  private current: CopyTarget | null = null;
  private retired: CopyTarget[] = [];

  constructor(private readonly dev: DrmDevice) {}

  /** Copy a frame into a buffer of the right shape that is not on screen. */
  copy(src: CopySource, desc: BufferDesc, damage = false): CopyResult {
    if (!this.current || !this.current.matches(desc)) {
      if (this.current) this.retired.push(this.current);
      this.current = null;
      this.current = new CopyTarget(this.dev, desc);
    }
    return this.current.copy(src, desc, damage);
  }

  presented(fbId: number): void {
    this.current?.presented(fbId);
  }

  /** After a flip: retired targets no longer on screen (scanout = the fb shown now) go. */
  flipCompleted(scanout: number): void {
    const keep: CopyTarget[] = [];
    for (const t of this.retired) {
      if (t.fbIds().includes(scanout)) keep.push(t);
      else t.destroy();
    }
    this.retired = keep;
  }

  fbIds(): number[] {
    return [...(this.current?.fbIds() ?? []), ...this.retired.flatMap((t) => t.fbIds())];
  }

  /** The pixels of one of our copy framebuffers (e.g. the one on screen), or null. */
  pixelsOf(fbId: number): { pixels: Buffer; stride: number; format: number } | null {
    for (const t of [...(this.current ? [this.current] : []), ...this.retired]) {
      const r = t.pixelsOf(fbId);
      if (r) return r;
    }
    return null;
  }

  destroy(): void {
    for (const t of [...this.retired, ...(this.current ? [this.current] : [])]) t.destroy();
    this.retired = [];
    this.current = null;
  }
}
