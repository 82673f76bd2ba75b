// FlipEngine: one guest on one CRTC, the common case (`vgpu-flip assign` with one --vgpu, the
// demo, most tests). It is an Output of the presentation core (src/present/) preconfigured with
// one guest's planes as its layers; several guests or outputs use src/present/ directly.
//
// Where a frame goes, guest to scanout: src/present/guest.ts (the vGPU) -> look.ts (query and
// decide, per layer, per frame) -> sources/ (the guest buffer as a framebuffer: dmabuf.ts,
// copy.ts, drm-fb.ts) -> output.ts (one atomic commit per vblank for every layer; assign.ts
// plans) -> the hardware plane.
import type { NativeAddon } from '../binding/types.js';
import type { DrmDevice } from '../kms/index.js';
import type { ModeInfo } from '../binding/types.js';
import type { ConnectorSnapshot } from '../kms/types.js';
import type { VfioDevice } from '../vfio/index.js';
import type { CapturedFrame } from '../capture/writeback.js';
import type { Screenshot, ScreenshotMethod } from '../capture/screenshot.js';
import { Display } from '../present/display.js';
import { Guest, VfioGuestSource, type EnginePath, type GuestSource } from '../present/guest.js';
import type { LayerRequest } from '../present/layer.js';
import { Output } from '../present/output.js';
import { addGuest } from '../present/compose.js';
import { captureOutput, screenshotOutput } from '../present/capture.js';
import type { ModeRequest } from '../present/mode.js';
import type { CallCounter } from './counting.js';
import type { NotReadyPolicy } from './decide.js';
import { drmFbStatusLine, type DrmFbCounters } from './drmfb.js';
import type { AssignedEvent } from './events.js';
import type { Layout } from './planner.js';

export { VfioGuestSource, type EnginePath, type GuestSource } from '../present/guest.js';
export { chooseMode, connectorFor, describeMode, parseModeRequest, type ModeRequest } from '../present/mode.js';
export type { EngineStats, PlaneStats } from '../present/stats.js';

export type GuestPlaneRequest = LayerRequest;

export interface EngineOptions {
  drm: DrmDevice;
  /** the vGPU (or pass `guest`) */
  vfio?: VfioDevice;
  /** a guest source other than a VFIO device (tests) */
  guest?: (api: NativeAddon) => GuestSource;
  crtcIndex: number;
  planes: GuestPlaneRequest[];
  /**
   * a mode to set (ALLOW_MODESET); 'guest': the connector mode matching the guest primary's
   * size when there is one (else the current mode); default: keep the CRTC's mode (or the
   * connector's preferred one if the CRTC is off)
   */
  mode?: ModeRequest | 'guest';
  /**
   * 'dmabuf' (default), 'region' (copy path), or 'drm_fb' (the vendor driver exposes each guest
   * plane as a framebuffer of this DRM device and flips it in the kernel: commit once, then watch)
   */
  path?: EnginePath;
  notReady?: NotReadyPolicy;
  /** framebuffers kept per guest plane (default 8) */
  cacheSize?: number;
  /** failures in a row before an error is reported (default 3) */
  reportAfter?: number;
  /** cursor x/y from the vendor driver are the plane's top-left (default) or the hotspot's position */
  cursorOrigin?: 'top-left' | 'hotspot';
  /** the native addon (tests pass a wrapped one); calls are counted either way */
  native?: NativeAddon;
  counter?: CallCounter;
  /**
   * DRM_FB: how often to look at the guest planes while the kernel flips (ms, default 100).
   * A look is one QUERY_GFX_PLANE per plane; a changed framebuffer id adds one read-only
   * GETPLANE to check the kernel followed. No commit unless something needs re-planning.
   */
  watchIntervalMs?: number;
  /** the guest's own flip counter (vgpu-sim: debugfs flip_count), for the DRM_FB counters */
  guestFlipCount?: () => number | null;
  /**
   * look at the guest only when its vGPU signals a display change (the vendor driver's display
   * event IRQ), not every frame / watch period: the default where the vGPU has one; false: poll
   */
  displayEvents?: boolean;
  /**
   * null while the vGPU exists, else why it is gone (instance removed): the engine then
   * reports a fatal error, restores the display and stops (checked about twice a second)
   */
  guestGone?: () => string | null;
}

export class FlipEngine extends Output {
  readonly path: EnginePath;
  readonly guest: Guest;

  constructor(opts: EngineOptions) {
    const display = new Display(opts.drm, { ...(opts.native ? { native: opts.native } : {}), ...(opts.counter ? { counter: opts.counter } : {}) });
    super(display, {
      crtcIndex: opts.crtcIndex,
      ...(opts.mode ? { mode: opts.mode } : {}),
      ...(opts.notReady ? { notReady: opts.notReady } : {}),
      ...(opts.reportAfter !== undefined ? { reportAfter: opts.reportAfter } : {}),
      ...(opts.watchIntervalMs !== undefined ? { watchIntervalMs: opts.watchIntervalMs } : {}),
    });
    display.outputs.push(this);
    this.once('stopped', () => {
      display.watch?.close();
      display.watch = null;
    });
    this.path = opts.path ?? 'dmabuf';
    let source: GuestSource;
    if (opts.guest) source = opts.guest(display.api);
    else if (opts.vfio) source = new VfioGuestSource(opts.vfio, display.api);
    else throw new Error('FlipEngine: no guest (vfio device) given');
    this.guest = new Guest(source, { path: this.path, ...(opts.guestFlipCount ? { flipCount: opts.guestFlipCount } : {}), ...(opts.guestGone ? { gone: opts.guestGone } : {}), ...(opts.displayEvents !== undefined ? { displayEvents: opts.displayEvents } : {}) });
    if (opts.planes.length === 0) throw new Error('no guest plane to assign (use --plane primary and/or --plane cursor)');
    addGuest(this, this.guest, opts.planes, { ...(opts.cacheSize !== undefined ? { cacheSize: opts.cacheSize } : {}), ...(opts.cursorOrigin ? { cursorOrigin: opts.cursorOrigin } : {}) });
  }

  get counter(): CallCounter {
    return this.display.counter;
  }

  /** Wait until the first assignment (or throw after timeoutMs with the last reason). */
  waitAssigned(timeoutMs = 5000): Promise<AssignedEvent> {
    if (this.lastAssigned) return Promise.resolve(this.lastAssigned);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.off('assigned', ok);
        reject(new Error(`no assignment within ${timeoutMs} ms: ${this.whyNotAssigned()}`));
      }, timeoutMs);
      const ok = (e: AssignedEvent): void => {
        clearTimeout(t);
        resolve(e);
      };
      this.once('assigned', ok);
    });
  }

  whyNotAssigned(): string {
    return this.lastProblem;
  }
  get assignedLayout(): Layout | null {
    return this.layout;
  }
  get currentMode(): ModeInfo {
    return this.mode;
  }
  get displayConnector(): ConnectorSnapshot | null {
    return this.connector;
  }
  get device(): DrmDevice {
    return this.display.dev;
  }

  /** fbs the engine holds right now (cache + copy buffers) */
  liveFbs(): number[] {
    return this.layers.flatMap((l) => l.source.liveFbs());
  }

  /** Read back the composed frame (writeback connector) between two frames. */
  capture(timeoutMs = 3000): Promise<CapturedFrame> {
    return captureOutput(this, timeoutMs);
  }

  /** What is on the CRTC now, for people (`assign --screenshot`). */
  screenshot(method: ScreenshotMethod = 'auto', timeoutMs = 3000): Promise<Screenshot> {
    return screenshotOutput(this, method, timeoutMs);
  }

  /** DRM_FB counters: guest flips vs user-space commits (zero per guest flip when it works). */
  drmFbCounters(): DrmFbCounters {
    this.guest.refreshFlips();
    this.refreshGuestFlips();
    return { guestFlips: this.stats.guestFlips, kernelFlipsSeen: this.stats.kernelFlips, commits: this.stats.commits, assignCommits: this.stats.assignCommits, errors: this.stats.errors };
  }

  /** The DRM_FB status line ('' on the other paths). */
  drmFbStatus(): string {
    return this.path === 'drm_fb' ? drmFbStatusLine(this.drmFbCounters()) : '';
  }
}
