// Per-frame decisions of the presenter, as pure functions of (what is on screen, what the guest
// reports now). The engine executes the decision; host tests drive these with fake inputs.
import { VFIO_GFX_NO_HOTSPOT } from '../binding/constants.js';
import type { GfxPlaneInfo } from '../binding/types.js';
import type { BufferDesc } from './fb-cache.js';
import type { GuestPlaneKind } from './planner.js';

/** What one VFIO_DEVICE_QUERY_GFX_PLANE gave this frame. */
export type QueryOutcome =
  | { status: 'ok'; info: GfxPlaneInfo }
  | { status: 'not-ready' }
  | { status: 'error'; error: unknown };

/** What the engine believes the hardware plane shows for this guest plane. */
export interface ShownState {
  /** dmabuf_id (DMABUF path) or region index (REGION path) */
  id: number;
  desc: BufferDesc;
  x: number;
  y: number;
  xHot: number | null;
  yHot: number | null;
}

export interface PlaneView {
  kind: GuestPlaneKind;
  /** null: nothing assigned yet (or blanked) */
  shown: ShownState | null;
  /** the plane is currently blank (not-ready handling) */
  blanked: boolean;
  /** REGION/copy mode: a new copy is needed every frame the guest may have drawn */
  copyMode: boolean;
}

export type NotReadyPolicy = 'keep' | 'blank';

export type Decision =
  /** nothing changed: no commit */
  | { action: 'none' }
  /** cursor moved or hotspot changed: update position only, same framebuffer */
  | { action: 'move'; x: number; y: number; xHot: number | null; yHot: number | null }
  /** a different buffer of the same shape (or a copy frame): flip to it */
  | { action: 'flip'; id: number; desc: BufferDesc; x: number; y: number; xHot: number | null; yHot: number | null }
  /** first frame, or the shape changed (size/format/modifier): plan and TEST_ONLY again */
  | { action: 'replan'; id: number; desc: BufferDesc; x: number; y: number; xHot: number | null; yHot: number | null; reason: string }
  /** guest has no plane; `blank`: turn the hardware plane off now (once) */
  | { action: 'not-ready'; blank: boolean }
  /** the query failed this frame (retry next frame) */
  | { action: 'query-failed'; error: unknown };

export function hotspot(v: number): number | null {
  return v >>> 0 === VFIO_GFX_NO_HOTSPOT ? null : v >>> 0;
}

export function descOf(info: GfxPlaneInfo): BufferDesc {
  return { width: info.width, height: info.height, format: info.drmFormat >>> 0, modifier: info.drmFormatMod, stride: info.stride };
}

/** Is this query result "no plane yet" (the vendor driver answers 0 with size 0)? */
export function isNotReady(info: GfxPlaneInfo): boolean {
  return info.width === 0 || info.height === 0 || info.size === 0 || info.drmFormat === 0;
}

export function classifyQuery(run: () => GfxPlaneInfo): QueryOutcome {
  try {
    const info = run();
    return isNotReady(info) ? { status: 'not-ready' } : { status: 'ok', info };
  } catch (error) {
    return { status: 'error', error };
  }
}

function shapeChange(a: BufferDesc, b: BufferDesc): string | null {
  if (a.width !== b.width || a.height !== b.height) return `guest plane size ${a.width}x${a.height} -> ${b.width}x${b.height}`;
  if (a.format !== b.format) return 'guest plane format changed';
  if (a.modifier !== b.modifier) return 'guest plane modifier changed';
  return null;
}

/** The decision for one guest plane this frame. */
export function decide(view: PlaneView, q: QueryOutcome, notReady: NotReadyPolicy): Decision {
  if (q.status === 'error') return { action: 'query-failed', error: q.error };
  if (q.status === 'not-ready') {
    return { action: 'not-ready', blank: notReady === 'blank' && !view.blanked && view.shown !== null };
  }
  const info = q.info;
  const desc = descOf(info);
  const xHot = hotspot(info.xHot);
  const yHot = hotspot(info.yHot);
  const x = info.xPos | 0;
  const y = info.yPos | 0;
  const s = view.shown;
  if (!s || view.blanked) {
    return { action: 'replan', id: info.id, desc, x, y, xHot, yHot, reason: s ? 'guest plane is back' : 'first frame' };
  }
  const change = shapeChange(s.desc, desc);
  if (change) return { action: 'replan', id: info.id, desc, x, y, xHot, yHot, reason: change };
  if (info.id !== s.id || s.desc.stride !== desc.stride || view.copyMode) {
    return { action: 'flip', id: info.id, desc, x, y, xHot, yHot };
  }
  if (view.kind === 'cursor' && (x !== s.x || y !== s.y || xHot !== s.xHot || yHot !== s.yHot)) {
    return { action: 'move', x, y, xHot, yHot };
  }
  return { action: 'none' };
}

/**
 * Error streaks: a failure on one frame is retried on the next; `threshold` failures in a row
 * are reported (once per streak, then every `threshold` more).
 */
export class FailureStreak {
  private count = 0;
  constructor(readonly threshold = 3) {}
  /** record a failure; true when it should be reported now */
  fail(): boolean {
    this.count++;
    return this.count % this.threshold === 0;
  }
  ok(): number {
    const c = this.count;
    this.count = 0;
    return c;
  }
  get current(): number {
    return this.count;
  }
}

/**
 * DRM_FB path: the vendor driver flips the hardware plane itself, so a new framebuffer id is
 * not a reason to commit. What the engine does with a query result:
 *  - 'follow': the guest changed buffers (and maybe shape); the kernel should already show the
 *    new framebuffer on the hardware plane: the engine checks that (read-only) and re-plans
 *    only if not (`shapeChange` set: the guest changed mode, check the geometry too);
 *    `move`: a cursor whose position changed as well (a position-only commit);
 *  - 'replan': first frame or the plane is back after a reset / disable;
 *  - 'move': a cursor moved (the kernel only follows buffers, not positions);
 *  - 'none', 'not-ready', 'query-failed' as for the other paths.
 */
export type DrmFbDecision =
  | { action: 'none' }
  | { action: 'move'; x: number; y: number; xHot: number | null; yHot: number | null }
  | { action: 'follow'; id: number; desc: BufferDesc; x: number; y: number; xHot: number | null; yHot: number | null; shapeChange: string | null; move: boolean }
  | { action: 'replan'; id: number; desc: BufferDesc; x: number; y: number; xHot: number | null; yHot: number | null; reason: string }
  | { action: 'not-ready'; blank: boolean }
  | { action: 'query-failed'; error: unknown };

export function decideDrmFb(view: PlaneView, q: QueryOutcome, notReady: NotReadyPolicy): DrmFbDecision {
  const d = decide({ ...view, copyMode: false }, q, notReady);
  const s = view.shown;
  switch (d.action) {
    case 'flip': {
      const move = view.kind === 'cursor' && s !== null && (d.x !== s.x || d.y !== s.y || d.xHot !== s.xHot || d.yHot !== s.yHot);
      return { action: 'follow', id: d.id, desc: d.desc, x: d.x, y: d.y, xHot: d.xHot, yHot: d.yHot, shapeChange: null, move };
    }
    case 'replan': {
      if (!s || view.blanked) return d;
      // a mode change: the kernel adjusts the hardware plane itself when it can
      const move = view.kind === 'cursor' && (d.x !== s.x || d.y !== s.y || d.xHot !== s.xHot || d.yHot !== s.yHot);
      return { action: 'follow', id: d.id, desc: d.desc, x: d.x, y: d.y, xHot: d.xHot, yHot: d.yHot, shapeChange: d.reason, move };
    }
    default:
      return d;
  }
}

/**
 * What a failed atomic commit means for the presenter:
 *  - 'busy': EBUSY / EAGAIN / EINTR, a flip still pending: try again next frame;
 *  - 'master': EACCES / EPERM, this process is not DRM master (another process or a VT switch
 *    took the display): never a reason to demote a buffer; back off;
 *  - 'device': ENODEV / EBADF / ENOENT on the device: it went away;
 *  - 'buffer': anything else (EINVAL, ERANGE, ENOMEM, ...): the buffer or layout was refused.
 */
export function commitFailure(e: unknown): 'busy' | 'master' | 'device' | 'buffer' {
  const code = typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : '';
  if (code === 'EBUSY' || code === 'EAGAIN' || code === 'EINTR') return 'busy';
  if (code === 'EACCES' || code === 'EPERM') return 'master';
  if (code === 'ENODEV' || code === 'EBADF') return 'device';
  return 'buffer';
}
