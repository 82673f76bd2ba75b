// One look at one layer, once per frame of its output: query the guest plane, decide
// (src/flip/decide.ts: pure), and write what must change into the output's frame (the one
// atomic request of this vblank), or say why the output must plan again.
//
// DMABUF and REGION layers commit every new guest buffer (a flip); DRM_FB layers only check,
// read-only, that the kernel moved the hardware plane itself (a 'follow'), and commit nothing
// but cursor moves.
import type { AtomicRequest } from '../kms/index.js';
import { decide, decideDrmFb, type NotReadyPolicy } from '../flip/decide.js';
import { destination } from '../flip/planner.js';
import type { FrameEvent, NotReadyEvent } from '../flip/events.js';
import type { Layer } from './layer.js';
import { DrmFbSource } from './sources/drm-fb.js';
import type { Presentable } from './sources/types.js';

/** One layer's part of a frame. */
export interface FramePlane {
  layer: Layer;
  /** the guest buffer id shown (0: the plane goes off) */
  id: number;
  fbId: number;
  imported: boolean;
  bytes: number;
  got?: Presentable;
}

/** The plane property that carries a frame's damage, where the plane has it. */
export const DAMAGE_PROP = 'FB_DAMAGE_CLIPS';

/** What a look needs from its output. */
export interface LookHost {
  readonly notReady: NotReadyPolicy;
  readonly frameNo: number;
  readonly width: number;
  readonly height: number;
  readonly crtcId: number;
  /** a failure: counted; `report`: also an 'error' event */
  problem(layer: Layer, stage: string, error: unknown, count: number, report: boolean): void;
  /** why nothing is assigned (for waitAssigned) */
  setProblem(text: string): void;
  queryRecovered(layer: Layer): void;
  notReadyEvent(layer: Layer, action: NotReadyEvent['action']): void;
  frameEvent(layer: Layer, e: Omit<FrameEvent, 'plane' | 'frame'>): void;
  kernelFlip(layer: Layer): void;
}

/**
 * Must this layer be looked at this frame (by `output`)? No when its guest's display event says
 * nothing changed on its plane, unless a query is being retried, it is not assigned yet, it is
 * copied (a guest may draw into the buffer on screen without a signal) or a DRM_FB look is
 * racing a flipping guest.
 */
export function isDue(l: Layer, output: object): boolean {
  const g = l.guest;
  if (!g.events || g.changedFor(output, l.kind)) return true;
  if (l.queryStreak.current > 0 || !l.assignment || l.view.copyMode) return true;
  return l.source instanceof DrmFbSource && l.source.racingLooks > 0;
}

/** Look at a layer; returns why the output must plan again, or null. */
export function lookLayer(l: Layer, host: LookHost, req: AtomicRequest, frames: FramePlane[]): string | null {
  return l.source instanceof DrmFbSource ? lookDrmFb(l, l.source, host, req, frames) : lookFlipping(l, host, req, frames);
}

function queryFailed(l: Layer, host: LookHost, error: unknown): void {
  l.stats.errors++;
  const n = l.queryStreak.current + 1;
  host.problem(l, 'query', error, n, l.queryStreak.fail());
}

function setCursorPos(l: Layer, host: LookHost, req: AtomicRequest, d: { x: number; y: number; xHot: number | null; yHot: number | null }): void {
  const pos = l.cursorPos(d.x, d.y, d.xHot, d.yHot, host.width, host.height);
  req.set(l.assignment!.planeId, 'CRTC_X', pos.x);
  req.set(l.assignment!.planeId, 'CRTC_Y', pos.y);
}

function blank(l: Layer, req: AtomicRequest, frames: FramePlane[]): void {
  req.set(l.assignment!.planeId, 'FB_ID', 0);
  req.set(l.assignment!.planeId, 'CRTC_ID', 0);
  frames.push({ layer: l, id: 0, fbId: 0, imported: false, bytes: 0 });
}

/** The guest plane came back or changed shape (plan again), or a cursor moved (position only). */
function replanOrMove(
  l: Layer,
  host: LookHost,
  req: AtomicRequest,
  frames: FramePlane[],
  d: { action: 'replan'; reason: string } | { action: 'move'; x: number; y: number; xHot: number | null; yHot: number | null },
): string | null {
  host.queryRecovered(l);
  if (d.action === 'replan') {
    l.notReadyReported = false;
    return `${l.name}: ${d.reason}`;
  }
  if (!l.assignment) return null;
  setCursorPos(l, host, req, d);
  l.view.shown = { ...l.view.shown!, x: d.x, y: d.y, xHot: d.xHot, yHot: d.yHot };
  l.stats.moves++;
  frames.push({ layer: l, id: l.view.shown.id, fbId: l.fbId, imported: false, bytes: 0 });
  return null;
}

/** DMABUF / REGION: every new guest buffer is a flip (a commit of ours). */
function lookFlipping(l: Layer, host: LookHost, req: AtomicRequest, frames: FramePlane[]): string | null {
  const q = l.lookQuery(host);
  if (q.status === 'ok') {
    l.last = q.info;
    l.readyNow = true;
  } else if (q.status === 'not-ready') {
    l.readyNow = false;
  }
  // a hidden guest cursor must disappear; the primary follows the configured policy
  const d = decide(l.view, q, l.kind === 'cursor' ? 'blank' : host.notReady);
  switch (d.action) {
    case 'query-failed':
      queryFailed(l, host, d.error);
      return null;
    case 'not-ready':
      l.stats.notReadyFrames++;
      host.setProblem(`the guest ${l.kind} plane is not ready (size 0)`);
      host.queryRecovered(l);
      if (!l.notReadyReported) {
        l.notReadyReported = true;
        host.notReadyEvent(l, l.view.shown === null ? 'wait' : l.kind === 'cursor' ? 'blank' : host.notReady);
      }
      if (d.blank && l.assignment) {
        blank(l, req, frames);
        l.view.blanked = true;
      }
      return null;
    case 'replan':
      // back from not ready (reset, mode change): a dmabuf_id the vendor driver reports again
      // names the same buffer (QEMU relies on that too, hw/vfio/display.c), so the buffers
      // held stay valid; one of another shape is replaced by the cache
      return replanOrMove(l, host, req, frames, d);
    case 'move':
      return replanOrMove(l, host, req, frames, d);
    case 'flip': {
      host.queryRecovered(l);
      if (!l.assignment) return `${l.name}: not assigned yet`;
      const got = l.source.obtain(d.id, d.desc, l.last!, host.frameNo);
      if (!got) return null;
      if (got.unchanged && got.fbId === l.fbId && l.kind !== 'cursor') return null; // nothing new to show
      req.set(l.assignment.planeId, 'FB_ID', got.fbId);
      if (l.kind === 'cursor') setCursorPos(l, host, req, d);
      l.view.shown = { id: d.id, desc: d.desc, x: d.x, y: d.y, xHot: d.xHot, yHot: d.yHot };
      frames.push({ layer: l, id: d.id, fbId: got.fbId, imported: got.imported, bytes: got.bytes, got });
      return null;
    }
    case 'none':
      host.queryRecovered(l);
      return null;
  }
}

/**
 * DRM_FB: the vendor driver has already moved the hardware plane to the new framebuffer
 * (in-kernel commit) when the guest flipped: a new id is checked read-only and followed without
 * a commit. Plan again only for the first frame, a plane back after reset/disable, or a mode
 * change or failed in-kernel flip that left the hardware plane not showing the guest as planned.
 */
function lookDrmFb(l: Layer, src: DrmFbSource, host: LookHost, req: AtomicRequest, frames: FramePlane[]): string | null {
  const q = l.query();
  if (q.status === 'ok') {
    l.last = q.info;
    l.readyNow = true;
    src.history.note(q.info);
  } else if (q.status === 'not-ready') {
    l.readyNow = false;
  }
  const d = decideDrmFb(l.view, q, l.kind === 'cursor' ? 'blank' : host.notReady);
  const follow = (id: number, idle: boolean): string | null => {
    const r = src.following(l.assignment!.planeId, id, l.last!, idle, () => l.query(), l.guest.flippedSinceLook);
    if (r.caughtUp) {
      l.last = r.caughtUp;
      l.fbId = r.caughtUp.id;
      if (l.view.shown) l.view.shown = { ...l.view.shown, id: r.caughtUp.id };
    }
    return r.why;
  };
  switch (d.action) {
    case 'query-failed':
      queryFailed(l, host, d.error);
      return null;
    case 'not-ready': {
      l.stats.notReadyFrames++;
      host.setProblem(`the guest ${l.kind} plane is not ready (size 0)`);
      host.queryRecovered(l);
      if (l.notReadyReported) return null;
      l.notReadyReported = true;
      let action: NotReadyEvent['action'] = 'wait';
      if (l.view.shown && !l.view.blanked) {
        // guest reset / plane disabled: the vendor driver turned the hardware plane off, or
        // kept the last frame (vgpu-sim keep_last_frame=1)
        const still = l.assignment !== null && src.stillShowing(l.assignment.planeId);
        if (still && d.blank) blank(l, req, frames);
        action = still && !d.blank ? 'keep' : 'blank';
        l.view.blanked = true;
      }
      host.notReadyEvent(l, action);
      return null;
    }
    case 'replan':
    case 'move':
      return replanOrMove(l, host, req, frames, d);
    case 'follow': {
      host.queryRecovered(l);
      l.notReadyReported = false;
      if (!l.assignment) return `${l.name}: not assigned yet`;
      let why: string | null;
      if (!d.shapeChange) why = follow(d.id, false);
      else {
        const info = l.last!;
        const want = { src: { x: 0, y: 0, w: info.width, h: info.height }, dst: destination(l.spec(info, host.width, host.height), host.width, host.height) };
        why = src.followedModeChange(l.assignment.planeId, d.id, info, host.crtcId, want);
      }
      if (why) return `${l.name}: ${d.shapeChange ? `${d.shapeChange}; ` : ''}${why}`;
      const info = l.last!;
      l.showInfo(info);
      l.fbId = info.id;
      host.kernelFlip(l);
      if (d.move) {
        setCursorPos(l, host, req, l.view.shown!);
        l.stats.moves++;
        frames.push({ layer: l, id: info.id, fbId: l.fbId, imported: false, bytes: 0 });
      }
      host.frameEvent(l, { id: info.id, fbId: info.id, path: 'drm_fb', sequence: 0, vblankUs: 0, latencyUs: 0, latencyVblanks: 0, imported: false, bytesCopied: 0 });
      return null;
    }
    case 'none':
      host.queryRecovered(l);
      // the last look found the plane on another recent guest fb: check it caught up
      if (src.racingLooks === 0 || !l.assignment || !l.view.shown) return null;
      return ((why) => (why ? `${l.name}: ${why}` : null))(follow(l.view.shown.id, true));
  }
}

