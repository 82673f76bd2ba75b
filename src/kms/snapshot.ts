// Reading a device's KMS topology into a plain-data KmsSnapshot (see types.ts). The reading is
// done through a small `KmsReadApi` (the native addon by default) so the conversion logic can be
// exercised on the host with recorded data.
import { native } from '../binding/index.js';
import type { DrmProperty, ModeInfo, NativeAddon } from '../binding/types.js';
import {
  CONNECTOR_TYPE_NAMES,
  DRM_FORMAT_MOD_LINEAR,
  DRM_MODE_CONNECTOR_WRITEBACK,
  DRM_MODE_OBJECT_CONNECTOR,
  DRM_MODE_OBJECT_CRTC,
  DRM_MODE_OBJECT_PLANE,
  DRM_MODE_PROP_ATOMIC,
  DRM_MODE_PROP_IMMUTABLE,
  connectorName,
} from '../binding/constants.js';
import { hasCode } from '../binding/errors.js';
import { unpackModeInfo } from './mode.js';
import type {
  ClientCaps,
  ConnectorSnapshot,
  ConnectorStatus,
  CrtcSnapshot,
  EncoderSnapshot,
  FormatModifiers,
  KmsSnapshot,
  PlaneSnapshot,
  PlaneType,
  PropertyMap,
  PropertySnapshot,
  ZposInfo,
} from './types.js';

/** The addon calls a snapshot needs. */
export type KmsReadApi = Pick<
  NativeAddon,
  | 'drmGetVersion'
  | 'drmGetCap'
  | 'drmGetResources'
  | 'drmGetConnector'
  | 'drmGetEncoder'
  | 'drmGetCrtc'
  | 'drmGetPlaneResources'
  | 'drmGetPlane'
  | 'drmGetProperties'
  | 'drmGetPropertyBlob'
  | 'drmDecodeInFormats'
>;

/** DRM_CAP_* read into snapshot.caps (drm_info's names). */
export const SNAPSHOT_CAPS: ReadonlyArray<[string, number]> = [
  ['DUMB_BUFFER', 0x1],
  ['VBLANK_HIGH_CRTC', 0x2],
  ['DUMB_PREFERRED_DEPTH', 0x3],
  ['DUMB_PREFER_SHADOW', 0x4],
  ['PRIME', 0x5],
  ['TIMESTAMP_MONOTONIC', 0x6],
  ['ASYNC_PAGE_FLIP', 0x7],
  ['CURSOR_WIDTH', 0x8],
  ['CURSOR_HEIGHT', 0x9],
  ['ADDFB2_MODIFIERS', 0x10],
  ['PAGE_FLIP_TARGET', 0x11],
  ['CRTC_IN_VBLANK_EVENT', 0x12],
  ['SYNCOBJ', 0x13],
  ['SYNCOBJ_TIMELINE', 0x14],
];

/** Convert the addon's property list into a map by name (signed ranges sign-extended). */
export function toPropertyMap(props: readonly DrmProperty[]): PropertyMap {
  const out: PropertyMap = {};
  for (const p of props) {
    const s: PropertySnapshot = {
      id: p.id,
      name: p.name,
      kind: p.kind,
      flags: p.flags >>> 0,
      immutable: (p.flags & DRM_MODE_PROP_IMMUTABLE) !== 0,
      atomic: ((p.flags >>> 0) & DRM_MODE_PROP_ATOMIC) !== 0,
      value: p.kind === 'signed_range' ? BigInt.asIntN(64, p.value) : p.value,
    };
    if (p.range) s.range = [p.range[0], p.range[1]];
    if (p.enums) s.enums = p.enums.map((e) => ({ name: e.name, value: e.value }));
    if (p.objectType !== undefined) s.objectType = p.objectType;
    out[p.name] = s;
  }
  return out;
}

/** The enum name of a property's current value (undefined if not an enum or unknown). */
export function enumValueName(p: PropertySnapshot | undefined): string | undefined {
  if (!p || !p.enums) return undefined;
  return p.enums.find((e) => e.value === p.value)?.name;
}

function num(p: PropertySnapshot | undefined, fallback = 0): number {
  return p === undefined ? fallback : Number(p.value);
}

export function connectorStatusName(status: number): ConnectorStatus {
  return status === 1 ? 'connected' : status === 2 ? 'disconnected' : 'unknown';
}

export function planeTypeOf(props: PropertyMap): PlaneType {
  const name = enumValueName(props['type'])?.toLowerCase();
  if (name === 'primary' || name === 'overlay' || name === 'cursor') return name;
  // no (or an odd) "type" property: the kernel's numeric values
  const v = props['type']?.value;
  return v === 1n ? 'primary' : v === 2n ? 'cursor' : 'overlay';
}

export function zposOf(props: PropertyMap): ZposInfo | null {
  const z = props['zpos'];
  if (!z) return null;
  const [min, max] = z.range ?? [z.value, z.value];
  return { value: Number(z.value), min: Number(min), max: Number(max), immutable: z.immutable };
}

/** Bits of a possible_crtcs mask -> indices into `crtcIds` (bits beyond the list are dropped). */
export function maskToIndices(mask: number, count: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < count && i < 32; i++) if (((mask >>> i) & 1) === 1) out.push(i);
  return out;
}

/** Group IN_FORMATS pairs by format, keeping the order of the legacy format list first. */
export function groupFormatModifiers(
  legacyFormats: readonly number[],
  pairs: ReadonlyArray<{ format: number; modifier: bigint }> | null,
): FormatModifiers[] {
  const byFormat = new Map<number, bigint[]>();
  for (const f of legacyFormats) byFormat.set(f >>> 0, []);
  if (pairs === null) {
    for (const list of byFormat.values()) list.push(DRM_FORMAT_MOD_LINEAR);
  } else {
    for (const { format, modifier } of pairs) {
      const f = format >>> 0;
      let list = byFormat.get(f);
      if (!list) byFormat.set(f, (list = []));
      if (!list.includes(modifier)) list.push(modifier);
    }
  }
  return [...byFormat].map(([format, modifiers]) => ({ format, modifiers }));
}

function readMode(api: KmsReadApi, fd: number, blobId: number): ModeInfo | null {
  if (blobId === 0) return null;
  const blob = api.drmGetPropertyBlob(fd, blobId);
  return blob ? unpackModeInfo(blob) : null;
}

/**
 * Read the whole topology of an open DRM device. `clientCaps` records what the caller enabled
 * (it changes what the kernel lists: universal planes, writeback connectors, atomic props).
 */
export function readSnapshot(
  fd: number,
  path: string,
  clientCaps: ClientCaps,
  api: KmsReadApi = native,
): KmsSnapshot {
  const driver = api.drmGetVersion(fd);
  const caps: Record<string, bigint> = {};
  for (const [name, cap] of SNAPSHOT_CAPS) {
    try {
      caps[name] = api.drmGetCap(fd, cap);
    } catch (e) {
      if (!hasCode(e, 'EINVAL', 'EOPNOTSUPP', 'ENOTSUP')) throw e;
    }
  }
  const res = api.drmGetResources(fd);

  const crtcs: CrtcSnapshot[] = res.crtcs.map((id, index) => {
    const raw = api.drmGetCrtc(fd, id);
    const properties = toPropertyMap(api.drmGetProperties(fd, id, DRM_MODE_OBJECT_CRTC));
    const modeBlobId = num(properties['MODE_ID']);
    let mode: ModeInfo | null = null;
    if (properties['MODE_ID']) mode = readMode(api, fd, modeBlobId);
    else if (raw.modeValid) mode = raw.mode;
    const active = properties['ACTIVE'] ? properties['ACTIVE'].value !== 0n : raw.modeValid;
    return {
      id,
      index,
      active,
      mode,
      modeBlobId,
      fbId: raw.bufferId,
      x: raw.x,
      y: raw.y,
      gammaSize: raw.gammaSize,
      properties,
    };
  });

  const encoders: EncoderSnapshot[] = res.encoders.map((id) => {
    const e = api.drmGetEncoder(fd, id);
    return {
      id: e.id,
      type: e.type,
      crtcId: e.crtcId,
      possibleCrtcs: e.possibleCrtcs >>> 0,
      possibleClones: e.possibleClones >>> 0,
    };
  });

  const connectors: ConnectorSnapshot[] = res.connectors.map((id) => {
    const c = api.drmGetConnector(fd, id);
    const properties = toPropertyMap(api.drmGetProperties(fd, id, DRM_MODE_OBJECT_CONNECTOR));
    let crtcId = num(properties['CRTC_ID']);
    if (!properties['CRTC_ID'] && c.encoderId !== 0) {
      crtcId = encoders.find((e) => e.id === c.encoderId)?.crtcId ?? 0;
    }
    return {
      id: c.id,
      name: connectorName(c.type, c.typeId),
      type: c.type,
      typeName: CONNECTOR_TYPE_NAMES[c.type] ?? `Unknown${c.type}`,
      typeId: c.typeId,
      status: connectorStatusName(c.status),
      writeback: c.type === DRM_MODE_CONNECTOR_WRITEBACK,
      mmWidth: c.mmWidth,
      mmHeight: c.mmHeight,
      subpixel: c.subpixel,
      encoderId: c.encoderId,
      encoders: [...c.encoders],
      crtcId,
      modes: c.modes.map((m) => ({ ...m })),
      properties,
    };
  });

  const planeIds = api.drmGetPlaneResources(fd);
  const planes: PlaneSnapshot[] = planeIds.map((id, index) => {
    const p = api.drmGetPlane(fd, id);
    const properties = toPropertyMap(api.drmGetProperties(fd, id, DRM_MODE_OBJECT_PLANE));
    const inFormatsProp = properties['IN_FORMATS'];
    let pairs: { format: number; modifier: bigint }[] | null = null;
    if (inFormatsProp && inFormatsProp.value !== 0n) {
      const blob = api.drmGetPropertyBlob(fd, Number(inFormatsProp.value));
      if (blob) pairs = api.drmDecodeInFormats(blob);
    }
    const possibleCrtcIndices = maskToIndices(p.possibleCrtcs >>> 0, crtcs.length);
    const has = (n: string): boolean => properties[n] !== undefined;
    return {
      id,
      index,
      type: planeTypeOf(properties),
      possibleCrtcs: p.possibleCrtcs >>> 0,
      possibleCrtcIndices,
      possibleCrtcIds: possibleCrtcIndices.map((i) => crtcs[i]!.id),
      zpos: zposOf(properties),
      formats: p.formats.map((f) => f >>> 0),
      formatModifiers: groupFormatModifiers(p.formats, pairs),
      inFormats: pairs !== null,
      fbId: has('FB_ID') ? num(properties['FB_ID']) : p.fbId,
      crtcId: has('CRTC_ID') ? num(properties['CRTC_ID']) : p.crtcId,
      src: has('SRC_X')
        ? {
            x: num(properties['SRC_X']),
            y: num(properties['SRC_Y']),
            w: num(properties['SRC_W']),
            h: num(properties['SRC_H']),
          }
        : { x: p.x, y: p.y, w: 0, h: 0 },
      crtc: has('CRTC_X')
        ? {
            x: num(properties['CRTC_X']),
            y: num(properties['CRTC_Y']),
            w: num(properties['CRTC_W']),
            h: num(properties['CRTC_H']),
          }
        : { x: p.crtcX, y: p.crtcY, w: 0, h: 0 },
      gammaSize: p.gammaSize,
      properties,
    };
  });

  return {
    path,
    driver: { ...driver },
    clientCaps: { ...clientCaps },
    caps,
    minWidth: res.minWidth,
    maxWidth: res.maxWidth,
    minHeight: res.minHeight,
    maxHeight: res.maxHeight,
    fbs: [...res.fbs],
    connectors,
    encoders,
    crtcs,
    planes,
  };
}

// ---- lookups on a snapshot (pure) ----------------------------------------------------------

export function findCrtc(s: KmsSnapshot, id: number): CrtcSnapshot | undefined {
  return s.crtcs.find((c) => c.id === id);
}
export function findPlane(s: KmsSnapshot, id: number): PlaneSnapshot | undefined {
  return s.planes.find((p) => p.id === id);
}
export function findConnector(s: KmsSnapshot, idOrName: number | string): ConnectorSnapshot | undefined {
  return s.connectors.find((c) => (typeof idOrName === 'number' ? c.id === idOrName : c.name === idOrName));
}

/** Does the plane support this format with this modifier? */
export function planeSupports(plane: PlaneSnapshot, format: number, modifier: bigint = DRM_FORMAT_MOD_LINEAR): boolean {
  const entry = plane.formatModifiers.find((f) => f.format === format >>> 0);
  return entry !== undefined && entry.modifiers.includes(modifier);
}

/** Planes that can be used on the CRTC with this id. */
export function planesForCrtc(s: KmsSnapshot, crtcId: number): PlaneSnapshot[] {
  return s.planes.filter((p) => p.possibleCrtcIds.includes(crtcId));
}
