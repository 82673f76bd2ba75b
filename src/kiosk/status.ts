// What `vgpu-flip status` shows (issue 9): per output and per layer, what the presentation core
// counts (src/present/stats.ts) plus what only its events tell: frames per second (sampled),
// flip latency, the last error. StatusTracker follows the daemon's outputs (it attaches to each
// output the first time it sees it, so outputs brought up by a reload are followed too);
// statusReport() builds the JSON the control socket sends. Rendering is in status-render.ts.
import type { Output } from '../present/output.js';
import type { LeaseStatus } from './lease-keeper.js';
import type { Layer } from '../present/layer.js';
import type { KioskConfig } from './model.js';
import { sourceText } from './model.js';

export interface LastError {
  message: string;
  stage: string;
  /** ISO time */
  at: string;
}

export interface LayerStatus {
  name: string;
  vm: string;
  plane: string;
  /** the guest's display path: drm-fb, dmabuf, region */
  path: string;
  /** how its last frame reached the screen: drm-fb, dmabuf (zero copy), copy; null before the first */
  presenting: string | null;
  /** the guest has shown a plane in its last answer */
  ready: boolean;
  fps: number;
  /** frames of this layer on screen: our flips plus (DRM_FB) the guest flips the kernel followed */
  frames: number;
  copies: number;
  bytesCopied: number;
  imports: number;
  errors: number;
  notReadyFrames: number;
  lastError: LastError | null;
  /** commit -> flip complete of this layer's frames, ms (last and mean of the last 64); null before any */
  latencyMs: { last: number; mean: number } | null;
}

export interface OutputStatus {
  name: string;
  state: 'presenting' | 'paused' | 'stopped' | 'no-monitor' | 'no-vm' | 'no-lease';
  connector: string | null;
  device: string | null;
  crtc: number | null;
  mode: string | null;
  fps: number;
  /** frames on screen: our flips plus (DRM_FB) the guest flips the kernel made and a look followed */
  frames: number;
  commits: number;
  errors: number;
  lastError: LastError | null;
  layers: LayerStatus[];
  /** a leased output (`lease:`): held, or what its keeper waits for */
  lease?: LeaseStatus;
}

export interface StatusReport {
  pid: number;
  uptimeSeconds: number;
  outputs: OutputStatus[];
  /** waiting: why a VM is not shown (not running, gone, an error), null while it is */
  vms: { name: string; source: string; layersOnScreen: number; waiting: string | null }[];
}

export interface Followed {
  lastError: LastError | null;
  layerErrors: Map<string, LastError>;
  latency: Map<string, { last: number; ring: number[] }>;
  presenting: Map<string, string>;
  /** frame counts at the previous sample, and the rates they gave */
  prev: { at: number; frames: number; layers: Map<string, number> } | null;
  fps: number;
  layerFps: Map<string, number>;
  ticks: number;
}

const dashed = (p: string): string => p.replace('_', '-');
const layerFrames = (l: Layer): number => l.stats.flips + l.stats.kernelFlips;
const outputFrames = (out: Output): number => out.stats.frames + out.stats.kernelFlips;

export class StatusTracker {
  private readonly followed = new WeakMap<Output, Followed>();
  private readonly started = Date.now();

  constructor(private readonly now: () => number = () => Date.now()) {}

  /** Start following an output (idempotent): its errors, frames and latencies. */
  follow(out: Output): Followed {
    let f = this.followed.get(out);
    if (f) return f;
    const fl: Followed = { lastError: null, layerErrors: new Map(), latency: new Map(), presenting: new Map(), prev: null, fps: 0, layerFps: new Map(), ticks: out.stats.ticks };
    f = fl;
    out.on('error', (e) => {
      const le = { message: e.message, stage: e.stage, at: new Date(this.now()).toISOString() };
      fl.lastError = le;
      const name = e.layer ?? e.plane;
      if (name) fl.layerErrors.set(name, le);
    });
    out.on('frame', (e) => {
      const name = e.layer ?? e.plane;
      fl.presenting.set(name, dashed(e.path));
      if (e.sequence === 0) return; // an assignment's blocking commit, or a DRM_FB kernel flip: no latency
      const ms = e.latencyUs / 1000;
      const l = fl.latency.get(name) ?? { last: 0, ring: [] };
      l.last = ms;
      l.ring.push(ms);
      if (l.ring.length > 64) l.ring.shift();
      fl.latency.set(name, l);
    });
    out.on('assigned', (e) => {
      for (const [name, p] of Object.entries(e.paths)) if (p) fl.presenting.set(name, dashed(p));
    });
    this.followed.set(out, fl);
    return fl;
  }

  /** Take a sample of every output's counters (frames per second since the previous sample). */
  sample(outputs: Iterable<Output>): void {
    const t = this.now();
    for (const out of outputs) {
      const f = this.follow(out);
      const layers = new Map(out.layers.map((l) => [l.name, layerFrames(l)] as const));
      if (f.prev && t > f.prev.at) {
        const dt = (t - f.prev.at) / 1000;
        f.fps = Math.max(0, (outputFrames(out) - f.prev.frames) / dt);
        for (const [name, n] of layers) f.layerFps.set(name, Math.max(0, (n - (f.prev.layers.get(name) ?? n)) / dt));
      }
      f.prev = { at: t, frames: outputFrames(out), layers };
    }
  }

  /** The report for `status`: configured outputs in file order, the monitor-less ones too. */
  report(config: KioskConfig, presenting: ReadonlyMap<string, Output>, leases: ReadonlyMap<string, LeaseStatus> = new Map(), waiting: ReadonlyMap<string, string> = new Map()): StatusReport {
    const outputs: OutputStatus[] = config.outputs.map((o) => {
      const out = presenting.get(o.name);
      const lease = o.lease ? leases.get(o.name) : undefined;
      if (!out) {
        return { name: o.name, state: o.lease ? 'no-lease' : 'no-monitor', connector: null, device: o.device, crtc: null, mode: null, fps: 0, frames: 0, commits: 0, errors: 0, lastError: null, layers: [], ...(lease ? { lease } : {}) };
      }
      return { ...this.outputStatus(o.name, out), ...(lease ? { lease } : {}) };
    });
    const onScreen = outputs.flatMap((o) => o.layers);
    return {
      pid: process.pid,
      uptimeSeconds: Math.round((this.now() - this.started) / 1000),
      outputs,
      vms: config.vms.map((v) => ({ name: v.name, source: sourceText(v.source), layersOnScreen: onScreen.filter((l) => l.vm === v.name).length, waiting: waiting.get(v.name) ?? null })),
    };
  }

  private outputStatus(name: string, out: Output): OutputStatus {
    const f = this.follow(out);
    const m = out.running || out.isPaused ? out.mode : undefined;
    const state: OutputStatus['state'] = out.layers.length === 0 ? 'no-vm' : !out.running ? 'stopped' : out.isPaused ? 'paused' : 'presenting';
    return {
      name,
      state,
      connector: out.connector?.name ?? null,
      device: out.display.dev.path,
      crtc: out.opts.crtcIndex,
      mode: m ? `${m.hdisplay}x${m.vdisplay}@${m.vrefresh}` : null,
      fps: round1(f.fps),
      frames: outputFrames(out),
      commits: out.stats.commits,
      errors: out.stats.errors,
      lastError: f.lastError,
      layers: out.layers.map((l) => {
        const slash = l.name.lastIndexOf('/');
        const lat = f.latency.get(l.name);
        return {
          name: l.name,
          vm: slash > 0 ? l.name.slice(0, slash) : '',
          plane: l.kind,
          path: dashed(l.guest.path),
          presenting: l.view.copyMode ? 'copy' : (f.presenting.get(l.name) ?? null),
          ready: l.readyNow,
          fps: round1(f.layerFps.get(l.name) ?? 0),
          frames: layerFrames(l),
          copies: l.stats.copies,
          bytesCopied: l.stats.bytesCopied,
          imports: l.stats.imports,
          errors: l.stats.errors,
          notReadyFrames: l.stats.notReadyFrames,
          lastError: f.layerErrors.get(l.name) ?? null,
          latencyMs: lat ? { last: round1(lat.last), mean: round1(lat.ring.reduce((a, b) => a + b, 0) / lat.ring.length) } : null,
        };
      }),
    };
  }

  /**
   * Did every output that should be presenting make progress (frame loop ticks) since the last
   * call? Paused and stopped outputs are excused (master lost, unplugged: nothing is due). The
   * watchdog is pinged only when this is true: a wedged frame loop stops the pings.
   */
  progressed(outputs: Iterable<[string, Output]>): { ok: boolean; stuck: string[] } {
    const stuck: string[] = [];
    for (const [name, out] of outputs) {
      const f = this.follow(out);
      const ticks = out.stats.ticks;
      const due = out.running && !out.isPaused && out.layers.length > 0;
      if (due && ticks === f.ticks) stuck.push(name);
      f.ticks = ticks;
    }
    return { ok: stuck.length === 0, stuck };
  }
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}
