// `vgpu-flip inspect --json`: DRM devices in drm_info's `-j` layout (top-level object keyed by
// device path; "driver" with "client_caps"/"caps", "fb_size", "connectors", "encoders", "crtcs",
// "planes", properties with id/flags/type/atomic/immutable/raw_value/spec/value/data, IN_FORMATS
// data as [{modifier, formats}], plane "fb" / FB_ID data from GETFB2 as {id, width, height,
// format, modifier, planes: [{offset, pitch}]}), so drm_info scripts keep working (checked
// key by key against drm_info 2.4.0 -j on vkms); u64 values are exact integer
// literals as in drm_info. vgpu-flip adds a few keys drm_info does not have ("name" on
// connectors, "index" on CRTCs, "plane_type" on planes), an "error" object for a device that
// could not be inspected, and a top-level "vgpus" object.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { DrmFb2, ModeInfo } from '../binding/types.js';
import {
  DRM_MODE_PROP_BITMASK,
  DRM_MODE_PROP_BLOB,
  DRM_MODE_PROP_ENUM,
  DRM_MODE_PROP_EXTENDED_TYPE,
  DRM_MODE_PROP_LEGACY_TYPE,
  DRM_MODE_PROP_OBJECT,
  DRM_MODE_PROP_RANGE,
  DRM_MODE_PROP_SIGNED_RANGE,
} from '../binding/constants.js';
import type { KmsSnapshot, PlaneSnapshot, PropertyMap, PropertySnapshot } from '../kms/types.js';
import type { JsonLike } from '../util/json.js';
import { stringifyJson } from '../util/json.js';
import type { DrmDeviceReport, ErrorEntry, InspectReport, VgpuReport } from './collect.js';

type Obj = { [k: string]: JsonLike };

/** drm_info's framebuffer object (plane "fb", FB_ID data); just the id when GETFB2 gave nothing. */
export function fbJson(id: number, fb: DrmFb2 | null | undefined): Obj {
  if (!fb) return { id };
  const o: Obj = { id, width: fb.width, height: fb.height, format: fb.format };
  if (fb.modifier !== null) o['modifier'] = fb.modifier;
  o['planes'] = fb.pitches.map((pitch, i) => ({ offset: fb.offsets[i] ?? 0, pitch }));
  return o;
}

export function modeJson(m: ModeInfo): Obj {
  return {
    clock: m.clock,
    hdisplay: m.hdisplay,
    hsync_start: m.hsyncStart,
    hsync_end: m.hsyncEnd,
    htotal: m.htotal,
    hskew: m.hskew,
    vdisplay: m.vdisplay,
    vsync_start: m.vsyncStart,
    vsync_end: m.vsyncEnd,
    vtotal: m.vtotal,
    vscan: m.vscan,
    vrefresh: m.vrefresh,
    flags: m.flags,
    type: m.type,
    name: m.name,
  };
}

/** IN_FORMATS as drm_info prints it: one entry per modifier with its formats. */
export function inFormatsJson(plane: PlaneSnapshot): JsonLike {
  const byMod = new Map<bigint, number[]>();
  for (const f of plane.formatModifiers) {
    for (const m of f.modifiers) {
      let list = byMod.get(m);
      if (!list) byMod.set(m, (list = []));
      list.push(f.format);
    }
  }
  return [...byMod].map(([modifier, formats]) => ({ modifier, formats }));
}

export interface PropertyJsonContext {
  blobs?: Record<number, Buffer | null>;
  fbs?: Record<number, DrmFb2 | null>;
  mode?: ModeInfo | null;
  plane?: PlaneSnapshot;
}

function blobData(p: PropertySnapshot, ctx: PropertyJsonContext): JsonLike {
  if (p.value === 0n) return null;
  if (p.name === 'IN_FORMATS' && ctx.plane) return inFormatsJson(ctx.plane);
  if (p.name === 'MODE_ID') return ctx.mode ? modeJson(ctx.mode) : null;
  const blob = ctx.blobs?.[Number(p.value)];
  if (!blob) return null;
  if (p.name === 'WRITEBACK_PIXEL_FORMATS') {
    const out: number[] = [];
    for (let o = 0; o + 4 <= blob.length; o += 4) out.push(blob.readUInt32LE(o));
    return out;
  }
  if (p.name === 'PATH') return blob.toString('latin1').replace(/\0+$/, '');
  return null;
}

export function propertyJson(p: PropertySnapshot, ctx: PropertyJsonContext = {}): Obj {
  const type = p.flags & (DRM_MODE_PROP_LEGACY_TYPE | DRM_MODE_PROP_EXTENDED_TYPE);
  const raw = BigInt.asUintN(64, p.value);
  let spec: JsonLike = null;
  let value: JsonLike = null;
  let data: JsonLike = null;
  switch (type) {
    case DRM_MODE_PROP_RANGE:
      spec = p.range ? { min: BigInt.asUintN(64, p.range[0]), max: BigInt.asUintN(64, p.range[1]) } : null;
      value = raw;
      if (p.name.startsWith('SRC_')) data = raw >> 16n;
      break;
    case DRM_MODE_PROP_SIGNED_RANGE:
      spec = p.range ? { min: BigInt.asIntN(64, p.range[0]), max: BigInt.asIntN(64, p.range[1]) } : null;
      value = BigInt.asIntN(64, p.value);
      break;
    case DRM_MODE_PROP_ENUM:
    case DRM_MODE_PROP_BITMASK:
      spec = (p.enums ?? []).map((e) => ({ name: e.name, value: e.value }));
      value = raw;
      break;
    case DRM_MODE_PROP_OBJECT:
      spec = p.objectType ?? null;
      value = raw;
      if (p.name === 'FB_ID' && raw !== 0n) data = ctx.fbs ? fbJson(Number(raw), ctx.fbs[Number(raw)]) : { id: raw };
      break;
    case DRM_MODE_PROP_BLOB:
      data = blobData(p, ctx);
      break;
    default:
      break;
  }
  return {
    id: p.id,
    flags: p.flags >>> 0,
    type: type >>> 0,
    atomic: p.atomic,
    immutable: p.immutable,
    raw_value: raw,
    spec,
    value,
    data,
  };
}

export function propertiesJson(props: PropertyMap, ctx: PropertyJsonContext = {}): Obj {
  const out: Obj = {};
  for (const p of Object.values(props)) out[p.name] = propertyJson(p, ctx);
  return out;
}

function readTainted(): number | null {
  try {
    return Number(readFileSync('/proc/sys/kernel/tainted', 'utf8').trim());
  } catch {
    return null;
  }
}

export function errorJson(e: ErrorEntry): Obj {
  const o: Obj = { op: e.op, path: e.path, code: e.code, errno: e.errno, message: e.message };
  if (e.holders) o['holders'] = e.holders.map((h) => ({ pid: h.pid, comm: h.comm }));
  return o;
}

/** One device in drm_info's layout (an {"error": ...} object when it could not be inspected). */
export function drmDeviceJson(r: DrmDeviceReport, kernel: JsonLike = kernelJson()): JsonLike {
  if (!r.snapshot) return { error: errorJson(r.error ?? { op: 'inspect', path: r.path, code: 'ERROR', errno: 0, message: 'unknown error' }) };
  const s: KmsSnapshot = r.snapshot;
  const blobs = r.blobs ?? {};
  const caps: Obj = {};
  for (const [k, v] of Object.entries(s.caps)) caps[k] = v;
  return {
    driver: {
      name: s.driver.name,
      desc: s.driver.desc,
      version: { major: s.driver.major, minor: s.driver.minor, patch: s.driver.patch, date: s.driver.date },
      kernel,
      client_caps: { ...(r.clientCaps ?? {
        UNIVERSAL_PLANES: s.clientCaps.universalPlanes,
        ATOMIC: s.clientCaps.atomic,
        WRITEBACK_CONNECTORS: s.clientCaps.writebackConnectors,
      }) },
      caps,
    },
    device: r.device ?? null,
    fb_size: { min_width: s.minWidth, max_width: s.maxWidth, min_height: s.minHeight, max_height: s.maxHeight },
    connectors: s.connectors.map((c) => ({
      id: c.id,
      name: c.name,
      type: c.type,
      status: c.status === 'connected' ? 1 : c.status === 'disconnected' ? 2 : 3,
      phy_width: c.mmWidth,
      phy_height: c.mmHeight,
      subpixel: c.subpixel,
      encoder_id: c.encoderId,
      encoders: [...c.encoders],
      modes: c.modes.map(modeJson),
      properties: propertiesJson(c.properties, { blobs }),
    })),
    encoders: s.encoders.map((e) => ({
      id: e.id,
      type: e.type,
      crtc_id: e.crtcId,
      possible_crtcs: e.possibleCrtcs,
      possible_clones: e.possibleClones,
    })),
    crtcs: s.crtcs.map((c) => ({
      id: c.id,
      index: c.index,
      fb_id: c.fbId,
      x: c.x,
      y: c.y,
      mode: c.mode ? modeJson(c.mode) : null,
      gamma_size: c.gammaSize,
      properties: propertiesJson(c.properties, { blobs, mode: c.mode }),
    })),
    planes: s.planes.map((p) => ({
      id: p.id,
      plane_type: p.type,
      possible_crtcs: p.possibleCrtcs,
      crtc_id: p.crtcId,
      fb_id: p.fbId,
      crtc_x: p.crtc.x,
      crtc_y: p.crtc.y,
      x: p.src.x >> 16,
      y: p.src.y >> 16,
      gamma_size: p.gammaSize,
      fb: p.fbId ? fbJson(p.fbId, r.fbs?.[p.fbId]) : null,
      formats: [...p.formats],
      properties: propertiesJson(p.properties, { blobs, plane: p, ...(r.fbs ? { fbs: r.fbs } : {}) }),
    })),
  };
}

export function kernelJson(): JsonLike {
  return { sysname: os.type(), release: os.release(), version: os.version(), tainted: readTainted() };
}

export function vgpuJson(v: VgpuReport): JsonLike {
  const probe: Obj | null = v.probe
    ? Object.fromEntries(
        Object.entries(v.probe).map(([k, a]) => [
          k,
          { supported: a.supported, ...(a.error ? { error: { op: a.error.op, code: a.error.code, errno: a.error.errno, message: a.error.message } } : {}) },
        ]),
      )
    : null;
  return {
    uuid: v.uuid,
    sysfs_path: v.sysfsPath,
    device_path: v.devicePath,
    parent: v.parent,
    type: v.type,
    type_name: v.typeName,
    iommu_group: v.iommuGroup,
    group_path: v.groupPath,
    group_node_exists: v.groupNodeExists,
    holders: v.holders.map((h) => ({ pid: h.pid, comm: h.comm, group_fds: h.groupFds, device_fds: h.deviceFds })),
    probe,
    probe_via: v.probeVia,
    error: v.error ? errorJson(v.error) : undefined,
    probe_error: v.probeError ? errorJson(v.probeError) : undefined,
    probe_skipped: v.probeSkipped,
    // the display event IRQ: { index, maskable, primary_event_val, cursor_event_val } (hex
    // strings, null without the display capability), false: none, null: not asked
    display_event:
      v.displayEvent === undefined
        ? null
        : v.displayEvent === false
          ? false
          : {
              index: v.displayEvent.index,
              maskable: v.displayEvent.maskable,
              primary_event_val: v.displayEvent.priEventVal === null ? null : `0x${v.displayEvent.priEventVal.toString(16)}`,
              cursor_event_val: v.displayEvent.curEventVal === null ? null : `0x${v.displayEvent.curEventVal.toString(16)}`,
            },
  };
}

/**
 * The whole report: { "<device path>": {...drm_info...}, ..., "vgpus": { "devices": [...],
 * "parents": [{ parent, types: [{ id, name, available_instances }] }], "reason"?: "why none" } }.
 */
export function inspectJson(r: InspectReport): JsonLike {
  const kernel = kernelJson();
  const out: Obj = {};
  for (const d of r.drm) out[d.path] = drmDeviceJson(d, kernel);
  out['vgpus'] = {
    devices: r.vgpus.map(vgpuJson),
    parents: (r.mdevParents ?? []).map((p) => ({
      parent: p.parent,
      types: p.types.map((t) => ({ id: t.id, name: t.name, available_instances: t.available })),
    })),
    ...(r.vgpuReason !== undefined ? { reason: r.vgpuReason } : {}),
  };
  return out;
}

export function inspectJsonText(r: InspectReport): string {
  return stringifyJson(inspectJson(r), 2) + '\n';
}
