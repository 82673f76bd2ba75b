// "The guest" for the demo, the benchmark and tests: something that draws frames and flips,
// and a GuestSource the engine reads them from. Two kinds:
//  - vgpu-sim (the real VFIO mdev path, see sim-guest.ts), used when the module is loaded;
//  - loopback: dumb buffers on a second fd of the DRM device, exported with PRIME; the
//    engine's DMABUF and copy paths run against the real kernel without a vGPU.
import { native } from '../binding/index.js';
import type { GfxPlaneInfo, Mapping } from '../binding/types.js';
import { DRM_CLOEXEC, DRM_FORMAT_ARGB8888, DRM_FORMAT_XRGB8888, DRM_RDWR, VFIO_GFX_NO_HOTSPOT } from '../binding/constants.js';
import type { CopySource } from '../flip/copy.js';
import type { GuestSource } from '../flip/engine.js';
import type { GuestPlaneKind } from '../flip/planner.js';
import type { VfioDevice } from '../vfio/index.js';

export interface GuestDriver {
  readonly kind: 'vgpu-sim' | 'loopback';
  readonly description: string;
  /** what to give FlipEngine: a VFIO device, or a GuestSource factory */
  readonly vfio?: VfioDevice;
  source?(): GuestSource;
  /**
   * enable the primary plane at this size (XRGB8888) with `buffers` buffers to flip between
   * (1: the guest draws in place, as a REGION consumer needs with vgpu-sim)
   */
  setPrimary(width: number, height: number, buffers?: number): void;
  /** draw into the back buffer of the primary (packed XRGB8888 rows, width*4 stride) and flip to it */
  presentPrimary(pixels: Buffer): void;
  /** flip to the next back buffer without drawing (benchmarks) */
  flipPrimary(): void;
  /** the cursor image (ARGB8888 premultiplied, size x size) and hotspot */
  setCursor(pixels: Buffer, size: number, hotX: number, hotY: number): void;
  moveCursor(x: number, y: number): void;
  /** turn the guest display off (queries answer size 0) */
  disable(): void;
  close(): void;
}

interface LoopBuffer {
  id: number;
  handle: number;
  pitch: number;
  size: number;
  map: Mapping;
  width: number;
  height: number;
  format: number;
}

export class LoopbackGuest implements GuestDriver {
  readonly kind = 'loopback' as const;
  readonly description: string;
  private readonly fd: number;
  private readonly all = new Map<number, LoopBuffer>();
  private primaryBufs: LoopBuffer[] = [];
  private back = 0;
  private cursorBuf: LoopBuffer | null = null;
  private nextId = 1;
  current: Partial<Record<GuestPlaneKind, { id: number; x: number; y: number; xHot: number; yHot: number } | null>> = {};
  /** dma-bufs exported so far */
  exports = 0;
  /** make the next N queries fail with ENOMEM (fault injection) */
  failNextQueries = 0;

  constructor(card: string, readonly nBuffers = 3) {
    this.fd = native.drmOpen(card);
    this.description = `loopback guest (PRIME-exported dumb buffers on ${card})`;
  }

  createBuffer(width: number, height: number, format = DRM_FORMAT_XRGB8888): LoopBuffer {
    const d = native.drmCreateDumb(this.fd, width, height, 32);
    let map: Mapping;
    try {
      map = native.drmMapDumb(this.fd, d.handle, d.size);
    } catch (e) {
      native.drmDestroyDumb(this.fd, d.handle);
      throw e;
    }
    const b: LoopBuffer = { id: this.nextId++, handle: d.handle, pitch: d.pitch, size: d.size, map, width, height, format };
    this.all.set(b.id, b);
    return b;
  }

  private write(b: LoopBuffer, pixels: Buffer, rowBytes: number): void {
    const v = Buffer.from(b.map.buffer, 0, b.map.length);
    for (let y = 0; y < b.height; y++) pixels.copy(v, y * b.pitch, y * rowBytes, y * rowBytes + b.width * 4);
  }

  fill(b: LoopBuffer, px: (x: number, y: number) => number): void {
    const v = Buffer.from(b.map.buffer, 0, b.map.length);
    for (let y = 0; y < b.height; y++) for (let x = 0; x < b.width; x++) v.writeUInt32LE(px(x, y) >>> 0, y * b.pitch + x * 4);
  }

  show(kind: GuestPlaneKind, b: LoopBuffer | null, x = 0, y = 0, xHot = VFIO_GFX_NO_HOTSPOT, yHot = VFIO_GFX_NO_HOTSPOT): void {
    this.current[kind] = b ? { id: b.id, x, y, xHot, yHot } : null;
  }

  setPrimary(width: number, height: number, buffers = this.nBuffers): void {
    this.primaryBufs = Array.from({ length: buffers }, () => this.createBuffer(width, height));
    this.back = 0;
  }

  presentPrimary(pixels: Buffer): void {
    const b = this.primaryBufs[this.back]!;
    this.write(b, pixels, b.width * 4);
    this.flipPrimary();
  }

  flipPrimary(): void {
    const b = this.primaryBufs[this.back]!;
    this.show('primary', b);
    this.back = (this.back + 1) % this.primaryBufs.length;
  }

  setCursor(pixels: Buffer, size: number, hotX: number, hotY: number): void {
    if (!this.cursorBuf || this.cursorBuf.width !== size) this.cursorBuf = this.createBuffer(size, size, DRM_FORMAT_ARGB8888);
    this.write(this.cursorBuf, pixels, size * 4);
    const c = this.current.cursor;
    this.show('cursor', this.cursorBuf, c?.x ?? 0, c?.y ?? 0, hotX, hotY);
  }

  moveCursor(x: number, y: number): void {
    const c = this.current.cursor;
    if (c) this.current.cursor = { ...c, x, y };
  }

  disable(): void {
    this.current = {};
  }

  source(): GuestSource {
    return {
      label: 'loopback-guest',
      query: (kind: GuestPlaneKind): GfxPlaneInfo => {
        if (this.failNextQueries > 0) {
          this.failNextQueries--;
          throw Object.assign(new Error('VFIO_DEVICE_QUERY_GFX_PLANE on loopback-guest: ENOMEM (Cannot allocate memory)'), {
            op: 'VFIO_DEVICE_QUERY_GFX_PLANE', path: 'loopback-guest', errno: 12, code: 'ENOMEM',
          });
        }
        const c = this.current[kind];
        const b = c ? this.all.get(c.id) : undefined;
        if (!c || !b) {
          return { flags: 0, drmPlaneType: 0, drmFormat: 0, drmFormatMod: 0n, width: 0, height: 0, stride: 0, size: 0, xPos: 0, yPos: 0, xHot: 0, yHot: 0, id: 0 };
        }
        return {
          flags: 2, drmPlaneType: kind === 'cursor' ? 2 : 1, drmFormat: b.format, drmFormatMod: 0n, width: b.width, height: b.height,
          stride: b.pitch, size: b.pitch * b.height, xPos: c.x, yPos: c.y, xHot: c.xHot, yHot: c.yHot, id: b.id,
        };
      },
      getDmabuf: (id: number): number => {
        const b = this.all.get(id);
        if (!b) {
          throw Object.assign(new Error(`VFIO_DEVICE_GET_GFX_DMABUF on loopback-guest: ENOENT (no dmabuf_id ${id})`), {
            op: 'VFIO_DEVICE_GET_GFX_DMABUF', path: 'loopback-guest', errno: 2, code: 'ENOENT',
          });
        }
        this.exports++;
        return native.drmPrimeHandleToFd(this.fd, b.handle, DRM_CLOEXEC | DRM_RDWR);
      },
      // REGION: the buffer's CPU mapping stands in for the vGPU's video memory region
      openRegion: (regionIndex: number): CopySource => {
        const b = this.all.get(regionIndex);
        if (!b) throw new Error(`loopback-guest: no region ${regionIndex}`);
        return { kind: 'region', read: (fn) => fn(Buffer.from(b.map.buffer, 0, b.map.length)), close: () => undefined };
      },
    };
  }

  close(): void {
    for (const b of this.all.values()) {
      try {
        b.map.unmap();
        native.drmDestroyDumb(this.fd, b.handle);
      } catch {
        /* released with the fd */
      }
    }
    this.all.clear();
    native.close(this.fd);
  }
}
