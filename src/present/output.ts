// An output: one CRTC of a display and the connector it drives, with its mode and its own frame
// clock (its page-flip events; a timer at the mode's period while nothing changes; never a busy
// loop). Every frame it looks at each of its layers (look.ts), whatever guest they belong to,
// and makes ONE nonblocking atomic commit with every layer's change. A layer that needs a new
// plan makes the output plan all its layers again (assign.ts: plan -> TEST_ONLY -> commit ->
// fallback). The display state found at start is restored by stop().
import { EventEmitter } from 'eventemitter3';
import type { DrmEvent, ModeInfo } from '../binding/types.js';
import { isKernelError, kernelErrorFields } from '../binding/errors.js';
import { AtomicRequest, captureState, restoreState, type PropertyBlob } from '../kms/index.js';
import type { ConnectorSnapshot, CrtcSnapshot, SavedKmsState } from '../kms/types.js';
import { FailureStreak, type NotReadyPolicy } from '../flip/decide.js';
import type { AssignedEvent, EngineEvents } from '../flip/events.js';
import type { Layout } from '../flip/planner.js';
import type { Display } from './display.js';
import type { Guest } from './guest.js';
import { GuestsOfLayers, who, type Layer } from './layer.js';
import { isDue, lookLayer, type FramePlane, type LookHost } from './look.js';
import { chooseMode, connectorFor, modeAgain, type ModeRequest } from './mode.js';
import { dropGoneGuest } from './compose.js';
import { newEngineStats, sumGuestFlips, type EngineStats } from './stats.js';
import { assignLayers } from './assign.js';
import { commitFrame, type PendingFrame } from './frame.js';
import { IDLE_AFTER_LOOKS, IDLE_MAX_MS, nextLookDelayMs } from './pace.js';
import { dropPlaceholder, idleWhenBlank, placeIdle, type PlaceholderFill, type ShownPlaceholder } from './placeholder.js';

export interface OutputOptions {
  crtcIndex: number;
  /** a mode to set; 'guest': the connector mode of the first guest primary's size; default: keep the CRTC's */
  mode?: ModeRequest | 'guest';
  notReady?: NotReadyPolicy;
  /** failures in a row before an error is reported (default 3) */
  reportAfter?: number;
  /** DRM_FB layers only: how often to look (ms, default 100) */
  watchIntervalMs?: number;
  /** polled layers unchanged for this many looks start backing off (pace.ts; default 120) */
  idleAfterLooks?: number;
  /** the longest wait between looks of an unchanged polled guest (ms, default 100; 0: never back off) */
  idleMaxMs?: number;
  /**
   * what the output shows while none of its guests is on screen (placeholder.ts). With it the
   * output starts without layers and keeps running when its last guest goes away; without it
   * the last guest going away stops the output and restores the display.
   */
  placeholder?: PlaceholderFill;
}

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

export class Output extends EventEmitter<EngineEvents> implements LookHost {
  readonly layers: Layer[] = [];
  readonly stats: EngineStats = newEngineStats();
  readonly notReady: NotReadyPolicy;
  readonly reportAfter: number;
  crtc!: CrtcSnapshot;
  connector: ConnectorSnapshot | null = null;
  mode!: ModeInfo;
  needModeset = false;
  modeBlob: PropertyBlob | null = null;
  layout: Layout | null = null;
  usedHwPlanes = new Set<number>();
  frameNo = 0;
  readonly commitStreak = new FailureStreak();
  lastExplanation: string[] = [];
  lastAssigned: AssignedEvent | null = null;
  lastProblem = 'the guest has not enabled its display yet';
  planFailureReported = '';
  guestModeDone = false;
  periodUs = 16667;
  /** the idle placeholder on screen, null when it is not */
  placeholder: ShownPlaceholder | null = null;
  private saved: SavedKmsState | null = null;
  private pending: PendingFrame | null = null;
  private timer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  running = false;
  private paused = false;
  private lastVblankUs = 0;
  private stopping: Promise<void> | null = null;
  private pendingWaiters: (() => void)[] = [];
  /** looks in a row that found nothing new (pace.ts rule 4) */
  private idleLooks = 0;

  constructor(
    readonly display: Display,
    readonly opts: OutputOptions,
  ) {
    super();
    this.notReady = opts.notReady ?? 'keep';
    this.reportAfter = opts.reportAfter ?? 3;
  }

  get width(): number {
    return this.mode.hdisplay;
  }
  get height(): number {
    return this.mode.vdisplay;
  }
  get crtcId(): number {
    return this.crtc.id;
  }
  /** presenting is paused (master lost, connector gone, a capture): no frames are due */
  get isPaused(): boolean { return this.paused; }
  private readonly guestsOfLayers = new GuestsOfLayers();
  /** the guests of the layers, each once, in layer order */
  get guests(): readonly Guest[] {
    return this.guestsOfLayers.of(this.layers);
  }

  /** Add a layer (before start, or later: it is planned on the next frame). */
  add(layer: Layer): Layer {
    if (this.layers.some((l) => l.name === layer.name)) throw new Error(`layer ${layer.name} is already on CRTC ${this.opts.crtcIndex}`);
    const newGuest = !this.guests.includes(layer.guest);
    this.layers.push(layer);
    this.stats.planes[layer.name] = layer.stats;
    if (newGuest && this.running) this.listenTo(layer.guest); // a guest added while presenting (kiosk)
    for (const l of this.layers) l.primary = this.layers.find((x) => x.guest === l.guest && x.kind === 'primary') ?? null;
    return layer;
  }

  /**
   * Validate against the device, save the display state of this CRTC, start presenting. Throws
   * (before the screen changes) for a CRTC out of range or an unknown mode.
   */
  start(): void {
    if (this.running) return;
    if (this.layers.length === 0 && !this.opts.placeholder) throw new Error('no guest plane to assign (use --plane primary and/or --plane cursor)');
    const snap = this.display.snapshot;
    const crtc = snap.crtcs.find((c) => c.index === this.opts.crtcIndex);
    if (!crtc) {
      throw new Error(`CRTC ${this.opts.crtcIndex} does not exist on ${this.display.dev.path} (it has ${snap.crtcs.length}: 0..${snap.crtcs.length - 1})`);
    }
    this.crtc = crtc;
    this.connector = connectorFor(snap, crtc);
    const { mode, modeset } = chooseMode(crtc, this.connector, this.opts.mode === 'guest' ? undefined : this.opts.mode);
    if (modeset && !this.connector) throw new Error(`CRTC ${crtc.index} needs a modeset but no connected connector can be driven by it`);
    this.setMode(mode, modeset);
    this.saved = captureState(snap, { crtcIds: [crtc.id], connectorIds: this.connector ? [this.connector.id] : [] });
    this.running = true;
    this.unsubscribe = this.display.dev.onEvent('flip', (e) => this.onFlip(e));
    this.lastVblankUs = nowUs();
    this.listenToGuests();
    placeIdle(this);
    this.tick();
  }

  /** Guests with a display event wake the output when they change something (no looking every frame). */
  private listenToGuests(): void {
    for (const g of this.guests) this.listenTo(g);
  }

  private listenTo(g: Guest): void {
    try {
      g.listen(this, () => this.onGuestEvent(), (fd, cb) => this.display.api.pollReadable(fd, cb));
    } catch (e) {
      this.report({ stage: `display event of ${g.label}`, error: e, count: 1, fatal: false });
    }
  }

  private onGuestEvent(): void {
    if (!this.running || this.paused || this.pending) return; // a pending flip looks when it completes
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.tick();
  }

  /** a reason to plan every layer again on the next frame (master regained, hotplug) */
  private forced: string | null = null;

  /**
   * Plan every layer again on the next frame; `modeset`: choose the mode again from the
   * connector as the device has it now (hotplug, link-status BAD, another master was here).
   */
  replanSoon(reason: string, modeset: boolean): void {
    this.forced = reason;
    if (modeset && this.running) {
      try {
        const { connector, mode } = modeAgain(this.display.snapshot, this.crtc, this.connector, this.opts.mode, this.mode);
        this.connector = connector;
        this.setMode(mode, true);
      } catch (e) {
        this.report({ stage: 'mode', error: e, count: 1, fatal: false });
      }
    }
  }

  /** the assignment could not be made now (master lost): make it when presenting resumes */
  forceReplanLater(reason: string): void {
    this.forced = reason;
  }

  setMode(mode: ModeInfo, modeset: boolean): void {
    this.mode = mode;
    this.needModeset = modeset;
    this.periodUs = mode.vrefresh > 0 ? Math.round(1e6 / mode.vrefresh) : 16667;
    if (modeset) {
      this.modeBlob?.destroy();
      this.modeBlob = null;
    }
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
    if (wasRunning && this.saved && !this.display.dev.closed) {
      try {
        const r = restoreState(this.display.dev, this.saved);
        restored = true;
        message = r.disabledPlanes.length ? `display restored (planes ${r.disabledPlanes.join(', ')} left off)` : 'display restored';
      } catch (e) {
        message = `restoring the display failed: ${(e as Error).message}`;
        this.stats.errors++;
        this.report({ stage: 'restore', error: e, count: 1, fatal: true });
      }
    }
    for (const l of this.layers) for (const err of l.source.release()) this.report({ layer: l, stage: 'cleanup', error: err, count: 1, fatal: false });
    for (const g of this.guests) g.close();
    dropPlaceholder(this);
    this.modeBlob?.destroy();
    this.modeBlob = null;
    this.emit('stopped', { restored, message });
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

  // ---- frame clock ----------------------------------------------------------------------------

  schedule(delayMs?: number): void {
    if (!this.running || this.paused || this.timer) return;
    // commits (not master, a refused layout) or every layer's query failing in a row count as
    // failing (a transient error is retried next frame); pace.ts has the rules
    const failing = Math.max(this.commitStreak.current, Math.min(...this.layers.map((l) => l.queryStreak.current)) - 1);
    const d = delayMs ?? nextLookDelayMs({
      periodUs: this.periodUs, sinceVblankUs: nowUs() - this.lastVblankUs, failing,
      allWaitingOnEvents: this.layers.every((l) => !isDue(l, this)),
      allDrmFb: this.layers.every((l) => l.source.path === 'drm_fb'), watchIntervalMs: this.opts.watchIntervalMs ?? 100,
      idleLooks: this.idleLooks, idleAfterLooks: this.opts.idleAfterLooks ?? IDLE_AFTER_LOOKS, idleMaxMs: this.opts.idleMaxMs ?? IDLE_MAX_MS,
    });
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
      f.layer.source.flipCompleted(f.fbId);
      this.frameEvent(f.layer, {
        id: f.id, fbId: f.fbId, path: f.got?.got?.copied ? 'copy' : f.layer.source.path, sequence: e.sequence, vblankUs: e.timeUs,
        latencyUs, latencyVblanks: vblanks, imported: f.imported, bytesCopied: f.bytes,
      });
    }
    if (this.pendingWaiters.length) for (const w of this.pendingWaiters.splice(0)) w();
    if (this.running && !this.paused) {
      // a guest may have flipped again meanwhile: look now (we are at a vblank)
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.tick();
    }
  }

  /** One frame. Public for tests and the bench (they may drive frames themselves). */
  tick(): void {
    if (!this.running || this.paused || this.pending) return;
    const dev = this.display.dev;
    if (dev.closed) {
      this.running = false;
      this.report({ stage: 'tick', error: new Error(`${dev.path} was closed while presenting`), count: 1, fatal: true });
      return;
    }
    if (dropGoneGuest(this, nowUs())) return; // a guest that went away leaves (compose.ts)
    idleWhenBlank(this);
    this.stats.ticks++;
    this.frameNo++;
    for (const g of this.guests) if (g.path === 'drm_fb' && g.changedFor(this, 'any')) g.look();
    this.refreshGuestFlips();
    let replanReason: string | null = null;
    const req = this.newRequest();
    const frames: FramePlane[] = [];
    for (const l of this.layers) {
      if (!isDue(l, this)) continue;
      const why = lookLayer(l, this, req, frames);
      replanReason ??= why;
    }
    for (const g of this.guests) g.lookedBy(this);
    if (this.forced) {
      replanReason = this.forced;
      this.forced = null;
    }
    this.idleLooks = replanReason || req.size > 0 ? 0 : this.idleLooks + 1;
    if (replanReason) {
      assignLayers(this, replanReason);
      this.schedule();
      return;
    }
    if (req.size === 0) {
      this.schedule();
      return;
    }
    this.commitFrame(req, frames);
  }

  refreshGuestFlips(): void {
    this.stats.guestFlips = sumGuestFlips(this.guests) ?? this.stats.guestFlips;
  }

  newRequest(): AtomicRequest {
    return new AtomicRequest(this.display.dev.fd, this.display.index, this.display.api);
  }

  private commitFrame(req: AtomicRequest, frames: FramePlane[]): void {
    const p = commitFrame(this, req, frames);
    if (p) this.pending = p;
    else this.schedule();
  }

  // ---- LookHost: what layers report ---------------------------------------------------------------

  problem(layer: Layer, stage: string, error: unknown, count: number, report: boolean): void {
    this.stats.errors++;
    if (report) this.report({ layer, stage, error, count, fatal: false });
  }
  setProblem(text: string): void {
    this.lastProblem = text;
  }
  queryRecovered(l: Layer): void {
    const n = l.queryStreak.ok();
    if (n >= this.reportAfter) this.emit('recovered', { ...who(l), stage: 'query', afterFailures: n });
  }
  notReadyEvent(l: Layer, action: 'keep' | 'blank' | 'wait'): void {
    this.emit('not-ready', { ...who(l), action });
  }
  frameEvent(l: Layer, e: Omit<Parameters<EngineEvents['frame']>[0], 'plane' | 'frame'>): void {
    this.emit('frame', { ...who(l), ...e, frame: this.frameNo });
  }
  kernelFlip(l: Layer): void {
    l.stats.kernelFlips++;
    this.stats.kernelFlips++;
  }

  /** Emit an 'error' event (the caller counts the failure in stats). */
  report(o: { layer?: Layer; stage: string; error: unknown; count: number; fatal: boolean }): void {
    const e: Parameters<EngineEvents['error']>[0] = {
      stage: o.stage,
      message: o.error instanceof Error ? o.error.message : String(o.error),
      kernel: isKernelError(o.error) ? kernelErrorFields(o.error) : null,
      count: o.count,
      fatal: o.fatal,
    };
    if (o.layer) Object.assign(e, who(o.layer));
    this.emit('error', e);
  }
}
