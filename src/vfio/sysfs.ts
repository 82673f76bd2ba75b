// vGPU discovery in sysfs and /proc: mdev devices, their parent, type and IOMMU group, and the
// processes holding the group open. Every root is configurable so host tests use a fake tree.
import { existsSync, readFileSync, readdirSync, readlinkSync, realpathSync } from 'node:fs';
import path from 'node:path';
import type { SysRoots, VfioHolder, VgpuDiscovery, VgpuInfo } from './types.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The sysfs, dev and proc roots (injectable for tests). */
export function roots(r: SysRoots = {}): Required<SysRoots> {
  return { sys: r.sys ?? '/sys', dev: r.dev ?? '/dev', proc: r.proc ?? '/proc' };
}

/** A sysfs attribute's text, trimmed; null when it cannot be read. */
export function readTrim(file: string): string | null {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
}

function linkTargetName(link: string): string | null {
  try {
    return path.basename(readlinkSync(link));
  } catch {
    return null;
  }
}

/** Scan /proc/<pid>/fd of every process for VFIO group / device fds. */
export function scanVfioHolders(r: SysRoots = {}): VfioHolder[] {
  const { proc, dev } = roots(r);
  const groupPrefix = path.join(dev, 'vfio') + '/';
  const out: VfioHolder[] = [];
  let pids: string[];
  try {
    pids = readdirSync(proc).filter((n) => /^\d+$/.test(n));
  } catch {
    return out;
  }
  for (const p of pids) {
    const fdDir = path.join(proc, p, 'fd');
    let fds: string[];
    try {
      fds = readdirSync(fdDir);
    } catch {
      continue; // gone, or not ours to look at
    }
    const h: VfioHolder = { pid: Number(p), comm: '', groupFds: [], deviceFds: [], deviceSyspaths: {} };
    for (const f of fds) {
      let target: string;
      try {
        target = readlinkSync(path.join(fdDir, f));
      } catch {
        continue;
      }
      const fd = Number(f);
      if (target === 'anon_inode:[vfio-device]') {
        h.deviceFds.push(fd);
        const info = readTrim(path.join(proc, p, 'fdinfo', f));
        const m = info?.match(/^vfio-device-syspath:\s*(\S+)/m);
        if (m) h.deviceSyspaths[fd] = m[1]!;
      } else if (target.startsWith(groupPrefix) && /^\d+$/.test(target.slice(groupPrefix.length))) {
        h.groupFds.push(fd);
      } else if (target.startsWith(path.join(dev, 'vfio', 'devices') + '/')) {
        h.deviceFds.push(fd); // iommufd-style cdev
      }
    }
    if (h.groupFds.length || h.deviceFds.length) {
      h.comm = readTrim(path.join(proc, p, 'comm')) ?? '';
      h.groupFds.sort((a, b) => a - b);
      h.deviceFds.sort((a, b) => a - b);
      out.push(h);
    }
  }
  return out.sort((a, b) => a.pid - b.pid);
}

/** Group number a /proc fd link points to, e.g. "/dev/vfio/7" -> 7. */
function groupOfFd(procRoot: string, pid: number, fd: number): number | null {
  try {
    const t = readlinkSync(path.join(procRoot, String(pid), 'fd', String(fd)));
    const m = t.match(/\/vfio\/(\d+)$/);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Holders of one vGPU: processes with its group open, or a device fd whose fdinfo names it. */
export function holdersOf(
  v: Pick<VgpuInfo, 'iommuGroup' | 'devicePath' | 'uuid'>,
  all: readonly VfioHolder[],
  r: SysRoots = {},
): VfioHolder[] {
  const { proc } = roots(r);
  return all.filter((h) => {
    if (v.iommuGroup !== null && h.groupFds.some((fd) => groupOfFd(proc, h.pid, fd) === v.iommuGroup)) return true;
    return Object.values(h.deviceSyspaths).some((sp) => sp.endsWith('/' + v.uuid) || sp === v.devicePath);
  });
}

/** Read one mdev device directory. */
export function readVgpu(uuid: string, r: SysRoots = {}, holders?: readonly VfioHolder[]): VgpuInfo {
  const { sys, dev } = roots(r);
  const sysfsPath = path.join(sys, 'bus', 'mdev', 'devices', uuid);
  let devicePath: string | null = null;
  try {
    devicePath = realpathSync(sysfsPath);
  } catch {
    devicePath = null;
  }
  const parent = devicePath ? path.basename(path.dirname(devicePath)) : null;
  const typeLink = path.join(sysfsPath, 'mdev_type');
  const type = linkTargetName(typeLink);
  const typeName = type ? readTrim(path.join(typeLink, 'name')) : null;
  const groupName = linkTargetName(path.join(sysfsPath, 'iommu_group'));
  const iommuGroup = groupName !== null && /^\d+$/.test(groupName) ? Number(groupName) : null;
  const groupPath = iommuGroup !== null ? path.join(dev, 'vfio', String(iommuGroup)) : null;
  const info: VgpuInfo = {
    uuid,
    sysfsPath,
    devicePath,
    parent,
    type,
    typeName: typeName === '' ? null : typeName,
    iommuGroup,
    groupPath,
    groupNodeExists: groupPath !== null && existsSync(groupPath),
    holders: [],
  };
  info.holders = holdersOf(info, holders ?? scanVfioHolders(r), r);
  return info;
}

/** All mdev devices. A missing /sys/bus/mdev is "no vGPUs", with the reason. */
export function discoverVgpus(r: SysRoots = {}): VgpuDiscovery {
  const { sys } = roots(r);
  const busDir = path.join(sys, 'bus', 'mdev');
  if (!existsSync(busDir)) {
    return {
      vgpus: [],
      reason: `${busDir} does not exist: the mdev module is not loaded (modprobe mdev) or the kernel has no VFIO mdev support`,
    };
  }
  let names: string[];
  try {
    names = readdirSync(path.join(busDir, 'devices'));
  } catch (e) {
    return { vgpus: [], reason: `cannot list ${path.join(busDir, 'devices')}: ${(e as Error).message}` };
  }
  const uuids = names.filter((n) => UUID_RE.test(n)).sort();
  if (uuids.length === 0) {
    return {
      vgpus: [],
      reason: `no mdev devices in ${path.join(busDir, 'devices')} (create one: echo $(uuidgen) > /sys/class/mdev_bus/<parent>/mdev_supported_types/<type>/create)`,
    };
  }
  const holders = scanVfioHolders(r);
  return { vgpus: uuids.map((u) => readVgpu(u, r, holders)) };
}

/** mdev parent devices and their supported types (for messages and for creating instances). */
export function listMdevParents(r: SysRoots = {}): { parent: string; types: { id: string; name: string | null; available: number | null }[] }[] {
  const { sys } = roots(r);
  const dir = path.join(sys, 'class', 'mdev_bus');
  let parents: string[];
  try {
    parents = readdirSync(dir).sort();
  } catch {
    return [];
  }
  return parents.map((parent) => {
    const typesDir = path.join(dir, parent, 'mdev_supported_types');
    let ids: string[] = [];
    try {
      ids = readdirSync(typesDir).sort();
    } catch {
      /* none */
    }
    return {
      parent,
      types: ids.map((id) => {
        const avail = readTrim(path.join(typesDir, id, 'available_instances'));
        return {
          id,
          name: readTrim(path.join(typesDir, id, 'name')),
          available: avail !== null && /^\d+$/.test(avail) ? Number(avail) : null,
        };
      }),
    };
  });
}

export function isUuid(s: string): boolean {
  return UUID_RE.test(s);
}
