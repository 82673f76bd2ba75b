// The copy path (last resort): the guest's pixels are read through a CPU mapping (the VFIO
// region of a REGION plane, or an mmap of the dma-buf when a driver cannot scan it out) and
// copied into double-buffered dumb framebuffers. Every byte copied is counted.
import type { Mapping, NativeAddon } from '../binding/types.js';
import { DMA_BUF_SYNC_END, DMA_BUF_SYNC_READ, DMA_BUF_SYNC_START, fourccToString } from '../binding/constants.js';
import type { DrmDevice, DumbFramebuffer } from '../kms/index.js';
import type { BufferDesc } from './fb-cache.js';

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

/** Copy `rows` rows of `rowBytes` from src (stride srcStride) to dst (stride dstStride). Returns bytes copied. */
export function copyRows(src: Buffer, srcStride: number, dst: Buffer, dstStride: number, rowBytes: number, rows: number): number {
  if (srcStride === dstStride && srcStride === rowBytes) {
    const n = Math.min(rowBytes * rows, src.length, dst.length);
    src.copy(dst, 0, 0, n);
    return n;
  }
  let n = 0;
  for (let y = 0; y < rows; y++) {
    const s = y * srcStride;
    const d = y * dstStride;
    if (s + rowBytes > src.length || d + rowBytes > dst.length) break;
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

/** A CPU mapping of a dma-buf (owns the fd). */
export function dmabufSource(api: NativeAddon, dmabufFd: number, size: number): CopySource {
  let map: Mapping;
  try {
    map = api.mmap(dmabufFd, 0n, size, false);
  } catch (e) {
    api.close(dmabufFd);
    throw e;
  }
  let fd = dmabufFd;
  return {
    kind: 'dmabuf',
    read<T>(fn: (pixels: Buffer) => T): T {
      api.dmabufSync(fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ);
      try {
        return fn(Buffer.from(map.buffer, 0, map.length));
      } finally {
        api.dmabufSync(fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ);
      }
    },
    close(): void {
      map.unmap();
      if (fd >= 0) api.close(fd);
      fd = -1;
    },
  };
}

/** Two dumb framebuffers of the guest's shape; copy() fills the back one and returns its fb id. */
export class CopyTarget {
  private readonly fbs: DumbFramebuffer[] = [];
  private readonly maps: Buffer[] = [];
  private back = 0;
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

  /** Copy a frame into the back buffer; returns its fb id and the bytes copied. */
  copy(src: CopySource, srcDesc: BufferDesc): { fbId: number; bytes: number } {
    const fb = this.fbs[this.back]!;
    const dst = this.maps[this.back]!;
    const rowBytes = srcDesc.width * bytesPerPixel(srcDesc.format);
    const bytes = src.read((pixels) => copyRows(pixels, srcDesc.stride, dst, fb.pitch, rowBytes, srcDesc.height));
    this.back ^= 1;
    this.bytesCopied += bytes;
    this.copies++;
    return { fbId: fb.fbId, bytes };
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
