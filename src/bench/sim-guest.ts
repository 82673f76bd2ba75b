// GuestDriver over vgpu-sim, the project's reference mdev vendor driver: the real VFIO display
// path. The "guest" side is vgpu-sim's debugfs interface (/sys/kernel/debug/vgpu_sim/<uuid>/:
// <plane>/mode, <plane>/flip, <plane>/disable, vram, reset, fault/...); the engine reads the
// planes through the VFIO device (QUERY_GFX_PLANE, GET_GFX_DMABUF, the VRAM region).
// A small adapter of the flip engine's own: src/vgpu-sim (the TS guest driver) may replace it.
import { closeSync, existsSync, openSync, readFileSync, readdirSync, writeFileSync, writeSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { VfioDevice, discoverVgpus } from '../vfio/index.js';
import type { GuestDriver } from './guest-driver.js';

const DEBUGFS = '/sys/kernel/debug/vgpu_sim';
const PAGE = 4096;
const align = (n: number): number => Math.ceil(n / PAGE) * PAGE;

export function simAvailable(): boolean {
  return existsSync(DEBUGFS) || existsSync('/sys/module/vgpu_sim');
}

export type SimPlane = 'primary' | 'cursor' | 'overlay';
export type SimFault = 'query' | 'dmabuf';

/** Create an mdev of a vgpu_sim type through sysfs; returns its UUID. */
export function createSimMdev(type = 'vgpu_sim-small'): string {
  const bus = '/sys/class/mdev_bus';
  let parents: string[] = [];
  try {
    parents = readdirSync(bus);
  } catch {
    /* none */
  }
  for (const p of parents) {
    const create = path.join(bus, p, 'mdev_supported_types', type, 'create');
    if (existsSync(create)) {
      const uuid = randomUUID();
      writeFileSync(create, uuid);
      return uuid;
    }
  }
  throw new Error(`no mdev type ${type} under ${bus}/*/mdev_supported_types (is the vgpu_sim module loaded?)`);
}

export class SimGuestDriver implements GuestDriver {
  readonly kind = 'vgpu-sim' as const;
  readonly description: string;
  readonly vfio: VfioDevice;
  readonly dir: string;
  private primary = { w: 0, h: 0, stride: 0, offsets: [] as number[], back: 0 };
  private cursorOffset = 0;
  private cursorSize = 0;
  private cursorPos = { x: 0, y: 0 };
  private vramFd: number;

  constructor(
    readonly uuid: string,
    private readonly created: boolean,
    readonly nBuffers = 3,
  ) {
    this.dir = path.join(DEBUGFS, uuid);
    if (!existsSync(this.dir)) throw new Error(`vgpu-sim: ${this.dir} does not exist (is debugfs mounted and ${uuid} a vgpu_sim instance?)`);
    this.vfio = VfioDevice.open(uuid);
    this.vramFd = openSync(path.join(this.dir, 'vram'), 'r+');
    this.description = `vgpu-sim ${uuid} (${this.info().match(/type=(\S+)/)?.[1] ?? '?'}) via VFIO`;
  }

  info(): string {
    return readFileSync(path.join(this.dir, 'info'), 'utf8').trim();
  }

  private write(rel: string, text: string): void {
    try {
      writeFileSync(path.join(this.dir, rel), text);
    } catch (e) {
      throw new Error(`vgpu-sim guest: writing ${JSON.stringify(text)} to ${path.join(this.dir, rel)} failed: ${(e as Error).message}`, { cause: e });
    }
  }

  status(plane: SimPlane): string {
    return readFileSync(path.join(this.dir, plane, 'status'), 'utf8');
  }

  writeVram(offset: number, data: Buffer): void {
    let done = 0;
    while (done < data.length) done += writeSync(this.vramFd, data, done, data.length - done, offset + done);
  }

  /** Set the primary plane's mode (XRGB8888) with `buffers` page-aligned buffers from offset 0. */
  setPrimary(width: number, height: number, buffers = this.nBuffers): void {
    const stride = width * 4;
    const size = align(stride * height);
    this.primary = { w: width, h: height, stride, offsets: Array.from({ length: buffers }, (_, i) => i * size), back: 0 };
    this.cursorOffset = buffers * size;
    this.write('primary/mode', `fourcc=XR24 width=${width} height=${height} stride=${stride} offset=0 x=0 y=0`);
  }

  /** The primary's buffers (offsets in video memory), stride and height: for a guest flipping from another process. */
  get primaryLayout(): { offsets: number[]; stride: number; height: number } {
    return { offsets: [...this.primary.offsets], stride: this.primary.stride, height: this.primary.h };
  }

  /** Draw into the back buffer and flip to it. */
  presentPrimary(pixels: Buffer): void {
    const off = this.primary.offsets[this.primary.back]!;
    this.writeVram(off, pixels.subarray(0, this.primary.stride * this.primary.h));
    this.flipPrimary();
  }

  flipPrimary(): void {
    const off = this.primary.offsets[this.primary.back]!;
    this.write('primary/flip', String(off));
    this.primary.back = (this.primary.back + 1) % this.primary.offsets.length;
  }

  setCursor(pixels: Buffer, size: number, hotX: number, hotY: number): void {
    this.cursorSize = size;
    this.writeVram(this.cursorOffset, pixels.subarray(0, size * size * 4));
    this.write('cursor/mode', `fourcc=AR24 width=${size} height=${size} stride=${size * 4} offset=${this.cursorOffset} x=${this.cursorPos.x} y=${this.cursorPos.y} xhot=${hotX} yhot=${hotY}`);
  }

  moveCursor(x: number, y: number): void {
    this.cursorPos = { x, y };
    if (this.cursorSize) this.write('cursor/mode', `x=${x} y=${y}`);
  }

  setHotspot(xhot: number, yhot: number): void {
    this.write('cursor/mode', `xhot=${xhot} yhot=${yhot}`);
  }

  disable(plane?: SimPlane): void {
    for (const p of plane ? [plane] : (['primary', 'cursor'] as const)) this.write(`${p}/disable`, '1');
  }

  reset(): void {
    this.write('reset', '1');
  }

  /** fault/query or fault/dmabuf: the next `count` calls fail with `errno` ('ENOMEM', 'EIO', ...). */
  injectFault(which: SimFault, errno: string, count: number): void {
    this.write(`fault/${which}`, `${errno} ${count}`);
  }

  /** a new dmabuf_id for every query (defeats caches) */
  setNewIds(on: boolean): void {
    this.write('fault/new_ids', on ? 'Y' : 'N');
  }

  setNotReady(plane: SimPlane, on: boolean): void {
    this.write(`${plane}/not_ready`, on ? 'Y' : 'N');
  }

  /** Returns once vgpu-sim's in-kernel flips (DRM_FB, made by a worker) of every change so far are made. */
  kflipWait(plane: SimPlane = 'primary'): void {
    this.write(`${plane}/kflip_wait`, '1');
  }

  flipCount(): number {
    return Number(readFileSync(path.join(this.dir, 'flip_count'), 'utf8'));
  }

  close(): void {
    try {
      this.disable();
    } catch {
      /* instance may be gone */
    }
    closeSync(this.vramFd);
    this.vfio.close();
    if (this.created) {
      try {
        writeFileSync(`/sys/bus/mdev/devices/${this.uuid}/remove`, '1');
      } catch {
        /* removed already */
      }
    }
  }
}

/** The vgpu_sim instance the rig created ($VGPU_FLIP_MDEVS), another one found in sysfs, or a new one. */
export async function openSimGuest(): Promise<SimGuestDriver> {
  const fromEnv = (process.env['VGPU_FLIP_MDEVS'] ?? '').split(/\s+/).filter(Boolean);
  for (const u of fromEnv) if (existsSync(path.join(DEBUGFS, u))) return new SimGuestDriver(u, false);
  const found = discoverVgpus().vgpus.find((v) => (v.type ?? '').startsWith('vgpu_sim') && v.holders.length === 0);
  if (found) return new SimGuestDriver(found.uuid, false);
  return new SimGuestDriver(createSimMdev(), true);
}
