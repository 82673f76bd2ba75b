// DrmDevice: an open DRM card node with client caps set, snapshots, atomic requests, property
// blobs, framebuffers (dma-buf import, dumb buffers) and event dispatch (page flip / vblank).
import { native } from '../binding/index.js';
import type { DrmEvent, DrmVersion, Mapping, ModeInfo } from '../binding/types.js';
import {
  DRM_CLIENT_CAP_ATOMIC,
  DRM_CLIENT_CAP_UNIVERSAL_PLANES,
  DRM_CLIENT_CAP_WRITEBACK_CONNECTORS,
  DRM_FORMAT_MOD_INVALID,
  DRM_FORMAT_XRGB8888,
  fourccToString,
} from '../binding/constants.js';
import { hasCode, isKernelError } from '../binding/errors.js';
import { AtomicRequest, PropertyIndex } from './atomic.js';
import { DrmEventQueue } from './drm-events.js';
import { packModeInfo } from './mode.js';
import { readSnapshot } from './snapshot.js';
import type { ClientCaps, DmabufImportParams, KmsSnapshot } from './types.js';

export interface DrmOpenOptions {
  /** enable DRM_CLIENT_CAP_WRITEBACK_CONNECTORS (lists Writeback-N connectors); default false */
  writeback?: boolean;
  /** throw when the ATOMIC client cap cannot be set (default true) */
  requireAtomic?: boolean;
}

export type { DrmDeviceEvents } from './drm-events.js';

/** A property blob we created; destroy() is idempotent. The device destroys leftovers on close(). */
export interface PropertyBlob {
  readonly id: number;
  destroy(): void;
}

/** A dumb buffer with a framebuffer on it. destroy() removes the fb, then the buffer. */
export interface DumbFramebuffer {
  readonly handle: number;
  readonly fbId: number;
  readonly width: number;
  readonly height: number;
  readonly format: number;
  readonly pitch: number;
  readonly size: number;
  /** mmap the buffer (caller unmaps; destroy() unmaps mappings made here) */
  map(): Mapping;
  destroy(): void;
}

function bppOf(format: number): number {
  switch (fourccToString(format)) {
    case 'XR24': case 'AR24': case 'XB24': case 'AB24': case 'RX24': case 'BX24': case 'RA24': case 'BA24':
    case 'XR30': case 'XB30': case 'AR30': case 'AB30':
      return 32;
    case 'RG16': case 'BG16': case 'XR15': case 'AR15':
      return 16;
    case 'RG24': case 'BG24':
      return 24;
    case 'XR4H': case 'AR4H':
      return 64;
    default:
      throw new Error(`dumb buffer: no bpp known for format ${fourccToString(format)} (single-plane RGB formats only)`);
  }
}

export class DrmDevice {
  private fdValue: number;
  private index: PropertyIndex | null = null;
  private lastSnapshot: KmsSnapshot | null = null;
  private readonly blobs = new Set<number>();
  private readonly fbs = new Set<number>();
  private readonly dumbs = new Set<DumbFramebuffer>();
  private readonly queue: DrmEventQueue;

  private constructor(
    readonly path: string,
    fd: number,
    readonly clientCaps: ClientCaps,
    readonly version: DrmVersion,
  ) {
    this.fdValue = fd;
    this.queue = new DrmEventQueue(path, () => this.fdValue);
  }

  /**
   * Open a card node and enable universal planes + atomic (and writeback connectors if asked).
   * Errors: ENOENT/EACCES from open; ENOTTY ("not a DRM device") from the version ioctl; a
   * device without atomic modesetting (render node, old driver) when requireAtomic.
   */
  static open(path: string, opts: DrmOpenOptions = {}): DrmDevice {
    return DrmDevice.fromFd(native.drmOpen(path), path, opts);
  }

  /**
   * The same on a DRM fd opened elsewhere (a DRM lease fd from a Wayland compositor); the device
   * owns the fd from now on (closed by close(), and here when it fails). `path` names it in
   * messages. A lessee (opts.lessee) is DRM master of its leased objects from the start and
   * cannot SET_MASTER (the kernel refuses a lessee without CAP_SYS_ADMIN): setMaster() checks.
   */
  static fromFd(fd: number, path: string, opts: DrmOpenOptions & { lessee?: boolean } = {}): DrmDevice {
    try {
      const caps: ClientCaps = { universalPlanes: false, atomic: false, writebackConnectors: false };
      const trySet = (cap: number): boolean => {
        try {
          native.drmSetClientCap(fd, cap, 1);
          return true;
        } catch (e) {
          if (hasCode(e, 'EINVAL', 'EOPNOTSUPP', 'ENOTSUP', 'EACCES')) return false;
          throw e;
        }
      };
      caps.universalPlanes = trySet(DRM_CLIENT_CAP_UNIVERSAL_PLANES);
      caps.atomic = trySet(DRM_CLIENT_CAP_ATOMIC);
      if (opts.writeback) caps.writebackConnectors = caps.atomic && trySet(DRM_CLIENT_CAP_WRITEBACK_CONNECTORS);
      const version = native.drmGetVersion(fd);
      if (!caps.atomic && opts.requireAtomic !== false) {
        throw new Error(
          `${path} (driver ${version.name}) does not support atomic modesetting (DRM_CLIENT_CAP_ATOMIC refused): ` +
            'use a KMS card node (/dev/dri/cardN, not a render node) of a driver with atomic support',
        );
      }
      const dev = new DrmDevice(path, fd, caps, version);
      dev.lessee = opts.lessee ?? false;
      // errors name the device, not how the fd arrived ("descriptor received on socket ...")
      if (dev.lessee) native.setFdLabel(fd, `${path} (DRM lease)`);
      return dev;
    } catch (e) {
      native.close(fd);
      throw e;
    }
  }

  /** a DRM lease fd (see fromFd) */
  lessee = false;

  get fd(): number {
    if (this.fdValue < 0) throw new Error(`${this.path}: device is closed`);
    return this.fdValue;
  }

  get closed(): boolean {
    return this.fdValue < 0;
  }

  /** Read the whole topology now (also refreshes the property index used by atomic()). */
  snapshot(): KmsSnapshot {
    const s = readSnapshot(this.fd, this.path, this.clientCaps);
    this.lastSnapshot = s;
    this.index = new PropertyIndex(s);
    return s;
  }

  /** The last snapshot taken (takes one if none yet). */
  currentSnapshot(): KmsSnapshot {
    return this.lastSnapshot ?? this.snapshot();
  }

  /** A new atomic request; property names resolve through the last snapshot (ids are stable). */
  atomic(): AtomicRequest {
    if (!this.clientCaps.atomic) throw new Error(`${this.path}: atomic client cap is not enabled`);
    if (!this.index) this.snapshot();
    return new AtomicRequest(this.fd, this.index!);
  }

  // ---- blobs -------------------------------------------------------------------------------

  createBlob(data: Buffer): PropertyBlob {
    const id = native.drmCreatePropertyBlob(this.fd, data);
    this.blobs.add(id);
    return {
      id,
      destroy: () => this.destroyBlob(id),
    };
  }

  /** A MODE_ID blob for this mode. */
  createModeBlob(mode: ModeInfo): PropertyBlob {
    return this.createBlob(packModeInfo(mode));
  }

  destroyBlob(id: number): void {
    if (!this.blobs.delete(id)) return;
    if (this.fdValue < 0) return;
    native.drmDestroyPropertyBlob(this.fdValue, id);
  }

  // ---- framebuffers --------------------------------------------------------------------------

  /**
   * Import a dma-buf and make a framebuffer of it (PRIME fd->handle, ADDFB2 with the modifier
   * when given and not INVALID). The GEM handle is closed before returning, on success and on
   * failure: the framebuffer keeps the buffer alive. Caller owns the fb (rmFb) and the dma-buf fd.
   * Note: PRIME handles are per file and deduplicated, so do not keep your own handle of the same
   * buffer on this device while calling this.
   */
  importDmabuf(dmabufFd: number, p: DmabufImportParams): number {
    const fd = this.fd;
    const handle = native.drmPrimeFdToHandle(fd, dmabufFd);
    let fbId = 0;
    try {
      const modifier = p.modifier;
      fbId = native.drmAddFb2(fd, {
        width: p.width,
        height: p.height,
        format: p.format,
        handles: [handle],
        pitches: [p.stride],
        offsets: [p.offset ?? 0],
        ...(modifier !== undefined && modifier !== DRM_FORMAT_MOD_INVALID ? { modifiers: [modifier] } : {}),
      });
    } catch (e) {
      if (e instanceof Error) {
        e.message += ` [importing dma-buf fd ${dmabufFd}: ${p.width}x${p.height} ${fourccToString(p.format)} stride ${p.stride}` +
          `${p.modifier !== undefined ? ` modifier 0x${p.modifier.toString(16)}` : ''}]`;
      }
      throw e;
    } finally {
      try {
        native.drmGemClose(fd, handle);
      } catch (closeErr) {
        // only report when the import itself succeeded (otherwise the first error matters more)
        if (fbId !== 0) {
          try { native.drmRmFb(fd, fbId); } catch { /* ignore */ }
          throw closeErr;
        }
      }
    }
    this.fbs.add(fbId);
    return fbId;
  }

  /** ADDFB2 on handles the caller owns (e.g. a dumb buffer). */
  addFb2(args: Parameters<typeof native.drmAddFb2>[1]): number {
    const id = native.drmAddFb2(this.fd, args);
    this.fbs.add(id);
    return id;
  }

  /** Remove a framebuffer (a plane still showing it is disabled by the kernel). Idempotent for our fbs. */
  rmFb(fbId: number): void {
    if (fbId === 0) return;
    const ours = this.fbs.delete(fbId);
    try {
      native.drmRmFb(this.fd, fbId);
    } catch (e) {
      if (ours && hasCode(e, 'ENOENT')) return;
      throw e;
    }
  }

  /** Framebuffers created through this device and not removed yet (leak checks). */
  liveFramebuffers(): number[] {
    return [...this.fbs];
  }

  liveBlobs(): number[] {
    return [...this.blobs];
  }

  /** Dumb buffer + framebuffer (single-plane RGB formats, default XRGB8888). */
  createDumbFramebuffer(width: number, height: number, format: number = DRM_FORMAT_XRGB8888): DumbFramebuffer {
    const fd = this.fd;
    const bpp = bppOf(format);
    const dumb = native.drmCreateDumb(fd, width, height, bpp);
    let fbId: number;
    try {
      fbId = native.drmAddFb2(fd, { width, height, format, handles: [dumb.handle], pitches: [dumb.pitch], offsets: [0] });
    } catch (e) {
      try { native.drmDestroyDumb(fd, dumb.handle); } catch { /* keep the first error */ }
      throw e;
    }
    this.fbs.add(fbId);
    const mappings: Mapping[] = [];
    let destroyed = false;
    const dev = this;
    const fb: DumbFramebuffer = {
      handle: dumb.handle,
      fbId,
      width,
      height,
      format,
      pitch: dumb.pitch,
      size: dumb.size,
      map(): Mapping {
        if (destroyed) throw new Error(`dumb buffer ${dumb.handle} on ${dev.path} is destroyed`);
        const m = native.drmMapDumb(dev.fd, dumb.handle, dumb.size);
        mappings.push(m);
        return m;
      },
      destroy(): void {
        if (destroyed) return;
        destroyed = true;
        dev.dumbs.delete(fb);
        for (const m of mappings) m.unmap();
        if (dev.fdValue < 0) return; // the kernel freed everything with the file
        let first: unknown;
        try { dev.rmFb(fbId); } catch (e) { first = e; }
        try { native.drmDestroyDumb(dev.fdValue, dumb.handle); } catch (e) { first ??= e; }
        if (first) throw first;
      },
    };
    this.dumbs.add(fb);
    return fb;
  }

  // ---- events (drm-events.ts) -------------------------------------------------------------------

  get events(): DrmEventQueue['events'] {
    return this.queue.events;
  }

  /** A fresh user-data value for correlating a commit with its event. */
  allocUserData(): bigint {
    return this.queue.allocUserData();
  }

  /** Listen to DRM events; see DrmEventQueue.onEvent. Returns an unsubscribe function. */
  onEvent(type: 'event' | 'flip' | 'vblank' | 'sequence', fn: (e: DrmEvent) => void): () => void {
    return this.queue.onEvent(type, fn);
  }

  /** Commit with PAGE_FLIP_EVENT and wait for this commit's event; see DrmEventQueue.commitAndWait. */
  commitAndWait(req: AtomicRequest, flags = 0, timeoutMs = 1000): Promise<DrmEvent> {
    return this.queue.commitAndWait(req, flags, timeoutMs);
  }

  /** Wait for an event with this user data (set up before committing). */
  waitForUserData(userData: bigint, timeoutMs = 1000): Promise<DrmEvent> {
    return this.queue.waitForUserData(userData, timeoutMs);
  }

  /** Read and dispatch pending events now (non-blocking); returns them. */
  dispatchEvents(): DrmEvent[] {
    return this.queue.dispatchEvents();
  }

  // ---- master ----------------------------------------------------------------------------------

  setMaster(): void {
    if (this.lessee) {
      if (!native.drmIsMaster(this.fd)) throw new Error(`${this.path}: the lease is not usable now (the compositor does not hold DRM master: switched away, or the lease was revoked)`);
      return;
    }
    native.drmSetMaster(this.fd);
  }

  dropMaster(): void {
    native.drmDropMaster(this.fd);
  }

  /**
   * Close the device: rejects pending waits, stops the poller, destroys our dumb buffers, fbs and
   * blobs (the kernel would too, but doing it explicitly keeps error reporting in one place).
   * Idempotent. Errors while cleaning up are ignored (the file close releases everything).
   */
  close(): void {
    if (this.fdValue < 0) return;
    this.queue.close();
    for (const d of [...this.dumbs]) {
      try { d.destroy(); } catch { /* released by close */ }
    }
    for (const fb of [...this.fbs]) {
      try { this.rmFb(fb); } catch { /* released by close */ }
    }
    for (const b of [...this.blobs]) {
      try { this.destroyBlob(b); } catch { /* released by close */ }
    }
    const fd = this.fdValue;
    this.fdValue = -1;
    native.close(fd);
  }
}

/** Is this error a kernel error from opening something that is not a DRM device? */
export function isNotDrmDevice(e: unknown): boolean {
  return isKernelError(e) && e.op === 'DRM_IOCTL_VERSION' && (e.code === 'ENOTTY' || e.code === 'EINVAL');
}
