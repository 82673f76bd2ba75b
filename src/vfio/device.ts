// VfioDevice: a vGPU's VFIO device fd, opened by UUID (container + group + device), adopted from
// an inherited fd, or duplicated out of the process holding the group (pidfd_getfd).
import { readdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { native } from '../binding/index.js';
import type { VfioDeviceInfo, VfioRegionInfo } from '../binding/types.js';
import { VFIO_GFX_PLANE_TYPE_PROBE } from '../binding/constants.js';
import { hasCode, isKernelError } from '../binding/errors.js';
import { PLANE_PATH_FLAGS, PLANE_PATHS, DRM_PLANE_TYPES, normalizePlaneInfo } from './plane.js';
import { holdersOf, readVgpu, scanVfioHolders } from './sysfs.js';
import { findVmmDevice } from './vmm-pick.js';
import type { ProbeAnswer, ProbeResult, SysRoots, VgpuPlaneInfo, VgpuPlanePath, VgpuPlaneType } from './types.js';

export interface VfioOpenOptions {
  roots?: SysRoots;
}

export interface VfioFromPidOptions {
  /** the fd number in the holder to duplicate (default: its display device fd named `uuid`, or its only one: vmm-pick.ts) */
  targetFd?: number;
  /** the mdev UUID, to pick the right device fd when fdinfo names devices */
  uuid?: string;
  roots?: SysRoots;
}

/** Error for a busy group, carrying the holders found. */
export class VfioGroupBusyError extends Error {
  readonly code = 'EBUSY';
  constructor(
    message: string,
    readonly groupId: number,
    readonly holders: { pid: number; comm: string }[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'VfioGroupBusyError';
  }
}

export class VfioDevice {
  private deviceFdValue: number;
  private constructor(
    deviceFd: number,
    readonly label: string,
    readonly uuid: string | null,
    readonly groupId: number | null,
    private groupFd: number,
    private containerFd: number,
    /** how the fd was obtained */
    readonly origin: 'open' | 'adopted' | 'pidfd',
  ) {
    this.deviceFdValue = deviceFd;
  }

  /**
   * Open by mdev UUID: find its IOMMU group in sysfs, then container + group + device. On EBUSY
   * the error names the process holding the group and suggests `--pid <pid>`.
   */
  static open(uuid: string, opts: VfioOpenOptions = {}): VfioDevice {
    const v = readVgpu(uuid, opts.roots, []);
    if (v.devicePath === null) {
      throw new Error(`vGPU ${uuid}: no such mdev device (${v.sysfsPath} does not exist); list vGPUs with \`vgpu-flip inspect\``);
    }
    if (v.iommuGroup === null) {
      throw new Error(`vGPU ${uuid}: ${v.sysfsPath}/iommu_group is missing (is the mdev bound to vfio_mdev?)`);
    }
    let h;
    try {
      h = native.vfioOpenMdev(v.iommuGroup, uuid);
    } catch (e) {
      if (hasCode(e, 'EBUSY')) {
        const holders = holdersOf(v, scanVfioHolders(opts.roots), opts.roots);
        const who = holders.length
          ? holders.map((x) => `pid ${x.pid} (${x.comm || '?'})`).join(', ')
          : 'another process (not found in /proc: not root?)';
        const hint = holders.length
          ? `use its device fd instead: --pid ${holders[0]!.pid} (needs root: pidfd_getfd)`
          : 'find the VMM holding it and pass --pid <pid>';
        throw new VfioGroupBusyError(
          `vGPU ${uuid}: VFIO group ${v.iommuGroup} (${v.groupPath}) is busy: held by ${who}; ${hint}`,
          v.iommuGroup,
          holders.map((x) => ({ pid: x.pid, comm: x.comm })),
          { cause: e },
        );
      }
      if (hasCode(e, 'EACCES', 'EPERM')) {
        // not root: the group node is all a user needs (and /dev/vfio/vfio, mode 0666 by default)
        const uid = process.getuid?.() ?? -1;
        throw new Error(
          `vGPU ${uuid}: cannot open its VFIO group ${v.groupPath} or /dev/vfio/vfio as uid ${uid} (${(e as Error).message}): ` +
            `give this user the group node (e.g. chown or a udev rule: SUBSYSTEM=="vfio", KERNEL=="${v.iommuGroup}", OWNER="<user>") or run as root`,
          { cause: e },
        );
      }
      throw e;
    }
    return new VfioDevice(h.device, `vfio-device ${uuid}`, uuid, h.groupId, h.group, h.container, 'open');
  }

  /** Adopt a device fd the caller already has (e.g. inherited: `--fd N`). The fd is closed by close(). */
  static adoptFd(fd: number, opts: { uuid?: string; label?: string } = {}): VfioDevice {
    if (!Number.isInteger(fd) || fd < 0) throw new RangeError(`adopting a VFIO device fd: invalid fd ${fd}`);
    const label = opts.label ?? `vfio-device fd ${fd}${opts.uuid ? ` (${opts.uuid})` : ''}`;
    native.setFdLabel(fd, label);
    const dev = new VfioDevice(fd, label, opts.uuid ?? null, null, -1, -1, 'adopted');
    // check it really is a VFIO device: VFIO_DEVICE_GET_INFO fails with ENOTTY otherwise
    try {
      dev.info();
    } catch (e) {
      if (e instanceof Error) e.message = `fd ${fd} is not a VFIO device fd: ${e.message}`;
      throw e;
    }
    return dev;
  }

  /** Device fd candidates in another process: its anon_inode:[vfio-device] fds. */
  static deviceFdsOf(pid: number, roots: SysRoots = {}): number[] {
    const dir = path.join(roots.proc ?? '/proc', String(pid), 'fd');
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch (e) {
      throw new Error(`cannot list ${dir}: ${(e as Error).message} (no such process, or not root)`, { cause: e });
    }
    const out: number[] = [];
    for (const n of names) {
      try {
        if (readlinkSync(path.join(dir, n)) === 'anon_inode:[vfio-device]') out.push(Number(n));
      } catch {
        /* fd closed meanwhile */
      }
    }
    return out.sort((a, b) => a - b);
  }

  /** Duplicate the VFIO device fd out of the process holding the group (pidfd_open + pidfd_getfd; root). */
  static fromPid(pid: number, opts: VfioFromPidOptions = {}): VfioDevice {
    let target = opts.targetFd;
    if (target === undefined) {
      // which fd is the vGPU (and that it has a display): /proc, /sys and the device itself
      target = findVmmDevice(pid, opts.uuid ? { vgpu: opts.uuid } : {}, opts.roots ? { roots: opts.roots } : {}).fd;
    }
    const fd = native.pidfdGetFd(pid, target);
    const label = `vfio-device pid ${pid} fd ${target}${opts.uuid ? ` (${opts.uuid})` : ''}`;
    native.setFdLabel(fd, label);
    return new VfioDevice(fd, label, opts.uuid ?? null, null, -1, -1, 'pidfd');
  }

  get fd(): number {
    if (this.deviceFdValue < 0) throw new Error(`${this.label}: device is closed`);
    return this.deviceFdValue;
  }

  get closed(): boolean {
    return this.deviceFdValue < 0;
  }

  info(): VfioDeviceInfo {
    return native.vfioDeviceInfo(this.fd);
  }

  regionInfo(index: number): VfioRegionInfo {
    return native.vfioRegionInfo(this.fd, index);
  }

  /** One PROBE: supported (0), unsupported (EINVAL), or the other error. */
  probePath(p: VgpuPlanePath, type: VgpuPlaneType = 'primary'): ProbeAnswer {
    try {
      native.vfioQueryGfxPlane(this.fd, VFIO_GFX_PLANE_TYPE_PROBE | PLANE_PATH_FLAGS[p], DRM_PLANE_TYPES[type]);
      return { supported: true };
    } catch (e) {
      if (!isKernelError(e)) throw e;
      if (e.code === 'EINVAL') return { supported: false };
      return { supported: null, error: { op: e.op, code: e.code, errno: e.errno, message: e.message } };
    }
  }

  /** PROBE every display path. */
  probe(): ProbeResult {
    const out = {} as ProbeResult;
    for (const p of PLANE_PATHS) out[p] = this.probePath(p);
    return out;
  }

  /** The best supported path (drm_fb, then dmabuf, then region), or null. */
  bestPath(probe: ProbeResult = this.probe()): VgpuPlanePath | null {
    return PLANE_PATHS.find((p) => probe[p].supported === true) ?? null;
  }

  /**
   * VFIO_DEVICE_QUERY_GFX_PLANE for one plane type through one path. `ready` is false (size 0)
   * before the guest enabled its display. Errors are worth retrying on the next frame (a real
   * driver answered ENOMEM once after a mode change).
   */
  queryPlane(type: VgpuPlaneType, p: VgpuPlanePath): VgpuPlaneInfo {
    const raw = native.vfioQueryGfxPlane(this.fd, PLANE_PATH_FLAGS[p], DRM_PLANE_TYPES[type]);
    return normalizePlaneInfo(raw, type, p);
  }

  /** VFIO_DEVICE_GET_GFX_DMABUF: a dma-buf fd for the dmabuf_id of a query (caller closes it). */
  getDmabuf(dmabufId: number): number {
    return native.vfioGetGfxDmabuf(this.fd, dmabufId);
  }

  /** Close device, group, container. Idempotent. */
  close(): void {
    const fds = [this.deviceFdValue, this.groupFd, this.containerFd];
    this.deviceFdValue = -1;
    this.groupFd = -1;
    this.containerFd = -1;
    let first: unknown;
    for (const fd of fds) {
      if (fd < 0) continue;
      try {
        native.close(fd);
      } catch (e) {
        first ??= e;
      }
    }
    if (first) throw first;
  }
}
