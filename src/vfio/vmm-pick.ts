// Choosing the VFIO device fd of a VMM for `assign --pid` (with --vgpu / --pid-fd or alone),
// on the evidence of vmm-fds.ts. Pure: the device is asked through an injected function.
import { native } from '../binding/index.js';
import { isKernelError } from '../binding/errors.js';
import { VFIO_GFX_PLANE_TYPE_PROBE } from '../binding/constants.js';
import { DRM_PLANE_TYPES, PLANE_PATH_FLAGS, PLANE_PATHS } from './plane.js';
import { describeCandidate, howText, identifyVmmDevices, scanVmm, type AskDevice, type DeviceAnswer, type VmmCandidate, type VmmScan } from './vmm-fds.js';
import type { SysRoots } from './types.js';

/** A bad choice or nothing to choose: the message says what there is and what to pass. */
export class VmmPickError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VmmPickError';
  }
}

export interface VmmPick {
  pid: number;
  fd: number;
  /** the vGPU's mdev UUID when known */
  uuid: string | null;
  candidate: VmmCandidate;
  /** what was checked, for the `check:` lines / the session JSON line */
  checks: string[];
}

export interface PickOptions {
  vgpu?: string;
  pidFd?: number;
}

function vmmName(scan: VmmScan): string {
  return `process ${scan.pid}${scan.comm ? ` (${scan.comm})` : ''}`;
}

function listing(cands: readonly VmmCandidate[]): string {
  return cands.map((c) => `  ${describeCandidate(c)}`).join('\n');
}

/** Pick the device fd: the display fd named by --pid-fd / --vgpu, or the only display fd. */
export function pickVmmDevice(scan: VmmScan, cands: readonly VmmCandidate[], o: PickOptions = {}): VmmPick {
  const who = vmmName(scan);
  const checks: string[] = [];
  const cmd = scan.cmdline.length ? `; its command line names ${scan.cmdline.map((c) => `${c.kind} ${c.name}`).join(', ')}` : '';
  if (cands.length === 0) {
    const groups = scan.groupFds.length ? ` (it holds VFIO group(s) ${scan.groupFds.map((g) => g.group).join(', ')} but no device fd yet: is the VM still starting?)` : '';
    throw new VmmPickError(`${who} has no VFIO device fd (no anon_inode:[vfio-device] or /dev/vfio/devices/vfioN in /proc/${scan.pid}/fd)${groups}${cmd}`);
  }
  const displays = cands.filter((c) => c.answer.display.length > 0);
  const askErrors = cands.filter((c) => c.answer.error);
  const ok = (c: VmmCandidate, why: string): VmmPick => {
    const uuid = o.vgpu ?? (c.mdev ? c.device : null);
    checks.push(`${who}: VFIO device fd ${c.fd}${c.device ? ` is ${c.device} (${howText(c.how)})` : ''}, display paths ${c.answer.display.map((p) => p.toUpperCase()).join(' ')}; ${why}`);
    return { pid: scan.pid, fd: c.fd, uuid, candidate: c, checks };
  };
  const notDisplay = (c: VmmCandidate): string =>
    c.answer.error
      ? `cannot ask it: ${c.answer.error}`
      : !c.answer.vfio
        ? 'it is not a VFIO device (VFIO_DEVICE_GET_INFO failed)'
        : 'it has no display (PROBE of VFIO_DEVICE_QUERY_GFX_PLANE: EINVAL/ENOTTY for DRM_FB, DMABUF and REGION): not a vGPU (a passthrough device?)';

  if (o.pidFd !== undefined) {
    const c = cands.find((x) => x.fd === o.pidFd);
    if (!c) {
      throw new VmmPickError(`--pid-fd ${o.pidFd}: fd ${o.pidFd} of ${who} is not a VFIO device fd; its VFIO device fds:\n${listing(cands)}`);
    }
    if (c.answer.display.length === 0) throw new VmmPickError(`--pid-fd ${o.pidFd}: fd ${o.pidFd} of ${who}: ${notDisplay(c)}`);
    if (o.vgpu && c.device !== null && c.device !== o.vgpu) {
      throw new VmmPickError(`--pid-fd ${o.pidFd} is ${c.device} (${howText(c.how)}), not --vgpu ${o.vgpu}; its VFIO device fds:\n${listing(cands)}`);
    }
    return ok(c, c.device === null && o.vgpu ? `taken as ${o.vgpu} as told by --pid-fd (cannot be checked here)` : 'as told by --pid-fd');
  }

  if (o.vgpu) {
    const named = cands.filter((c) => c.device === o.vgpu);
    if (named.length === 1) {
      const c = named[0]!;
      if (c.answer.display.length === 0) throw new VmmPickError(`--vgpu ${o.vgpu}: its fd ${c.fd} in ${who}: ${notDisplay(c)}`);
      return ok(c, 'matches --vgpu');
    }
    const holdsGroup = scan.groupFds.some((g) => g.devices.includes(o.vgpu!)) || scan.cmdline.some((c) => c.name === o.vgpu);
    if (!holdsGroup) {
      throw new VmmPickError(
        `--vgpu ${o.vgpu}: ${who} does not hold it (its VFIO groups: ${scan.groupFds.map((g) => `${g.group} [${g.devices.join(' ') || '?'}]`).join(', ') || 'none'}${cmd}); its VFIO device fds:\n${listing(cands)}`,
      );
    }
    const unnamed = displays.filter((c) => c.device === null);
    throw new VmmPickError(
      `--vgpu ${o.vgpu}: ${who} holds its IOMMU group, but which device fd is it cannot be told from /proc and /sys on this kernel (no vfio-device-syspath in fdinfo)` +
        `${unnamed.length ? `: one of fds ${unnamed.map((c) => c.fd).join(', ')}` : ''}; its VFIO device fds:\n${listing(cands)}\nadd --pid-fd <fd>`,
    );
  }

  if (displays.length === 1) return ok(displays[0]!, cands.length > 1 ? `the only one of ${cands.length} device fds with a display` : 'the only device fd, and it has a display');
  if (displays.length === 0) {
    const hint = askErrors.length ? ` (${askErrors.length} could not be asked: run as root, pidfd_getfd needs CAP_SYS_PTRACE)` : '';
    throw new VmmPickError(`${who} has no VFIO device with a display${hint}; its VFIO device fds:\n${listing(cands)}${cmd}`);
  }
  const which = displays.map((c) => `${c.device ?? 'unidentified'} (fd ${c.fd})`).join(', ');
  const first = displays.find((c) => c.device !== null);
  throw new VmmPickError(
    `${who} holds ${displays.length} display vGPUs: ${which}; say which: add --vgpu <uuid>${first ? ` (e.g. --vgpu ${first.device})` : ''} or --pid-fd <fd> (e.g. --pid-fd ${displays[0]!.fd})\n${listing(cands)}`,
  );
}

/** Ask a device through a duplicate of the VMM's fd: is it VFIO, which display paths does PROBE accept. */
export const askThroughPidfd: AskDevice = (pid, fd): DeviceAnswer => {
  let dup: number;
  try {
    dup = native.pidfdGetFd(pid, fd);
  } catch (e) {
    return { vfio: false, display: [], error: (e as Error).message };
  }
  try {
    try {
      native.vfioDeviceInfo(dup);
    } catch (e) {
      if (isKernelError(e) && e.code === 'ENOTTY') return { vfio: false, display: [] };
      return { vfio: false, display: [], error: (e as Error).message };
    }
    const display = PLANE_PATHS.filter((p) => {
      try {
        native.vfioQueryGfxPlane(dup, VFIO_GFX_PLANE_TYPE_PROBE | PLANE_PATH_FLAGS[p], DRM_PLANE_TYPES.primary);
        return true;
      } catch {
        return false; // EINVAL (path not offered), ENOTTY (no display ABI at all), other: not usable
      }
    });
    return { vfio: true, display };
  } finally {
    try {
      native.close(dup);
    } catch {
      /* nothing to do */
    }
  }
};

/** Scan, ask and pick in one go (what `assign --pid` does). */
export function findVmmDevice(pid: number, o: PickOptions = {}, deps: { roots?: SysRoots; ask?: AskDevice } = {}): VmmPick {
  const scan = scanVmm(pid, deps.roots);
  const cands = identifyVmmDevices(scan, deps.ask ?? askThroughPidfd, deps.roots);
  return pickVmmDevice(scan, cands, o);
}
