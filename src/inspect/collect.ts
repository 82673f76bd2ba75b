// Collecting what `vgpu-flip inspect` shows: DRM devices (KMS snapshots) and vGPUs (sysfs +
// PROBE). Nothing here throws for a device problem: failures become `error` entries.
import { readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { native } from '../binding/index.js';
import { DRM_CLIENT_CAP_ASPECT_RATIO, DRM_CLIENT_CAP_STEREO_3D } from '../binding/constants.js';
import { isKernelError } from '../binding/errors.js';
import { DrmDevice } from '../kms/device.js';
import type { KmsSnapshot } from '../kms/types.js';
import type { DrmFb2 } from '../binding/types.js';
import { VfioDevice, VfioGroupBusyError } from '../vfio/device.js';
import { discoverVgpus, listMdevParents } from '../vfio/sysfs.js';
import { findDisplayIrq } from '../vfio/display-irq.js';
import type { JsonLike } from '../util/json.js';
import { drmDeviceSysfsInfo } from './device-info.js';
import type { ProbeResult, SysRoots, VgpuInfo } from '../vfio/types.js';

export interface ErrorEntry {
  /** syscall / ioctl that failed ('open', 'DRM_IOCTL_VERSION', ...) or 'inspect' */
  op: string;
  path: string;
  /** errno name, or 'ERROR' for non-kernel failures */
  code: string;
  errno: number;
  message: string;
  /** for a busy VFIO group: who holds it */
  holders?: { pid: number; comm: string }[];
}

export interface DrmDeviceReport {
  path: string;
  snapshot?: KmsSnapshot;
  /** client caps inspect tried to enable (drm_info's names) -> accepted */
  clientCaps?: Record<string, boolean>;
  /** drm_info's "device" object (bus type and ids, from sysfs), null when unknown */
  device?: JsonLike;
  /** contents of some blob properties (WRITEBACK_PIXEL_FORMATS, PATH), by blob id */
  blobs?: Record<number, Buffer | null>;
  /** GETFB2 of the framebuffers planes show (drm_info's plane "fb"), by fb id; null when unreadable */
  fbs?: Record<number, DrmFb2 | null>;
  error?: ErrorEntry;
}

export interface VgpuReport extends VgpuInfo {
  /** PROBE answers per path, null when the device could not be reached */
  probe: ProbeResult | null;
  /** how the device was reached for PROBE: "open", "pidfd pid N fd M", or null */
  probeVia: string | null;
  /** opening failed (e.g. EBUSY with holders); PROBE may still have worked through the holder */
  error?: ErrorEntry;
  /** PROBE through the holder failed too */
  probeError?: ErrorEntry;
  /** why PROBE was not tried (an idle vGPU without --probe, a holder without a device fd yet) */
  probeSkipped?: string;
  /**
   * the display event IRQ (src/vfio/display-irq.ts), asked with PROBE: its index and the
   * eventfd values naming the primary / cursor plane (null without the display capability);
   * false: the vGPU offers none; absent/undefined: not asked (not probed) or the query failed
   */
  displayEvent?: DisplayEventReport | false;
}

export interface DisplayEventReport {
  index: number;
  maskable: boolean;
  priEventVal: bigint | null;
  curEventVal: bigint | null;
}

/** The display event IRQ of a reached device; undefined when asking failed (never throws). */
function displayEventOf(dev: VfioDevice): DisplayEventReport | false | undefined {
  try {
    const d = findDisplayIrq(dev);
    if (!d) return false;
    return { index: d.index, maskable: d.maskable, priEventVal: d.events?.priEventVal ?? null, curEventVal: d.events?.curEventVal ?? null };
  } catch {
    return undefined;
  }
}

function withDisplayEvent(f: ProbeFields, dev: VfioDevice): ProbeFields {
  const e = displayEventOf(dev);
  return e === undefined ? f : { ...f, displayEvent: e };
}

export interface InspectReport {
  drm: DrmDeviceReport[];
  /** why no DRM device is listed (no /dev/dri) */
  drmReason?: string;
  vgpus: VgpuReport[];
  vgpuReason?: string;
  /** mdev parent devices and the types they offer (where new vGPUs can be created) */
  mdevParents?: MdevParent[];
}

export type MdevParent = ReturnType<typeof listMdevParents>[number];

export interface InspectOptions {
  /** DRM device paths; default: every /dev/dri/card* */
  devices?: string[];
  /**
   * PROBE: false/'none' never; 'held' (default) only through the device fd of a process holding
   * the group (pidfd_getfd: the group itself is not touched); true/'all' also opens idle vGPUs'
   * groups (a VMM starting at that moment would get EBUSY)
   */
  probe?: boolean | 'none' | 'held' | 'all';
  /** include the vGPU section (default true) */
  vgpus?: boolean;
  roots?: SysRoots;
}

export function errorEntry(e: unknown, fallbackPath: string): ErrorEntry {
  if (e instanceof VfioGroupBusyError) {
    return {
      op: 'open',
      path: `/dev/vfio/${e.groupId}`,
      code: 'EBUSY',
      errno: 16,
      message: e.message,
      holders: e.holders,
    };
  }
  if (isKernelError(e)) {
    let message = e.message;
    if (e.op === 'DRM_IOCTL_VERSION' && (e.code === 'ENOTTY' || e.code === 'EINVAL') && !/not a DRM device/i.test(message)) {
      message += ' (not a DRM device)';
    } else if (e.op === 'DRM_IOCTL_MODE_GETRESOURCES' && ['EOPNOTSUPP', 'ENOTSUP', 'EINVAL'].includes(e.code)) {
      message += ' (no modesetting on this node: a render node, or a GPU without display outputs)';
    }
    return { op: e.op, path: e.path || fallbackPath, code: e.code, errno: e.errno, message };
  }
  const message = e instanceof Error ? e.message : String(e);
  return { op: 'inspect', path: fallbackPath, code: 'ERROR', errno: 0, message };
}

/** /dev/dri/card* sorted by number. */
export function listCardNodes(devRoot = '/dev'): string[] {
  const dir = path.join(devRoot, 'dri');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => /^card\d+$/.test(n))
    .sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)))
    .map((n) => path.join(dir, n));
}

const BLOB_DATA_PROPS = new Set(['WRITEBACK_PIXEL_FORMATS', 'PATH']);

export function inspectDrmDevice(devPath: string): DrmDeviceReport {
  let dev: DrmDevice;
  try {
    dev = DrmDevice.open(devPath, { writeback: true, requireAtomic: false });
  } catch (e) {
    return { path: devPath, error: errorEntry(e, devPath) };
  }
  try {
    const clientCaps: Record<string, boolean> = {};
    const trySet = (cap: number): boolean => {
      try {
        native.drmSetClientCap(dev.fd, cap, 1);
        return true;
      } catch {
        return false;
      }
    };
    clientCaps['STEREO_3D'] = trySet(DRM_CLIENT_CAP_STEREO_3D);
    clientCaps['UNIVERSAL_PLANES'] = dev.clientCaps.universalPlanes;
    clientCaps['ATOMIC'] = dev.clientCaps.atomic;
    clientCaps['ASPECT_RATIO'] = trySet(DRM_CLIENT_CAP_ASPECT_RATIO);
    clientCaps['WRITEBACK_CONNECTORS'] = dev.clientCaps.writebackConnectors;
    const snapshot = dev.snapshot();
    const blobs: Record<number, Buffer | null> = {};
    for (const obj of [...snapshot.connectors, ...snapshot.crtcs, ...snapshot.planes]) {
      for (const p of Object.values(obj.properties)) {
        if (p.kind === 'blob' && BLOB_DATA_PROPS.has(p.name) && p.value !== 0n) {
          try {
            blobs[Number(p.value)] = native.drmGetPropertyBlob(dev.fd, Number(p.value));
          } catch {
            blobs[Number(p.value)] = null;
          }
        }
      }
    }
    const fbs: Record<number, DrmFb2 | null> = {};
    for (const p of snapshot.planes) {
      if (p.fbId === 0 || p.fbId in fbs) continue;
      try {
        fbs[p.fbId] = native.drmGetFb2(dev.fd, p.fbId);
      } catch {
        fbs[p.fbId] = null; // gone meanwhile, or a kernel without GETFB2
      }
    }
    return { path: devPath, snapshot, clientCaps, blobs, fbs, device: drmDeviceSysfsInfo(devPath) };
  } catch (e) {
    return { path: devPath, error: errorEntry(e, devPath) };
  } finally {
    dev.close();
  }
}

type ProbeFields = Pick<VgpuReport, 'probe' | 'probeVia' | 'error' | 'probeError' | 'probeSkipped' | 'displayEvent'>;

/** PROBE through a holder's device fd (a duplicate: pidfd_getfd, root); the group is not touched. */
function probeThroughHolder(v: VgpuInfo, pid: number, roots?: SysRoots): ProbeFields {
  let dup: VfioDevice | null = null;
  try {
    dup = VfioDevice.fromPid(pid, { uuid: v.uuid, ...(roots ? { roots } : {}) });
    const probe = dup.probe();
    return withDisplayEvent({ probe, probeVia: `pidfd ${dup.label.replace(/^vfio-device /, '')}` }, dup);
  } catch (e) {
    return { probe: null, probeVia: null, probeError: errorEntry(e, `/proc/${pid}/fd`) };
  } finally {
    dup?.close();
  }
}

function probeVgpu(v: VgpuInfo, mode: 'held' | 'all', roots?: SysRoots): ProbeFields {
  const holder = v.holders.find((h) => h.deviceFds.length > 0);
  if (holder) return probeThroughHolder(v, holder.pid, roots);
  if (v.holders.length > 0) {
    return { probe: null, probeVia: null, probeSkipped: `held by pid ${v.holders.map((h) => h.pid).join(', ')} without a device fd yet (the VM is starting?)` };
  }
  if (mode !== 'all') return { probe: null, probeVia: null, probeSkipped: 'idle: not opened (a VMM starting now would get EBUSY); --probe opens its group' };
  let dev: VfioDevice;
  try {
    dev = VfioDevice.open(v.uuid, { roots });
  } catch (e) {
    // taken meanwhile: PROBE through the new holder's device fd
    if (e instanceof VfioGroupBusyError && e.holders.length > 0) {
      const r = probeThroughHolder(v, e.holders[0]!.pid, roots);
      return r.probe ? r : { ...r, error: errorEntry(e, v.groupPath ?? v.sysfsPath) };
    }
    return { probe: null, probeVia: null, error: errorEntry(e, v.groupPath ?? v.sysfsPath) };
  }
  try {
    return withDisplayEvent({ probe: dev.probe(), probeVia: 'open' }, dev);
  } catch (e) {
    return { probe: null, probeVia: null, error: errorEntry(e, dev.label) };
  } finally {
    dev.close();
  }
}

export function inspectVgpus(opts: Pick<InspectOptions, 'probe' | 'roots'> = {}): { vgpus: VgpuReport[]; reason?: string } {
  const d = discoverVgpus(opts.roots);
  const mode = opts.probe === false || opts.probe === 'none' ? 'none' : opts.probe === true || opts.probe === 'all' ? 'all' : 'held';
  const vgpus = d.vgpus.map((v): VgpuReport => {
    if (mode === 'none') return { ...v, probe: null, probeVia: null };
    return { ...v, ...probeVgpu(v, mode, opts.roots) };
  });
  return d.reason !== undefined ? { vgpus, reason: d.reason } : { vgpus };
}

export function collectInspect(opts: InspectOptions = {}): InspectReport {
  const devRoot = opts.roots?.dev ?? '/dev';
  const paths = opts.devices && opts.devices.length ? opts.devices : listCardNodes(devRoot);
  const report: InspectReport = { drm: paths.map(inspectDrmDevice), vgpus: [] };
  if (paths.length === 0) {
    report.drmReason = existsSync(path.join(devRoot, 'dri'))
      ? `no card nodes in ${path.join(devRoot, 'dri')}`
      : `${path.join(devRoot, 'dri')} does not exist: no DRM driver is loaded`;
  }
  if (opts.vgpus !== false) {
    const v = inspectVgpus(opts);
    report.vgpus = v.vgpus;
    if (v.reason !== undefined) report.vgpuReason = v.reason;
    report.mdevParents = listMdevParents(opts.roots);
  }
  return report;
}

/** Exit status: 1 only when something failed and nothing at all could be inspected. */
export function inspectExitCode(r: InspectReport): number {
  const okDrm = r.drm.some((d) => d.snapshot);
  const okVgpu = r.vgpus.length > 0;
  const anyError = r.drm.some((d) => d.error);
  return !okDrm && !okVgpu && anyError ? 1 : 0;
}
