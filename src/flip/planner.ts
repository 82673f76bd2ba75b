// The planner: which hardware plane shows which guest plane. Pure TypeScript over a KMS
// snapshot (no fds), in the spirit of libliftoff: list the candidate hardware planes of each
// guest plane, build the alternative layouts in order of preference, then let a TEST_ONLY
// loop (tryLayouts) pick the first one the kernel accepts, remembering why the others failed.
import { fourccToString, DRM_FORMAT_MOD_INVALID, DRM_FORMAT_MOD_LINEAR } from '../binding/constants.js';
import type { CrtcSnapshot, KmsSnapshot, PlaneSnapshot, PlaneType, Rect } from '../kms/types.js';
import { rulesFor, type DriverRules } from './rules.js';

export type GuestPlaneKind = 'primary' | 'cursor' | 'overlay';

/** Where a guest plane goes on the CRTC. Cursors always follow the guest's position. */
export type Placement =
  | { kind: 'position'; x: number; y: number }
  | { kind: 'center' }
  | { kind: 'fill' };

export interface GuestPlaneSpec {
  kind: GuestPlaneKind;
  /** the layer this is, unique in the request (several guests on one output); default: kind */
  layer?: string;
  /** stacking order among the request's layers, bottom first; default: primary, overlay, cursor */
  z?: number;
  /** DRM fourcc the guest uses */
  format: number;
  /** DRM format modifier (DRM_FORMAT_MOD_INVALID is treated as LINEAR) */
  modifier: bigint;
  width: number;
  height: number;
  /** primary/overlay: default 'position' 0,0. Ignored for the cursor (see x/y). */
  placement?: Placement;
  /** cursor: top-left on the CRTC (guest position minus hotspot); may be negative */
  x?: number;
  y?: number;
  /** force this hardware plane (--hw-plane) */
  hwPlaneId?: number;
}

export interface PlanRequest {
  /** CRTC index in the snapshot */
  crtcIndex: number;
  /** size of the mode the CRTC will run (current mode or the one the presenter sets) */
  crtcWidth: number;
  crtcHeight: number;
  guests: GuestPlaneSpec[];
  /** at most this many layouts (default 64) */
  maxLayouts?: number;
}

export interface PlaneAssignment {
  guest: GuestPlaneKind;
  /** the layer (GuestPlaneSpec.layer, default the kind) */
  layer: string;
  planeId: number;
  planeType: PlaneType;
  planeIndex: number;
  /** source rectangle in pixels (the presenter converts to 16.16) */
  src: Rect;
  /** destination on the CRTC; x/y may be negative (clipped cursor) */
  dst: Rect;
  /** zpos to set, when the plane has a mutable zpos */
  zpos?: number;
  /** preference rank of this candidate (0 best) */
  rank: number;
}

export interface Layout {
  crtcId: number;
  crtcIndex: number;
  assignments: PlaneAssignment[];
  /** planes currently on this CRTC that the layout does not use: disabled by it */
  disable: number[];
  /** sum of the assignments' ranks */
  cost: number;
}

export interface Rejection {
  guest: GuestPlaneKind;
  layer: string;
  planeId: number;
  planeType: PlaneType;
  reason: string;
}

export interface Plan {
  crtc: CrtcSnapshot;
  rules: DriverRules;
  layouts: Layout[];
  /** hardware planes ruled out statically, per guest plane, and why */
  rejections: Rejection[];
  /** layers (guest planes) with no candidate at all */
  unplaceable: string[];
}

export class PlanError extends Error {
  constructor(message: string, readonly plan?: Plan) {
    super(message);
    this.name = 'PlanError';
  }
}

/** Stacking order the guest expects: primary at the bottom, cursor on top. */
const GUEST_ORDER: Record<GuestPlaneKind, number> = { primary: 0, overlay: 1, cursor: 2 };

/** A spec's layer key (the kind when it has none). */
export function layerOf(spec: GuestPlaneSpec): string {
  return spec.layer ?? spec.kind;
}

function stackOf(spec: GuestPlaneSpec): number {
  return spec.z ?? GUEST_ORDER[spec.kind];
}

/** Preference of a hardware plane type for a guest plane kind (lower is better; absent = never). */
const TYPE_PREFERENCE: Record<GuestPlaneKind, Partial<Record<PlaneType, number>>> = {
  cursor: { cursor: 0, overlay: 1 },
  primary: { primary: 0, overlay: 1 },
  overlay: { overlay: 0, primary: 2 },
};

function normModifier(m: bigint): bigint {
  return m === DRM_FORMAT_MOD_INVALID ? DRM_FORMAT_MOD_LINEAR : m;
}

export function formatName(format: number, modifier: bigint): string {
  const m = normModifier(modifier);
  return m === 0n ? fourccToString(format) : `${fourccToString(format)}:0x${m.toString(16)}`;
}

/** Does the plane scan out this format with this modifier (IN_FORMATS, or legacy + LINEAR)? */
export function planeSupports(plane: PlaneSnapshot, format: number, modifier: bigint): boolean {
  const m = normModifier(modifier);
  const entry = plane.formatModifiers.find((f) => f.format >>> 0 === format >>> 0);
  if (entry) return entry.modifiers.some((x) => normModifier(x) === m);
  if (!plane.inFormats) return m === 0n && plane.formats.some((f) => f >>> 0 === format >>> 0);
  return false;
}

/** The plane's stacking position: zpos when it has one, else the driver's implicit order. */
export function planeZ(plane: PlaneSnapshot): number {
  if (plane.zpos) return plane.zpos.value * 1000 + plane.index;
  const typeBase = plane.type === 'primary' ? 0 : plane.type === 'cursor' ? 900 : 100;
  return typeBase * 1000 + plane.index;
}

/** Where a guest plane lands on a w x h CRTC (cursor: its given x/y). */
export function destination(spec: GuestPlaneSpec, w: number, h: number): Rect {
  if (spec.kind === 'cursor') return { x: spec.x ?? 0, y: spec.y ?? 0, w: spec.width, h: spec.height };
  const p = spec.placement ?? { kind: 'position', x: 0, y: 0 };
  switch (p.kind) {
    case 'fill':
      return { x: 0, y: 0, w, h };
    case 'center':
      return { x: Math.floor((w - spec.width) / 2), y: Math.floor((h - spec.height) / 2), w: spec.width, h: spec.height };
    case 'position':
      return { x: p.x, y: p.y, w: spec.width, h: spec.height };
  }
}

function rectText(r: Rect): string {
  return `${r.w}x${r.h}+${r.x}+${r.y}`;
}

/** Why this plane cannot show this guest plane at dst, or null if the rules allow it. */
function ruleViolation(
  rules: DriverRules,
  plane: PlaneSnapshot,
  spec: GuestPlaneSpec,
  dst: Rect,
  crtcW: number,
  crtcH: number,
): string | null {
  const r = rules.planes[plane.type];
  const who = rules.driver === '*' ? 'this driver' : rules.driver;
  const scaled = dst.w !== spec.width || dst.h !== spec.height;
  if (scaled && !r.canScale) {
    return `${who} ${plane.type} planes cannot scale (guest ${spec.width}x${spec.height} -> ${dst.w}x${dst.h})`;
  }
  if (!r.canPosition && (dst.x !== 0 || dst.y !== 0 || dst.w !== crtcW || dst.h !== crtcH)) {
    return `${who} ${plane.type} plane must cover the whole CRTC (${crtcW}x${crtcH}) unscaled; guest would be at ${rectText(dst)}`;
  }
  const inside = dst.x >= 0 && dst.y >= 0 && dst.x + dst.w <= crtcW && dst.y + dst.h <= crtcH;
  if (!inside && !r.canClip) return `${who} ${plane.type} plane cannot be partly off screen (${rectText(dst)})`;
  const visible = dst.x < crtcW && dst.y < crtcH && dst.x + dst.w > 0 && dst.y + dst.h > 0;
  if (!visible && spec.kind !== 'cursor') return `the guest ${spec.kind} at ${rectText(dst)} would be entirely off the ${crtcW}x${crtcH} CRTC`;
  if (r.maxWidth !== undefined && spec.width > r.maxWidth) return `${plane.type} plane is at most ${r.maxWidth} pixels wide (guest ${spec.width})`;
  if (r.maxHeight !== undefined && spec.height > r.maxHeight) return `${plane.type} plane is at most ${r.maxHeight} pixels high (guest ${spec.height})`;
  return null;
}

interface Candidate {
  plane: PlaneSnapshot;
  rank: number;
  dst: Rect;
}

/** Build the alternative layouts, best first. Throws PlanError on bad requests. */
export function planLayouts(snapshot: KmsSnapshot, req: PlanRequest): Plan {
  const crtc = snapshot.crtcs.find((c) => c.index === req.crtcIndex);
  if (!crtc) {
    throw new PlanError(
      `CRTC ${req.crtcIndex} does not exist on ${snapshot.path} (it has ${snapshot.crtcs.length} CRTC${snapshot.crtcs.length === 1 ? '' : 's'}: 0..${snapshot.crtcs.length - 1})`,
    );
  }
  const keys = new Set<string>();
  for (const g of req.guests) {
    const k = layerOf(g);
    if (keys.has(k)) throw new PlanError(g.layer ? `layer ${k} requested twice` : `guest plane ${g.kind} requested twice`);
    keys.add(k);
  }
  const rules = rulesFor(snapshot);
  const rejections: Rejection[] = [];
  const perGuest: Candidate[][] = [];
  const unplaceable: string[] = [];
  // bottom first: explicit z, else the guest's own order (primary, overlay, cursor); stable
  const guests = [...req.guests].sort((a, b) => stackOf(a) - stackOf(b));

  for (const spec of guests) {
    const cands: Candidate[] = [];
    const dst = destination(spec, req.crtcWidth, req.crtcHeight);
    for (const plane of snapshot.planes) {
      const reject = (reason: string): void => {
        rejections.push({ guest: spec.kind, layer: layerOf(spec), planeId: plane.id, planeType: plane.type, reason });
      };
      if (spec.hwPlaneId !== undefined && plane.id !== spec.hwPlaneId) continue;
      if (!plane.possibleCrtcIndices.includes(crtc.index)) {
        if (spec.hwPlaneId !== undefined) reject(`cannot be used on CRTC ${crtc.index} (possible_crtcs 0x${plane.possibleCrtcs.toString(16)})`);
        continue;
      }
      const pref = TYPE_PREFERENCE[spec.kind][plane.type];
      if (pref === undefined && spec.hwPlaneId === undefined) {
        reject(`a ${plane.type} plane is not used for a guest ${spec.kind}`);
        continue;
      }
      if (!planeSupports(plane, spec.format, spec.modifier)) {
        reject(`does not support ${formatName(spec.format, spec.modifier)} (supports ${plane.formatModifiers.map((f) => fourccToString(f.format)).join(' ')})`);
        continue;
      }
      const why = ruleViolation(rules, plane, spec, dst, req.crtcWidth, req.crtcHeight);
      if (why) {
        reject(why);
        continue;
      }
      cands.push({ plane, rank: pref ?? 3, dst });
    }
    if (spec.hwPlaneId !== undefined && !snapshot.planes.some((p) => p.id === spec.hwPlaneId)) {
      throw new PlanError(`hardware plane ${spec.hwPlaneId} does not exist on ${snapshot.path} (planes: ${snapshot.planes.map((p) => p.id).join(', ')})`);
    }
    // Same type rank: a guest cursor prefers the topmost plane, the others the lowest.
    cands.sort((a, b) => a.rank - b.rank || (spec.kind === 'cursor' ? planeZ(b.plane) - planeZ(a.plane) : planeZ(a.plane) - planeZ(b.plane)));
    if (cands.length === 0) unplaceable.push(layerOf(spec));
    perGuest.push(cands);
  }

  const layouts: Layout[] = [];
  if (unplaceable.length === 0) {
    const max = req.maxLayouts ?? 64;
    const all: Layout[] = [];
    const limit = 4096;
    const walk = (i: number, chosen: Candidate[]): void => {
      if (all.length >= limit) return;
      if (i === guests.length) {
        const layout = makeLayout(snapshot, crtc, guests, chosen);
        if (layout) all.push(layout);
        return;
      }
      for (const c of perGuest[i]!) {
        if (chosen.some((x) => x.plane.id === c.plane.id)) continue;
        walk(i + 1, [...chosen, c]);
      }
    };
    walk(0, []);
    // stable sort by cost keeps the per-guest preference order among equal costs
    all.sort((a, b) => a.cost - b.cost);
    layouts.push(...all.slice(0, max));
  }
  return { crtc, rules, layouts, rejections, unplaceable };
}

/** Assemble one layout, or null when its stacking order cannot match the guest's. */
function makeLayout(snapshot: KmsSnapshot, crtc: CrtcSnapshot, guests: GuestPlaneSpec[], chosen: Candidate[]): Layout | null {
  const assignments: PlaneAssignment[] = [];
  const mutable = chosen.every((c) => c.plane.zpos && !c.plane.zpos.immutable);
  if (mutable && chosen.length > 1) {
    // every plane has a settable zpos: give them increasing values in guest order
    let z = Math.max(...chosen.map((c) => c.plane.zpos!.min));
    for (let i = 0; i < chosen.length; i++) {
      const c = chosen[i]!;
      if (z < c.plane.zpos!.min) z = c.plane.zpos!.min;
      if (z > c.plane.zpos!.max) return null;
      assignments.push(assignment(guests[i]!, c, z));
      z++;
    }
  } else {
    // fixed stacking: the chosen planes must already be in guest order (chosen is in guest order)
    for (let i = 1; i < chosen.length; i++) {
      if (planeZ(chosen[i]!.plane) <= planeZ(chosen[i - 1]!.plane)) return null;
    }
    for (let i = 0; i < chosen.length; i++) assignments.push(assignment(guests[i]!, chosen[i]!));
  }
  const used = new Set(chosen.map((c) => c.plane.id));
  const disable = snapshot.planes
    .filter((p) => !used.has(p.id) && p.crtcId === crtc.id && (p.fbId !== 0 || p.crtcId !== 0))
    .map((p) => p.id);
  return { crtcId: crtc.id, crtcIndex: crtc.index, assignments, disable, cost: chosen.reduce((s, c) => s + c.rank, 0) };
}

function assignment(spec: GuestPlaneSpec, c: Candidate, zpos?: number): PlaneAssignment {
  const a: PlaneAssignment = {
    guest: spec.kind,
    layer: layerOf(spec),
    planeId: c.plane.id,
    planeType: c.plane.type,
    planeIndex: c.plane.index,
    src: { x: 0, y: 0, w: spec.width, h: spec.height },
    dst: { ...c.dst },
    rank: c.rank,
  };
  if (zpos !== undefined) a.zpos = zpos;
  return a;
}

/** What a TEST_ONLY check answers: true, or why not (a message, an Error, or a verdict object). */
export type TestVerdict = boolean | string | Error | { ok: true } | { ok: false; code?: string; message: string };

export interface Attempt {
  layout: Layout;
  ok: boolean;
  /** why it failed ('' when it passed) */
  reason: string;
}

export interface TryResult {
  chosen: Layout | null;
  attempts: Attempt[];
}

function verdictReason(v: TestVerdict): string | null {
  if (v === true) return null;
  if (v === false) return 'rejected by the driver';
  if (typeof v === 'string') return v;
  if (v instanceof Error) return v.message;
  if (v.ok) return null;
  return v.code ? `${v.code}: ${v.message}` : v.message;
}

/**
 * Try layouts in order; the first one `test` accepts wins. A test that throws counts as a
 * failure with the error's message. Stops at the first success.
 */
export function tryLayouts(
  layouts: Layout[],
  test: (layout: Layout) => TestVerdict,
  opts: { abortOn?: (v: TestVerdict) => boolean } = {},
): TryResult & { aborted: boolean } {
  const attempts: Attempt[] = [];
  for (const layout of layouts) {
    let v: TestVerdict;
    try {
      v = test(layout);
    } catch (e) {
      v = e instanceof Error ? e : String(e);
    }
    const reason = verdictReason(v);
    attempts.push({ layout, ok: reason === null, reason: reason ?? '' });
    if (reason === null) return { chosen: layout, attempts, aborted: false };
    // a failure that no other layout can fix (not DRM master, device gone): stop here
    if (opts.abortOn?.(v)) return { chosen: null, attempts, aborted: true };
  }
  return { chosen: null, attempts, aborted: false };
}

export { describeAssignment, describeLayout, explainPlan } from './plan-explain.js';
