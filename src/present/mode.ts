// Modes and connectors of an output: which connector a CRTC drives, which mode to run.
import type { ModeInfo } from '../binding/types.js';
import { DRM_MODE_CONNECTOR_WRITEBACK } from '../binding/constants.js';
import type { ConnectorSnapshot, CrtcSnapshot, KmsSnapshot } from '../kms/types.js';

export interface ModeRequest {
  width: number;
  height: number;
  refresh?: number;
}

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


/**
 * The mode after the device changed (hotplug, link-status BAD, another master was here): the
 * one asked for, else the one running before, else the connector's preferred one.
 */
export function modeAgain(
  snap: KmsSnapshot,
  crtcNow: CrtcSnapshot,
  connNow: ConnectorSnapshot | null,
  asked: ModeRequest | 'guest' | undefined,
  running: ModeInfo,
): { connector: ConnectorSnapshot | null; mode: ModeInfo } {
  const crtc = snap.crtcs.find((c) => c.id === crtcNow.id) ?? crtcNow;
  const connector = (connNow && snap.connectors.find((c) => c.id === connNow.id)) ?? connectorFor(snap, crtc);
  const want = asked && asked !== 'guest' ? asked : { width: running.hdisplay, height: running.vdisplay, refresh: running.vrefresh };
  const off = { ...crtc, active: false };
  try {
    return { connector, mode: chooseMode(off, connector, want).mode };
  } catch {
    return { connector, mode: chooseMode(off, connector).mode }; // the old mode is gone: the preferred one
  }
}
