// The test rig itself, checked from inside the VM (test/rig/vm.sh): vkms is card0, its debugfs
// state is readable, VFIO is there, the project's own modules are loaded, and results written to
// .vm-out reach the host. Every check fails (never skips) when something is missing.
import { closeSync, existsSync, lstatSync, openSync, readFileSync, readlinkSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const inVm = process.env['VGPU_FLIP_IN_VM'] === '1';
const notInVm = 'not inside the test rig: run kernel tests with `npm test` or `npm run vm -- npx vitest run --project kernel`';

function mustBeInVm(): void {
  if (!inVm) throw new Error(notInVm);
}

function isCharDevice(p: string): boolean {
  return existsSync(p) && statSync(p).isCharacterDevice();
}

describe('rig: the VM', () => {
  it('runs inside the rig with the checkout as cwd and a writable HOME', () => {
    mustBeInVm();
    expect(process.env['HOME']).toBe('/tmp');
    expect(existsSync(path.join(process.cwd(), 'package.json'))).toBe(true);
    const probe = path.join('/tmp', `rig-probe-${process.pid}`);
    writeFileSync(probe, 'x');
    unlinkSync(probe);
  });

  it('runs the kernel the rig prepared', () => {
    mustBeInVm();
    const release = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
    expect(release).toBe(process.env['VGPU_FLIP_KERNEL']);
  });

  it('writes results back to the host through .vm-out', () => {
    mustBeInVm();
    const jobDir = process.env['VGPU_FLIP_JOB_DIR'];
    expect(jobDir, 'VGPU_FLIP_JOB_DIR').toBeTruthy();
    const f = path.join(jobDir!, 'rig-test-write');
    writeFileSync(f, 'written in the guest\n');
    expect(readFileSync(f, 'utf8')).toBe('written in the guest\n');
  });
});

describe('rig: DRM (vkms)', () => {
  it('has /dev/dri/card0 driven by vkms', () => {
    mustBeInVm();
    expect(isCharDevice('/dev/dri/card0'), '/dev/dri/card0 is a character device').toBe(true);
    // vkms registers a bare platform device (no driver link in sysfs); debugfs names the driver
    const name = readFileSync('/sys/kernel/debug/dri/0/name', 'utf8');
    expect(name).toMatch(/^vkms\b/);
    const dev = readlinkSync('/sys/class/drm/card0/device');
    expect(path.basename(dev)).toBe('vkms');
  });

  it('can open card0 read-write', () => {
    mustBeInVm();
    const fd = openSync('/dev/dri/card0', 'r+');
    closeSync(fd);
  });

  it('exposes the atomic state in debugfs with the planes vkms was loaded with', () => {
    mustBeInVm();
    const state = readFileSync('/sys/kernel/debug/dri/0/state', 'utf8');
    const planes = state.match(/^plane\[\d+\]/gm) ?? [];
    // enable_overlay=1 enable_cursor=1: 1 primary + 8 overlay + 1 cursor on 6.1
    expect(planes.length).toBeGreaterThanOrEqual(3);
    expect(state).toMatch(/^crtc\[\d+\]/m);
    expect(state).toMatch(/^connector\[\d+\]: Writeback-1/m);
    expect(readFileSync('/sys/module/vkms/parameters/enable_cursor', 'utf8').trim()).toBe('Y');
    expect(readFileSync('/sys/module/vkms/parameters/enable_writeback', 'utf8').trim()).toBe('Y');
    expect(readFileSync('/sys/module/vkms/parameters/enable_overlay', 'utf8').trim()).toBe('Y');
  });
});

describe('rig: VFIO', () => {
  it('has /dev/vfio/vfio', () => {
    mustBeInVm();
    expect(isCharDevice('/dev/vfio/vfio'), '/dev/vfio/vfio is a character device').toBe(true);
    expect(existsSync('/sys/module/vfio_iommu_type1'), 'vfio_iommu_type1 loaded').toBe(true);
    expect(existsSync('/sys/module/mdev'), 'mdev loaded').toBe(true);
  });

  it("loaded every module of the project's own that the rig built", () => {
    mustBeInVm();
    const own = (process.env['VGPU_FLIP_RIG_MODULES'] ?? '').split(/\s+/).filter(Boolean);
    for (const m of own) {
      expect(existsSync(`/sys/module/${m}`), `module ${m} loaded`).toBe(true);
      // out-of-tree and unsigned: the kernel marks the taint, nothing worse
      const taint = readFileSync(`/sys/module/${m}/taint`, 'utf8').trim();
      expect(taint).toMatch(/^[OE]*$/);
    }
    if (own.includes('vgpu_sim')) {
      expect(existsSync('/sys/class/mdev_bus'), '/sys/class/mdev_bus').toBe(true);
      expect(lstatSync('/sys/class/mdev_bus/vgpu_sim').isSymbolicLink()).toBe(true);
    }
  });
});
