// A layer: one guest plane (primary, cursor, overlay) of one guest, shown on one output. It
// holds what the output needs to present it: where it goes (placement, z-order), what the
// hardware plane shows now (view, fbId, assignment), the guest's last answer, its source
// (sources/: how a guest buffer becomes a framebuffer) and its counters.
import type { GfxPlaneInfo } from '../binding/types.js';
import { classifyQuery, descOf, FailureStreak, hotspot, type PlaneView, type QueryOutcome } from '../flip/decide.js';
import { destination, type GuestPlaneKind, type GuestPlaneSpec, type PlaneAssignment, type Placement } from '../flip/planner.js';
import type { Guest } from './guest.js';
import type { LayerSource } from './sources/types.js';
import type { PlaneStats } from './stats.js';

export interface LayerRequest {
  kind: GuestPlaneKind;
  placement?: Placement;
  hwPlaneId?: number;
  /** stacking order on the output, bottom first (default: primary, overlay, cursor of each guest in order) */
  z?: number;
  /** the layer's name, unique on its output (default: the plane kind) */
  name?: string;
}

export class Layer {
  readonly name: string;
  readonly kind: GuestPlaneKind;
  readonly view: PlaneView;
  assignment: PlaneAssignment | null = null;
  /** the guest's last answer that showed a plane */
  last: GfxPlaneInfo | null = null;
  /** the last query said the plane is there */
  readyNow = false;
  /** fb the hardware plane shows for this layer now (0: off) */
  fbId = 0;
  notReadyReported = false;
  readonly queryStreak: FailureStreak;
  /** the guest's primary layer on the same output: cursor positions are relative to it */
  primary: Layer | null = null;

  constructor(
    readonly req: LayerRequest,
    readonly guest: Guest,
    readonly source: LayerSource,
    readonly stats: PlaneStats,
    reportAfter: number,
  ) {
    this.kind = req.kind;
    this.name = req.name ?? req.kind;
    this.view = { kind: req.kind, shown: null, blanked: false, copyMode: source.path === 'copy' };
    this.queryStreak = new FailureStreak(reportAfter);
  }

  query(): QueryOutcome {
    return classifyQuery(() => this.guest.source.query(this.kind, this.guest.path));
  }

  /**
   * The query of a look. A copied plane (REGION, DMABUF copy fallback) is looked at every frame
   * even with the display event, because a guest may draw into the buffer on screen without a
   * flip, which no event announces; while its event says nothing else changed, its last answer
   * stands and only the pixels are compared: no ioctl.
   */
  lookQuery(output: object): QueryOutcome {
    const g = this.guest;
    if (g.events && !g.changedFor(output, this.kind) && this.view.copyMode && this.last && this.readyNow && this.queryStreak.current === 0 && this.assignment) {
      return { status: 'ok', info: this.last };
    }
    return this.query();
  }

  /** The spec the planner needs for the guest's buffer `info` on a w x h output. */
  spec(info: GfxPlaneInfo, w: number, h: number): GuestPlaneSpec {
    const d = descOf(info);
    const spec: GuestPlaneSpec = { kind: this.kind, layer: this.name, format: d.format, modifier: d.modifier, width: d.width, height: d.height };
    if (this.req.z !== undefined) spec.z = this.req.z;
    if (this.req.placement) spec.placement = this.req.placement;
    if (this.req.hwPlaneId !== undefined) spec.hwPlaneId = this.req.hwPlaneId;
    if (this.kind === 'cursor') {
      const pos = this.cursorPos(info.xPos | 0, info.yPos | 0, hotspot(info.xHot), hotspot(info.yHot), w, h);
      spec.x = pos.x;
      spec.y = pos.y;
    }
    return spec;
  }

  /** Where the guest screen's (0,0) is on the output, and its scale: the guest primary's placement. */
  private guestOrigin(w: number, h: number): { x: number; y: number; sx: number; sy: number } {
    const prim = this.primary;
    const info = prim?.last;
    if (!prim || !info || info.width === 0) return { x: 0, y: 0, sx: 1, sy: 1 };
    const spec: GuestPlaneSpec = { kind: 'primary', format: info.drmFormat, modifier: info.drmFormatMod, width: info.width, height: info.height };
    if (prim.req.placement) spec.placement = prim.req.placement;
    const d = destination(spec, w, h);
    return { x: d.x, y: d.y, sx: d.w / info.width, sy: d.h / info.height };
  }

  /** The cursor image's top-left on the output for a guest position (other kinds: as given). */
  cursorPos(x: number, y: number, xHot: number | null, yHot: number | null, w: number, h: number, origin: 'top-left' | 'hotspot' = this.cursorOrigin): { x: number; y: number } {
    if (this.kind !== 'cursor') return { x, y };
    const o = this.guestOrigin(w, h);
    // the image's top-left in guest coordinates; with fill the position scales, the image does not
    const gx = origin === 'hotspot' ? x - (xHot ?? 0) : x;
    const gy = origin === 'hotspot' ? y - (yHot ?? 0) : y;
    return { x: o.x + Math.round(gx * o.sx), y: o.y + Math.round(gy * o.sy) };
  }

  /** cursor x/y from the vendor driver are the plane's top-left (default) or the hotspot's position */
  cursorOrigin: 'top-left' | 'hotspot' = 'top-left';

  /** The view after the guest's buffer `info` went on screen. */
  showInfo(info: GfxPlaneInfo): void {
    this.view.shown = { id: info.id, desc: descOf(info), x: info.xPos | 0, y: info.yPos | 0, xHot: hotspot(info.xHot), yHot: hotspot(info.yHot) };
  }
}

/** plane kind and (when it is not just the kind) the layer name, for events */
export function who(l: Layer): { plane: Layer['kind']; layer?: string } {
  return l.name === l.kind ? { plane: l.kind } : { plane: l.kind, layer: l.name };
}

/** The guests of a list of layers, each once, in layer order: rebuilt only when the list changed (not every frame). */
export class GuestsOfLayers {
  private seen: Layer[] = [];
  private guests: Guest[] = [];

  of(layers: readonly Layer[]): readonly Guest[] {
    let same = layers.length === this.seen.length;
    for (let i = 0; same && i < layers.length; i++) same = layers[i] === this.seen[i];
    if (!same) {
      this.seen = layers.slice();
      this.guests = [...new Set(layers.map((l) => l.guest))];
    }
    return this.guests;
  }
}
