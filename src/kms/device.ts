// DrmDevice: an open DRM card node with client caps set, snapshots, atomic requests, property
// blobs, framebuffers (dma-buf import, dumb buffers) and event dispatch (page flip / vblank).
import { EventEmitter } from 'eventemitter3';
import { native } from '../binding/index.js';
import type { DrmEvent, DrmVersion, Mapping, ModeInfo } from '../binding/types.js';
import {
  DRM_CLIENT_CAP_ATOMIC,
  DRM_CLIENT_CAP_UNIVERSAL_PLANES,
  DRM_CLIENT_CAP_WRITEBACK_CONNECTORS,
  DRM_FORMAT_MOD_INVALID,
  DRM_FORMAT_XRGB8888,
  DRM_MODE_PAGE_FLIP_EVENT,
  fourccToString,
} from '../binding/constants.js';
import { hasCode, isKernelError } from '../binding/errors.js';
import { AtomicRequest, PropertyIndex } from './atomic.js';
import { packModeInfo } from './mode.js';
import { readSnapshot } from './snapshot.js';
import type { ClientCaps, DmabufImportParams, KmsSnapshot } from './types.js';

export interface DrmOpenOptions {
  /** enable DRM_CLIENT_CAP_WRITEBACK_CONNECTORS (lists Writeback-N connectors); default false */
  writeback?: boolean;
  /** throw when the ATOMIC client cap cannot be set (default true) */
  requireAtomic?: boolean;
}

export interface DrmDeviceEvents {
  /** every event read from the fd */
  event: (e: DrmEvent) => void;
  flip: (e: DrmEvent) => void;
  vblank: (e: DrmEvent) => void;
  sequence: (e: DrmEvent) => void;
  /** reading events failed (the poller is stopped) */
  error: (err: Error) => void;
}

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

interface Waiter {
  resolve: (e: DrmEvent) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
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
  readonly events = new EventEmitter<DrmDeviceEvents>();
  private fdValue: number;
  private index: PropertyIndex | null = null;
  private lastSnapshot: KmsSnapshot | null = null;
  private readonly blobs = new Set<number>();
  private readonly fbs = new Set<number>();
  private readonly dumbs = new Set<DumbFramebuffer>();
  private poller: { stop(): void } | null = null;
  private eventUsers = 0;
  private readonly waiters = new Map<bigint, Waiter>();
  private nextUser = 1n;

  private constructor(
    readonly path: string,
    fd: number,
    readonly clientCaps: ClientCaps,
    readonly version: DrmVersion,
  ) {
    this.fdValue = fd;
  }

  /**
   * Open a card node and enable universal planes + atomic (and writeback connectors if asked).
   * Errors: ENOENT/EACCES from open; ENOTTY ("not a DRM device") from the version ioctl; a
   * device without atomic modesetting (render node, old driver) when requireAtomic.
   */
  static open(path: string, opts: DrmOpenOptions = {}): DrmDevice {
    const fd = native.drmOpen(path);
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
      return new DrmDevice(path, fd, caps, version);
    } catch (e) {
      native.close(fd);
      throw e;
    }
  }

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

  // ---- events ----------------------------------------------------------------------------------

  /** A fresh user-data value for correlating a commit with its event. */
  allocUserData(): bigint {
    return this.nextUser++;
  }

  /**
   * Listen to DRM events ('flip', 'vblank', 'sequence' or 'event' for all). Starts watching the fd
   * (uv_poll) while at least one listener or waiter exists. Returns an unsubscribe function.
   */
  onEvent(type: 'event' | 'flip' | 'vblank' | 'sequence', fn: (e: DrmEvent) => void): () => void {
    this.events.on(type, fn);
    this.retainPoller();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.events.off(type, fn);
      this.releasePoller();
    };
  }

  /**
   * Commit with PAGE_FLIP_EVENT and wait for the event carrying this commit's user data.
   * Resolves with the first matching event (one per CRTC in the commit; later ones only go to
   * listeners). Rejects if the commit fails, on timeout, or when the device closes.
   */
  commitAndWait(req: AtomicRequest, flags = 0, timeoutMs = 1000): Promise<DrmEvent> {
    const userData = this.allocUserData();
    const p = this.waitForUserData(userData, timeoutMs);
    try {
      const fences = req.commit(flags | DRM_MODE_PAGE_FLIP_EVENT, userData);
      for (const f of fences) if (f >= 0) native.close(f);
    } catch (e) {
      this.cancelWaiter(userData, e instanceof Error ? e : new Error(String(e)));
      p.catch(() => undefined);
      throw e;
    }
    return p;
  }

  /** Wait for an event with this user data (set up before committing). */
  waitForUserData(userData: bigint, timeoutMs = 1000): Promise<DrmEvent> {
    return new Promise<DrmEvent>((resolve, reject) => {
      const w: Waiter = { resolve, reject, timer: undefined };
      if (timeoutMs >= 0 && Number.isFinite(timeoutMs)) {
        w.timer = setTimeout(() => {
          this.cancelWaiter(
            userData,
            new Error(`${this.path}: no DRM event for user data ${userData} within ${timeoutMs} ms (is the CRTC active?)`),
          );
        }, timeoutMs);
      }
      this.waiters.set(userData, w);
      this.retainPoller();
    });
  }

  private cancelWaiter(userData: bigint, err: Error): void {
    const w = this.waiters.get(userData);
    if (!w) return;
    this.waiters.delete(userData);
    if (w.timer) clearTimeout(w.timer);
    this.releasePoller();
    w.reject(err);
  }

  /** Read and dispatch pending events now (non-blocking); returns them. */
  dispatchEvents(): DrmEvent[] {
    const evs = native.drmReadEvents(this.fd);
    for (const e of evs) {
      const w = this.waiters.get(e.userData);
      if (w) {
        this.waiters.delete(e.userData);
        if (w.timer) clearTimeout(w.timer);
        this.releasePoller();
        w.resolve(e);
      }
      this.events.emit('event', e);
      this.events.emit(e.type, e);
    }
    return evs;
  }

  private retainPoller(): void {
    this.eventUsers++;
    if (this.poller || this.fdValue < 0) return;
    this.poller = native.pollReadable(this.fdValue, () => {
      if (this.fdValue < 0) return;
      try {
        this.dispatchEvents();
      } catch (e) {
        const err = e instanceof Error ? e : new Error(String(e));
        this.stopPoller();
        if (this.events.listenerCount('error') > 0) this.events.emit('error', err);
        for (const ud of [...this.waiters.keys()]) this.cancelWaiter(ud, err);
      }
    });
  }

  private releasePoller(): void {
    this.eventUsers = Math.max(0, this.eventUsers - 1);
    if (this.eventUsers === 0) this.stopPoller();
  }

  private stopPoller(): void {
    this.poller?.stop();
    this.poller = null;
  }

  // ---- master ----------------------------------------------------------------------------------

  setMaster(): void {
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
    for (const ud of [...this.waiters.keys()]) this.cancelWaiter(ud, new Error(`${this.path}: device closed`));
    this.stopPoller();
    this.events.removeAllListeners();
    this.eventUsers = 0;
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
