// A guest: one vGPU (or anything answering the same questions) whose planes become layers of
// outputs. It knows how to query its planes, export its buffers, open its regions and video
// memory, whether it still exists, and (DRM_FB) how often it flipped by its own counter.
import type { GfxPlaneInfo, NativeAddon } from '../binding/types.js';
import type { VfioDevice } from '../vfio/index.js';
import { PLANE_PATH_FLAGS, DRM_PLANE_TYPES, readVgpu } from '../vfio/index.js';
import { videoMemoryLocator, type VideoMemoryLocator } from '../vfio/video-memory.js';
import { regionSource, type CopySource } from '../flip/copy.js';
import { DisplayIrq } from '../vfio/display-irq.js';
import type { GuestPlaneKind } from '../flip/planner.js';

/** How guest planes reach the screen: the vendor's host fb (DRM_FB), an imported dma-buf, a copy. */
export type EnginePath = 'drm_fb' | 'dmabuf' | 'region';

/**
 * Where guest planes come from: a VFIO mdev device (VfioGuestSource) or, in tests, anything
 * that answers the same questions (a fake guest exporting dumb buffers).
 */
export interface GuestSource {
  readonly label: string;
  /** VFIO_DEVICE_QUERY_GFX_PLANE for one plane through one path (throws kernel errors) */
  query(kind: GuestPlaneKind, path: EnginePath): GfxPlaneInfo;
  /** VFIO_DEVICE_GET_GFX_DMABUF: a dma-buf fd the caller closes */
  getDmabuf(id: number): number;
  /** a CPU view of a REGION plane's framebuffer */
  openRegion(regionIndex: number, size: number): CopySource;
  /** where the vendor driver says a plane is in the vGPU's video memory (for dma-bufs the CPU cannot map) */
  videoMemoryLocator?(): VideoMemoryLocator | null;
  /** null while the guest exists, else why it is gone */
  gone?(): string | null;
  /** the vGPU's display event (an eventfd at its display IRQ), attached; null: it has none */
  attachDisplayEvents?(): DisplayIrq | null;
  /** the guest leaves: release what the source owns (an owned VFIO device is closed) */
  close?(): void;
}

/**
 * GuestSource over a VFIO device fd, through the (counted) addon. `owned`: the guest owns the
 * device and closes it when it leaves (removeGuest), which is what lets the kernel finish
 * removing an mdev: its removal waits until every fd of the device is closed.
 */
export class VfioGuestSource implements GuestSource {
  private locator: VideoMemoryLocator | null | undefined;
  constructor(
    private readonly vfio: VfioDevice,
    private readonly api: NativeAddon,
    private readonly opts: { owned?: boolean } = {},
  ) {}
  close(): void {
    if (this.opts.owned) this.vfio.close();
  }
  get label(): string {
    return this.vfio.label;
  }
  query(kind: GuestPlaneKind, path: EnginePath): GfxPlaneInfo {
    return this.api.vfioQueryGfxPlane(this.vfio.fd, PLANE_PATH_FLAGS[path], DRM_PLANE_TYPES[kind]);
  }
  getDmabuf(id: number): number {
    return this.api.vfioGetGfxDmabuf(this.vfio.fd, id);
  }
  openRegion(regionIndex: number, size: number): CopySource {
    return regionSource(this.api, this.vfio.fd, regionIndex, size);
  }
  attachDisplayEvents(): DisplayIrq | null {
    return DisplayIrq.attach(this.vfio);
  }
  videoMemoryLocator(): VideoMemoryLocator | null {
    if (this.locator === undefined) {
      let type: string | null = null;
      try {
        type = this.vfio.uuid ? readVgpu(this.vfio.uuid, {}, []).type : null;
      } catch {
        type = null;
      }
      this.locator = videoMemoryLocator(this.api, this.vfio.fd, type);
    }
    return this.locator;
  }
}

export interface GuestOptions {
  /** the display path of this guest's layers */
  path: EnginePath;
  /** the guest's own flip counter (vgpu-sim: debugfs flip_count), for the DRM_FB counters */
  flipCount?: () => number | null;
  /** null while the guest exists, else why it is gone (overrides the source's own gone()) */
  gone?: () => string | null;
  /**
   * look at the guest only when its display event says it changed something (the vendor's
   * display IRQ, signalled at the guest's vblank), not every frame. Default true: used whenever
   * the vGPU offers it; false: look every frame (or watch period) even when it has one
   */
  displayEvents?: boolean;
}

/** What one listening output has not looked at yet. */
interface Watcher {
  onEvent: () => void;
  primary: boolean;
  cursor: boolean;
  /** a signal that names no plane exactly: look at everything */
  all: boolean;
}

export class Guest {
  readonly path: EnginePath;
  /** DRM_FB: did the guest flip since the last look (its own counter)? null: no counter */
  flippedSinceLook: boolean | null = null;
  /** the guest's flips since its first assignment (its own counter), null if unknown */
  flips: number | null = null;
  private lastLookFlips: number | null = null;
  private flipBase: number | null = null;
  private vram: CopySource | null | undefined;
  private goneCheckedUs = 0;
  /** the display event, when used */
  events: DisplayIrq | null = null;
  private poller: { stop(): void } | null = null;
  /** per output that listens (its owner object): which planes changed since it last looked */
  private readonly watchers = new Map<object, Watcher>();

  constructor(
    readonly source: GuestSource,
    private readonly opts: GuestOptions,
  ) {
    this.path = opts.path;
  }

  get label(): string {
    return this.source.label;
  }

  get hasFlipCounter(): boolean {
    return this.opts.flipCount !== undefined;
  }

  private readFlips(): number | null {
    try {
      return this.opts.flipCount?.() ?? null;
    } catch {
      return null; // the counter went away with the instance
    }
  }

  /** Once per look (DRM_FB): note whether the guest flipped since the previous look. */
  look(): void {
    if (!this.opts.flipCount) return;
    const n = this.readFlips();
    this.refreshFlips(n);
    this.flippedSinceLook = n === null || this.lastLookFlips === null ? null : n !== this.lastLookFlips;
    this.lastLookFlips = n;
  }

  /** The first assignment starts the guest's flip count. */
  assigned(): void {
    if (this.flipBase !== null || !this.opts.flipCount) return;
    this.flipBase = this.readFlips();
    if (this.flipBase !== null) this.flips = 0;
  }

  refreshFlips(n: number | null = this.readFlips()): void {
    if (this.flipBase !== null && n !== null) this.flips = n - this.flipBase;
  }

  /** Why the guest is gone, checked at most every 400 ms; null while it exists. */
  gone(nowUs: number): string | null {
    const gone = this.opts.gone ?? (this.source.gone ? () => this.source.gone!() : null);
    if (!gone || nowUs - this.goneCheckedUs < 400_000) return null;
    this.goneCheckedUs = nowUs;
    try {
      return gone();
    } catch (e) {
      return `cannot tell whether the vGPU still exists: ${(e as Error).message}`;
    }
  }

  /** BAR0 of the vGPU mapped read-only (VFIO_PCI_BAR0_REGION_INDEX), opened once; null when not mappable. */
  videoMemory(): CopySource | null {
    if (this.vram !== undefined) return this.vram;
    try {
      const r = this.source.openRegion(0, Number.MAX_SAFE_INTEGER);
      if (r.mapped) this.vram = r;
      else {
        r.close();
        this.vram = null;
      }
    } catch {
      this.vram = null;
    }
    return this.vram;
  }

  locator(): VideoMemoryLocator | null {
    return this.source.videoMemoryLocator?.() ?? null;
  }

  /**
   * Listen to the guest's display event for `owner` (an output), unless told not to and when it
   * has one: `onEvent` runs (from the event loop) each time it signals, and changedFor(owner, ..)
   * says which planes the signals named since lookedBy(owner). Several outputs may listen to one
   * guest (its planes on several outputs): each keeps its own record. false: no events (the
   * output looks every frame).
   */
  listen(owner: object, onEvent: () => void, poll: (fd: number, cb: () => void) => { stop(): void }): boolean {
    if (this.opts.displayEvents === false || !this.source.attachDisplayEvents) return false;
    if (!this.events) {
      const ev = this.source.attachDisplayEvents();
      if (!ev) return false;
      this.events = ev;
      this.poller = poll(ev.fd, () => this.onSignal());
    }
    // the first look after listening looks at everything
    this.watchers.set(owner, { onEvent, primary: true, cursor: true, all: true });
    return true;
  }

  private onSignal(): void {
    const d = this.events?.read();
    if (!d) return;
    const ws = [...this.watchers.values()];
    for (const w of ws) {
      w.primary ||= d.primary;
      w.cursor ||= d.cursor;
      w.all ||= d.all;
    }
    for (const w of ws) w.onEvent();
  }

  /**
   * Must `owner` look at this guest's `kind` plane now? Always without a display event (or for an
   * owner not listening); with one, when a signal since its last look named that plane (the
   * event names primary and cursor; an overlay is looked at on any signal).
   */
  changedFor(owner: object, kind: GuestPlaneKind | 'any'): boolean {
    if (!this.events) return true;
    const w = this.watchers.get(owner);
    if (!w || w.all) return true;
    if (kind === 'primary') return w.primary;
    if (kind === 'cursor') return w.cursor;
    return w.primary || w.cursor;
  }

  /** `owner` has looked at every plane the signals named. */
  lookedBy(owner: object): void {
    const w = this.watchers.get(owner);
    if (w) w.primary = w.cursor = w.all = false;
  }

  close(): void {
    this.vram?.close();
    this.vram = undefined;
    this.poller?.stop();
    this.poller = null;
    this.events?.close();
    this.events = null;
    this.watchers.clear();
    this.source.close?.();
  }
}
