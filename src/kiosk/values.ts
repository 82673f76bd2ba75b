// The string formats of the kiosk configuration (src/kiosk/schema.ts): output matchers, modes,
// idle contents, placements, vGPU UUIDs, DRM devices. Each format has ONE regex (used by the
// zod schema, so it also lands in the generated JSON Schema as a `pattern` editors check) and
// ONE parser into plain data (used by src/kiosk/model.ts). Pure functions, no I/O.
import type { Placement } from '../flip/planner.js';

/** Kernel connector type names (drm_connector_enum_list), as in "HDMI-A-1". */
export const CONNECTOR_TYPES = [
  'Unknown', 'VGA', 'DVI-I', 'DVI-D', 'DVI-A', 'Composite', 'SVIDEO', 'LVDS', 'Component',
  'DIN', 'DP', 'HDMI-A', 'HDMI-B', 'TV', 'eDP', 'Virtual', 'DSI', 'DPI', 'Writeback', 'SPI', 'USB',
] as const;

/** "HDMI-A-1", "Virtual-1", "eDP-1", "DP-3" */
// (the type names have letters and "-" only: no escaping needed, and none wanted: the pattern
// goes into the JSON Schema, where editors compile it in Unicode mode)
export const CONNECTOR_NAME_RE = new RegExp(`^(${CONNECTOR_TYPES.join('|')})-[1-9][0-9]*$`);
/** "make model serial": at least three space-separated words, printable ASCII */
export const EDID_IDENTITY_RE = /^[\x21-\x7e]+( +[\x21-\x7e]+){2,}$/;
/** the whole `match` field: `*`, a connector name or an EDID identity */
export const MATCH_RE = new RegExp(`^\\*$|${CONNECTOR_NAME_RE.source}|${EDID_IDENTITY_RE.source}`);

/** "1920x1080", "1920x1080@60", "1920x1080@59.94", "preferred", "current" */
export const MODE_RE = /^(preferred|current|[1-9][0-9]{0,4}x[1-9][0-9]{0,4}(@[1-9][0-9]{0,3}(\.[0-9]{1,3})?)?)$/;
export const COLOR_RE = /^#[0-9a-fA-F]{6}$/;
/** "black", "keep-last-frame", "#rrggbb" or an absolute path to a PNG file */
export const IDLE_RE = /^(black|keep-last-frame|#[0-9a-fA-F]{6}|\/.*\.[pP][nN][gG])$/;
/** "X,Y" in pixels, e.g. "1920,0" */
export const POSITION_RE = /^(0|[1-9][0-9]{0,4}) *, *(0|[1-9][0-9]{0,4})$/;
export const PLACEMENT_RE = new RegExp(`^(fill|center)$|${POSITION_RE.source}`);
/** RFC 4122 textual form, as mdev uses under /sys/bus/mdev/devices/ */
export const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
/** "/dev/dri/card0", "card0", "/dev/dri/by-path/pci-0000:00:02.0-card" */
export const DEVICE_RE = /^((\/dev\/dri\/)?card[0-9]{1,3}|\/dev\/dri\/by-path\/[^/]+-card)$/;
/** names of outputs and VMs: what plane entries and logs refer to */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
/** an mdev parent as named under /sys/class/mdev_bus/: a PCI address or a device name */
export const PARENT_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;
/** an mdev type as listed in mdev_supported_types: "i915-GVTg_V5_4", "vgpu_sim-small" */
export const MDEV_TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
/** a libvirt domain name (no slash: it names /run/libvirt/qemu/NAME.pid) */
export const DOMAIN_RE = /^[^/\s][^/]{0,199}$/;
/** a Unix group name or a numeric gid */
export const GROUP_RE = /^([a-z_][a-z0-9_-]{0,31}\$?|[0-9]{1,10})$/;
export const ABS_PATH_RE = /^\/.*[^/]$/;
/** a Wayland socket: a name in $XDG_RUNTIME_DIR (no slash) or an absolute path */
export const WAYLAND_RE = /^([A-Za-z0-9_][A-Za-z0-9_.-]{0,106}|\/.*[^/])$/;

export type OutputMatch =
  | { kind: 'any' }
  | { kind: 'connector'; name: string }
  | { kind: 'edid'; identity: string };

export function parseMatch(s: string): OutputMatch {
  if (s === '*') return { kind: 'any' };
  if (CONNECTOR_NAME_RE.test(s)) return { kind: 'connector', name: s };
  return { kind: 'edid', identity: s.trim().split(/ +/).join(' ') };
}

export function matchText(m: OutputMatch): string {
  return m.kind === 'any' ? '*' : m.kind === 'connector' ? m.name : `"${m.identity}"`;
}

/** Why a `match` string is not one, with what to write instead (null when it is valid). */
export function explainBadMatch(s: string): string | null {
  if (MATCH_RE.test(s)) return null;
  const xrandr = /^(HDMI|DP|eDP|VGA|DVI|Virtual|LVDS)[-_]?([A-Z]-)?([0-9]+)$/i.exec(s);
  if (xrandr || /^[A-Za-z-]+-?[0-9]+$/.test(s)) {
    return `"${s}" is not a kernel connector name: they look like HDMI-A-1, DP-2, eDP-1, Virtual-1 ` +
      '(see `vgpu-flip inspect`); write `*` for any monitor or "MAKE MODEL SERIAL" for one EDID identity';
  }
  return `"${s}" is neither \`*\`, a connector name (HDMI-A-1) nor an EDID identity ` +
    '"MAKE MODEL SERIAL" (three words or more, e.g. "DEL DELL U2415 7MT0186L0LSU")';
}

export type ModeSpec =
  | { kind: 'preferred' }
  | { kind: 'current' }
  | { kind: 'size'; width: number; height: number; refresh?: number };

export function parseMode(s: string): ModeSpec {
  if (s === 'preferred' || s === 'current') return { kind: s };
  const m = /^([0-9]+)x([0-9]+)(?:@([0-9.]+))?$/.exec(s);
  if (!m) throw new Error(`not a mode: ${s}`);
  const spec: ModeSpec = { kind: 'size', width: Number(m[1]), height: Number(m[2]) };
  if (m[3] !== undefined) spec.refresh = Number(m[3]);
  return spec;
}

export function modeText(m: ModeSpec): string {
  return m.kind === 'size' ? `${m.width}x${m.height}${m.refresh !== undefined ? `@${m.refresh}` : ''}` : m.kind;
}

/** Why a mode string is not one (null when it is valid): sizes up to 16384, rates up to 1000 Hz. */
export function explainBadMode(s: string): string | null {
  if (!MODE_RE.test(s)) {
    return `"${s}" is not a mode: write WIDTHxHEIGHT (1920x1080), WIDTHxHEIGHT@HZ (1920x1080@60, ` +
      '2560x1440@59.951), `preferred` (the monitor\'s preferred mode) or `current` (keep what is set)';
  }
  const m = parseMode(s);
  if (m.kind !== 'size') return null;
  if (m.width > 16384 || m.height > 16384) return `"${s}": width and height must be 16384 or less`;
  if (m.refresh !== undefined && m.refresh > 1000) return `"${s}": the refresh rate must be 1000 Hz or less`;
  return null;
}

/** What an output shows while its VM is missing, starting or not ready. */
export type IdleSpec =
  | { kind: 'black' }
  | { kind: 'color'; rgb: number; text: string }
  | { kind: 'splash'; path: string }
  | { kind: 'keep-last-frame' };

export function parseIdle(s: string): IdleSpec {
  if (s === 'black') return { kind: 'black' };
  if (s === 'keep-last-frame') return { kind: 'keep-last-frame' };
  if (COLOR_RE.test(s)) return { kind: 'color', rgb: parseInt(s.slice(1), 16), text: s.toLowerCase() };
  return { kind: 'splash', path: s };
}

export function idleText(i: IdleSpec): string {
  return i.kind === 'color' ? i.text : i.kind === 'splash' ? `splash ${i.path}` : i.kind;
}

export function explainBadIdle(s: string): string {
  if (/^#/.test(s)) return `"${s}" is not a colour: write #rrggbb with six hex digits, quoted ("#1a2b3c")`;
  if (/\.png$/i.test(s)) return `"${s}": a splash image needs an absolute path (/etc/vgpu-flip/splash.png)`;
  return `"${s}" is not an idle content: write black, keep-last-frame, a colour "#rrggbb" (quoted) ` +
    'or the absolute path of a PNG splash';
}

/** placement of a primary/overlay plane; cursors follow the guest pointer and have none */
export function parsePlacement(s: string): Placement {
  if (s === 'fill') return { kind: 'fill' };
  if (s === 'center') return { kind: 'center' };
  const m = POSITION_RE.exec(s);
  if (!m) throw new Error(`not a placement: ${s}`);
  return { kind: 'position', x: Number(m[1]), y: Number(m[2]) };
}

export function placementText(p: Placement): string {
  return p.kind === 'position' ? `${p.x},${p.y}` : p.kind;
}

export function explainBadPlacement(s: string): string {
  if (s === 'centre') return '"centre": write `center` (as in `vgpu-flip assign --center`)';
  if (/^-/.test(s) || /, *-/.test(s)) return `"${s}": positions are not negative: write X,Y with X, Y >= 0`;
  return `"${s}" is not a placement: write fill (scaled to the whole output), center, or X,Y in pixels ("1920,0")`;
}

/** "/dev/dri/card1" for "card1"; other forms as written */
export function devicePath(s: string): string {
  return /^card[0-9]+$/.test(s) ? `/dev/dri/${s}` : s;
}

/** Levenshtein distance, for "did you mean" hints on unknown keys and names. */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const t = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = t;
    }
  }
  return d[b.length]!;
}

/** the closest candidate within 2 edits (fewer than either word's length), or null */
export function closest(word: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const c of candidates) {
    const dist = editDistance(word.toLowerCase(), c.toLowerCase());
    if (dist < bestD) [best, bestD] = [c, dist];
  }
  return best !== null && bestD <= 2 && bestD < Math.min(word.length, best.length) ? best : null;
}
