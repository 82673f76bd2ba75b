// Host tests of vGPU discovery against a fake sysfs / dev / proc tree, and of plane info
// normalisation.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DRM_FORMAT_XRGB8888 } from '../../src/binding/constants.js';
import { normalizePlaneInfo } from '../../src/vfio/plane.js';
import { discoverVgpus, listMdevParents, readVgpu, scanVfioHolders } from '../../src/vfio/sysfs.js';
import { VfioDevice } from '../../src/vfio/device.js';

const U1 = '0b1e4a9c-6d55-4d2e-9f3e-1f2d3c4b5a60';
const U2 = 'ffffffff-0000-4000-8000-000000000001';

let root = '';
let roots: { sys: string; dev: string; proc: string };

function mk(p: string): void {
  mkdirSync(p, { recursive: true });
}

beforeAll(() => {
  root = mkdtempSync(path.join(tmpdir(), 'vgpu-flip-sysfs-'));
  roots = { sys: path.join(root, 'sys'), dev: path.join(root, 'dev'), proc: path.join(root, 'proc') };
  const parentDir = path.join(roots.sys, 'devices', 'virtual', 'vgpu_sim', 'vgpu_sim');
  const typeDir = path.join(parentDir, 'mdev_supported_types', 'vgpu_sim-small');
  mk(typeDir);
  writeFileSync(path.join(typeDir, 'name'), 'small\n');
  writeFileSync(path.join(typeDir, 'available_instances'), '3\n');
  mk(path.join(roots.sys, 'kernel', 'iommu_groups', '7'));
  for (const u of [U1, U2]) {
    const d = path.join(parentDir, u);
    mk(d);
    symlinkSync(typeDir, path.join(d, 'mdev_type'));
  }
  symlinkSync(path.join(roots.sys, 'kernel', 'iommu_groups', '7'), path.join(parentDir, U1, 'iommu_group'));
  mk(path.join(roots.sys, 'bus', 'mdev', 'devices'));
  for (const u of [U1, U2]) symlinkSync(path.join(parentDir, u), path.join(roots.sys, 'bus', 'mdev', 'devices', u));
  writeFileSync(path.join(roots.sys, 'bus', 'mdev', 'devices', 'not-a-uuid'), '');
  mk(path.join(roots.sys, 'class', 'mdev_bus'));
  symlinkSync(parentDir, path.join(roots.sys, 'class', 'mdev_bus', 'vgpu_sim'));
  mk(path.join(roots.dev, 'vfio'));
  writeFileSync(path.join(roots.dev, 'vfio', '7'), '');
  // a "VMM" holding group 7 and a device fd; another process with unrelated fds
  const vmm = path.join(roots.proc, '4242');
  mk(path.join(vmm, 'fd'));
  mk(path.join(vmm, 'fdinfo'));
  writeFileSync(path.join(vmm, 'comm'), 'qemu-system-x86\n');
  symlinkSync(path.join(roots.dev, 'vfio', 'vfio'), path.join(vmm, 'fd', '10'));
  symlinkSync(path.join(roots.dev, 'vfio', '7'), path.join(vmm, 'fd', '11'));
  symlinkSync('anon_inode:[vfio-device]', path.join(vmm, 'fd', '12'));
  writeFileSync(path.join(vmm, 'fdinfo', '12'), 'pos:\t0\nflags:\t02000002\n');
  const other = path.join(roots.proc, '99');
  mk(path.join(other, 'fd'));
  writeFileSync(path.join(other, 'comm'), 'bash\n');
  symlinkSync('/dev/null', path.join(other, 'fd', '0'));
  mk(path.join(roots.proc, 'self'));
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('vGPU discovery', () => {
  it('finds mdev devices with parent, type, group and holder', () => {
    const d = discoverVgpus(roots);
    expect(d.reason).toBeUndefined();
    expect(d.vgpus.map((v) => v.uuid)).toEqual([U1, U2]);
    const v = d.vgpus[0]!;
    expect(v.parent).toBe('vgpu_sim');
    expect(v.type).toBe('vgpu_sim-small');
    expect(v.typeName).toBe('small');
    expect(v.iommuGroup).toBe(7);
    expect(v.groupPath).toBe(path.join(roots.dev, 'vfio', '7'));
    expect(v.groupNodeExists).toBe(true);
    expect(v.holders).toHaveLength(1);
    expect(v.holders[0]).toMatchObject({ pid: 4242, comm: 'qemu-system-x86', groupFds: [11], deviceFds: [12] });
  });

  it('reports a missing iommu_group link as null, and no holder', () => {
    const v = readVgpu(U2, roots);
    expect(v.iommuGroup).toBeNull();
    expect(v.groupPath).toBeNull();
    expect(v.holders).toEqual([]);
  });

  it('a missing /sys/bus/mdev means no vGPUs, with a reason', () => {
    const d = discoverVgpus({ ...roots, sys: path.join(root, 'nosys') });
    expect(d.vgpus).toEqual([]);
    expect(d.reason).toMatch(/bus\/mdev does not exist.*modprobe mdev/);
  });

  it('an unknown UUID has no device path', () => {
    const v = readVgpu('00000000-0000-4000-8000-000000000000', roots);
    expect(v.devicePath).toBeNull();
    expect(() => VfioDevice.open('00000000-0000-4000-8000-000000000000', { roots })).toThrow(/no such mdev device/);
  });

  it('scans /proc for VFIO holders only', () => {
    const h = scanVfioHolders(roots);
    expect(h.map((x) => x.pid)).toEqual([4242]);
    expect(VfioDevice.deviceFdsOf(4242, roots)).toEqual([12]);
    expect(() => VfioDevice.deviceFdsOf(5, roots)).toThrow(/cannot list .*proc\/5\/fd/);
  });

  it('lists mdev parents and their types', () => {
    expect(listMdevParents(roots)).toEqual([
      { parent: 'vgpu_sim', types: [{ id: 'vgpu_sim-small', name: 'small', available: 3 }] },
    ]);
  });
});

describe('plane info normalisation', () => {
  const raw = {
    flags: 2, drmPlaneType: 1, drmFormat: DRM_FORMAT_XRGB8888, drmFormatMod: 0n,
    width: 1024, height: 768, stride: 4096, size: 4096 * 768, xPos: 0, yPos: 0,
    xHot: 0xffffffff, yHot: 0xffffffff, id: 3,
  };
  it('marks size>0 as ready and a 0xFFFFFFFF hotspot as none', () => {
    const p = normalizePlaneInfo(raw, 'primary', 'dmabuf');
    expect(p).toMatchObject({ ready: true, hotspot: null, id: 3, width: 1024, stride: 4096, type: 'primary', path: 'dmabuf' });
  });
  it('keeps signed cursor positions and real hotspots; size 0 is not ready', () => {
    const p = normalizePlaneInfo({ ...raw, size: 0, xPos: -4, yPos: 0xfffffffe, xHot: 3, yHot: 0 }, 'cursor', 'region');
    expect(p.ready).toBe(false);
    expect(p.x).toBe(-4);
    expect(p.y).toBe(-2);
    expect(p.hotspot).toEqual({ x: 3, y: 0 });
  });
});
