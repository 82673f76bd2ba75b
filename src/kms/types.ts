// Public, plain-data types of the KMS layer. The flip-engine planner works on a KmsSnapshot as
// pure data (no fds), so everything it needs is here: object ids, property ids by name, plane
// capabilities. A snapshot is JSON-serialisable through snapshotToJson()/snapshotFromJson()
// (src/kms/snapshot-json.ts): bigints become strings there ("0x..." hex, "-0x..." for negative).
//
// STABLE CONTRACT: other layers code against these types. Add optional fields if needed; do
// not rename or remove.
import type { DrmVersion, ModeInfo, PropertyKind } from '../binding/types.js';

export type { DrmVersion, ModeInfo, PropertyKind };

/** One property of a mode object, as seen at snapshot time. */
export interface PropertySnapshot {
  /** property id: what atomic requests use */
  id: number;
  name: string;
  kind: PropertyKind;
  /** DRM_MODE_PROP_* flags as the kernel reported them */
  flags: number;
  /** DRM_MODE_PROP_IMMUTABLE set: read-only */
  immutable: boolean;
  /** DRM_MODE_PROP_ATOMIC set: only visible/settable to atomic clients */
  atomic: boolean;
  /**
   * current value. For 'signed_range' properties the value is sign-extended (CRTC_X = -10
   * is -10n, not 2^64-10); for everything else the raw u64.
   */
  value: bigint;
  /** range / signed_range: [min, max] */
  range?: [bigint, bigint];
  /** enum / bitmask: the named values (bitmask: value is the bit index, as libdrm reports) */
  enums?: { name: string; value: bigint }[];
  /** object properties: DRM_MODE_OBJECT_* the value points to */
  objectType?: number;
}

/** Properties of one object by name ("FB_ID", "CRTC_ID", "type", "IN_FORMATS", ...). */
export type PropertyMap = Record<string, PropertySnapshot>;

export type ConnectorStatus = 'connected' | 'disconnected' | 'unknown';

export interface ConnectorSnapshot {
  id: number;
  /** kernel-style name, e.g. "Virtual-1", "Writeback-1", "HDMI-A-2" */
  name: string;
  /** DRM_MODE_CONNECTOR_* */
  type: number;
  /** "Virtual", "Writeback", "HDMI-A", ... */
  typeName: string;
  typeId: number;
  status: ConnectorStatus;
  /** true for DRM_MODE_CONNECTOR_WRITEBACK (only listed with the writeback client cap) */
  writeback: boolean;
  mmWidth: number;
  mmHeight: number;
  subpixel: number;
  /** current encoder id (0 if none) */
  encoderId: number;
  /** possible encoder ids */
  encoders: number[];
  /** CRTC the connector is routed to (the atomic CRTC_ID property; 0 when none) */
  crtcId: number;
  modes: ModeInfo[];
  properties: PropertyMap;
}

export interface EncoderSnapshot {
  id: number;
  /** DRM_MODE_ENCODER_* */
  type: number;
  crtcId: number;
  /** bitmask of CRTC indices */
  possibleCrtcs: number;
  /** bitmask of encoder indices */
  possibleClones: number;
}

export interface CrtcSnapshot {
  id: number;
  /** position in the resources' CRTC list: the bit in possible_crtcs masks */
  index: number;
  /** the atomic ACTIVE property (falls back to "mode valid" without it) */
  active: boolean;
  /** current mode, null when no mode is set */
  mode: ModeInfo | null;
  /** the MODE_ID blob id (0 when none) */
  modeBlobId: number;
  /** legacy: fb of the primary plane, and its position */
  fbId: number;
  x: number;
  y: number;
  gammaSize: number;
  properties: PropertyMap;
}

export type PlaneType = 'primary' | 'overlay' | 'cursor';

/** A rectangle; for SRC_* the values are 16.16 fixed point, as in the properties. */
export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface ZposInfo {
  value: number;
  min: number;
  max: number;
  immutable: boolean;
}

export interface FormatModifiers {
  /** DRM fourcc */
  format: number;
  /** supported modifiers for this format (IN_FORMATS); [LINEAR] when the plane has no IN_FORMATS */
  modifiers: bigint[];
}

export interface PlaneSnapshot {
  id: number;
  /** position in the plane resources list */
  index: number;
  /** from the "type" property */
  type: PlaneType;
  /** bitmask of CRTC indices */
  possibleCrtcs: number;
  /** possibleCrtcs decoded to CRTC indices ... */
  possibleCrtcIndices: number[];
  /** ... and to CRTC ids */
  possibleCrtcIds: number[];
  /** zpos property, null when the plane has none */
  zpos: ZposInfo | null;
  /** legacy format list (fourcc codes) */
  formats: number[];
  /**
   * format -> modifiers, from IN_FORMATS. `inFormats` tells whether the plane had the property;
   * without it every legacy format is listed with [DRM_FORMAT_MOD_LINEAR] (what the kernel
   * implies for drivers without modifier support).
   */
  formatModifiers: FormatModifiers[];
  inFormats: boolean;
  /** current framebuffer (FB_ID) and CRTC (CRTC_ID), 0 when none */
  fbId: number;
  crtcId: number;
  /** SRC_X/Y/W/H, 16.16 fixed point */
  src: Rect;
  /** CRTC_X/Y/W/H (x/y signed) */
  crtc: Rect;
  gammaSize: number;
  properties: PropertyMap;
}

export interface ClientCaps {
  universalPlanes: boolean;
  atomic: boolean;
  writebackConnectors: boolean;
}

/** The whole KMS topology of one device at one moment. Plain data. */
export interface KmsSnapshot {
  /** device path, e.g. "/dev/dri/card0" */
  path: string;
  driver: DrmVersion;
  clientCaps: ClientCaps;
  /** DRM_CAP_* values worth knowing (name without the DRM_CAP_ prefix -> value) */
  caps: Record<string, bigint>;
  minWidth: number;
  maxWidth: number;
  minHeight: number;
  maxHeight: number;
  /** framebuffer ids listed by GETRESOURCES (own fbs only for non-masters) */
  fbs: number[];
  connectors: ConnectorSnapshot[];
  encoders: EncoderSnapshot[];
  crtcs: CrtcSnapshot[];
  planes: PlaneSnapshot[];
}

/** Any object in a snapshot that has properties. */
export type KmsObjectSnapshot = ConnectorSnapshot | CrtcSnapshot | PlaneSnapshot;

/** The saved display state (see src/kms/state.ts): restored in one ALLOW_MODESET commit. */
export interface SavedKmsState {
  path: string;
  crtcs: {
    id: number;
    active: boolean;
    /** the mode contents (not the blob id: the blob may be gone by restore time) */
    mode: ModeInfo | null;
    props: Record<string, bigint>;
  }[];
  connectors: { id: number; props: Record<string, bigint> }[];
  planes: { id: number; props: Record<string, bigint> }[];
}

/** What AtomicRequest.testOnly() returns: the kernel's verdict without throwing. */
export type AtomicTestResult =
  | { ok: true }
  | { ok: false; code: string; errno: number; message: string };

/** Parameters of one dma-buf for DrmDevice.importDmabuf(). */
export interface DmabufImportParams {
  width: number;
  height: number;
  /** DRM fourcc */
  format: number;
  /** DRM format modifier; pass DRM_FORMAT_MOD_INVALID (or omit) for "no modifier" */
  modifier?: bigint;
  /** bytes per line */
  stride: number;
  /** byte offset of the first pixel in the buffer (default 0) */
  offset?: number;
}
