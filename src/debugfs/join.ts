// The join of `vgpu-flip debugfs`: guest plane -> framebuffer -> hardware plane -> CRTC ->
// connector, from three independent sources: the kernel's atomic state (what is on screen),
// the vGPU's debug attributes (which framebuffers are the vendor driver's own), and the
// assignment state published by running vgpu-flip processes (which guest plane it put where).
// Pure: no file access.
import type { GuestPlaneKind } from '../flip/planner.js';
import type { AssignmentStateFile, PublishedPlane } from './assignment-state.js';
import type { DebugfsConnector, DebugfsCrtc, DebugfsFramebuffer, DebugfsPlane, DebugfsState, Rect } from './state.js';
import type { SimInstanceDebug } from './vgpu.js';

export interface DeviceState {
  minor: number;
  /** driver name from dri/N/name ('vkms'), '' when unknown */
  driver: string;
  state: DebugfsState;
  /** every framebuffer of the device (dri/N/framebuffer), null when not read */
  framebuffers: DebugfsFramebuffer[] | null;
  /** plane id -> 'primary' | 'overlay' | 'cursor' when known (KMS API), else empty */
  planeTypes: Map<number, string>;
}

export type FbOrigin =
  /** a framebuffer of a vgpu-sim instance on the host card (DRM_FB path) */
  | 'vgpu-sim'
  /** made by a running vgpu-flip process (imported dma-buf or copy buffer) */
  | 'vgpu-flip'
  /** made in the kernel (allocated by = [fbcon], ...) */
  | 'kernel'
  /** made by some other client process */
  | 'client';

export interface JoinedGuest {
  /** who says this is a guest plane: a running vgpu-flip process, or vgpu-sim's fb_id attribute */
  source: 'vgpu-flip' | 'vgpu-sim';
  vgpu: string | null;
  /** the guest description when not a vGPU (vgpu-flip's loopback guest) */
  label: string;
  plane: GuestPlaneKind;
  path: string | null;
  pid: number | null;
}

export interface JoinedRow {
  minor: number;
  driver: string;
  guest: JoinedGuest | null;
  fb: {
    id: number;
    format: string;
    fourcc: number;
    modifier: bigint;
    width: number;
    height: number;
    allocatedBy: string;
    imported: boolean;
    origin: FbOrigin;
    /** the fb is one of vgpu-sim's host framebuffers (and whose) */
    vgpuSim: { uuid: string; plane: GuestPlaneKind } | null;
  } | null;
  hwPlane: { id: number; name: string; type: string | null; zpos: number } | null;
  crtc: { id: number; name: string; active: boolean; mode: string | null } | null;
  connectors: { id: number; name: string }[];
  /** where on the CRTC (integer pixels) and what part of the fb */
  dst: Rect | null;
  src: Rect | null;
  /** disagreements between the sources, things not on screen */
  notes: string[];
}

export interface JoinInput {
  devices: DeviceState[];
  sim: SimInstanceDebug[];
  assignments: AssignmentStateFile[];
}

export interface JoinResult {
  rows: JoinedRow[];
  /** remarks about the whole picture (processes without an assignment yet, ...) */
  notes: string[];
}

const GUEST_KINDS: readonly string[] = ['primary', 'cursor', 'overlay'];

function modeText(c: DebugfsCrtc): string | null {
  return c.mode ? `${c.mode.hdisplay}x${c.mode.vdisplay}@${c.mode.vrefresh}` : null;
}

/** host_card 'card0' -> minor 0 (null: not bound / unknown) */
function cardMinor(card: string | null): number | null {
  const m = card ? /^card(\d+)$/.exec(card) : null;
  return m ? Number(m[1]) : null;
}

function fbOrigin(fb: DebugfsFramebuffer, sim: boolean, tool: boolean): FbOrigin {
  if (sim) return 'vgpu-sim';
  if (tool) return 'vgpu-flip';
  return /^\[.*\]$/.test(fb.allocatedBy) || fb.allocatedBy.startsWith('kworker') ? 'kernel' : 'client';
}

/** Join the sources into rows: one per hardware plane in use, plus guest planes not on screen. */
export function joinDebugfs(input: JoinInput): JoinResult {
  const rows: JoinedRow[] = [];
  const notes: string[] = [];

  for (const a of input.assignments) {
    if (a.state !== 'assigned' || a.planes.length === 0) {
      notes.push(`vgpu-flip pid ${a.pid} (${a.command}${a.vgpu ? `, vGPU ${a.vgpu}` : ''}, ${a.path}) has no assignment yet${a.lastError ? `: ${a.lastError}` : ''}`);
    }
  }

  for (const dev of input.devices) {
    const st = dev.state;
    const crtcByName = new Map(st.crtcs.map((c) => [c.name, c]));
    const connsOf = (crtcName: string): DebugfsConnector[] =>
      st.connectors
        .filter((c) => c.crtc === crtcName)
        .sort((x, y) => Number(/^Writeback/.test(x.name)) - Number(/^Writeback/.test(y.name)) || x.id - y.id);
    // vgpu-sim framebuffers that live on this device
    const simFbs = new Map<number, { uuid: string; plane: GuestPlaneKind }>();
    for (const inst of input.sim) {
      const m = cardMinor(inst.hostCard);
      if (m !== null && m !== dev.minor) continue;
      for (const p of inst.planes) if (p.fbId) simFbs.set(p.fbId, { uuid: inst.uuid, plane: p.plane });
    }
    // what running vgpu-flip processes put on this device's planes
    const mine = input.assignments.filter((a) => a.drmMinor === null || a.drmMinor === dev.minor);
    const byHw = new Map<number, { a: AssignmentStateFile; p: PublishedPlane }>();
    const toolFbs = new Map<number, AssignmentStateFile>();
    for (const a of mine) {
      for (const p of a.planes) byHw.set(p.hwPlaneId, { a, p });
      for (const id of a.fbIdsInUse) toolFbs.set(id, a);
      for (const p of a.planes) for (const id of p.recentFbIds) if (a.path !== 'drm_fb') toolFbs.set(id, a);
    }
    const shownGuest = new Set<string>();
    const key = (g: { vgpu: string | null; plane: string; pid?: number | null }): string => `${g.vgpu ?? `pid${g.pid}`}/${g.plane}`;

    const planeRow = (pl: DebugfsPlane): JoinedRow => {
      const crtc = pl.crtc ? crtcByName.get(pl.crtc) ?? null : null;
      const fb = pl.fb;
      const sim = pl.fbId ? simFbs.get(pl.fbId) ?? null : null;
      const pub = byHw.get(pl.id) ?? null;
      const rowNotes: string[] = [];
      let guest: JoinedGuest | null = null;
      if (pub && pl.fbId) {
        const { a, p } = pub;
        guest = { source: 'vgpu-flip', vgpu: a.vgpu, label: a.guest, plane: p.guest, path: p.path, pid: a.pid };
        const known = pl.fbId === p.fbId || p.recentFbIds.includes(pl.fbId) || a.fbIdsInUse.includes(pl.fbId) || (sim !== null && sim.uuid === a.vgpu && sim.plane === p.guest);
        if (!known && p.fbId) rowNotes.push(`shows fb ${pl.fbId}, but vgpu-flip pid ${a.pid} last put fb ${p.fbId} there`);
        if (sim && (sim.uuid !== a.vgpu || sim.plane !== p.guest)) rowNotes.push(`fb ${pl.fbId} belongs to vgpu-sim ${sim.uuid} ${sim.plane}, not to ${a.vgpu ?? a.guest} ${p.guest}`);
        if (crtc && crtc.id !== p.crtcId) rowNotes.push(`on CRTC ${crtc.id}, vgpu-flip assigned it to CRTC ${p.crtcId}`);
      } else if (sim) {
        guest = { source: 'vgpu-sim', vgpu: sim.uuid, label: `vgpu-sim ${sim.uuid}`, plane: sim.plane, path: 'drm_fb', pid: null };
        rowNotes.push('placed by a client that is not a running vgpu-flip (the framebuffer is vgpu-sim\'s own)');
      }
      if (guest) shownGuest.add(key(guest));
      if (pl.fbId && !fb) rowNotes.push(`fb ${pl.fbId}: no details in the state dump`);
      if (crtc && !crtc.active) rowNotes.push(`CRTC ${crtc.name} is not active`);
      if (pl.fbId && !pl.crtc) rowNotes.push('has a framebuffer but no CRTC');
      return {
        minor: dev.minor,
        driver: dev.driver,
        guest,
        fb: fb
          ? {
              id: fb.id,
              format: fb.format,
              fourcc: fb.fourcc,
              modifier: fb.modifier,
              width: fb.width,
              height: fb.height,
              allocatedBy: fb.allocatedBy,
              imported: fb.imported,
              origin: fbOrigin(fb, sim !== null, toolFbs.has(fb.id) || (pub !== null && pub.a.path !== 'drm_fb' && guest?.source === 'vgpu-flip')),
              vgpuSim: sim,
            }
          : null,
        hwPlane: { id: pl.id, name: pl.name, type: dev.planeTypes.get(pl.id) ?? pub?.p.hwPlaneType ?? null, zpos: pl.normalizedZpos },
        crtc: crtc ? { id: crtc.id, name: crtc.name, active: crtc.active, mode: modeText(crtc) } : null,
        connectors: crtc ? connsOf(crtc.name).map((c) => ({ id: c.id, name: c.name })) : [],
        dst: pl.fbId ? pl.crtcPos : null,
        src: pl.fbId ? pl.srcPos : null,
        notes: rowNotes,
      };
    };

    // hardware planes in use, bottom to top per CRTC
    const used = st.planes.filter((p) => p.fbId !== 0 || p.crtc !== null);
    used.sort((x, y) => (x.crtc ?? '').localeCompare(y.crtc ?? '') || x.normalizedZpos - y.normalizedZpos || x.id - y.id);
    for (const pl of used) rows.push(planeRow(pl));

    // assigned guest planes whose hardware plane shows nothing now
    for (const a of mine) {
      for (const p of a.planes) {
        if (shownGuest.has(key({ vgpu: a.vgpu, plane: p.guest, pid: a.pid }))) continue;
        const hw = st.planes.find((x) => x.id === p.hwPlaneId);
        const crtc = st.crtcs.find((c) => c.id === p.crtcId) ?? null;
        rows.push({
          minor: dev.minor,
          driver: dev.driver,
          guest: { source: 'vgpu-flip', vgpu: a.vgpu, label: a.guest, plane: p.guest, path: p.path, pid: a.pid },
          fb: null,
          hwPlane: hw ? { id: hw.id, name: hw.name, type: dev.planeTypes.get(hw.id) ?? p.hwPlaneType, zpos: hw.normalizedZpos } : null,
          crtc: crtc ? { id: crtc.id, name: crtc.name, active: crtc.active, mode: modeText(crtc) } : null,
          connectors: crtc ? connsOf(crtc.name).map((c) => ({ id: c.id, name: c.name })) : [],
          dst: null,
          src: null,
          notes: [hw ? `assigned to plane ${hw.id} by vgpu-flip pid ${a.pid}, but the plane is off now (guest plane disabled or not ready?)` : `assigned to plane ${p.hwPlaneId} by vgpu-flip pid ${a.pid}, which this device does not have`],
        });
        shownGuest.add(key({ vgpu: a.vgpu, plane: p.guest, pid: a.pid }));
      }
    }

    // vgpu-sim planes of this device's instances that are up but on no hardware plane
    for (const inst of input.sim) {
      const m = cardMinor(inst.hostCard);
      if (m !== null && m !== dev.minor) continue;
      if (m === null && input.devices.length > 1 && dev !== input.devices[0]) continue; // list them once
      for (const p of inst.planes) {
        if (!p.status?.enabled || !GUEST_KINDS.includes(p.plane)) continue;
        if (shownGuest.has(key({ vgpu: inst.uuid, plane: p.plane }))) continue;
        const s = p.status;
        rows.push({
          minor: dev.minor,
          driver: dev.driver,
          guest: { source: 'vgpu-sim', vgpu: inst.uuid, label: `vgpu-sim ${inst.uuid}`, plane: p.plane, path: null, pid: null },
          fb: p.fbId
            ? {
                id: p.fbId,
                format: s.fourcc,
                fourcc: 0,
                modifier: 0n,
                width: s.width,
                height: s.height,
                allocatedBy: '',
                imported: true,
                origin: 'vgpu-sim',
                vgpuSim: { uuid: inst.uuid, plane: p.plane },
              }
            : null,
          hwPlane: null,
          crtc: null,
          connectors: [],
          dst: null,
          src: { x: 0, y: 0, w: s.width, h: s.height },
          notes: [s.ready ? 'guest plane is up but on no hardware plane' : `guest plane is enabled but not ready: ${s.reason}`],
        });
      }
    }
  }
  return { rows, notes };
}
