// Kernel tests of the VFIO layer against a vgpu_sim mdev: discovery, open, PROBE, plane
// queries, dma-buf export, fd duplication with pidfd_getfd, adoption, and closing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../src/binding/index.js';
import { isKernelError } from '../../src/binding/errors.js';
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

describe('regions, mappings and typed errors', () => {
  const VFIO_PCI_BAR0_REGION_INDEX = 0;
  const VFIO_PCI_CONFIG_REGION_INDEX = 7;
  const VFIO_REGION_INFO_FLAG_READ = 1 << 0;
  const VFIO_REGION_INFO_FLAG_WRITE = 1 << 1;
  const VFIO_REGION_INFO_FLAG_MMAP = 1 << 2;
  const VFIO_REGION_INFO_FLAG_CAPS = 1 << 3;
  const VFIO_REGION_INFO_CAP_SPARSE_MMAP = 1;

  it('region info walks the capability chain (argsz grown as the kernel asks)', () => {
    const ri = dev!.regionInfo(VFIO_PCI_BAR0_REGION_INDEX);
    expect(ri.index).toBe(VFIO_PCI_BAR0_REGION_INDEX);
    expect(ri.size).toBeGreaterThan(0n);
    const want = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS;
    expect(ri.flags & want).toBe(want);
    // vgpu_sim: one VFIO_REGION_INFO_CAP_SPARSE_MMAP naming the whole video memory mmap'able
    expect(ri.caps.map((c) => ({ id: c.id, version: c.version }))).toEqual([{ id: VFIO_REGION_INFO_CAP_SPARSE_MMAP, version: 1 }]);
    const cap = ri.caps[0]!.data;
    // struct vfio_info_cap_header (id u16, version u16, next u32), nr_areas u32, reserved u32, areas[]
    expect(cap.readUInt16LE(0)).toBe(VFIO_REGION_INFO_CAP_SPARSE_MMAP);
    expect(cap.readUInt32LE(4)).toBe(0); // the last capability of the chain
    expect(cap.readUInt32LE(8)).toBe(1);
    expect(cap.length).toBe(16 + 16);
    expect(cap.readBigUInt64LE(16)).toBe(0n);
    expect(cap.readBigUInt64LE(24)).toBe(ri.size);

    const cfg = dev!.regionInfo(VFIO_PCI_CONFIG_REGION_INDEX);
    expect(cfg).toMatchObject({ index: VFIO_PCI_CONFIG_REGION_INDEX, size: 256n, caps: [] });
    expect(cfg.flags & VFIO_REGION_INFO_FLAG_CAPS).toBe(0);
    expect(cfg.offset).not.toBe(ri.offset);
  });

  it('a failing call is a typed error with op, device label, errno name and message', () => {
    let err: unknown;
    try {
      dev!.regionInfo(99);
    } catch (e) {
      err = e;
    }
    expect(isKernelError(err)).toBe(true);
    expect(err).toMatchObject({ op: 'VFIO_DEVICE_GET_REGION_INFO', path: `vfio-device ${uuid}`, code: 'EINVAL', errno: 22 });
    expect((err as Error).message).toMatch(new RegExp(`VFIO_DEVICE_GET_REGION_INFO on vfio-device ${uuid}: EINVAL \\(Invalid argument\\).*region 99`));
    // a mapping past the end of the region: the mmap error names the fd label and the range
    const ri = dev!.regionInfo(VFIO_PCI_BAR0_REGION_INDEX);
    expect(() => native.mmap(dev!.fd, ri.offset + ri.size, 4096, false)).toThrow(
      expect.objectContaining({ op: 'mmap', path: `vfio-device ${uuid}`, code: expect.stringMatching(/^E[A-Z]+$/) }),
    );
  });

  it('region reads and writes are bounded by the region (never past it)', () => {
    const ri = dev!.regionInfo(VFIO_PCI_BAR0_REGION_INDEX);
    // a read straddling the end returns only what is inside; past the end: nothing
    expect(native.pread(dev!.fd, ri.offset + ri.size - 2n, 16).length).toBe(2);
    expect(native.pread(dev!.fd, ri.offset + ri.size, 16).length).toBe(0);
    expect(native.pwrite(dev!.fd, ri.offset + ri.size - 2n, Buffer.alloc(16, 0xaa))).toBe(2);
    // the config region (256 bytes) likewise; a region index without a region: EINVAL
    const cfg = dev!.regionInfo(VFIO_PCI_CONFIG_REGION_INDEX);
    expect(native.pread(dev!.fd, cfg.offset, 4096).length).toBe(256);
    expect(native.pread(dev!.fd, cfg.offset, 4).readUInt16LE(0)).toBe(0x1b36); // vendor id
    expect(() => native.pread(dev!.fd, 5n << 40n, 4)).toThrow(expect.objectContaining({ code: 'EINVAL', path: `vfio-device ${uuid}` }));
  });

  it('a region mmap is handed to JS and unmap() detaches the ArrayBuffer before munmap', () => {
    const ri = dev!.regionInfo(VFIO_PCI_BAR0_REGION_INDEX);
    const m = native.mmap(dev!.fd, ri.offset, 8192, true);
    expect(m.length).toBe(8192);
    const view = new Uint32Array(m.buffer);
    view[10] = 0x12345678;
    // read back through pread on the device fd: the same memory
    expect(native.pread(dev!.fd, ri.offset + 40n, 4).readUInt32LE()).toBe(0x12345678);
    m.unmap();
    expect(m.buffer.byteLength).toBe(0);
    expect(view.length).toBe(0);
    expect(view[10]).toBeUndefined(); // no fault: the buffer is detached
    expect(() => new Uint8Array(m.buffer, 0, 1)).toThrow();
    m.unmap(); // idempotent
  });
});
