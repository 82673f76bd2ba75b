// `assign --pid/--pid-fd/--domain`: finding a VMM's vGPU in recorded /proc and /sys trees
// (fake trees in a temp dir, shaped like Debian 12's 6.1 kernel: no vfio-device-syspath in
// fdinfo), and the exact argument errors.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseQemuCmdline, scanVmm, identifyVmmDevices, type AskDevice } from '../../src/vfio/vmm-fds.js';
import { pickVmmDevice } from '../../src/vfio/vmm-pick.js';
import { watchVmmExit, locateVmm } from '../../src/vfio/vmm.js';
import { checkDrmNode } from '../../src/flip/session-checks.js';
import { choosePath, installExitHandlers } from '../../src/flip/session.js';
import { parseDuration, resolveVmmTarget } from '../../src/cli/commands/assign-target.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'vgpu-flip-vmm-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const A = '6f0a5bd2-3c1e-4b6e-9a8f-00000000000a';
const B = '6f0a5bd2-3c1e-4b6e-9a8f-00000000000b';
const NIC = '0000:03:00.0';

interface FakeVmm {
  pid: number;
  comm?: string;
  cmdline?: string[];
  /** fd -> link target; '@G' = /dev/vfio/G of the fake dev root, '@dev' = anon_inode:[vfio-device] */
  fds: Record<number, string>;
  fdinfo?: Record<number, string>;
}

let n = 0;
/** A fake tree: /proc/<pid>/{fd,fdinfo,cmdline,comm}, /sys/kernel/iommu_groups, /sys/bus/mdev/devices. */
function tree(vmms: FakeVmm[], groups: Record<number, string[]>, mdevs: string[]): { proc: string; sys: string; dev: string } {
  const root = path.join(tmp, `t${n++}`);
  const proc = path.join(root, 'proc');
  const sys = path.join(root, 'sys');
  const dev = path.join(root, 'dev');
  mkdirSync(path.join(sys, 'bus', 'mdev', 'devices'), { recursive: true });
  mkdirSync(path.join(sys, 'devices', 'vgpu_sim'), { recursive: true });
  for (const u of mdevs) {
    mkdirSync(path.join(sys, 'devices', 'vgpu_sim', u));
    symlinkSync(path.join(sys, 'devices', 'vgpu_sim', u), path.join(sys, 'bus', 'mdev', 'devices', u));
  }
  for (const [g, devs] of Object.entries(groups)) {
    const d = path.join(sys, 'kernel', 'iommu_groups', g, 'devices');
    mkdirSync(d, { recursive: true });
    for (const x of devs) symlinkSync(`../../../../devices/${x}`, path.join(d, x));
  }
  for (const v of vmms) {
    const p = path.join(proc, String(v.pid));
    mkdirSync(path.join(p, 'fd'), { recursive: true });
    mkdirSync(path.join(p, 'fdinfo'));
    writeFileSync(path.join(p, 'comm'), `${v.comm ?? 'qemu-system-x86'}\n`);
    writeFileSync(path.join(p, 'cmdline'), (v.cmdline ?? []).map((a) => `${a}\0`).join(''));
    for (const [fd, t] of Object.entries(v.fds)) {
      const target = t === '@dev' ? 'anon_inode:[vfio-device]' : t.startsWith('@') ? path.join(dev, 'vfio', t.slice(1)) : t;
      symlinkSync(target, path.join(p, 'fd', fd));
      writeFileSync(path.join(p, 'fdinfo', fd), `pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\n${v.fdinfo?.[Number(fd)] ?? ''}`);
    }
  }
  return { proc, sys, dev };
}

/** Recorded answers of the devices (what a duplicate of each fd said). */
const asker =
  (answers: Record<number, { display: ('drm_fb' | 'dmabuf' | 'region')[]; vfio?: boolean; error?: string }>): AskDevice =>
  (_pid, fd) => {
    const a = answers[fd] ?? { display: [] };
    return { vfio: a.vfio ?? true, display: a.display, ...(a.error ? { error: a.error } : {}) };
  };

// QEMU 7.2 as Debian runs it: container 13, group 14, device 15 (one vGPU), plus a NIC passthrough
const qemuArgs = ['qemu-system-x86_64', '-m', '2G', '-device', `vfio-pci,sysfsdev=/sys/bus/mdev/devices/${A},display=off`, '-device', 'vfio-pci,host=03:00.0,id=nic0'];

describe('QEMU command line', () => {
  it('names the vfio-pci devices: sysfsdev (mdev) and host (PCI), ",," escapes', () => {
    expect(parseQemuCmdline(qemuArgs)).toEqual([
      { kind: 'mdev', name: A, arg: `vfio-pci,sysfsdev=/sys/bus/mdev/devices/${A},display=off` },
      { kind: 'pci', name: NIC, arg: 'vfio-pci,host=03:00.0,id=nic0' },
    ]);
    expect(parseQemuCmdline(['-device', 'driver=vfio-pci,host=0000:03:00.1', '-device', 'virtio-net-pci,netdev=n0', '-device', 'vfio-pci,sysfsdev=/sys/devices/x,,y/0000:04:00.0'])).toEqual([
      { kind: 'pci', name: '0000:03:00.1', arg: 'driver=vfio-pci,host=0000:03:00.1' },
      { kind: 'pci', name: '0000:04:00.0', arg: 'vfio-pci,sysfsdev=/sys/devices/x,,y/0000:04:00.0' },
    ]);
  });
});

describe('a VMM\'s VFIO device fds, identified without fdinfo', () => {
  it('one vGPU and a passthrough NIC: fd order names both, the display one is picked', () => {
    const r = tree([{ pid: 100, cmdline: qemuArgs, fds: { 0: '/dev/null', 13: '@vfio', 14: '@7', 15: '@dev', 16: '@9', 17: '@dev' } }], { 7: [A], 9: [NIC] }, [A]);
    const scan = scanVmm(100, r);
    expect(scan.groupFds).toEqual([
      { fd: 14, group: 7, devices: [A] },
      { fd: 16, group: 9, devices: [NIC] },
    ]);
    expect(scan.deviceFds.map((d) => [d.fd, d.device, d.how])).toEqual([
      [15, A, 'fd-order'],
      [17, NIC, 'fd-order'],
    ]);
    const cands = identifyVmmDevices(scan, asker({ 15: { display: ['dmabuf', 'region'] }, 17: { display: [] } }), r);
    const p = pickVmmDevice(scan, cands);
    expect(p).toMatchObject({ pid: 100, fd: 15, uuid: A });
    expect(p.checks[0]).toBe(`process 100 (qemu-system-x86): VFIO device fd 15 is ${A} (opened right after its IOMMU group), display paths DMABUF REGION; the only one of 2 device fds with a display`);
    // --vgpu is verified against the evidence; --pid-fd of the NIC is refused
    expect(pickVmmDevice(scan, cands, { vgpu: A }).fd).toBe(15);
    expect(() => pickVmmDevice(scan, cands, { pidFd: 17 })).toThrow(
      '--pid-fd 17: fd 17 of process 100 (qemu-system-x86): it has no display (PROBE of VFIO_DEVICE_QUERY_GFX_PLANE: EINVAL/ENOTTY for DRM_FB, DMABUF and REGION): not a vGPU (a passthrough device?)',
    );
    expect(() => pickVmmDevice(scan, cands, { pidFd: 3 })).toThrow(
      `--pid-fd 3: fd 3 of process 100 (qemu-system-x86) is not a VFIO device fd; its VFIO device fds:\n  fd 15: ${A} (opened right after its IOMMU group), display DMABUF REGION\n  fd 17: ${NIC} (opened right after its IOMMU group), no display`,
    );
    expect(() => pickVmmDevice(scan, cands, { vgpu: B })).toThrow(
      `--vgpu ${B}: process 100 (qemu-system-x86) does not hold it (its VFIO groups: 7 [${A}], 9 [${NIC}]; its command line names mdev ${A}, pci ${NIC}); its VFIO device fds:\n` +
        `  fd 15: ${A} (opened right after its IOMMU group), display DMABUF REGION\n  fd 17: ${NIC} (opened right after its IOMMU group), no display`,
    );
  });

  it('a single candidate fd is not taken blindly: a passthrough NIC alone is refused, with --vgpu too', () => {
    const r = tree([{ pid: 101, fds: { 3: '@vfio', 4: '@9', 5: '@dev' } }], { 9: [NIC] }, [A]);
    const scan = scanVmm(101, r);
    const cands = identifyVmmDevices(scan, asker({ 5: { display: [] } }), r);
    expect(() => pickVmmDevice(scan, cands)).toThrow(
      `process 101 (qemu-system-x86) has no VFIO device with a display; its VFIO device fds:\n  fd 5: ${NIC} (opened right after its IOMMU group), no display`,
    );
    expect(() => pickVmmDevice(scan, cands, { vgpu: A })).toThrow(`--vgpu ${A}: process 101 (qemu-system-x86) does not hold it (its VFIO groups: 9 [${NIC}]); its VFIO device fds:`);
  });

  it('two display vGPUs: a clear error listing uuid and fd; --vgpu or --pid-fd then picks', () => {
    const r = tree([{ pid: 102, fds: { 20: '@vfio', 21: '@7', 22: '@dev', 23: '@vfio', 24: '@8', 25: '@dev' } }], { 7: [A], 8: [B] }, [A, B]);
    const scan = scanVmm(102, r);
    const cands = identifyVmmDevices(scan, asker({ 22: { display: ['dmabuf', 'region'] }, 25: { display: ['drm_fb', 'dmabuf', 'region'] } }), r);
    expect(() => pickVmmDevice(scan, cands)).toThrow(
      `process 102 (qemu-system-x86) holds 2 display vGPUs: ${A} (fd 22), ${B} (fd 25); say which: add --vgpu <uuid> (e.g. --vgpu ${A}) or --pid-fd <fd> (e.g. --pid-fd 22)\n` +
        `  fd 22: ${A} (opened right after its IOMMU group), display DMABUF REGION\n  fd 25: ${B} (opened right after its IOMMU group), display DRM_FB DMABUF REGION`,
    );
    expect(pickVmmDevice(scan, cands, { vgpu: B })).toMatchObject({ fd: 25, uuid: B });
    expect(pickVmmDevice(scan, cands, { vgpu: A })).toMatchObject({ fd: 22, uuid: A });
    expect(pickVmmDevice(scan, cands, { pidFd: 25 })).toMatchObject({ fd: 25, uuid: B });
    expect(() => pickVmmDevice(scan, cands, { pidFd: 25, vgpu: A })).toThrow(`--pid-fd 25 is ${B} (opened right after its IOMMU group), not --vgpu ${A}`);
  });

  it('fds whose order tells nothing (one group fd, two devices after it): --vgpu says it cannot tell, --pid-fd works', () => {
    // a process that opened both groups first, then both devices: nearest group fd is ambiguous
    const r = tree([{ pid: 103, fds: { 3: '@vfio', 4: '@7', 5: '@8', 6: '@dev', 7: '@dev' } }], { 7: [A], 8: [B] }, [A, B]);
    const scan = scanVmm(103, r);
    expect(scan.deviceFds.map((d) => d.device)).toEqual([null, null]);
    const cands = identifyVmmDevices(scan, asker({ 6: { display: ['dmabuf'] }, 7: { display: ['dmabuf'] } }), r);
    expect(() => pickVmmDevice(scan, cands, { vgpu: A })).toThrow(
      `--vgpu ${A}: process 103 (qemu-system-x86) holds its IOMMU group, but which device fd is it cannot be told from /proc and /sys on this kernel (no vfio-device-syspath in fdinfo): one of fds 6, 7; its VFIO device fds:\n  fd 6: unidentified device, display DMABUF\n  fd 7: unidentified device, display DMABUF\nadd --pid-fd <fd>`,
    );
    expect(() => pickVmmDevice(scan, cands)).toThrow(`process 103 (qemu-system-x86) holds 2 display vGPUs: unidentified (fd 6), unidentified (fd 7); say which: add --vgpu <uuid> or --pid-fd <fd> (e.g. --pid-fd 6)`);
    expect(pickVmmDevice(scan, cands, { pidFd: 7, vgpu: A }).checks).toEqual([`process 103 (qemu-system-x86): VFIO device fd 7, display paths DMABUF; taken as ${A} as told by --pid-fd (cannot be checked here)`]);
    expect(pickVmmDevice(scan, cands, { pidFd: 7, vgpu: A })).toMatchObject({ fd: 7, uuid: A });
  });

  it('newer kernels: fdinfo vfio-device-syspath names the device; iommufd cdevs through /sys/class/vfio-dev', () => {
    const r = tree(
      [{ pid: 104, fds: { 5: '@dev', 6: '@dev' }, fdinfo: { 5: `vfio-device-syspath: /sys/devices/vgpu_sim/${B}\n`, 6: `vfio-device-syspath: /sys/devices/pci0000:00/${NIC}\n` } }],
      {},
      [B],
    );
    const scan = scanVmm(104, r);
    expect(scan.deviceFds.map((d) => [d.fd, d.device, d.how])).toEqual([
      [5, B, 'fdinfo'],
      [6, NIC, 'fdinfo'],
    ]);
    const r2 = tree([{ pid: 105, fds: { 9: '/DEV/vfio/devices/vfio0' } }], {}, [A]);
    mkdirSync(path.join(r2.sys, 'class', 'vfio-dev', 'vfio0'), { recursive: true });
    symlinkSync(path.join(r2.sys, 'devices', 'vgpu_sim', A), path.join(r2.sys, 'class', 'vfio-dev', 'vfio0', 'device'));
    // the link target must be under the fake dev root
    rmSync(path.join(r2.proc, '105', 'fd', '9'));
    symlinkSync(path.join(r2.dev, 'vfio', 'devices', 'vfio0'), path.join(r2.proc, '105', 'fd', '9'));
    const s2 = scanVmm(105, r2);
    expect(s2.deviceFds).toEqual([{ fd: 9, kind: 'cdev', link: path.join(r2.dev, 'vfio', 'devices', 'vfio0'), device: A, how: 'cdev' }]);
  });

  it('the only display fd and the only mdev of the held groups / command line are paired', () => {
    // device fd before the group fd (fd reuse): order says nothing, "only" does
    const r = tree([{ pid: 106, cmdline: qemuArgs, fds: { 4: '@dev', 9: '@vfio', 10: '@7' } }], { 7: [A] }, [A]);
    const scan = scanVmm(106, r);
    expect(scan.deviceFds[0]!.device).toBeNull();
    const cands = identifyVmmDevices(scan, asker({ 4: { display: ['dmabuf'] } }), r);
    expect(cands[0]).toMatchObject({ device: A, how: 'only', mdev: true });
  });

  it('errors: no process, no device fd yet, not root', () => {
    const r = tree([{ pid: 107, fds: { 3: '@vfio', 4: '@7' } }], { 7: [A] }, [A]);
    expect(() => scanVmm(999, r)).toThrow(`cannot list ${r.proc}/999/fd (ENOENT): no such process`);
    const scan = scanVmm(107, r);
    expect(() => pickVmmDevice(scan, identifyVmmDevices(scan, asker({}), r))).toThrow(
      'process 107 (qemu-system-x86) has no VFIO device fd (no anon_inode:[vfio-device] or /dev/vfio/devices/vfioN in /proc/107/fd) (it holds VFIO group(s) 7 but no device fd yet: is the VM still starting?)',
    );
    const r2 = tree([{ pid: 108, fds: { 3: '@vfio', 4: '@7', 5: '@dev' } }], { 7: [A] }, [A]);
    const s2 = scanVmm(108, r2);
    const c2 = identifyVmmDevices(s2, asker({ 5: { display: [], vfio: false, error: 'pidfd_getfd(pid 108 fd 5): EPERM' } }), r2);
    expect(() => pickVmmDevice(s2, c2)).toThrow(
      `process 108 (qemu-system-x86) has no VFIO device with a display (1 could not be asked: run as root, pidfd_getfd needs CAP_SYS_PTRACE); its VFIO device fds:\n  fd 5: ${A} (opened right after its IOMMU group), not asked: pidfd_getfd(pid 108 fd 5): EPERM`,
    );
  });
});

// libvirt's runtime files (--domain): test/host/libvirt-status.test.ts, with libvirt's own test data

describe('assign argument errors (exact messages)', () => {
  const run = async (...args: string[]): Promise<string> => {
    const { main } = await import('../../src/cli/main.js');
    try {
      await main(['node', 'vgpu-flip', 'assign', ...args]);
      return 'ok';
    } catch (e) {
      return (e as Error).message;
    }
  };
  it('VMM options', async () => {
    expect(await run('--pid-fd', '5')).toBe('--pid-fd <fd> names an fd of the VMM: give the VMM too (--pid <pid>, --pid-file <path> or --domain <name>)');
    expect(await run('--pid', '1', '--domain', 'x')).toBe('--pid and --domain exclude each other: each names the VMM');
    expect(await run('--pid', '1', '--via', 'debugfs')).toBe("--via debugfs and --pid exclude each other: --pid takes the VMM's VFIO fd, --via debugfs needs none");
    expect(await run('--pid', 'x')).toBe('--pid "x": expected a non-negative integer');
    expect(await run('--pid', '0')).toBe('--pid 0: expected a process id (> 0)');
    expect(await run('--pid', '1', '--pid-fd', 'a')).toBe('--pid-fd "a": expected a non-negative integer');
    expect(await run('--wait', '--vgpu', A)).toBe('--wait waits for the VMM to come back: name the VMM with --domain, --pid-file or --pid');
    const empty = path.join(tmp, 'empty.pid');
    writeFileSync(empty, '');
    expect(await run('--pid-file', empty)).toBe(`--pid-file ${empty}: no pid in it (missing, empty, or not a number): is the VM running?`);
    expect(await run('--domain', 'nope', '--libvirt-run-dir', tmp)).toBe(`--domain nope: domain nope is not running: neither ${tmp}/nope.xml nor ${tmp}/nope.pid exists (libvirt keeps them while it runs; list running domains: virsh list)`);
    expect(await run('--plane', 'primary')).toBe('--vgpu <uuid> is required, or name the VMM holding it: --pid <pid>, --pid-file <path> or --domain <name> (list vGPUs with `vgpu-flip inspect`)');
  });
  it('--duration', async () => {
    expect(await run('--vgpu', A, '--duration', 'abc')).toBe('--duration "abc": expected a number of seconds (e.g. 10 or 0.5)');
    expect(await run('--vgpu', A, '--duration', '-1')).toBe('--duration "-1": expected a number of seconds (e.g. 10 or 0.5)');
    expect(await run('--vgpu', A, '--duration', '0')).toBe('--duration "0": must be more than 0 seconds');
    expect(await run('--vgpu', A, '--duration', '1e9')).toBe('--duration "1e9": expected a number of seconds (e.g. 10 or 0.5)');
    expect(await run('--vgpu', A, '--duration', '100000')).toBe('--duration "100000": at most 86400 seconds (a day); leave it out to run until interrupted');
    expect(parseDuration('2.5')).toBe(2.5);
  });
  it('--plane overlay is accepted and --help lists it', async () => {
    const { Command } = await import('commander');
    const { registerAssign } = await import('../../src/cli/commands/assign.js');
    const p = new Command();
    registerAssign(p);
    const help = p.commands.find((c) => c.name() === 'assign')!.helpInformation();
    expect(help).toMatch(/--plane <type>\s+guest plane to assign: primary, cursor, overlay/);
    expect(help).toMatch(/--pid-fd <fd>/);
    expect(help).toMatch(/--domain <name>/);
    expect(help).toMatch(/--wait/);
    expect(await run('--vgpu', A, '--plane', 'overlay')).toBe(`unknown vGPU ${A}: /sys/bus/mdev/devices/${A} does not exist (list vGPUs with \`vgpu-flip inspect\`)`);
  });
  it('--device must be a DRM node (char major 226)', () => {
    const f = path.join(tmp, 'plain');
    writeFileSync(f, '');
    expect(() => checkDrmNode(path.join(tmp, 'missing'))).toThrow(`--device ${tmp}/missing: no such file (DRM card nodes: ls /dev/dri/card*; \`vgpu-flip inspect\` lists them)`);
    expect(() => checkDrmNode(f)).toThrow(`--device ${f} is a regular file, not a DRM node (a /dev/dri/cardN character device of major 226)`);
    expect(() => checkDrmNode(tmp)).toThrow(`--device ${tmp} is a directory, not a DRM node (a /dev/dri/cardN character device of major 226)`);
    expect(() => checkDrmNode('/dev/null')).toThrow('--device /dev/null is a character device of major 1, not a DRM node (major 226: /dev/dri/cardN)');
    const fake = ((major: number, minor: number) => () => ({ isCharacterDevice: () => true, rdev: (major << 8) | minor })) as unknown as (a: number, b: number) => typeof import('node:fs').statSync;
    expect(() => checkDrmNode('/dev/dri/card0', fake(226, 0))).not.toThrow();
    expect(() => checkDrmNode('/dev/dri/renderD128', fake(226, 128))).not.toThrow();
  });
});

describe('hints per vendor driver', () => {
  const noDrmFb = (p: 'drm_fb' | 'dmabuf' | 'region') => ({ supported: p !== 'drm_fb' });
  it('a non-vgpu-sim device gets no vgpu-sim hint', () => {
    const msg = (() => {
      try {
        choosePath(noDrmFb, 'drm_fb', undefined, 'i915');
        return '';
      } catch (e) {
        return (e as Error).message;
      }
    })();
    expect(msg).toBe(
      'vGPU does not support the DRM_FB plane path: the vendor driver answers EINVAL to PROBE (supported: --path dmabuf, --path region); DRM_FB needs a vendor driver that exposes host framebuffers (VFIO_GFX_PLANE_TYPE_DRM_FB, bit 3): use --path dmabuf or region',
    );
    expect(msg).not.toMatch(/vgpu_sim/);
  });
});

describe('VMM watch', () => {
  it('pidfd: readable means exited; stop() closes it', () => {
    let cb: (() => void) | null = null;
    const closed: number[] = [];
    let exits = 0;
    const w = watchVmmExit(42, () => exits++, {
      pidfdOpen: () => 77,
      pollReadable: (_fd, f) => ((cb = f), { stop: () => (cb = null) }),
      close: (fd) => closed.push(fd),
    });
    expect(w.how).toBe('pidfd');
    const fire = cb as unknown as () => void;
    fire();
    fire();
    expect(exits).toBe(1);
    expect(closed).toEqual([77]);
  });
  it('without pidfdOpen: a liveness check; a gone process throws ESRCH', async () => {
    let alive = true;
    let exits = 0;
    const w = watchVmmExit(42, () => exits++, { pidfdOpen: undefined, alive: () => alive, intervalMs: 5 });
    expect(w.how).toBe('poll');
    alive = false;
    await new Promise((r) => setTimeout(r, 30));
    expect(exits).toBe(1);
    w.stop();
    expect(() => watchVmmExit(42, () => undefined, { pidfdOpen: undefined, alive: () => false })).toThrow('pid 42: no such process');
  });
  it('locates the VMM again by pid file, never the pid that just exited', () => {
    const f = path.join(tmp, 'vm.pid');
    writeFileSync(f, `${process.pid}\n`);
    expect(locateVmm({ kind: 'pid-file', file: f })).toBe(process.pid);
    expect(locateVmm({ kind: 'pid-file', file: f }, process.pid)).toBeNull();
    expect(locateVmm({ kind: 'pid-file', file: path.join(tmp, 'none.pid') })).toBeNull();
  });
});

describe('signals restore the display', () => {
  it('SIGHUP and SIGQUIT are handled like SIGTERM', () => {
    const before = { hup: process.listenerCount('SIGHUP'), quit: process.listenerCount('SIGQUIT'), term: process.listenerCount('SIGTERM') };
    const off = installExitHandlers(async () => undefined, () => undefined);
    expect(process.listenerCount('SIGHUP')).toBe(before.hup + 1);
    expect(process.listenerCount('SIGQUIT')).toBe(before.quit + 1);
    expect(process.listenerCount('SIGTERM')).toBe(before.term + 1);
    off();
    expect(process.listenerCount('SIGHUP')).toBe(before.hup);
  });
});

describe('inspect does not open an idle vGPU unless asked', () => {
  it('default: PROBE skipped with the reason; --no-probe: nothing', async () => {
    const { inspectVgpus } = await import('../../src/inspect/collect.js');
    const { renderVgpus } = await import('../../src/inspect/text.js');
    const r = tree([], { 7: [A] }, [A]);
    const v = inspectVgpus({ roots: r });
    expect(v.vgpus).toHaveLength(1);
    expect(v.vgpus[0]).toMatchObject({ uuid: A, holders: [], probe: null, probeVia: null, probeSkipped: 'idle: not opened (a VMM starting now would get EBUSY); --probe opens its group' });
    expect(v.vgpus[0]!.error).toBeUndefined();
    expect(renderVgpus(v.vgpus)).toMatch(new RegExp(`${A} .*- \\(idle: --probe\\)`));
    expect(inspectVgpus({ roots: r, probe: 'none' }).vgpus[0]!.probeSkipped).toBeUndefined();
  });
});
