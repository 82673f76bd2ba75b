// Kernel tests of reaching a vGPU whose VFIO group another process holds, as when QEMU runs it:
// a child process (the "VMM") opens container + group + device with the legacy group API and
// keeps them; this test process then gets EBUSY naming the child, duplicates the child's device
// fd with pidfd_open + pidfd_getfd, uses it (PROBE, query, dma-buf pixels), and hands a device
// fd to a grandchild that adopts it as an inherited fd (a launcher passing --fd). inspect shows
// the child as the holder and PROBEs through its fd.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addonPath, native } from '../../src/binding/index.js';
import { isKernelError } from '../../src/binding/errors.js';
import { DRM_FORMAT_XRGB8888 } from '../../src/binding/constants.js';
import { VfioDevice, VfioGroupBusyError } from '../../src/vfio/device.js';
import { readVgpu } from '../../src/vfio/sysfs.js';
import { SimGuest, createSimInstance, type SimInstance } from '../../src/vgpu-sim/index.js';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const W = 256;
const H = 128;

function pattern(seed: number): Buffer {
  const b = Buffer.alloc(W * H * 4);
  for (let i = 0; i < W * H; i++) b.writeUInt32LE((0xff000000 | ((i * 7919 + seed * 104729) & 0xffffff)) >>> 0, i * 4);
  return b;
}

/** The "VMM": opens the group with the raw addon (as QEMU would), prints its fds, waits for stdin EOF. */
const VMM = `
const a = require(process.argv[1]);
const h = a.vfioOpenMdev(Number(process.argv[2]), process.argv[3]);
process.stdout.write(JSON.stringify(h) + '\\n');
process.stdin.on('data', () => {});
process.stdin.on('end', () => process.exit(0));
`;

interface Vmm {
  child: ChildProcessWithoutNullStreams;
  handles: { container: number; group: number; device: number; groupId: number };
}

function startVmm(uuid: string, group: number): Promise<Vmm> {
  const child = spawn(process.execPath, ['-e', VMM, addonPath, String(group), uuid], { stdio: 'pipe' });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`VMM child did not report its fds: ${err}`)), 20_000);
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve({ child, handles: JSON.parse(out.slice(0, nl)) });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`VMM child exited with ${code}: ${err}`));
    });
  });
}

function stopVmm(v: Vmm | null): Promise<void> {
  if (!v || v.child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    v.child.once('exit', () => resolve());
    v.child.stdin.end();
  });
}

let sim: SimInstance | null = null;
let guest: SimGuest;
let vmm: Vmm | null = null;

beforeAll(async () => {
  sim = createSimInstance('vgpu_sim-small');
  guest = new SimGuest(sim.uuid);
  const g = readVgpu(sim.uuid).iommuGroup;
  expect(g).not.toBeNull();
  vmm = await startVmm(sim.uuid, g!);
});

afterAll(async () => {
  await stopVmm(vmm);
  sim?.remove();
});

describe('a vGPU held by another process (the VMM)', () => {
  it('the VMM child really holds group and device: /proc shows them, sysfs names it the holder', () => {
    const pid = vmm!.child.pid!;
    const fdLink = (fd: number): string => readlinkSync(`/proc/${pid}/fd/${fd}`);
    expect(fdLink(vmm!.handles.container)).toBe('/dev/vfio/vfio');
    expect(fdLink(vmm!.handles.group)).toBe(`/dev/vfio/${vmm!.handles.groupId}`);
    expect(fdLink(vmm!.handles.device)).toBe('anon_inode:[vfio-device]');
    expect(VfioDevice.deviceFdsOf(pid)).toEqual([vmm!.handles.device]);
    const v = readVgpu(sim!.uuid);
    expect(v.holders.map((h) => h.pid)).toEqual([pid]);
    expect(guest.info().open).toBe(true);
  });

  it('opening the group here fails with EBUSY naming the VMM pid and suggesting --pid', () => {
    const pid = vmm!.child.pid!;
    let err: unknown;
    try {
      VfioDevice.open(sim!.uuid).close();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VfioGroupBusyError);
    const busy = err as VfioGroupBusyError;
    expect(busy.holders.map((h) => h.pid)).toEqual([pid]);
    expect(busy.holders[0]!.comm).toBe('node');
    expect(busy.message).toMatch(new RegExp(`group ${busy.groupId} \\(/dev/vfio/${busy.groupId}\\) is busy: held by pid ${pid} \\(node\\).*--pid ${pid}`));
    // the raw error underneath is the kernel's, typed
    expect(isKernelError(busy.cause)).toBe(true);
    expect(busy.cause).toMatchObject({ code: 'EBUSY', errno: 16, path: `/dev/vfio/${busy.groupId}` });
  });

  it('pidfd_getfd duplicates the VMM device fd (found by scanning /proc) and it works while the VMM runs', () => {
    const pid = vmm!.child.pid!;
    const dup = VfioDevice.fromPid(pid, { uuid: sim!.uuid });
    try {
      expect(dup.origin).toBe('pidfd');
      expect(dup.label).toBe(`vfio-device pid ${pid} fd ${vmm!.handles.device} (${sim!.uuid})`);
      expect(dup.probe()).toMatchObject({ dmabuf: { supported: true }, region: { supported: true } });
      const px = pattern(1);
      guest.setMode('primary', { fourcc: 'XR24', width: W, height: H });
      guest.writePixels(0, px);
      const q = dup.queryPlane('primary', 'dmabuf');
      expect(q).toMatchObject({ ready: true, drmFormat: DRM_FORMAT_XRGB8888, width: W, height: H, stride: W * 4 });
      const fd = dup.getDmabuf(q.id);
      try {
        const m = native.mmap(fd, 0n, W * H * 4, false);
        expect(Buffer.from(m.buffer).equals(px)).toBe(true);
        m.unmap();
      } finally {
        native.close(fd);
      }
    } finally {
      dup.close();
    }
    // closing our duplicate leaves the VMM's device open (the group stays busy)
    expect(vmm!.child.exitCode).toBeNull();
    expect(() => VfioDevice.open(sim!.uuid)).toThrow(VfioGroupBusyError);
    const again = VfioDevice.fromPid(pid, { targetFd: vmm!.handles.device });
    expect(again.queryPlane('primary', 'dmabuf').ready).toBe(true);
    again.close();
  });

  it('pidfd errors are typed and say what is wrong', () => {
    const pid = vmm!.child.pid!;
    // the VMM's group fd is not a device fd: adopting its duplicate fails clearly
    const gfd = native.pidfdGetFd(pid, vmm!.handles.group);
    expect(() => VfioDevice.adoptFd(gfd)).toThrow(new RegExp(`fd ${gfd} is not a VFIO device fd: VFIO_DEVICE_GET_INFO .*ENOTTY`));
    native.close(gfd);
    expect(() => native.pidfdGetFd(pid, 999)).toThrow(
      expect.objectContaining({ op: 'pidfd_getfd', path: `pid ${pid} fd 999`, code: 'EBADF', errno: 9, message: expect.stringMatching(/no such fd/) }),
    );
    expect(() => native.pidfdGetFd(0x3ffffff0, 3)).toThrow(expect.objectContaining({ op: 'pidfd_open', code: 'ESRCH' }));
    // a process without VFIO fds (ourselves here)
    expect(() => VfioDevice.fromPid(process.pid)).toThrow(/has no VFIO device fd/);
    // without root: EPERM, and the message says what is needed
    const code = `
      const a = require(process.argv[1]);
      try { a.pidfdGetFd(Number(process.argv[2]), Number(process.argv[3])); console.log('OK'); }
      catch (e) { console.log(JSON.stringify({ op: e.op, code: e.code, path: e.path, message: e.message })); }
    `;
    const r = spawnSync(process.execPath, ['-e', code, addonPath, String(pid), String(vmm!.handles.device)], {
      uid: 65534,
      gid: 65534,
      encoding: 'utf8',
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: '/tmp' },
    });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({
      op: 'pidfd_getfd',
      code: 'EPERM',
      path: `pid ${pid} fd ${vmm!.handles.device}`,
      message: expect.stringMatching(/needs root \(CAP_SYS_PTRACE\)/),
    });
  });

  it('a launcher hands the device fd down: the child adopts the inherited fd', () => {
    const pid = vmm!.child.pid!;
    const dup = VfioDevice.fromPid(pid, { uuid: sim!.uuid });
    try {
      guest.setMode('primary', { fourcc: 'XR24', width: W, height: H });
      const code = `
        const a = require(process.argv[1]);
        const info = a.vfioDeviceInfo(3);
        const q = a.vfioQueryGfxPlane(3, 1 << 1, 1);
        process.stdout.write(JSON.stringify({ regions: info.numRegions, w: q.width, h: q.height, size: q.size }));
      `;
      const r = spawnSync(process.execPath, ['-e', code, addonPath], { stdio: ['ignore', 'pipe', 'pipe', dup.fd], encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({ regions: dup.info().numRegions, w: W, h: H, size: W * H * 4 });
      // and through the project's layer (dist build, as `vgpu-flip assign --fd 3` would)
      const viaLayer = `
        const { VfioDevice } = await import(process.argv[1]);
        const d = VfioDevice.adoptFd(3, { uuid: process.argv[2] });
        const q = d.queryPlane('primary', 'dmabuf');
        process.stdout.write(JSON.stringify({ origin: d.origin, label: d.label, ready: q.ready, width: q.width }));
        d.close();
      `;
      const r2 = spawnSync(process.execPath, ['--input-type=module', '-e', viaLayer, path.join(root, 'dist/vfio/device.js'), sim!.uuid], {
        stdio: ['ignore', 'pipe', 'pipe', dup.fd],
        encoding: 'utf8',
      });
      expect(r2.stderr).toBe('');
      expect(JSON.parse(r2.stdout)).toEqual({ origin: 'adopted', label: `vfio-device fd 3 (${sim!.uuid})`, ready: true, width: W });
    } finally {
      dup.close();
    }
  });

  it('inspect lists the vGPU with the VMM as holder and PROBEs through its fd', () => {
    const pid = vmm!.child.pid!;
    const r = spawnSync(process.execPath, [path.join(root, 'bin/vgpu-flip.js'), 'inspect', '--json'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    const j = JSON.parse(r.stdout);
    const e = j.vgpus.devices.find((x: { uuid: string }) => x.uuid === sim!.uuid);
    expect(e).toMatchObject({ uuid: sim!.uuid, type: 'vgpu_sim-small', parent: 'vgpu_sim', iommu_group: vmm!.handles.groupId });
    expect(e.holders).toEqual([expect.objectContaining({ pid, comm: 'node' })]);
    // held and probed through the holder's fd: that is not an error (no EBUSY row)
    expect(e.error).toBeUndefined();
    expect(e.probe_via).toBe(`pidfd pid ${pid} fd ${vmm!.handles.device} (${sim!.uuid})`);
    const drmFb = guest.info().drmFb; // DRM_FB only when the module is bound to a host card
    expect(e.probe).toMatchObject({ drm_fb: { supported: drmFb }, dmabuf: { supported: true }, region: { supported: true } });
    const t = spawnSync(process.execPath, [path.join(root, 'bin/vgpu-flip.js'), 'inspect'], { encoding: 'utf8', timeout: 60_000 });
    const line = t.stdout.split('\n').find((l) => l.includes(sim!.uuid)) ?? '';
    expect(line).toMatch(new RegExp(`vgpu_sim .*vgpu_sim-small.* ${vmm!.handles.groupId} .*${pid} \\(node\\).*DRM_FB:${drmFb ? 'yes' : 'no'} DMABUF:yes REGION:yes via pidfd pid ${pid}`));
  });

  it('after the VMM exits the group is free again', async () => {
    await stopVmm(vmm);
    expect(readVgpu(sim!.uuid).holders).toEqual([]);
    const d = VfioDevice.open(sim!.uuid);
    expect(d.probe().dmabuf.supported).toBe(true);
    d.close();
    // an idle vGPU is not opened by inspect (a VMM starting then would get EBUSY) ...
    let r = spawnSync(process.execPath, [path.join(root, 'bin/vgpu-flip.js'), 'inspect', '--json'], { encoding: 'utf8', timeout: 60_000 });
    let e = JSON.parse(r.stdout).vgpus.devices.find((x: { uuid: string }) => x.uuid === sim!.uuid);
    expect(e).toMatchObject({ holders: [], probe: null });
    expect(e.probe_skipped).toMatch(/^idle: not opened/);
    // ... unless asked: --probe opens it itself, PROBE via "open", no error
    r = spawnSync(process.execPath, [path.join(root, 'bin/vgpu-flip.js'), 'inspect', '--json', '--probe'], { encoding: 'utf8', timeout: 60_000 });
    e = JSON.parse(r.stdout).vgpus.devices.find((x: { uuid: string }) => x.uuid === sim!.uuid);
    expect(e).toMatchObject({ holders: [], probe_via: 'open', probe: { dmabuf: { supported: true }, region: { supported: true } } });
    expect(e.error).toBeUndefined();
  });
});
