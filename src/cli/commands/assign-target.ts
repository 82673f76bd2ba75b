// `vgpu-flip assign`: which VMM and vGPU the options name (--pid, --pid-file, --domain,
// --vgpu, --pid-fd, --wait), checked before anything is opened, and --duration.
import { UsageError } from '../../flip/session-checks.js';
import { readLibvirtDomain, readPidFile } from '../../vfio/libvirt.js';
import type { VmmLocator } from '../../vfio/vmm.js';

export interface TargetOptions {
  vgpu?: string;
  pid?: number;
  pidFd?: number;
  pidFile?: string;
  domain?: string;
  libvirtRunDir?: string;
  wait: boolean;
  via: 'vfio' | 'debugfs';
}

export interface Target {
  vgpu?: string;
  pid?: number;
  pidFd?: number;
  /** how to find the VMM again (--wait) */
  locator: VmmLocator | null;
  checks: string[];
}

/** --duration: seconds, > 0, at most a day (a typo guard). */
export function parseDuration(s: string): number {
  if (!/^\d+(\.\d+)?$/.test(s.trim())) throw new UsageError(`--duration ${JSON.stringify(s)}: expected a number of seconds (e.g. 10 or 0.5)`);
  const v = Number(s);
  if (!(v > 0)) throw new UsageError(`--duration ${JSON.stringify(s)}: must be more than 0 seconds`);
  if (v > 86400) throw new UsageError(`--duration ${JSON.stringify(s)}: at most 86400 seconds (a day); leave it out to run until interrupted`);
  return v;
}

export function resolveVmmTarget(o: TargetOptions): Target {
  const given = [o.pid !== undefined ? '--pid' : null, o.pidFile !== undefined ? '--pid-file' : null, o.domain !== undefined ? '--domain' : null].filter(
    (x): x is string => x !== null,
  );
  if (given.length > 1) throw new UsageError(`${given.join(' and ')} exclude each other: each names the VMM`);
  if (o.pidFd !== undefined && given.length === 0) throw new UsageError('--pid-fd <fd> names an fd of the VMM: give the VMM too (--pid <pid>, --pid-file <path> or --domain <name>)');
  if (o.via === 'debugfs' && given.length) throw new UsageError(`--via debugfs and ${given[0]} exclude each other: ${given[0]} takes the VMM's VFIO fd, --via debugfs needs none`);
  const checks: string[] = [];
  const t: Target = { locator: null, checks };
  if (o.vgpu !== undefined) t.vgpu = o.vgpu;
  if (o.pidFd !== undefined) t.pidFd = o.pidFd;
  if (o.domain !== undefined) {
    let d;
    try {
      d = readLibvirtDomain(o.domain, o.libvirtRunDir);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    t.pid = d.pid;
    t.locator = { kind: 'domain', name: o.domain, ...(o.libvirtRunDir ? { runDir: o.libvirtRunDir } : {}) };
    if (o.vgpu !== undefined && !d.mdevs.includes(o.vgpu.toLowerCase())) {
      throw new UsageError(`--vgpu ${o.vgpu} is not a vGPU of libvirt domain ${o.domain} (${d.xmlFile} has ${d.mdevs.length ? `mdev ${d.mdevs.join(', ')}` : 'no <hostdev type=\'mdev\'>'})`);
    }
    if (d.mdevs.length === 0) throw new UsageError(`libvirt domain ${o.domain} has no mediated device (no <hostdev type='mdev'> in ${d.xmlFile}): nothing to show`);
    if (o.vgpu === undefined && d.mdevs.length === 1) t.vgpu = d.mdevs[0]!;
    checks.push(`libvirt domain ${o.domain}: QEMU pid ${d.pid} (${d.pidFile}), mdev ${d.mdevs.join(', ')} (${d.xmlFile})`);
  } else if (o.pidFile !== undefined) {
    const pid = readPidFile(o.pidFile);
    if (pid === null) throw new UsageError(`--pid-file ${o.pidFile}: no pid in it (missing, empty, or not a number): is the VM running?`);
    t.pid = pid;
    t.locator = { kind: 'pid-file', file: o.pidFile };
    checks.push(`VMM pid ${pid} from ${o.pidFile}`);
  } else if (o.pid !== undefined) {
    if (o.pid <= 0) throw new UsageError(`--pid ${o.pid}: expected a process id (> 0)`);
    t.pid = o.pid;
    // a new VMM process has a new pid: find it again as the holder of the same vGPU
    t.locator = o.vgpu !== undefined ? { kind: 'holder', uuid: o.vgpu } : null;
  }
  // --pid without --vgpu: the locator (holder of the vGPU picked) is known after the first attach
  if (o.wait && t.pid === undefined) throw new UsageError('--wait waits for the VMM to come back: name the VMM with --domain, --pid-file or --pid');
  return t;
}
