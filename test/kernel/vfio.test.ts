// Kernel tests of the VFIO layer against a vgpu_sim mdev: discovery, open, PROBE, plane
// queries, dma-buf export, fd duplication with pidfd_getfd, adoption, and closing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../src/binding/index.js';
import { VfioDevice } from '../../src/vfio/device.js';
import { discoverVgpus, readVgpu } from '../../src/vfio/sysfs.js';
import { SIM_TYPE, createMdev, removeMdev } from './vfio-helpers.js';

let uuid = '';
let dev: VfioDevice | null = null;

beforeAll(() => {
  uuid = createMdev();
});

afterAll(() => {
  dev?.close();
  if (uuid) removeMdev(uuid);
});

describe('vGPU discovery in sysfs', () => {
  it('finds the new mdev with parent, type and IOMMU group', () => {
    const d = discoverVgpus();
    const v = d.vgpus.find((x) => x.uuid === uuid);
    expect(v).toBeDefined();
    expect(v!.type).toBe(SIM_TYPE);
    expect(v!.parent).toBeTruthy();
    expect(v!.iommuGroup).not.toBeNull();
    expect(v!.groupPath).toBe(`/dev/vfio/${v!.iommuGroup}`);
    expect(v!.groupNodeExists).toBe(true);
    expect(v!.holders).toEqual([]);
  });
});

describe('VfioDevice', () => {
  it('opens by UUID, PROBEs every path and queries the planes', () => {
    dev = VfioDevice.open(uuid);
    expect(dev.groupId).toBe(readVgpu(uuid).iommuGroup);
    const info = dev.info();
    expect(info.numRegions).toBeGreaterThanOrEqual(0);

    const probe = dev.probe();
    for (const k of ['drm_fb', 'dmabuf', 'region'] as const) {
      // every answer is a clear yes/no (EINVAL = no); other errors would be reported
      expect(probe[k].error).toBeUndefined();
      expect(typeof probe[k].supported).toBe('boolean');
    }
    const best = dev.bestPath(probe);
    expect(best).not.toBeNull();

    const primary = dev.queryPlane('primary', best!);
    expect(primary.type).toBe('primary');
    expect(primary.path).toBe(best);
    expect(primary.ready).toBe(primary.size > 0);
    if (primary.ready) {
      expect(primary.width).toBeGreaterThan(0);
      expect(primary.stride).toBeGreaterThanOrEqual(primary.width);
    }
    if (best === 'dmabuf' && primary.ready) {
      const fd = dev.getDmabuf(primary.id);
      expect(fd).toBeGreaterThanOrEqual(0);
      native.close(fd);
    }
    try {
      const cursor = dev.queryPlane('cursor', best!);
      expect(cursor.hotspot === null || typeof cursor.hotspot.x === 'number').toBe(true);
    } catch (e) {
      // a driver without a cursor plane answers with an errno; it must be a kernel error
      expect((e as { code?: string }).code).toMatch(/^E[A-Z]+$/);
    }
  });

  it('duplicates the device fd out of the holder with pidfd_getfd (here: ourselves)', () => {
    expect(dev).not.toBeNull();
    expect(VfioDevice.deviceFdsOf(process.pid)).toContain(dev!.fd);
    const dup = VfioDevice.fromPid(process.pid, { uuid, targetFd: dev!.fd });
    try {
      expect(dup.origin).toBe('pidfd');
      expect(dup.fd).not.toBe(dev!.fd);
      expect(dup.probe()).toEqual(dev!.probe());
    } finally {
      dup.close();
    }
    // the original keeps working after the duplicate is closed
    expect(dev!.info().numRegions).toBeGreaterThanOrEqual(0);
  });

  it('adopting an fd checks that it is a VFIO device', () => {
    const fd = native.openPath('/dev/null');
    expect(() => VfioDevice.adoptFd(fd)).toThrow(/fd \d+ is not a VFIO device fd/);
    native.close(fd);
    const dupFd = native.pidfdGetFd(process.pid, dev!.fd);
    const adopted = VfioDevice.adoptFd(dupFd, { uuid });
    expect(adopted.label).toMatch(uuid);
    expect(adopted.probe().dmabuf.supported).toBe(dev!.probe().dmabuf.supported);
    adopted.close();
  });

  it('close() closes device, group and container; the group can be opened again', () => {
    dev!.close();
    expect(dev!.closed).toBe(true);
    expect(() => dev!.info()).toThrow(/device is closed/);
    dev!.close(); // idempotent
    dev = VfioDevice.open(uuid);
    expect(dev.closed).toBe(false);
  });
});
