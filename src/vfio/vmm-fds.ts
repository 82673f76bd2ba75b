// Which VFIO device fds a VMM process holds, and which device each one is. Pure logic over
// /proc and /sys (roots injectable, so host tests run on fake trees) plus one injected "ask"
// function that talks to a device through a duplicate of the fd (pidfd_getfd, see vmm-pick.ts).
//
// A device fd is identified, best evidence first, by:
//   fdinfo    /proc/PID/fdinfo/N "vfio-device-syspath:" (newer kernels; Debian's 6.1 lacks it)
//   cdev      an iommufd device cdev /dev/vfio/devices/vfioN -> /sys/class/vfio-dev/vfioN/device
//   fd-order  the group fd opened just before it (QEMU and libvirt open a group, then get its
//             device fd) when that IOMMU group holds exactly one device
//   only      the only unnamed device fd with a display, and the only unclaimed mdev in the
//             groups the process holds
// QEMU's command line (-device vfio-pci,sysfsdev=... / host=...) is read too, as a cross-check
// and for messages.
import { readFileSync, readdirSync, readlinkSync, realpathSync } from 'node:fs';
import path from 'node:path';
import type { SysRoots, VgpuPlanePath } from './types.js';
import { readTrim, roots } from './sysfs.js';

export interface VmmDeviceFd {
  fd: number;
  /** 'group' (anon_inode:[vfio-device] from VFIO_GROUP_GET_DEVICE_FD) or 'cdev' (/dev/vfio/devices/vfioN) */
  kind: 'group' | 'cdev';
  /** the /proc fd link */
  link: string;
  /** device name (mdev UUID or PCI address) and how we know, null when unknown */
  device: string | null;
  how: 'fdinfo' | 'cdev' | 'fd-order' | 'only' | null;
}

export interface VmmGroupFd {
  fd: number;
  group: number;
  /** names in /sys/kernel/iommu_groups/<group>/devices (mdev UUIDs, PCI addresses) */
  devices: string[];
}

export interface CmdlineDevice {
  kind: 'mdev' | 'pci';
  /** mdev UUID (sysfsdev=.../<uuid>) or PCI address (host=...) */
  name: string;
  /** the -device argument as given */
  arg: string;
}

export interface VmmScan {
  pid: number;
  comm: string;
  deviceFds: VmmDeviceFd[];
  groupFds: VmmGroupFd[];
  cmdline: CmdlineDevice[];
}


const PCI_ADDR = /^(?:[0-9a-f]{4,}:)?[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/i;

/** The VFIO devices QEMU's command line names: -device vfio-pci,sysfsdev=... or host=... */
export function parseQemuCmdline(args: readonly string[]): CmdlineDevice[] {
  const out: CmdlineDevice[] = [];
  for (let i = 0; i < args.length; i++) {
    let a = args[i]!;
    if (a === '-device' || a === '--device') a = args[++i] ?? '';
    else if (a.startsWith('-device=') || a.startsWith('--device=')) a = a.slice(a.indexOf('=') + 1);
    else continue;
    // QEMU's option syntax: driver first, then key=value pairs; ",," escapes a comma
    const parts = a.replace(/,,/g, '\0').split(',').map((s) => s.replace(/\0/g, ','));
    let driver = parts[0] ?? '';
    const kv = new Map<string, string>();
    for (const p of parts.slice(1)) {
      const eq = p.indexOf('=');
      if (eq > 0) kv.set(p.slice(0, eq), p.slice(eq + 1));
    }
    if (driver.startsWith('driver=')) driver = driver.slice(7);
    else if (kv.has('driver')) driver = kv.get('driver')!;
    if (!/^vfio-pci(-nohotplug)?$/.test(driver)) continue;
    const sysfsdev = kv.get('sysfsdev');
    const host = kv.get('host');
    if (sysfsdev) {
      const name = path.basename(sysfsdev.replace(/\/+$/, ''));
      out.push({ kind: /\/mdev\//.test(sysfsdev) || /^[0-9a-f-]{36}$/i.test(name) ? 'mdev' : 'pci', name, arg: a });
    } else if (host) {
      out.push({ kind: 'pci', name: PCI_ADDR.test(host) && host.split(':').length === 2 ? `0000:${host}` : host, arg: a });
    }
  }
  return out;
}

/** Scan one process: its VFIO device fds (identified where /proc and /sys tell), group fds, command line. */
export function scanVmm(pid: number, r: SysRoots = {}): VmmScan {
  const { proc, sys, dev } = roots(r);
  const fdDir = path.join(proc, String(pid), 'fd');
  let names: string[];
  try {
    names = readdirSync(fdDir);
  } catch (e) {
    const code = (e as { code?: string }).code ?? String(e);
    const why = code === 'ENOENT' ? 'no such process' : code === 'EACCES' || code === 'EPERM' ? 'permission denied: run as root' : code;
    throw new Error(`cannot list ${fdDir} (${code}): ${why}`, { cause: e });
  }
  const vfioDir = path.join(dev, 'vfio') + '/';
  const cdevDir = path.join(dev, 'vfio', 'devices') + '/';
  const deviceFds: VmmDeviceFd[] = [];
  const groupFds: VmmGroupFd[] = [];
  for (const n of names) {
    if (!/^\d+$/.test(n)) continue;
    let link: string;
    try {
      link = readlinkSync(path.join(fdDir, n));
    } catch {
      continue; // closed meanwhile
    }
    const fd = Number(n);
    if (link === 'anon_inode:[vfio-device]') {
      const info = readTrim(path.join(proc, String(pid), 'fdinfo', n));
      const m = info?.match(/^vfio-device-syspath:\s*(\S+)/m);
      deviceFds.push({ fd, kind: 'group', link, device: m ? path.basename(m[1]!) : null, how: m ? 'fdinfo' : null });
    } else if (link.startsWith(cdevDir) && /^vfio\d+$/.test(link.slice(cdevDir.length))) {
      const node = link.slice(cdevDir.length);
      let device: string | null = null;
      try {
        device = path.basename(realpathSync(path.join(sys, 'class', 'vfio-dev', node, 'device')));
      } catch {
        device = null;
      }
      deviceFds.push({ fd, kind: 'cdev', link, device, how: device ? 'cdev' : null });
    } else if (link.startsWith(vfioDir) && /^\d+$/.test(link.slice(vfioDir.length))) {
      const group = Number(link.slice(vfioDir.length));
      let devices: string[] = [];
      try {
        devices = readdirSync(path.join(sys, 'kernel', 'iommu_groups', String(group), 'devices')).sort();
      } catch {
        devices = [];
      }
      groupFds.push({ fd, group, devices });
    }
  }
  deviceFds.sort((a, b) => a.fd - b.fd);
  groupFds.sort((a, b) => a.fd - b.fd);
  let cmdline: CmdlineDevice[] = [];
  try {
    cmdline = parseQemuCmdline(readFileSync(path.join(proc, String(pid), 'cmdline'), 'latin1').split('\0').filter((s) => s !== ''));
  } catch {
    cmdline = [];
  }
  const scan: VmmScan = { pid, comm: readTrim(path.join(proc, String(pid), 'comm')) ?? '', deviceFds, groupFds, cmdline };
  pairByFdOrder(scan);
  return scan;
}

/**
 * fd-order evidence: a legacy device fd follows the fd of its group (a group is opened, then
 * VFIO_GROUP_GET_DEVICE_FD). Used only when the process' group and device fds, in fd order,
 * alternate strictly (group, its device fd(s), next group, ...): then each device fd belongs to
 * the group fd right before it, and names its device when that group has exactly one. Any other
 * order (groups opened first, fds reused) tells nothing.
 */
function pairByFdOrder(scan: VmmScan): void {
  const seq = [...scan.groupFds.map((g) => ({ fd: g.fd, g })), ...scan.deviceFds.filter((d) => d.kind === 'group').map((d) => ({ fd: d.fd, d }))].sort((x, y) => x.fd - y.fd);
  for (let i = 0; i < seq.length; i++) {
    const e = seq[i]!;
    if ('g' in e && !(seq[i + 1] && 'd' in seq[i + 1]!)) return; // a group without its device fd right after it
    if ('d' in e && i === 0) return; // a device fd before any group fd
  }
  const named = new Set(scan.deviceFds.map((d) => d.device).filter((x): x is string => x !== null));
  let group: VmmGroupFd | null = null;
  const pairs: [VmmDeviceFd, VmmGroupFd][] = [];
  for (const e of seq) {
    if ('g' in e) {
      group = e.g;
    } else if (group) {
      pairs.push([e.d, group]);
    }
  }
  for (const [d, g] of pairs) {
    if (d.device !== null) continue;
    const alone = pairs.filter(([, x]) => x === g).length === 1;
    if (alone && g.devices.length === 1 && !named.has(g.devices[0]!)) {
      d.device = g.devices[0]!;
      d.how = 'fd-order';
      named.add(d.device);
    }
  }
}

/** What a duplicate of a device fd answered. */
export interface DeviceAnswer {
  /** VFIO_DEVICE_GET_INFO worked (it is a VFIO device) */
  vfio: boolean;
  /** display paths PROBE said yes to ([]: no display: every PROBE EINVAL/ENOTTY) */
  display: VgpuPlanePath[];
  /** the duplicate or an ioctl failed otherwise (EPERM without root, ...) */
  error?: string;
}

export type AskDevice = (pid: number, fd: number) => DeviceAnswer;

export interface VmmCandidate extends VmmDeviceFd {
  answer: DeviceAnswer;
  /** the device is an mdev (under /sys/bus/mdev/devices) */
  mdev: boolean;
}

/** Ask each device fd, then name the last unnamed display fd when only one mdev is left. */
export function identifyVmmDevices(scan: VmmScan, ask: AskDevice, r: SysRoots = {}): VmmCandidate[] {
  const { sys } = roots(r);
  const isMdev = (name: string | null): boolean => {
    if (name === null) return false;
    try {
      readlinkSync(path.join(sys, 'bus', 'mdev', 'devices', name));
      return true;
    } catch {
      return false;
    }
  };
  const cands: VmmCandidate[] = scan.deviceFds.map((d) => ({ ...d, answer: ask(scan.pid, d.fd), mdev: isMdev(d.device) }));
  const unnamedDisplays = cands.filter((c) => c.device === null && c.answer.display.length > 0);
  if (unnamedDisplays.length === 1) {
    const named = new Set(cands.map((c) => c.device));
    const heldMdevs = new Set<string>();
    for (const g of scan.groupFds) for (const x of g.devices) if (isMdev(x) && !named.has(x)) heldMdevs.add(x);
    for (const c of scan.cmdline) if (c.kind === 'mdev' && isMdev(c.name) && !named.has(c.name)) heldMdevs.add(c.name);
    if (heldMdevs.size === 1) {
      const c = unnamedDisplays[0]!;
      c.device = [...heldMdevs][0]!;
      c.how = 'only';
      c.mdev = true;
    }
  }
  return cands;
}

export function howText(how: VmmDeviceFd['how']): string {
  switch (how) {
    case 'fdinfo':
      return 'fdinfo names it';
    case 'cdev':
      return 'its iommufd cdev names it';
    case 'fd-order':
      return 'opened right after its IOMMU group';
    case 'only':
      return 'the only display fd, the only mdev in its groups';
    default:
      return 'unidentified';
  }
}

/** One line per device fd, for messages: "fd 12: <uuid> (how), display DMABUF REGION". */
export function describeCandidate(c: VmmCandidate): string {
  const who = c.device ? `${c.device} (${howText(c.how)})` : 'unidentified device';
  const disp = c.answer.error
    ? `not asked: ${c.answer.error}`
    : !c.answer.vfio
      ? 'not a VFIO device'
      : c.answer.display.length
        ? `display ${c.answer.display.map((p) => p.toUpperCase()).join(' ')}`
        : 'no display';
  return `fd ${c.fd}: ${who}, ${disp}`;
}
