// The flip engine: keeps guest planes on hardware planes, frame after frame.
//
// Every vblank (driven by our own page-flip events while the guest flips, by a timer at the
// mode's refresh period while nothing changes; never a busy loop) it queries each guest plane
// and decides (decide.ts): nothing changed -> no commit; new dmabuf_id -> framebuffer from the
// cache or a fresh import -> NONBLOCK|PAGE_FLIP_EVENT commit; cursor moved -> position only;
// new shape -> plan again (planner.ts) with TEST_ONLY. The display state found at start is
// restored by stop().
//
// DRM_FB path (tickDrmFb): the vendor driver exposes each guest buffer as a framebuffer of this
// DRM device and flips the hardware plane itself. The engine plans, TEST_ONLY-checks and commits
// once, then only watches (every watchIntervalMs): a new framebuffer id is checked read-only
// (GETPLANE) and followed without a commit; it re-plans when the hardware plane no longer shows
// the guest as planned (a mode change the plane cannot show, a failed in-kernel flip, the plane
// turned off) or the guest plane is back after a reset. stats.commits - stats.assignCommits is
// the number of user-space commits made for anything but (re)assignments (cursor moves only).
import { EventEmitter } from 'eventemitter3';
import { native as realNative } from '../binding/index.js';
import type { DrmEvent, DrmFb2, GfxPlaneInfo, ModeInfo, NativeAddon } from '../binding/types.js';
import {
  DRM_MODE_ATOMIC_ALLOW_MODESET,
  DRM_MODE_ATOMIC_NONBLOCK,
  DRM_MODE_PAGE_FLIP_EVENT,
  DRM_MODE_CONNECTOR_WRITEBACK,
  DRM_MODE_OBJECT_PLANE,
  fourccToString,
} from '../binding/constants.js';
import { hasCode, isKernelError, kernelErrorFields } from '../binding/errors.js';
import { AtomicRequest, PropertyIndex, captureState, restoreState, type DrmDevice, type PropertyBlob } from '../kms/index.js';
import type { ConnectorSnapshot, CrtcSnapshot, KmsSnapshot, SavedKmsState } from '../kms/types.js';
import type { VfioDevice } from '../vfio/index.js';
import { PLANE_PATH_FLAGS, DRM_PLANE_TYPES, readVgpu } from '../vfio/index.js';
import { videoMemoryLocator, type VideoMemoryLocator } from '../vfio/video-memory.js';
import { CallCounter } from './counting.js';
import { captureWriteback, type CapturedFrame } from '../capture/writeback.js';
import { chooseMethod, composeLayers, writebackClone, type LayerPicture, type Screenshot, type ScreenshotMethod } from '../capture/screenshot.js';
import { CopyTargets, regionSource, type CopySource } from './copy.js';
import { classifyQuery, commitFailure, decide, decideDrmFb, descOf, FailureStreak, type Decision, type NotReadyPolicy, type PlaneView } from './decide.js';
import { drmFbStatusLine, vendorFbMismatch, followsPlan, followVerdict, GuestFbHistory, racingStep, shapeKey, type DrmFbCounters, type HwPlaneState } from './drmfb.js';
import type { AssignedEvent, EngineEvents, PresentPath } from './events.js';
import type { BufferDesc } from './fb-cache.js';
import { DmabufBuffers, type DmabufHost, type Obtained } from './dmabuf-buffers.js';
import {
  destination,
  explainPlan,
  planLayouts,
  tryLayouts,
  type GuestPlaneKind,
  type GuestPlaneSpec,
  type Layout,
  type PlaneAssignment,
  type Placement,
} from './planner.js';

/**
 * Where guest planes come from: a VFIO mdev device (VfioGuestSource) or, in tests, anything
 * that answers the same questions (a fake guest exporting dumb buffers).
 */
/** How guest planes reach the screen: the vendor's host fb (DRM_FB), an imported dma-buf, a copy. */
export type EnginePath = 'drm_fb' | 'dmabuf' | 'region';

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
}

/** GuestSource over a VFIO device fd, through the (counted) addon. */
export class VfioGuestSource implements GuestSource {
  constructor(
    private readonly vfio: VfioDevice,
    private readonly api: NativeAddon,
  ) {}
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
  private locator: VideoMemoryLocator | null | undefined;
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

export interface GuestPlaneRequest {
  kind: GuestPlaneKind;
  placement?: Placement;
  hwPlaneId?: number;
}

export interface ModeRequest {
  width: number;
  height: number;
  refresh?: number;
}

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
   * null while the vGPU exists, else why it is gone (instance removed): the engine then
   * reports a fatal error, restores the display and stops (checked about twice a second)
   */
  guestGone?: () => string | null;
}

export interface PlaneStats {
  flips: number;
  moves: number;
  /** VFIO_DEVICE_GET_GFX_DMABUF calls (one per dmabuf_id held) */
  exports: number;
  imports: number;
  cacheHits: number;
  copies: number;
  bytesCopied: number;
  notReadyFrames: number;
  errors: number;
  /** DRM_FB: guest buffer changes the kernel followed on its own (seen by the watch, no commit) */
  kernelFlips: number;
}

export interface EngineStats {
  ticks: number;
  /** every user-space atomic commit (not TEST_ONLY) the engine made */
  commits: number;
  /** of those, the ones that (re)assigned planes (plan + TEST_ONLY + commit) */
  assignCommits: number;
  /** DRM_FB: buffer changes followed by the kernel, seen by the watch (sum over planes) */
  kernelFlips: number;
  /** DRM_FB: the guest's flips since the first assignment (its own counter), null if unknown */
  guestFlips: number | null;
  frames: number;
  errors: number;
  planes: Partial<Record<GuestPlaneKind, PlaneStats>>;
}

interface PlaneRuntime {
  req: GuestPlaneRequest;
  kind: GuestPlaneKind;
  view: PlaneView;
  assignment: PlaneAssignment | null;
  /** DMABUF path: the guest's buffers (one export each), zero copy or copied per buffer */
  bufs: DmabufBuffers;
  /** REGION path: the copy targets */
  copies: CopyTargets;
  copySource: CopySource | null;
  copySourceKey: string;
  path: PresentPath;
  last: GfxPlaneInfo | null;
  queryStreak: FailureStreak;
  importStreak: FailureStreak;
  stats: PlaneStats;
  notReadyReported: boolean;
  /** fb currently shown by the hardware plane (ours), 0 when off */
  fbId: number;
  /** the last query this frame said the plane is there */
  readyNow: boolean;
  /** DRM_FB: framebuffer ids the vendor reported for this plane recently (with shapes) */
  fbHistory: GuestFbHistory;
  /** DRM_FB: looks in a row that found the hardware plane on another recent guest fb */
  racingLooks: number;
}

interface PendingFrame {
  userData: bigint;
  committedUs: number;
  planes: { p: PlaneRuntime; id: number; fbId: number; imported: boolean; bytes: number; got?: Obtained }[];
}

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

function modeMatches(m: ModeInfo, r: ModeRequest): boolean {
  return m.hdisplay === r.width && m.vdisplay === r.height && (r.refresh === undefined || m.vrefresh === r.refresh);
}

export function describeMode(m: ModeInfo): string {
  return `${m.hdisplay}x${m.vdisplay}@${m.vrefresh}`;
}

/** Parse "1024x768" or "1024x768@60". */
export function parseModeRequest(s: string): ModeRequest {
  const m = /^(\d+)x(\d+)(?:@(\d+))?$/.exec(s.trim());
  if (!m) throw new Error(`--mode ${JSON.stringify(s)}: expected WIDTHxHEIGHT or WIDTHxHEIGHT@HZ, e.g. 1024x768@60`);
  const r: ModeRequest = { width: Number(m[1]), height: Number(m[2]) };
  if (m[3] !== undefined) r.refresh = Number(m[3]);
  return r;
}

/** The display connector driving a CRTC now, or the first connected one that can. */
export function connectorFor(s: KmsSnapshot, crtc: CrtcSnapshot): ConnectorSnapshot | null {
  const display = s.connectors.filter((c) => c.type !== DRM_MODE_CONNECTOR_WRITEBACK && !c.writeback);
  const routed = display.find((c) => c.crtcId === crtc.id);
  if (routed) return routed;
  const canDrive = (c: ConnectorSnapshot): boolean =>
    c.encoders.some((eid) => {
      const enc = s.encoders.find((e) => e.id === eid);
      return enc !== undefined && (enc.possibleCrtcs & (1 << crtc.index)) !== 0;
    });
  return display.find((c) => c.status === 'connected' && canDrive(c) && c.crtcId === 0) ?? null;
}

/** Pick the mode: requested (must be in the connector's list), else current, else preferred. */
export function chooseMode(crtc: CrtcSnapshot, conn: ConnectorSnapshot | null, req?: ModeRequest): { mode: ModeInfo; modeset: boolean } {
  if (req) {
    if (crtc.active && crtc.mode && modeMatches(crtc.mode, req)) return { mode: crtc.mode, modeset: !conn || conn.crtcId !== crtc.id };
    const list = conn?.modes ?? [];
    const m = list.find((x) => modeMatches(x, req));
    if (!m) {
      const have = [...new Set(list.map(describeMode))].slice(0, 20).join(', ');
      throw new Error(
        `mode ${req.width}x${req.height}${req.refresh ? `@${req.refresh}` : ''} is not offered by connector ${conn?.name ?? '(none)'}` +
          (have ? ` (it offers: ${have})` : ''),
      );
    }
    return { mode: m, modeset: true };
  }
  if (crtc.active && crtc.mode) return { mode: crtc.mode, modeset: !conn || conn.crtcId !== crtc.id };
  const list = conn?.modes ?? [];
  const preferred = list.find((m) => (m.type & 0x8) !== 0) ?? list[0];
  if (!preferred) throw new Error(`CRTC ${crtc.index} is off and no connected connector offers a mode for it`);
  return { mode: preferred, modeset: true };
}

export class FlipEngine extends EventEmitter<EngineEvents> {
  readonly counter: CallCounter;
  private readonly api: NativeAddon;
  private readonly dev: DrmDevice;
  private readonly guest: GuestSource;
  private readonly planes: PlaneRuntime[];
  private readonly notReady: NotReadyPolicy;
  private readonly reportAfter: number;
  readonly path: EnginePath;
  private snapshot!: KmsSnapshot;
  private index!: PropertyIndex;
  private saved: SavedKmsState | null = null;
  private crtc!: CrtcSnapshot;
  private connector: ConnectorSnapshot | null = null;
  mode!: ModeInfo;
  private needModeset = false;
  private modeBlob: PropertyBlob | null = null;
  private layout: Layout | null = null;
  private usedHwPlanes = new Set<number>();
  private pending: PendingFrame | null = null;
  private timer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  private running = false;
  private paused = false;
  private lastVblankUs = 0;
  private periodUs = 16667;
  private frameNo = 0;
  private commitStreak = new FailureStreak();
  private planFailureReported = '';
  private stopping: Promise<void> | null = null;
  private pendingWaiters: (() => void)[] = [];
  lastExplanation: string[] = [];
  /** the last 'assigned' event (null before the first assignment) */
  lastAssigned: AssignedEvent | null = null;
  readonly stats: EngineStats = { ticks: 0, commits: 0, assignCommits: 0, kernelFlips: 0, guestFlips: null, frames: 0, errors: 0, planes: {} };
  private guestFlipBase: number | null = null;
  /** DRM_FB framebuffer ids that did not match their description (reported once) */
  private readonly badVendorFbs = new Set<number>();
  private goneCheckedUs = 0;

  constructor(private readonly opts: EngineOptions) {
    super();
    this.counter = opts.counter ?? new CallCounter();
    this.api = this.counter.wrap(opts.native ?? realNative);
    this.dev = opts.drm;
    if (opts.guest) this.guest = opts.guest(this.api);
    else if (opts.vfio) this.guest = new VfioGuestSource(opts.vfio, this.api);
    else throw new Error('FlipEngine: no guest (vfio device) given');
    this.notReady = opts.notReady ?? 'keep';
    this.reportAfter = opts.reportAfter ?? 3;
    this.path = opts.path ?? 'dmabuf';
    if (opts.planes.length === 0) throw new Error('no guest plane to assign (use --plane primary and/or --plane cursor)');
    this.planes = opts.planes.map((req) => {
      const stats: PlaneStats = { flips: 0, moves: 0, exports: 0, imports: 0, cacheHits: 0, copies: 0, bytesCopied: 0, notReadyFrames: 0, errors: 0, kernelFlips: 0 };
      this.stats.planes[req.kind] = stats;
      const p: PlaneRuntime = {
        req,
        kind: req.kind,
        view: { kind: req.kind, shown: null, blanked: false, copyMode: this.path === 'region' },
        assignment: null,
        bufs: new DmabufBuffers(this.dmabufHost(req.kind), `${this.guest.label} ${req.kind} plane`, opts.cacheSize ?? 8, stats),
        copies: new CopyTargets(this.dev),
        copySource: null,
        copySourceKey: '',
        path: this.path === 'region' ? 'copy' : this.path === 'drm_fb' ? 'drm_fb' : 'dmabuf',
        last: null,
        queryStreak: new FailureStreak(this.reportAfter),
        importStreak: new FailureStreak(this.reportAfter),
        stats,
        notReadyReported: false,
        fbId: 0,
        readyNow: false,
        fbHistory: new GuestFbHistory(),
        racingLooks: 0,
      };
      return p;
    });
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  /**
   * Validate against the device, save the display state, start presenting. Throws (before the
   * screen changes) for a CRTC out of range, an unknown mode, or a plane nobody can show.
   */
  start(): void {
    if (this.running) return;
    this.snapshot = this.dev.snapshot();
    this.index = new PropertyIndex(this.snapshot);
    const crtc = this.snapshot.crtcs.find((c) => c.index === this.opts.crtcIndex);
    if (!crtc) {
      throw new Error(
        `CRTC ${this.opts.crtcIndex} does not exist on ${this.dev.path} (it has ${this.snapshot.crtcs.length}: 0..${this.snapshot.crtcs.length - 1})`,
      );
    }
    this.crtc = crtc;
    this.connector = connectorFor(this.snapshot, crtc);
    const { mode, modeset } = chooseMode(crtc, this.connector, this.opts.mode === 'guest' ? undefined : this.opts.mode);
    if (modeset && !this.connector) throw new Error(`CRTC ${crtc.index} needs a modeset but no connected connector can be driven by it`);
    this.mode = mode;
    this.needModeset = modeset;
    this.periodUs = mode.vrefresh > 0 ? Math.round(1e6 / mode.vrefresh) : 16667;
    this.saved = captureState(this.snapshot, { crtcIds: [crtc.id], connectorIds: this.connector ? [this.connector.id] : [] });
    this.running = true;
    this.unsubscribe = this.dev.onEvent('flip', (e) => this.onFlip(e));
    this.lastVblankUs = nowUs();
    this.tick();
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

  private lastProblem = 'the guest has not enabled its display yet';

  whyNotAssigned(): string {
    return this.lastProblem;
  }

  get assignedLayout(): Layout | null {
    return this.layout;
  }

  get currentMode(): ModeInfo {
    return this.mode;
  }

  get crtcId(): number {
    return this.crtc.id;
  }

  get displayConnector(): ConnectorSnapshot | null {
    return this.connector;
  }

  get device(): DrmDevice {
    return this.dev;
  }

  /** fbs the engine holds right now (cache + copy buffers) */
  liveFbs(): number[] {
    const out: number[] = [];
    for (const p of this.planes) out.push(...p.bufs.liveFbs(), ...p.copies.fbIds());
    return out;
  }

  /** Stop presenting, restore the saved display state, release every framebuffer. Idempotent. */
  stop(): Promise<void> {
    if (!this.stopping) this.stopping = this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    const wasRunning = this.running;
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending) await this.waitPending(500);
    this.unsubscribe?.();
    this.unsubscribe = null;
    let restored = false;
    let message = 'nothing to restore';
    if (wasRunning && this.saved && !this.dev.closed) {
      try {
        const r = restoreState(this.dev, this.saved);
        restored = true;
        message = r.disabledPlanes.length ? `display restored (planes ${r.disabledPlanes.join(', ')} left off)` : 'display restored';
      } catch (e) {
        message = `restoring the display failed: ${(e as Error).message}`;
        this.stats.errors++;
        this.report({ stage: 'restore', error: e, count: 1, fatal: true });
      }
    }
    for (const p of this.planes) {
      for (const err of p.bufs.clear()) this.report({ plane: p.kind, stage: 'cleanup', error: err, count: 1, fatal: false });
      p.copies.destroy();
      this.closeCopySource(p);
    }
    this.modeBlob?.destroy();
    this.modeBlob = null;
    this.vram?.close();
    this.vram = undefined;
    this.emit('stopped', { restored, message });
  }

  /**
   * Read back the composed frame (writeback connector) between two frames: presenting pauses,
   * the CRTC is routed to the writeback connector for one frame, then back to the display.
   */
  async capture(timeoutMs = 3000): Promise<CapturedFrame> {
    await this.pause();
    try {
      return captureWriteback(this.dev, { crtcId: this.crtc.id, mode: this.mode, displayConnectorId: this.connector?.id ?? null, timeoutMs });
    } finally {
      this.resume();
    }
  }

  /**
   * What is on the CRTC now, for people (`assign --screenshot`): writeback beside the display
   * when the device can, else composed from our layers in memory (see capture/screenshot.ts);
   * 'writeback' routes the CRTC to writeback alone for a frame when it cannot clone.
   */
  async screenshot(method: ScreenshotMethod = 'auto', timeoutMs = 3000): Promise<Screenshot> {
    const wb = this.dev.clientCaps.writebackConnectors ? writebackClone(this.dev.currentSnapshot(), this.crtc.index, this.connector?.id ?? null) : null;
    const how = chooseMethod(method, wb);
    if (how.method !== 'compose') {
      await this.pause();
      try {
        const f = captureWriteback(this.dev, { crtcId: this.crtc.id, mode: this.mode, displayConnectorId: this.connector?.id ?? null, timeoutMs, alongside: how.method === 'writeback' });
        return { ...f, method: how.method, notes: [how.why] };
      } finally {
        this.resume();
      }
    }
    const z = { primary: 0, overlay: 1, cursor: 2 } as const;
    const layers: LayerPicture[] = [];
    for (const p of this.planes) {
      const a = p.assignment;
      if (!a || !p.fbId) continue;
      layers.push({
        name: `guest ${p.kind}`,
        x: a.dst.x,
        y: a.dst.y,
        width: Math.min(a.src.w, a.dst.w),
        height: Math.min(a.src.h, a.dst.h),
        zpos: a.zpos ?? z[p.kind],
        read: () => {
          if (p.path === 'drm_fb') return { unreadable: `framebuffer ${p.fbId} belongs to the vendor driver (DRM_FB) and cannot be mapped here; --screenshot-method writeback reads it through the device` };
          if (p.path === 'copy') return p.copies.pixelsOf(p.fbId) ?? { unreadable: `copy framebuffer ${p.fbId} not found` };
          return p.bufs.pixelsOf(p.fbId);
        },
      });
    }
    const { frame, notes } = composeLayers(this.mode.hdisplay, this.mode.vdisplay, layers);
    notes.unshift(how.why, 'only the guest layers are in the picture: anything else on the CRTC (other planes) shows as black');
    return { ...frame, method: 'compose', notes };
  }

  /** Pause presenting (no commits) until resume(); resolves once no flip is pending. */
  async pause(): Promise<void> {
    this.paused = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending) await this.waitPending(1000);
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.running) this.schedule(0);
  }

  private waitPending(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.pending = null;
        resolve();
      }, timeoutMs);
      this.pendingWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  // ---- frame loop ----------------------------------------------------------------------------

  private schedule(delayMs?: number): void {
    if (!this.running || this.paused || this.timer) return;
    let d = delayMs;
    // commits (not master, a refused layout) or every plane's query failing in a row: back
    // off, never a tight loop of failing kernel calls (a transient error is retried next frame)
    const failing = Math.max(this.commitStreak.current, Math.min(...this.planes.map((p) => p.queryStreak.current)) - 1);
    if (d === undefined && failing > 0) d = Math.min(2000, Math.round(this.periodUs / 1000) * 2 ** Math.min(failing - 1, 7));
    if (d === undefined && this.path === 'drm_fb') d = this.opts.watchIntervalMs ?? 100; // the kernel flips; we only watch for changes
    if (d === undefined) {
      // next vblank estimate from the last flip event (or start), plus a little margin
      const since = nowUs() - this.lastVblankUs;
      const rem = this.periodUs - (since % this.periodUs);
      d = Math.max(1, Math.round((rem + 500) / 1000));
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      this.tick();
    }, d);
  }

  private onFlip(e: DrmEvent): void {
    const pend = this.pending;
    if (!pend || e.userData !== pend.userData) return;
    this.pending = null;
    this.lastVblankUs = e.timeUs || nowUs();
    const latencyUs = Math.max(0, (e.timeUs || nowUs()) - pend.committedUs);
    const vblanks = Math.max(1, Math.ceil(latencyUs / this.periodUs));
    this.stats.frames++;
    for (const f of pend.planes) {
      f.p.bufs.flipCompleted();
      f.p.copies.flipCompleted(f.p.bufs.cache.scanout);
      this.emit('frame', {
        plane: f.p.kind,
        id: f.id,
        fbId: f.fbId,
        path: f.got?.copied ? 'copy' : f.p.path,
        sequence: e.sequence,
        vblankUs: e.timeUs,
        latencyUs,
        latencyVblanks: vblanks,
        imported: f.imported,
        bytesCopied: f.bytes,
        frame: this.frameNo,
      });
    }
    const waiters = this.pendingWaiters.splice(0);
    for (const w of waiters) w();
    if (this.running && !this.paused) {
      // the guest may have flipped again meanwhile: look now (we are at a vblank)
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.tick();
    }
  }

  private query(p: PlaneRuntime): ReturnType<typeof classifyQuery> {
    return classifyQuery(() => this.guest.query(p.kind, this.path));
  }

  /** One frame. Public for tests and the bench (they may drive frames themselves). */
  tick(): void {
    if (!this.running || this.paused || this.pending) return;
    if (this.dev.closed) {
      this.running = false;
      this.report({ stage: 'tick', error: new Error(`${this.dev.path} was closed while presenting`), count: 1, fatal: true });
      return;
    }
    if (this.checkGone()) return;
    this.stats.ticks++;
    this.frameNo++;
    if (this.path === 'drm_fb') {
      this.tickDrmFb();
      return;
    }
    const decisions: { p: PlaneRuntime; d: Decision }[] = [];
    for (const p of this.planes) {
      const q = this.query(p);
      if (q.status === 'ok') {
        p.last = q.info;
        p.readyNow = true;
      } else if (q.status === 'not-ready') {
        p.readyNow = false;
      }
      // a hidden guest cursor must disappear; the primary follows the configured policy
      decisions.push({ p, d: decide(p.view, q, p.kind === 'cursor' ? 'blank' : this.notReady) });
    }
    let replanReason: string | null = null;
    const req = this.newRequest();
    const frames: PendingFrame['planes'] = [];
    for (const { p, d } of decisions) {
      switch (d.action) {
        case 'query-failed': {
          p.stats.errors++;
          this.stats.errors++;
          const n = p.queryStreak.current + 1;
          if (p.queryStreak.fail()) this.report({ plane: p.kind, stage: 'query', error: d.error, count: n, fatal: false });
          break;
        }
        case 'not-ready': {
          p.stats.notReadyFrames++;
          this.lastProblem = `the guest ${p.kind} plane is not ready (size 0)`;
          this.recoveredQuery(p);
          if (!p.notReadyReported) {
            p.notReadyReported = true;
            const action = p.view.shown === null ? 'wait' : p.kind === 'cursor' ? 'blank' : this.notReady;
            this.emit('not-ready', { plane: p.kind, action });
          }
          if (d.blank && p.assignment) {
            req.set(p.assignment.planeId, 'FB_ID', 0);
            req.set(p.assignment.planeId, 'CRTC_ID', 0);
            frames.push({ p, id: 0, fbId: 0, imported: false, bytes: 0 });
            p.view.blanked = true;
          }
          break;
        }
        case 'replan':
          this.recoveredQuery(p);
          // back from not ready (reset, mode change): a dmabuf_id the vendor driver reports
          // again names the same buffer (QEMU relies on that too, hw/vfio/display.c), so the
          // buffers held stay valid; one of another shape is replaced by the cache
          p.notReadyReported = false;
          replanReason ??= `${p.kind}: ${d.reason}`;
          break;
        case 'move': {
          this.recoveredQuery(p);
          if (!p.assignment) break;
          const pos = this.cursorPos(p, d.x, d.y, d.xHot, d.yHot);
          req.set(p.assignment.planeId, 'CRTC_X', pos.x);
          req.set(p.assignment.planeId, 'CRTC_Y', pos.y);
          p.view.shown = { ...p.view.shown!, x: d.x, y: d.y, xHot: d.xHot, yHot: d.yHot };
          p.stats.moves++;
          frames.push({ p, id: p.view.shown.id, fbId: p.fbId, imported: false, bytes: 0 });
          break;
        }
        case 'flip': {
          this.recoveredQuery(p);
          if (!p.assignment) {
            replanReason ??= `${p.kind}: not assigned yet`;
            break;
          }
          const got = this.obtainFb(p, d.id, d.desc, p.last!);
          if (!got) break;
          req.set(p.assignment.planeId, 'FB_ID', got.fbId);
          if (p.kind === 'cursor') {
            const pos = this.cursorPos(p, d.x, d.y, d.xHot, d.yHot);
            req.set(p.assignment.planeId, 'CRTC_X', pos.x);
            req.set(p.assignment.planeId, 'CRTC_Y', pos.y);
          }
          p.view.shown = { id: d.id, desc: d.desc, x: d.x, y: d.y, xHot: d.xHot, yHot: d.yHot };
          frames.push({ p, id: d.id, fbId: got.fbId, imported: got.imported, bytes: got.bytes, ...(got.got ? { got: got.got } : {}) });
          break;
        }
        case 'none':
          this.recoveredQuery(p);
          break;
      }
    }
    if (replanReason) {
      this.replan(replanReason);
      this.schedule();
      return;
    }
    if (req.size === 0) {
      this.schedule();
      return;
    }
    this.commitFrame(req, frames);
  }

  // ---- DRM_FB: watch only ------------------------------------------------------------------

  /**
   * One look at the guest planes on the DRM_FB path. The vendor driver has already moved the
   * hardware plane to the new framebuffer (in-kernel commit) when the guest flipped: a new id
   * is checked read-only (GETPLANE) and followed without a commit. Re-plan (TEST_ONLY + one
   * commit) only for the first frame, a plane back after reset/disable, or a mode change or
   * failed in-kernel flip that left the hardware plane not showing the guest as planned.
   */
  private tickDrmFb(): void {
    this.refreshGuestFlips();
    this.noteGuestActivity();
    let replanReason: string | null = null;
    const req = this.newRequest();
    const frames: PendingFrame['planes'] = [];
    for (const p of this.planes) {
      const q = this.query(p);
      if (q.status === 'ok') {
        p.last = q.info;
        p.readyNow = true;
        p.fbHistory.note(q.info);
      } else if (q.status === 'not-ready') {
        p.readyNow = false;
      }
      const d = decideDrmFb(p.view, q, p.kind === 'cursor' ? 'blank' : this.notReady);
      switch (d.action) {
        case 'query-failed': {
          p.stats.errors++;
          this.stats.errors++;
          const n = p.queryStreak.current + 1;
          if (p.queryStreak.fail()) this.report({ plane: p.kind, stage: 'query', error: d.error, count: n, fatal: false });
          break;
        }
        case 'not-ready': {
          p.stats.notReadyFrames++;
          this.lastProblem = `the guest ${p.kind} plane is not ready (size 0)`;
          this.recoveredQuery(p);
          if (p.notReadyReported) break;
          p.notReadyReported = true;
          let action: 'wait' | 'keep' | 'blank' = 'wait';
          if (p.view.shown && !p.view.blanked) {
            // guest reset / plane disabled: the vendor driver turned the hardware plane off,
            // or kept the last frame (vgpu-sim keep_last_frame=1)
            const hw = p.assignment ? this.hwPlane(p.assignment.planeId, false) : null;
            const still = hw !== null && !('error' in hw) && hw.fbId !== 0;
            if (still && d.blank && p.assignment) {
              req.set(p.assignment.planeId, 'FB_ID', 0);
              req.set(p.assignment.planeId, 'CRTC_ID', 0);
              frames.push({ p, id: 0, fbId: 0, imported: false, bytes: 0 });
            }
            action = still && !d.blank ? 'keep' : 'blank';
            p.view.blanked = true;
          }
          this.emit('not-ready', { plane: p.kind, action });
          break;
        }
        case 'replan':
          this.recoveredQuery(p);
          p.notReadyReported = false;
          replanReason ??= `${p.kind}: ${d.reason}`;
          break;
        case 'move': {
          this.recoveredQuery(p);
          if (!p.assignment) break;
          this.setCursorPos(req, p, d);
          p.view.shown = { ...p.view.shown!, x: d.x, y: d.y, xHot: d.xHot, yHot: d.yHot };
          p.stats.moves++;
          frames.push({ p, id: p.view.shown.id, fbId: p.fbId, imported: false, bytes: 0 });
          break;
        }
        case 'follow': {
          this.recoveredQuery(p);
          p.notReadyReported = false;
          if (!p.assignment) {
            replanReason ??= `${p.kind}: not assigned yet`;
            break;
          }
          const why = this.kernelFollowed(p, d);
          if (why) {
            replanReason ??= `${p.kind}: ${d.shapeChange ? `${d.shapeChange}; ` : ''}${why}`;
            break;
          }
          const info = p.last!;
          const shown = { id: info.id, desc: descOf(info), x: info.xPos | 0, y: info.yPos | 0, xHot: info.xHot >>> 0 === 0xffffffff ? null : info.xHot, yHot: info.yHot >>> 0 === 0xffffffff ? null : info.yHot };
          p.view.shown = shown;
          p.fbId = info.id;
          p.stats.kernelFlips++;
          this.stats.kernelFlips++;
          if (d.move) {
            this.setCursorPos(req, p, shown);
            p.stats.moves++;
            frames.push({ p, id: shown.id, fbId: p.fbId, imported: false, bytes: 0 });
          }
          this.emit('frame', {
            plane: p.kind, id: info.id, fbId: info.id, path: 'drm_fb', sequence: 0, vblankUs: 0, latencyUs: 0, latencyVblanks: 0,
            imported: false, bytesCopied: 0, frame: this.frameNo,
          });
          break;
        }
        case 'none': {
          this.recoveredQuery(p);
          // the last look found the plane on another recent guest fb: check it caught up
          if (p.racingLooks === 0 || !p.assignment || !p.view.shown) break;
          const why = this.checkFollowing(p, p.view.shown.id, true);
          if (why) replanReason ??= `${p.kind}: ${why}`;
          break;
        }
      }
    }
    if (replanReason) {
      this.replan(replanReason);
      this.schedule();
      return;
    }
    if (req.size === 0) {
      this.schedule();
      return;
    }
    this.commitFrame(req, frames);
  }

  /**
   * GETPLANE: does the hardware plane show the guest's framebuffer `id`? null: yes, or it is on
   * another recent fb of the guest plane while the guest is still flipping (look again later).
   */
  private checkFollowing(p: PlaneRuntime, id: number, guestIdle: boolean): string | null {
    const hw = this.hwPlane(p.assignment!.planeId, false);
    if ('error' in hw) return hw.error;
    let v = followVerdict(hw.fbId, id, shapeKey(p.last!), (fb) => this.shapeOfFb(p, fb));
    if (v === 'racing') {
      // look at the guest again: a guest flipping faster than we look is often one buffer
      // ahead of our query by the time the plane is read back (and a watch that samples a
      // cycle of buffers at a multiple of its length sees the same id every time: "idle")
      const q = this.query(p);
      if (q.status === 'ok' && shapeKey(q.info) === shapeKey(p.last!)) {
        p.fbHistory.note(q.info);
        if (q.info.id === hw.fbId) {
          p.last = q.info;
          p.fbId = q.info.id;
          if (p.view.shown) p.view.shown = { ...p.view.shown, id: q.info.id };
          v = 'exact';
        } else if (q.info.id !== id) {
          guestIdle = false; // still flipping
        }
      }
    }
    // the guest's own counter overrides what the ids suggest
    if (this.guestFlippedSinceLook !== null) guestIdle = guestIdle && !this.guestFlippedSinceLook;
    const step = racingStep(v, guestIdle, p.racingLooks);
    p.racingLooks = step.racingLooks;
    if (!step.fail) return null;
    if (v === 'racing') return `the hardware plane keeps showing framebuffer ${hw.fbId}, not the guest's ${id} (the in-kernel flip failed?)`;
    return hw.fbId === 0 ? 'the hardware plane was turned off' : `the hardware plane shows framebuffer ${hw.fbId} (another shape), not the guest's ${id} (the in-kernel flip failed?)`;
  }

  /**
   * A framebuffer's shape key: from the guest's recent buffers, else GETFB2 (a buffer the guest
   * went through between two looks, never seen in a query). undefined: unknown / gone.
   */
  private shapeOfFb(p: PlaneRuntime, fbId: number): string | undefined {
    const known = p.fbHistory.shapeOf(fbId);
    if (known !== undefined) return known;
    try {
      const fb = this.api.drmGetFb2(this.dev.fd, fbId);
      return shapeKey({ width: fb.width, height: fb.height, drmFormat: fb.format, drmFormatMod: fb.modifier ?? 0n, stride: fb.pitches[0] ?? 0 });
    } catch {
      return undefined;
    }
  }

  private setCursorPos(req: AtomicRequest, p: PlaneRuntime, d: { x: number; y: number; xHot: number | null; yHot: number | null }): void {
    const pos = this.cursorPos(p, d.x, d.y, d.xHot, d.yHot);
    req.set(p.assignment!.planeId, 'CRTC_X', pos.x);
    req.set(p.assignment!.planeId, 'CRTC_Y', pos.y);
  }

  /**
   * Did the vendor driver move our hardware plane to the guest's new framebuffer (and, after a
   * mode change, to the geometry the plan wants)? null: yes; else why not. Read-only ioctls.
   * A plane on another recent framebuffer of the same guest plane and shape counts as
   * following (the guest flipped between the query and the read-back) for a few looks.
   */
  private kernelFollowed(p: PlaneRuntime, d: { id: number; shapeChange: string | null }): string | null {
    if (!d.shapeChange) return this.checkFollowing(p, d.id, false);
    const hw = this.hwPlane(p.assignment!.planeId, true);
    if ('error' in hw) return hw.error;
    const info = p.last!;
    // the guest may have flipped again (same new shape) since the query
    const racing = followVerdict(hw.fbId, d.id, shapeKey(info), (fb) => this.shapeOfFb(p, fb)) === 'racing';
    p.racingLooks = racing ? Math.max(p.racingLooks, 1) : 0;
    const spec = this.specOf(p, info);
    const want = { src: { x: 0, y: 0, w: info.width, h: info.height }, dst: destination(spec, this.mode.hdisplay, this.mode.vdisplay) };
    return followsPlan(hw, racing ? hw.fbId : d.id, this.crtc.id, want);
  }

  /** The hardware plane as the kernel has it now: GETPLANE (fb, crtc) or, with geometry, its properties. */
  private hwPlane(planeId: number, geometry: boolean): HwPlaneState | { error: string } {
    try {
      if (!geometry) {
        const pl = this.api.drmGetPlane(this.dev.fd, planeId);
        const zero = { x: 0, y: 0, w: 0, h: 0 };
        return { fbId: pl.fbId, crtcId: pl.crtcId, src: zero, dst: zero };
      }
      const props = this.api.drmGetProperties(this.dev.fd, planeId, DRM_MODE_OBJECT_PLANE);
      const v = (name: string): number => {
        const pr = props.find((x) => x.name === name);
        return pr ? Number(BigInt.asIntN(64, pr.value)) : 0;
      };
      return {
        fbId: v('FB_ID'),
        crtcId: v('CRTC_ID'),
        src: { x: v('SRC_X') / 65536, y: v('SRC_Y') / 65536, w: v('SRC_W') / 65536, h: v('SRC_H') / 65536 },
        dst: { x: v('CRTC_X'), y: v('CRTC_Y'), w: v('CRTC_W'), h: v('CRTC_H') },
      };
    } catch (e) {
      return { error: `cannot read hardware plane ${planeId} back (${(e as Error).message})` };
    }
  }

  /**
   * Did the guest flip since the last look? From the vendor driver's own flip counter where it
   * has one (vgpu-sim's debugfs flip_count): exact. Without one, "the same id as last time" is
   * all the watch has, and a guest cycling through its buffers at a multiple of the watch's
   * period looks idle (see checkFollowing). null: no counter.
   */
  private guestFlippedSinceLook: boolean | null = null;
  private lastLookFlips: number | null = null;
  private noteGuestActivity(): void {
    if (!this.opts.guestFlipCount) return;
    let n: number | null = null;
    try {
      n = this.opts.guestFlipCount();
    } catch {
      n = null;
    }
    this.guestFlippedSinceLook = n === null || this.lastLookFlips === null ? null : n !== this.lastLookFlips;
    this.lastLookFlips = n;
  }

  private refreshGuestFlips(): void {
    if (this.guestFlipBase === null || !this.opts.guestFlipCount) return;
    try {
      const n = this.opts.guestFlipCount();
      if (n !== null) this.stats.guestFlips = n - this.guestFlipBase;
    } catch {
      /* the counter went away with the instance: keep the last value */
    }
  }

  /** DRM_FB counters: guest flips vs user-space commits (zero per guest flip when it works). */
  drmFbCounters(): DrmFbCounters {
    this.refreshGuestFlips();
    return { guestFlips: this.stats.guestFlips, kernelFlipsSeen: this.stats.kernelFlips, commits: this.stats.commits, assignCommits: this.stats.assignCommits, errors: this.stats.errors };
  }

  /** The DRM_FB status line ('' on the other paths). */
  drmFbStatus(): string {
    return this.path === 'drm_fb' ? drmFbStatusLine(this.drmFbCounters()) : '';
  }

  /** Stop (fatal, display restored) when the vGPU went away; checked at most every 400 ms. */
  private checkGone(): boolean {
    const src = this.guest as GuestSource & { gone?: () => string | null };
    const gone = this.opts.guestGone ?? (src.gone ? () => src.gone!() : null);
    if (!gone) return false;
    const now = nowUs();
    if (now - this.goneCheckedUs < 400_000) return false;
    this.goneCheckedUs = now;
    let why: string | null;
    try {
      why = gone();
    } catch (e) {
      why = `cannot tell whether the vGPU still exists: ${(e as Error).message}`;
    }
    if (!why) return false;
    this.stats.errors++;
    this.report({ stage: 'guest', error: new Error(`${why}: stopping and restoring the display`), count: 1, fatal: true });
    void this.stop();
    return true;
  }

  private recoveredQuery(p: PlaneRuntime): void {
    const n = p.queryStreak.ok();
    if (n >= this.reportAfter) this.emit('recovered', { plane: p.kind, stage: 'query', afterFailures: n });
  }

  /**
   * Where the guest screen's (0,0) is on the CRTC, and its scale: the guest primary's placement
   * (cursor positions are guest-screen coordinates).
   */
  private guestOrigin(): { x: number; y: number; sx: number; sy: number } {
    const prim = this.planes.find((p) => p.kind === 'primary');
    const info = prim?.last;
    if (!prim || !info || info.width === 0) return { x: 0, y: 0, sx: 1, sy: 1 };
    const spec: GuestPlaneSpec = { kind: 'primary', format: info.drmFormat, modifier: info.drmFormatMod, width: info.width, height: info.height };
    if (prim.req.placement) spec.placement = prim.req.placement;
    const d = destination(spec, this.mode.hdisplay, this.mode.vdisplay);
    return { x: d.x, y: d.y, sx: d.w / info.width, sy: d.h / info.height };
  }

  private cursorPos(p: PlaneRuntime, x: number, y: number, xHot: number | null, yHot: number | null): { x: number; y: number } {
    if (p.kind !== 'cursor') return { x, y };
    const o = this.guestOrigin();
    // the image's top-left in guest coordinates; with --fill the position scales, the image does not
    const gx = this.opts.cursorOrigin === 'hotspot' ? x - (xHot ?? 0) : x;
    const gy = this.opts.cursorOrigin === 'hotspot' ? y - (yHot ?? 0) : y;
    return { x: o.x + Math.round(gx * o.sx), y: o.y + Math.round(gy * o.sy) };
  }

  private newRequest(): AtomicRequest {
    return new AtomicRequest(this.dev.fd, this.index, this.api);
  }

  private commitFrame(req: AtomicRequest, frames: PendingFrame['planes']): void {
    const userData = this.dev.allocUserData();
    const committedUs = nowUs();
    for (const f of frames) f.p.bufs.cache.committed(f.fbId);
    try {
      req.commit(DRM_MODE_ATOMIC_NONBLOCK | DRM_MODE_PAGE_FLIP_EVENT, userData);
      this.stats.commits++;
    } catch (e) {
      // undo the optimistic view updates: retried next frame
      for (const f of frames) {
        f.p.bufs.cache.committed(f.p.fbId);
        f.p.view.shown = f.p.view.shown ? { ...f.p.view.shown, id: -1 } : null;
        if (f.fbId === 0) f.p.view.blanked = false; // a blanking frame that failed is retried
      }
      const why = commitFailure(e);
      if (why === 'busy') {
        this.schedule();
        return;
      }
      // TEST_ONLY passes but the real commit fails: a driver that cannot use the buffer (vkms
      // needs vmap). Copy the buffers that were never shown before; errors that do not mean
      // "this buffer cannot be scanned out" (not master, EBUSY) never demote a buffer.
      const fresh = frames.filter((f) => f.got && !f.got.copied && f.got.entry.scanout === 'untried');
      if (why === 'buffer' && fresh.length && req.testOnly(0).ok) {
        for (const f of fresh) f.p.bufs.refuse(f.got!.entry, `TEST_ONLY passed but the commit failed: ${(e as Error).message.split(' [')[0]}`);
      } else {
        this.stats.errors++;
        const n = this.commitStreak.current + 1;
        if (this.commitStreak.fail()) this.report({ stage: 'commit', error: e, count: n, fatal: false });
      }
      this.schedule();
      return;
    }
    const n = this.commitStreak.ok();
    if (n >= this.reportAfter) this.emit('recovered', { stage: 'commit', afterFailures: n });
    for (const f of frames) {
      f.p.fbId = f.fbId;
      if (f.got) f.p.bufs.presented(f.got);
      else if (f.p.path === 'copy') f.p.copies.presented(f.fbId);
      f.p.view.copyMode = this.presentPath(f.p) === 'copy';
      if (f.id !== 0 && f.fbId !== 0) f.p.stats.flips++;
      if (f.fbId === 0) f.p.fbId = 0;
    }
    this.pending = { userData, committedUs, planes: frames };
  }

  // ---- framebuffers ----------------------------------------------------------------------------

  /** What the DMABUF buffers of one plane need from the engine. */
  private dmabufHost(kind: GuestPlaneKind): DmabufHost {
    return {
      api: this.api,
      dev: this.dev,
      exportDmabuf: (id) => this.guest.getDmabuf(id),
      problem: (stage, error, count) => {
        this.stats.errors++;
        this.report({ plane: kind, stage, error, count, fatal: false });
      },
      videoMemory: () => this.videoMemory(),
      locator: () => this.guest.videoMemoryLocator?.() ?? null,
      fallback: (reason) => this.emit('fallback', reason === null ? { plane: kind, from: 'copy', to: 'dmabuf', reason: 'zero copy again: the guest buffer can be scanned out' } : { plane: kind, from: 'dmabuf', to: 'copy', reason }),
    };
  }

  /** BAR0 of the vGPU mapped read-only (VFIO_PCI_BAR0_REGION_INDEX), opened once; null when not mappable. */
  private vram: CopySource | null | undefined;
  private videoMemory(): CopySource | null {
    if (this.vram !== undefined) return this.vram;
    try {
      const r = this.guest.openRegion(0, Number.MAX_SAFE_INTEGER);
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

  /** The framebuffer for this guest buffer: cached, imported, or a copy. null: skip this frame. */
  private obtainFb(p: PlaneRuntime, id: number, desc: BufferDesc, info: GfxPlaneInfo): { fbId: number; imported: boolean; bytes: number; got?: Obtained } | null {
    if (p.path === 'copy') return this.copyRegion(p, id, desc, info);
    // DRM_FB: the id is already a framebuffer of this device (owned by the vendor driver)
    if (p.path === 'drm_fb') {
      const bad = vendorFbMismatch(this.fb2(id), id, desc);
      if (bad) {
        if (this.badVendorFbs.has(id)) return null; // reported once
        this.badVendorFbs.add(id);
        this.stats.errors++;
        this.report({ plane: p.kind, stage: `DRM_FB framebuffer ${id} from the vendor driver`, error: new Error(`${this.guest.label}: ${bad}; not putting it on a plane`), count: 1, fatal: false });
        return null;
      }
      return { fbId: id, imported: false, bytes: 0 };
    }
    const got = p.bufs.obtain(id, desc, info.size, this.frameNo);
    if (!got) return null;
    return { fbId: got.fbId, imported: got.imported, bytes: got.bytes, got };
  }

  private closeCopySource(p: PlaneRuntime): void {
    try {
      p.copySource?.close();
    } catch {
      /* already gone */
    }
    p.copySource = null;
    p.copySourceKey = '';
  }

  /** REGION path: copy the guest's region into a dumb buffer not on screen. */
  private copyRegion(p: PlaneRuntime, id: number, desc: BufferDesc, info: GfxPlaneInfo): { fbId: number; imported: boolean; bytes: number } | null {
    try {
      const key = `${id}:${desc.width}x${desc.height}:${desc.stride}:${info.size}`;
      if (p.copySourceKey !== key) {
        this.closeCopySource(p);
        p.copySource = this.guest.openRegion(id, info.size || desc.stride * desc.height);
        p.copySourceKey = key;
      }
      const r = p.copies.copy(p.copySource!, desc);
      p.stats.copies++;
      p.stats.bytesCopied += r.bytes;
      p.importStreak.ok();
      return { fbId: r.fbId, imported: false, bytes: r.bytes };
    } catch (e) {
      p.stats.errors++;
      this.stats.errors++;
      this.closeCopySource(p);
      const n = p.importStreak.current + 1;
      if (p.importStreak.fail()) this.report({ plane: p.kind, stage: 'copy', error: e, count: n, fatal: false });
      return null;
    }
  }

  /** GETFB2 of a framebuffer id, or the error. */
  private fb2(fbId: number): DrmFb2 | Error {
    try {
      return this.api.drmGetFb2(this.dev.fd, fbId);
    } catch (e) {
      return e as Error;
    }
  }

  /** The path a plane presents through now ('copy' while its DMABUF buffer is being copied). */
  private presentPath(p: PlaneRuntime): PresentPath {
    return p.path === 'dmabuf' && p.bufs.copying !== null ? 'copy' : p.path;
  }

  // ---- planning ----------------------------------------------------------------------------------

  private specOf(p: PlaneRuntime, info: GfxPlaneInfo): GuestPlaneSpec {
    const d = descOf(info);
    const spec: GuestPlaneSpec = { kind: p.kind, format: d.format, modifier: d.modifier, width: d.width, height: d.height };
    if (p.req.placement) spec.placement = p.req.placement;
    if (p.req.hwPlaneId !== undefined) spec.hwPlaneId = p.req.hwPlaneId;
    if (p.kind === 'cursor') {
      const pos = this.cursorPos(p, info.xPos | 0, info.yPos | 0, info.xHot >>> 0 === 0xffffffff ? null : info.xHot, info.yHot >>> 0 === 0xffffffff ? null : info.yHot);
      spec.x = pos.x;
      spec.y = pos.y;
    }
    return spec;
  }

  /** Set the CRTC-level part of a request: mode (first time), connector routing, disabled planes. */
  private buildRequest(layout: Layout, fbs: Map<GuestPlaneKind, number>, modeset: boolean): AtomicRequest {
    const req = this.newRequest();
    if (modeset) {
      if (!this.modeBlob) this.modeBlob = this.dev.createModeBlob(this.mode);
      req.set(this.crtc.id, 'MODE_ID', this.modeBlob.id);
      req.set(this.crtc.id, 'ACTIVE', 1);
      if (this.connector) req.set(this.connector.id, 'CRTC_ID', this.crtc.id);
    }
    const used = new Set(layout.assignments.map((a) => a.planeId));
    for (const id of new Set([...layout.disable, ...this.usedHwPlanes])) {
      if (used.has(id)) continue;
      req.set(id, 'FB_ID', 0);
      req.set(id, 'CRTC_ID', 0);
    }
    for (const a of layout.assignments) {
      const fb = fbs.get(a.guest)!;
      req.placePlane(a.planeId, layout.crtcId, fb, { w: a.src.w, h: a.src.h }, a.dst);
      if (a.zpos !== undefined) req.setIfPresent(a.planeId, 'zpos', a.zpos);
    }
    return req;
  }

  /** Plan (again) for every ready guest plane, TEST_ONLY the layouts, commit the first that passes. */
  private replan(reason: string): void {
    const ready = this.planes.filter((p) => p.last && !this.isNotReadyNow(p));
    if (ready.length === 0) return;
    // buffers first: TEST_ONLY needs real framebuffers
    const fbs = new Map<GuestPlaneKind, number>();
    const got = new Map<PlaneRuntime, { fbId: number; imported: boolean; bytes: number; got?: Obtained }>();
    for (const p of ready) {
      const info = p.last!;
      const r = this.obtainFb(p, info.id, descOf(info), info);
      if (!r) {
        this.lastProblem = `no framebuffer for the guest ${p.kind} plane yet (see errors)`;
        return;
      }
      fbs.set(p.kind, r.fbId);
      got.set(p, r);
    }
    this.adoptGuestMode();
    const specs = ready.map((p) => this.specOf(p, p.last!));
    let plan;
    try {
      plan = planLayouts(this.snapshot, { crtcIndex: this.crtc.index, crtcWidth: this.mode.hdisplay, crtcHeight: this.mode.vdisplay, guests: specs });
    } catch (e) {
      this.stats.errors++;
      this.report({ stage: 'plan', error: e, count: 1, fatal: false });
      return;
    }
    const modeset = this.needModeset;
    const flags = modeset ? DRM_MODE_ATOMIC_ALLOW_MODESET : 0;
    const abortOn = (v: unknown): boolean => typeof v === 'object' && v !== null && 'code' in v && ['EACCES', 'EPERM', 'ENODEV', 'EBADF'].includes(String((v as { code: unknown }).code));
    let result = tryLayouts(plan.layouts, (l) => this.buildRequest(l, fbs, modeset).testOnly(flags), { abortOn });
    let explanation = explainPlan(plan, result);
    if (!result.chosen && result.aborted) {
      const last = result.attempts[result.attempts.length - 1]!;
      if (/EACCES|EPERM/.test(last.reason)) {
        explanation = [`${this.dev.path}: the kernel refuses our commits (${last.reason.split(' [')[0]}): this process is not DRM master — another process (a display server?) owns the display`];
      }
    }
    if (!result.chosen) {
      const key = explanation.join('\n');
      this.lastProblem = `no hardware plane layout works: ${explanation.join(' | ')}`;
      if (key !== this.planFailureReported) {
        this.planFailureReported = key;
        this.stats.errors++;
        this.emit('error', { stage: 'plan', message: explanation.join('\n'), kernel: null, count: 1, fatal: false });
      }
      return;
    }
    let chosen = result.chosen;
    // the real commit (blocking: the assignment is in place when this returns)
    const commitWith = (l: Layout): unknown => {
      try {
        this.buildRequest(l, fbs, modeset).commit(flags);
        this.stats.commits++;
        this.stats.assignCommits++;
        return null;
      } catch (e) {
        return e;
      }
    };
    let err = commitWith(chosen);
    if (err && commitFailure(err) === 'buffer') {
      // TEST_ONLY passed but the commit failed: copy the buffers never shown before, one plane
      // at a time (errors that are not about a buffer never demote one)
      for (const p of ready) {
        const r0 = got.get(p)!;
        if (!r0.got || r0.got.copied || r0.got.entry.scanout !== 'untried') continue;
        p.bufs.refuse(r0.got.entry, `TEST_ONLY passed but the commit failed: ${(err as Error).message.split(' [')[0]}`);
        const info = p.last!;
        const r = this.obtainFb(p, info.id, descOf(info), info);
        if (!r) continue;
        fbs.set(p.kind, r.fbId);
        got.set(p, r);
        result = tryLayouts(plan.layouts, (l) => this.buildRequest(l, fbs, modeset).testOnly(flags), { abortOn });
        explanation = explainPlan(plan, result);
        if (!result.chosen) continue;
        chosen = result.chosen;
        err = commitWith(chosen);
        if (!err) break;
      }
    }
    if (err) {
      this.stats.errors++;
      const n = this.commitStreak.current + 1;
      this.commitStreak.fail();
      this.report({ stage: 'commit (assignment)', error: err, count: n, fatal: false });
      return;
    }
    this.commitStreak.ok();
    this.needModeset = false;
    this.layout = chosen;
    if (this.guestFlipBase === null && this.opts.guestFlipCount) {
      this.guestFlipBase = this.opts.guestFlipCount();
      if (this.guestFlipBase !== null) this.stats.guestFlips = 0;
    }
    this.usedHwPlanes = new Set(chosen.assignments.map((a) => a.planeId));
    for (const p of this.planes) {
      const a = chosen.assignments.find((x) => x.guest === p.kind) ?? null;
      p.assignment = a;
      const r = got.get(p);
      if (a && r) {
        const info = p.last!;
        p.fbId = r.fbId;
        p.bufs.cache.committedAndFlipped(r.fbId);
        p.bufs.flipCompleted();
        if (r.got) p.bufs.presented(r.got);
        else if (p.path === 'copy') p.copies.presented(r.fbId);
        p.copies.flipCompleted(r.fbId);
        p.view.copyMode = this.presentPath(p) === 'copy';
        p.view.shown = { id: info.id, desc: descOf(info), x: info.xPos | 0, y: info.yPos | 0, xHot: info.xHot >>> 0 === 0xffffffff ? null : info.xHot, yHot: info.yHot >>> 0 === 0xffffffff ? null : info.yHot };
        p.view.blanked = false;
        p.racingLooks = 0;
        p.stats.flips++;
      }
    }
    if (modeset) explanation.push(`  modeset: ${describeMode(this.mode)} on ${this.connector?.name ?? '?'} (ALLOW_MODESET)`);
    for (const p of ready) if (this.presentPath(p) === 'copy') explanation.push(`  guest ${p.kind}: copy path (${p.path === 'copy' ? 'REGION' : `fallback: ${p.bufs.copying}`})`);
    this.lastExplanation = explanation;
    this.planFailureReported = '';
    this.lastProblem = '';
    const paths: AssignedEvent['paths'] = {};
    for (const p of ready) paths[p.kind] = this.presentPath(p);
    this.lastAssigned = { layout: chosen, paths, explanation, modeset, reason };
    this.emit('assigned', this.lastAssigned);
    for (const p of ready) {
      const r = got.get(p)!;
      this.emit('frame', {
        plane: p.kind, id: p.last!.id, fbId: r.fbId, path: r.got?.copied ? 'copy' : p.path, sequence: 0, vblankUs: 0, latencyUs: 0, latencyVblanks: 0,
        imported: r.imported, bytesCopied: r.bytes, frame: this.frameNo,
      });
    }
    this.stats.frames++;
  }

  /** --mode guest: switch to the connector mode of the guest primary's size (a modeset), if offered. */
  private guestModeDone = false;
  private adoptGuestMode(): void {
    if (this.opts.mode !== 'guest' || this.guestModeDone) return;
    const prim = this.planes.find((p) => p.kind === 'primary');
    if (!prim?.last || !prim.readyNow) return;
    this.guestModeDone = true;
    const w = prim.last.width;
    const h = prim.last.height;
    if (this.mode.hdisplay === w && this.mode.vdisplay === h) return;
    const m = this.connector?.modes.find((x) => x.hdisplay === w && x.vdisplay === h);
    if (!m) return;
    this.mode = m;
    this.periodUs = m.vrefresh > 0 ? Math.round(1e6 / m.vrefresh) : 16667;
    this.needModeset = true;
    this.modeBlob?.destroy();
    this.modeBlob = null;
  }

  private isNotReadyNow(p: PlaneRuntime): boolean {
    return p.last === null || !p.readyNow;
  }

  /** Emit an 'error' event (the caller counts the failure in stats). */
  private report(o: { plane?: GuestPlaneKind; stage: string; error: unknown; count: number; fatal: boolean }): void {
    const e: Parameters<EngineEvents['error']>[0] = {
      stage: o.stage,
      message: o.error instanceof Error ? o.error.message : String(o.error),
      kernel: isKernelError(o.error) ? kernelErrorFields(o.error) : null,
      count: o.count,
      fatal: o.fatal,
    };
    if (o.plane) e.plane = o.plane;
    this.emit('error', e);
  }
}
