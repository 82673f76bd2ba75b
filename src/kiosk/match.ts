// Which connector each configured output drives, as kanshi matches outputs: by connector name,
// by EDID identity ("MAKE MODEL SERIAL", src/kiosk/edid.ts) or `*`. Pure: the daemon passes
// KMS snapshots and a function that reads blob contents. Outputs with a connector name or an
// EDID identity are matched first (file order), then the `*` outputs take the remaining
// connected connectors in the device's connector order, skipping VR headsets (non-desktop).
// Then the CRTC to drive a matched connector with and the mode the output asks for.
import type { ConnectorSnapshot, CrtcSnapshot, KmsSnapshot } from '../kms/types.js';
import type { ModeRequest } from '../present/mode.js';
import { EdidError, parseEdid, type EdidIdentity } from './edid.js';
import type { OutputConfig } from './model.js';

export interface ConnectorCandidate {
  /** DRM card path of the snapshot */
  device: string;
  connector: ConnectorSnapshot;
  /** null without an EDID property or blob */
  edid: EdidIdentity | null;
  /** why the EDID could not be parsed, when it could not */
  edidError?: string;
  /** the connector's "non-desktop" property, or the kernel's quirk list on the EDID */
  nonDesktop: boolean;
}

/** Connected, non-writeback connectors of one device, with their EDID identity. */
export function connectorCandidates(snap: KmsSnapshot, readBlob: (blobId: number) => Uint8Array | null): ConnectorCandidate[] {
  return snap.connectors
    .filter((c) => c.status === 'connected' && !c.writeback)
    .map((connector) => {
      const blobId = Number(connector.properties['EDID']?.value ?? 0n);
      let edid: EdidIdentity | null = null;
      let edidError: string | undefined;
      const blob = blobId !== 0 ? readBlob(blobId) : null;
      if (blob) {
        try {
          edid = parseEdid(blob);
        } catch (e) {
          if (!(e instanceof EdidError)) throw e;
          edidError = e.message;
        }
      }
      const prop = connector.properties['non-desktop'];
      const nonDesktop = prop ? prop.value !== 0n : (edid?.nonDesktop ?? false);
      return { device: snap.path, connector, edid, nonDesktop, ...(edidError ? { edidError } : {}) };
    });
}

export interface OutputMatchResult {
  /** output name -> the connector it drives */
  matched: Map<string, ConnectorCandidate>;
  /** outputs whose monitor is not there (their layers wait; nothing is shown for them) */
  unmatched: string[];
}

function matches(o: OutputConfig, c: ConnectorCandidate): boolean {
  switch (o.match.kind) {
    case 'connector': return c.connector.name === o.match.name;
    case 'edid': return c.edid !== null && c.edid.description === o.match.identity;
    case 'any': return !c.nonDesktop;
  }
}

/**
 * Match outputs to connectors. `defaultDevice` is the first card with KMS, for outputs without
 * `device` (null when there is none: those outputs stay unmatched).
 */
export function matchOutputs(outputs: readonly OutputConfig[], candidates: readonly ConnectorCandidate[], defaultDevice: string | null): OutputMatchResult {
  const taken = new Set<ConnectorCandidate>();
  const matched = new Map<string, ConnectorCandidate>();
  const ordered = [...outputs.filter((o) => o.match.kind !== 'any'), ...outputs.filter((o) => o.match.kind === 'any')];
  for (const o of ordered) {
    const device = o.device ?? defaultDevice;
    const c = candidates.find((x) => x.device === device && !taken.has(x) && matches(o, x));
    if (!c) continue;
    taken.add(c);
    matched.set(o.name, c);
  }
  return { matched, unmatched: outputs.filter((o) => !matched.has(o.name)).map((o) => o.name) };
}

/**
 * What an output that matched no connector could have matched: the connected connectors of its
 * device with their EDID identities (as `match:` takes them) and the output that took each.
 */
export function describeCandidates(candidates: readonly ConnectorCandidate[], device: string | null, matched: ReadonlyMap<string, ConnectorCandidate>): string {
  const here = candidates.filter((c) => c.device === device);
  if (here.length === 0) return `no connected connector on ${device ?? 'any card'}`;
  const by = new Map([...matched].map(([name, c]) => [c, name] as const));
  const one = (c: ConnectorCandidate): string => {
    const id = c.edid ? ` "${c.edid.description}"` : c.edidError ? ` (EDID unreadable: ${c.edidError})` : ' (no EDID)';
    const taken = by.get(c);
    return `${c.connector.name}${id}${taken ? ` taken by output ${taken}` : ''}`;
  };
  return `connected on ${device}: ${here.map(one).join(', ')}`;
}

/** The CRTC to drive a connector with: the one driving it now, else a free one its encoders can use. */
export function crtcFor(snap: KmsSnapshot, conn: ConnectorSnapshot, taken: ReadonlySet<number>): CrtcSnapshot | null {
  const now = snap.crtcs.find((c) => c.id === conn.crtcId && !taken.has(c.id));
  if (now) return now;
  const mask = conn.encoders.reduce((m, eid) => m | (snap.encoders.find((e) => e.id === eid)?.possibleCrtcs ?? 0), 0);
  return snap.crtcs.find((c) => (mask & (1 << c.index)) !== 0 && !taken.has(c.id) && !snap.connectors.some((x) => x.crtcId === c.id && x.id !== conn.id)) ?? null;
}

/** The mode an output's configuration asks for on this connector (undefined: keep the current one). */
export function modeRequest(o: OutputConfig, conn: ConnectorSnapshot): ModeRequest | undefined {
  if (o.mode.kind === 'current') return undefined;
  if (o.mode.kind === 'size') return { width: o.mode.width, height: o.mode.height, ...(o.mode.refresh ? { refresh: o.mode.refresh } : {}) };
  const m = conn.modes.find((x) => (x.type & 0x8) !== 0) ?? conn.modes[0];
  return m ? { width: m.hdisplay, height: m.vdisplay, refresh: m.vrefresh } : undefined;
}
