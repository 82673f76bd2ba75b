// Finding a kiosk VM's vGPU, per source kind: an mdev the daemon opens (and owns), one it creates
// (once), or the VFIO device of a running VMM found through its libvirt domain or pid file
// (pidfd_getfd of the VMM's device fd; the VMM keeps the group). The answer is the device, how
// to tell the VM went away (the mdev removed, the VMM exited) and what to release; or "wait"
// (not there yet: looked for again later, said once) or an error.
import { existsSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { describeKernelError } from '../binding/errors.js';
import { VfioDevice } from '../vfio/index.js';
import { describeHostdevs, LibvirtDomainError, readLibvirtDomain } from '../vfio/libvirt.js';
import { findVmmDevice } from '../vfio/vmm-pick.js';
import { describeLocator, locateVmm, watchVmmExit, type VmmLocator } from '../vfio/vmm.js';
import type { VmConfig, VmSource } from './model.js';

export interface AcquiredVm {
  vfio: VfioDevice;
  /** the mdev UUID when known */
  uuid: string | null;
  /** "vGPU <uuid>" or "VMM pid N (pid file ...), fd M" */
  describe: string;
  /** null while the VM is there, else why it is gone */
  gone(): string | null;
  /** stop watching (the VMM exit watch); the device itself is closed by its guest */
  release(): void;
}

export type Acquired = { kind: 'ok'; got: AcquiredVm } | { kind: 'wait'; why: string } | { kind: 'error'; why: string };

const mdevPath = (uuid: string): string => `/sys/bus/mdev/devices/${uuid}`;

/**
 * `uuid`: the vGPU found for this VM before (a created one is never created twice); `onCreated`
 * is told about an mdev this call created (the daemon removes it on exit).
 */
export function acquireVm(vm: VmConfig, uuid: string | undefined, onCreated: (uuid: string) => void): Acquired {
  const s = vm.source;
  if (s.kind === 'domain') return fromDomain(vm, s);
  if (s.kind === 'pidfile') return fromVmm(vm, { kind: 'pid-file', file: s.path }, s.vgpu);
  let u = uuid;
  if (!u && s.kind === 'mdev') u = s.uuid;
  if (!u && s.kind === 'create') {
    u = s.uuid ?? randomUUID();
    const f = `/sys/class/mdev_bus/${s.parent}/mdev_supported_types/${s.type}/create`;
    try {
      writeFileSync(f, u);
    } catch (e) {
      return { kind: 'error', why: `vm ${vm.name}: creating ${s.type} on ${s.parent} failed (${f}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` };
    }
    onCreated(u);
  }
  const id = u!;
  if (!existsSync(mdevPath(id))) return { kind: 'wait', why: `vm ${vm.name}: its vGPU ${id} does not exist (yet); its outputs show their idle content until it does` };
  let vfio: VfioDevice;
  try {
    vfio = VfioDevice.open(id);
  } catch (e) {
    return { kind: 'error', why: `vm ${vm.name}: cannot open vGPU ${id}: ${describeKernelError(e)}` };
  }
  return {
    kind: 'ok',
    got: { vfio, uuid: id, describe: `vGPU ${id}`, gone: () => (existsSync(mdevPath(id)) ? null : `vGPU ${id} of vm ${vm.name} was removed`), release: () => undefined },
  };
}

/** libvirt's runtime files name the QEMU pid and the vGPUs (src/vfio/libvirt.ts) */
function fromDomain(vm: VmConfig, s: Extract<VmSource, { kind: 'domain' }>): Acquired {
  let d;
  try {
    d = readLibvirtDomain(s.domain, s.runDir);
  } catch (e) {
    const m = (e as Error).message.replace(/^--domain [^:]+: /, '');
    // not running, starting, stale files of a stopped domain: looked for again; a broken file is an error
    if (e instanceof LibvirtDomainError && e.kind !== 'invalid') return { kind: 'wait', why: `vm ${vm.name}: ${m}; its outputs show their idle content until it runs` };
    return { kind: 'error', why: `vm ${vm.name}: libvirt domain ${s.domain}: ${m}` };
  }
  const has = `${d.xmlFile} has ${describeHostdevs(d.hostdevs)}`;
  if (s.vgpu && !d.mdevs.includes(s.vgpu)) return { kind: 'error', why: `vm ${vm.name}: vGPU ${s.vgpu} is not a vGPU of libvirt domain ${s.domain} (${has})` };
  if (d.mdevs.length === 0) return { kind: 'error', why: `vm ${vm.name}: libvirt domain ${s.domain} has no vGPU (no <hostdev type='mdev' model='vfio-pci'>; ${has})` };
  const vgpu = s.vgpu ?? (d.mdevs.length === 1 ? d.mdevs[0] : undefined);
  if (!vgpu) return { kind: 'error', why: `vm ${vm.name}: libvirt domain ${s.domain} has ${d.mdevs.length} vGPUs (${d.mdevs.join(', ')} in ${d.xmlFile}): say which with vgpu:` };
  return fromVmm(vm, { kind: 'domain', name: s.domain, ...(s.runDir ? { runDir: s.runDir } : {}) }, vgpu, d.pid);
}

function fromVmm(vm: VmConfig, loc: VmmLocator, vgpu: string | undefined, known?: number): Acquired {
  const pid = known ?? locateVmm(loc);
  if (pid === null) return { kind: 'wait', why: `vm ${vm.name}: no VMM is running for ${describeLocator(loc)}; its outputs show their idle content until one is` };
  let pick;
  try {
    pick = findVmmDevice(pid, vgpu ? { vgpu } : {});
  } catch (e) {
    // a VMM that is still starting has not opened its vGPU yet
    return { kind: 'wait', why: `vm ${vm.name}: the VMM (pid ${pid}, ${describeLocator(loc)}) shows no vGPU display yet: ${(e as Error).message}` };
  }
  let vfio: VfioDevice;
  try {
    vfio = VfioDevice.fromPid(pid, { targetFd: pick.fd, ...(pick.uuid ? { uuid: pick.uuid } : {}) });
  } catch (e) {
    return { kind: 'error', why: `vm ${vm.name}: cannot take the VMM's (pid ${pid}) device fd ${pick.fd}: ${describeKernelError(e)} (the daemon needs root for pidfd_getfd)` };
  }
  let exited = false;
  let watch;
  try {
    watch = watchVmmExit(pid, () => (exited = true));
  } catch (e) {
    vfio.close();
    return { kind: 'wait', why: `vm ${vm.name}: the VMM (pid ${pid}) went away while it was opened (${describeKernelError(e)})` };
  }
  return {
    kind: 'ok',
    got: {
      vfio,
      uuid: pick.uuid,
      describe: `VMM pid ${pid} (${describeLocator(loc)}), fd ${pick.fd}${pick.uuid ? `, vGPU ${pick.uuid}` : ''}`,
      gone: () => (exited ? `the VMM (pid ${pid}) of vm ${vm.name} exited` : null),
      release: () => watch.stop(),
    },
  };
}
