// What changed between two KMS snapshots of one device, per connector, for hotplug handling:
// connected / disconnected, modes, link-status BAD, EDID; and which CRTC each change concerns
// (the CRTC the connector was routed to in the old snapshot), so a caller re-plans only that
// output. Pure functions (readConnectorEdids reads the EDID bytes of a fresh snapshot).
//
// EDID: the kernel replaces a connector's EDID blob on every probe, so its blob id changes even
// when the monitor did not. Compare bytes: read them with readConnectorEdids() right after each
// snapshot (an old blob is gone once replaced) and pass both maps. Without bytes the diff falls
// back to the blob ids and says so (edidBasis 'blob-id').
import { native } from '../binding/index.js';
import type { NativeAddon } from '../binding/types.js';
import { modeSummary } from './mode.js';
import type { ConnectorSnapshot, ConnectorStatus, KmsSnapshot, ModeInfo } from './types.js';

/** DRM_MODE_LINK_STATUS_BAD: the link failed after a modeset; the output needs a new modeset */
export const LINK_STATUS_BAD = 1n;

export type ConnectorChangeKind =
  | 'added' // the connector appeared (e.g. a DP MST port)
  | 'removed'
  | 'connected'
  | 'disconnected'
  | 'modes'
  | 'link-status-bad'
  | 'edid';

export interface ConnectorChange {
  connectorId: number;
  name: string;
  /** what changed, in the order of ConnectorChangeKind */
  kinds: ConnectorChangeKind[];
  /**
   * the CRTC routed to the connector in the old snapshot (CRTC_ID), null when it drove none:
   * the output to re-plan (null: a new output to plan, if wanted)
   */
  crtcId: number | null;
  oldStatus: ConnectorStatus | null;
  newStatus: ConnectorStatus | null;
  /** modes in the new list but not the old, and the reverse (compared by timing, flags, type, name) */
  modesAdded: ModeInfo[];
  modesRemoved: ModeInfo[];
  /** how 'edid' was decided: bytes compared, or blob ids only (see the file comment) */
  edidBasis: 'bytes' | 'blob-id' | null;
}

export interface TopologyDiff {
  /** true when any connector changed */
  changed: boolean;
  /** one entry per changed connector, in the new snapshot's order (removed ones last) */
  connectors: ConnectorChange[];
  /** the distinct non-null crtcId of the changes: the outputs to re-plan */
  crtcIds: number[];
}

/** EDID bytes by connector id (null: the connector has no EDID). */
export type EdidMap = ReadonlyMap<number, Uint8Array | null>;

export interface TopologyDiffOptions {
  oldEdids?: EdidMap;
  newEdids?: EdidMap;
}

function modeKey(m: ModeInfo): string {
  return [
    m.clock, m.hdisplay, m.hsyncStart, m.hsyncEnd, m.htotal, m.hskew,
    m.vdisplay, m.vsyncStart, m.vsyncEnd, m.vtotal, m.vscan, m.vrefresh, m.flags, m.type, m.name,
  ].join(',');
}

function modeDelta(oldModes: readonly ModeInfo[], newModes: readonly ModeInfo[]): { added: ModeInfo[]; removed: ModeInfo[] } {
  const count = (ms: readonly ModeInfo[]): Map<string, number> => {
    const m = new Map<string, number>();
    for (const x of ms) m.set(modeKey(x), (m.get(modeKey(x)) ?? 0) + 1);
    return m;
  };
  const pick = (ms: readonly ModeInfo[], other: Map<string, number>): ModeInfo[] => {
    const left = new Map(other);
    const out: ModeInfo[] = [];
    for (const x of ms) {
      const k = modeKey(x);
      const n = left.get(k) ?? 0;
      if (n > 0) left.set(k, n - 1);
      else out.push(x);
    }
    return out;
  };
  return { added: pick(newModes, count(oldModes)), removed: pick(oldModes, count(newModes)) };
}

function linkBad(c: ConnectorSnapshot | undefined): boolean {
  return c?.properties['link-status']?.value === LINK_STATUS_BAD;
}

function edidBlobId(c: ConnectorSnapshot): number {
  const v = c.properties['EDID']?.value;
  return v === undefined ? 0 : Number(v);
}

function sameBytes(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b;
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function edidChange(o: ConnectorSnapshot, n: ConnectorSnapshot, opts: TopologyDiffOptions): { changed: boolean; basis: 'bytes' | 'blob-id' } {
  if (opts.oldEdids?.has(o.id) && opts.newEdids?.has(n.id)) {
    return { changed: !sameBytes(opts.oldEdids.get(o.id) ?? null, opts.newEdids.get(n.id) ?? null), basis: 'bytes' };
  }
  return { changed: edidBlobId(o) !== edidBlobId(n), basis: 'blob-id' };
}

function routed(c: ConnectorSnapshot | undefined): number | null {
  return c && c.crtcId !== 0 ? c.crtcId : null;
}

const KIND_ORDER: ConnectorChangeKind[] = ['added', 'removed', 'connected', 'disconnected', 'modes', 'link-status-bad', 'edid'];

/**
 * Diff two snapshots of the same device, connector by connector (matched by id; writeback
 * connectors are not outputs and are ignored). 'connected' / 'disconnected' are status
 * transitions to that status (from any other, 'unknown' included); 'link-status-bad' is a
 * transition of the link-status property to BAD (1); 'modes' is any difference in the mode
 * lists (a disconnect usually empties it too).
 */
export function diffTopology(old: KmsSnapshot, next: KmsSnapshot, opts: TopologyDiffOptions = {}): TopologyDiff {
  const outputs = (s: KmsSnapshot): ConnectorSnapshot[] => s.connectors.filter((c) => !c.writeback);
  const oldById = new Map(outputs(old).map((c) => [c.id, c]));
  const newIds = new Set(outputs(next).map((c) => c.id));
  const changes: ConnectorChange[] = [];

  const add = (o: ConnectorSnapshot | undefined, n: ConnectorSnapshot | undefined): void => {
    const kinds = new Set<ConnectorChangeKind>();
    const delta = modeDelta(o?.modes ?? [], n?.modes ?? []);
    let edidBasis: 'bytes' | 'blob-id' | null = null;
    if (!o) kinds.add('added');
    if (!n) kinds.add('removed');
    const os = o?.status ?? null;
    const ns = n?.status ?? null;
    if (ns === 'connected' && os !== 'connected') kinds.add('connected');
    if (ns !== 'connected' && os === 'connected') kinds.add('disconnected');
    if (o && n && (delta.added.length > 0 || delta.removed.length > 0)) kinds.add('modes');
    if (n && linkBad(n) && !linkBad(o)) kinds.add('link-status-bad');
    if (o && n) {
      const e = edidChange(o, n, opts);
      edidBasis = e.basis;
      if (e.changed) kinds.add('edid');
    }
    if (kinds.size === 0) return;
    const c = (n ?? o)!;
    changes.push({
      connectorId: c.id,
      name: c.name,
      kinds: KIND_ORDER.filter((k) => kinds.has(k)),
      crtcId: routed(o),
      oldStatus: os,
      newStatus: ns,
      modesAdded: delta.added,
      modesRemoved: delta.removed,
      edidBasis,
    });
  };

  for (const n of outputs(next)) add(oldById.get(n.id), n);
  for (const o of outputs(old)) if (!newIds.has(o.id)) add(o, undefined);
  const crtcIds = [...new Set(changes.map((c) => c.crtcId).filter((id): id is number => id !== null))];
  return { changed: changes.length > 0, connectors: changes, crtcIds };
}

/** The change of one connector (by id or name), if it changed. */
export function connectorChange(d: TopologyDiff, idOrName: number | string): ConnectorChange | undefined {
  return d.connectors.find((c) => (typeof idOrName === 'number' ? c.connectorId === idOrName : c.name === idOrName));
}

/** "Virtual-1 (CRTC 51): disconnected, modes -34" for logs. */
export function describeConnectorChange(c: ConnectorChange): string {
  const parts = c.kinds.map((k) => {
    if (k !== 'modes') return k;
    const pm = (ms: ModeInfo[], sign: string): string =>
      ms.length === 0 ? '' : ms.length <= 3 ? ` ${sign}${ms.map(modeSummary).join(` ${sign}`)}` : ` ${sign}${ms.length}`;
    return `modes${pm(c.modesAdded, '+')}${pm(c.modesRemoved, '-')}`;
  });
  return `${c.name} (${c.crtcId === null ? 'no CRTC' : `CRTC ${c.crtcId}`}): ${parts.join(', ')}`;
}

/**
 * The EDID bytes of each non-writeback connector of a snapshot just taken on fd (null: none),
 * for diffTopology's byte comparison. A blob that vanished since the snapshot reads as null.
 */
export function readConnectorEdids(
  fd: number,
  s: KmsSnapshot,
  api: Pick<NativeAddon, 'drmGetPropertyBlob'> = native,
): Map<number, Buffer | null> {
  const out = new Map<number, Buffer | null>();
  for (const c of s.connectors) {
    if (c.writeback) continue;
    const id = edidBlobId(c);
    out.set(c.id, id === 0 ? null : api.drmGetPropertyBlob(fd, id));
  }
  return out;
}
