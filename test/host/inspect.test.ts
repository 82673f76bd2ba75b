// Host tests of `vgpu-flip inspect`: drm_info-compatible JSON shape, table rendering, error
// entries and exit status (devices come from the vkms-shaped fake; the kernel tests run the
// real CLI against vkms).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DRM_FORMAT_XRGB8888 } from '../../src/binding/constants.js';
import { readSnapshot } from '../../src/kms/snapshot.js';
import { collectInspect, inspectDrmDevice, inspectExitCode, type InspectReport } from '../../src/inspect/collect.js';
import { drmDeviceJson, fbJson, inspectJson, inspectJsonText } from '../../src/inspect/json.js';
import { renderDrmReport, renderInspectText, renderSnapshotText } from '../../src/inspect/text.js';
import { renderTable } from '../../src/util/table.js';
import { stringifyJson } from '../../src/util/json.js';
import { modifierName } from '../../src/util/format.js';
import { fakeVkmsApi } from './kms-fake-api.js';

const caps = { universalPlanes: true, atomic: true, writebackConnectors: true };
const snap = readSnapshot(3, '/dev/dri/card0', caps, fakeVkmsApi({ active: true }));
const report: InspectReport = {
  drm: [
    { path: '/dev/dri/card0', snapshot: snap, clientCaps: { STEREO_3D: true, UNIVERSAL_PLANES: true, ATOMIC: true, ASPECT_RATIO: true, WRITEBACK_CONNECTORS: true } },
    { path: '/dev/null', error: { op: 'DRM_IOCTL_VERSION', path: '/dev/null', code: 'ENOTTY', errno: 25, message: 'DRM_IOCTL_VERSION on /dev/null: ENOTTY (not a DRM device)' } },
  ],
  vgpus: [
    {
      uuid: '0b1e4a9c-6d55-4d2e-9f3e-1f2d3c4b5a60', sysfsPath: '/sys/bus/mdev/devices/0b1e4a9c-6d55-4d2e-9f3e-1f2d3c4b5a60',
      devicePath: '/sys/devices/virtual/vgpu_sim/vgpu_sim/0b1e4a9c-6d55-4d2e-9f3e-1f2d3c4b5a60', parent: 'vgpu_sim',
      type: 'vgpu_sim-small', typeName: 'small', iommuGroup: 7, groupPath: '/dev/vfio/7', groupNodeExists: true,
      holders: [{ pid: 4242, comm: 'qemu', groupFds: [11], deviceFds: [12], deviceSyspaths: {} }],
      probe: { drm_fb: { supported: false }, dmabuf: { supported: true }, region: { supported: null, error: { op: 'VFIO_DEVICE_QUERY_GFX_PLANE', code: 'ENOMEM', errno: 12, message: 'x' } } },
      probeVia: 'pidfd pid 4242 fd 12',
      error: { op: 'open', path: '/dev/vfio/7', code: 'EBUSY', errno: 16, message: 'busy: held by pid 4242 (qemu); --pid 4242', holders: [{ pid: 4242, comm: 'qemu' }] },
    },
  ],
};

describe('inspect --json (drm_info layout)', () => {
  const j = JSON.parse(inspectJsonText(report));

  it('has one top-level object per device path plus "vgpus"', () => {
    expect(Object.keys(j)).toEqual(['/dev/dri/card0', '/dev/null', 'vgpus']);
    const d = j['/dev/dri/card0'];
    expect(Object.keys(d)).toEqual(['driver', 'device', 'fb_size', 'connectors', 'encoders', 'crtcs', 'planes']);
    expect(d.driver).toMatchObject({ name: 'vkms', version: { major: 1, minor: 0, patch: 0 } });
    expect(d.driver.client_caps).toMatchObject({ ATOMIC: true, UNIVERSAL_PLANES: true, WRITEBACK_CONNECTORS: true });
    expect(d.driver.caps.DUMB_BUFFER).toBe(1);
    expect(d.driver.kernel).toHaveProperty('release');
    expect(d.fb_size).toEqual({ min_width: 1, max_width: 8192, min_height: 1, max_height: 8192 });
  });

  it('lists connectors, encoders and crtcs with drm_info keys', () => {
    const d = j['/dev/dri/card0'];
    expect(d.connectors[0]).toMatchObject({ id: 42, type: 15, status: 1, encoder_id: 41, encoders: [41], name: 'Virtual-1' });
    expect(d.connectors[0].modes[0]).toMatchObject({ hdisplay: 1024, hsync_start: 1048, vsync_end: 777, name: '1024x768' });
    expect(d.encoders[0]).toEqual({ id: 41, type: 5, crtc_id: 40, possible_crtcs: 1, possible_clones: 0 });
    expect(d.crtcs[0]).toMatchObject({ id: 40, fb_id: 77, mode: { hdisplay: 1024 } });
    expect(d.crtcs[0].properties.MODE_ID.data).toMatchObject({ hdisplay: 1024, vdisplay: 768 });
    expect(d.crtcs[0].properties.ACTIVE).toMatchObject({ type: 2, atomic: true, immutable: false, raw_value: 1, value: 1, spec: { min: 0, max: 1 } });
  });

  it('lists planes with formats, typed properties and IN_FORMATS data', () => {
    const planes = j['/dev/dri/card0'].planes;
    expect(planes).toHaveLength(10);
    const p = planes[0];
    expect(p).toMatchObject({ id: 31, possible_crtcs: 1, crtc_id: 40, fb_id: 77, fb: { id: 77 }, plane_type: 'primary' });
    expect(p.formats).toContain(DRM_FORMAT_XRGB8888);
    expect(p.properties.type).toMatchObject({ immutable: true, value: 1, spec: [{ name: 'Overlay', value: 0 }, { name: 'Primary', value: 1 }, { name: 'Cursor', value: 2 }] });
    expect(p.properties.IN_FORMATS.data).toEqual([{ modifier: 0, formats: p.formats }]);
    expect(p.properties.SRC_W.data).toBe(1024);
    expect(p.properties.FB_ID).toMatchObject({ value: 77, spec: 0xfbfbfbfb, data: { id: 77 } });
    const cursor = planes[9];
    expect(cursor.properties.CRTC_X).toMatchObject({ value: -5, type: 2 << 6, spec: { min: -2147483648, max: 2147483647 } });
  });

  it('writes u64 values as exact integer literals', () => {
    const text = stringifyJson({ a: 18446744073709551611n, b: [1, 'x', null], c: {} }, 0);
    expect(text).toBe('{"a":18446744073709551611,"b":[1,"x",null],"c":{}}');
    expect(inspectJsonText(report)).toMatch(/"raw_value": 18446744073709551611/);
  });

  it('reports device errors and vGPUs', () => {
    expect(j['/dev/null']).toEqual({ error: { op: 'DRM_IOCTL_VERSION', path: '/dev/null', code: 'ENOTTY', errno: 25, message: expect.stringContaining('not a DRM device') } });
    const v = j.vgpus.devices[0];
    expect(v).toMatchObject({ parent: 'vgpu_sim', type: 'vgpu_sim-small', iommu_group: 7, probe_via: 'pidfd pid 4242 fd 12' });
    expect(v.probe.dmabuf).toEqual({ supported: true });
    expect(v.probe.region.error.code).toBe('ENOMEM');
    expect(v.error).toMatchObject({ code: 'EBUSY', holders: [{ pid: 4242, comm: 'qemu' }] });
    expect(v.holders[0]).toMatchObject({ pid: 4242, comm: 'qemu' });
  });

  it('drmDeviceJson of a snapshot alone falls back to its client caps', () => {
    const d = drmDeviceJson({ path: '/dev/dri/card0', snapshot: snap }) as { driver: { client_caps: object } };
    expect(d.driver.client_caps).toEqual({ UNIVERSAL_PLANES: true, ATOMIC: true, WRITEBACK_CONNECTORS: true });
    expect(inspectJson({ drm: [], vgpus: [], vgpuReason: 'none', mdevParents: [{ parent: 'p', types: [{ id: 't', name: null, available: 2 }] }] })).toEqual({ vgpus: { devices: [], parents: [{ parent: 'p', types: [{ id: 't', name: null, available_instances: 2 }] }], reason: 'none' } });
    expect(renderInspectText({ drm: [], vgpus: [], mdevParents: [{ parent: 'p', types: [{ id: 't', name: null, available: 2 }] }] })).toMatch(/\n    p       t \[2 available\]\n/);
  });
});

describe('inspect text output', () => {
  it('renders compact tables for a device', () => {
    const t = renderSnapshotText(snap);
    expect(t).toMatch(/^\/dev\/dri\/card0: vkms 1\.0\.0 \(Virtual Kernel Mode Setting\); atomic, universal planes, writeback/);
    expect(t).toMatch(/Planes \(10: 1 primary, 8 overlay, 1 cursor\)/);
    expect(t).toMatch(/\n\s+31\s+primary\s+40\s+-\s+77\s+40\s+1024x768\+0\+0\s+XR24 AR24 RG16\s+LINEAR\n/);
    expect(t).toMatch(/Virtual-1\s+connected\s+40\s+1024x768@60\*/);
    expect(t).toMatch(/40\s+0\s+yes\s+1024x768@60 \(1024x768\)\s+77/);
    expect(t.split('\n').every((l) => !/\s$/.test(l))).toBe(true);
  });

  it('renders errors and vGPUs', () => {
    const t = renderInspectText(report);
    expect(t).toMatch(/\/dev\/null: error: .*not a DRM device.*\[DRM_IOCTL_VERSION ENOTTY\]/);
    expect(t).toMatch(/vgpu_sim-small \(small\)\s+7\s+4242 \(qemu\)\s+DRM_FB:no DMABUF:yes REGION:ENOMEM via pidfd pid 4242 fd 12/);
    expect(t).toMatch(/EBUSY/);
    expect(renderInspectText({ drm: [], drmReason: 'no dri', vgpus: [], vgpuReason: 'no mdev' })).toBe(
      'DRM devices: none: no dri\n\nvGPUs\n    none: no mdev\n',
    );
  });

  it('verbose lists every format with its modifiers', () => {
    expect(renderSnapshotText(snap, { verbose: true })).toMatch(/plane 31 formats:\n\s+XR24: LINEAR\n\s+AR24: LINEAR/);
  });

  it('table helper aligns columns and right-aligns numbers', () => {
    expect(renderTable(['ID', 'NAME'], [[5, 'a'], [123, 'bbb']], { indent: 2 })).toBe('   ID  NAME\n    5  a\n  123  bbb\n');
    expect(modifierName(0n)).toBe('LINEAR');
    expect(modifierName((2n << 56n) | 0x1234n)).toBe('AMD(0x1234)');
  });
});

describe('inspect error handling (real syscalls, no devices needed)', () => {
  it('a nonexistent card and a non-DRM file become error entries', () => {
    expect(inspectDrmDevice('/dev/dri/card99').error).toMatchObject({ op: 'open', code: 'ENOENT' });
    expect(inspectDrmDevice('/dev/null').error).toMatchObject({ op: 'DRM_IOCTL_VERSION', code: 'ENOTTY', message: expect.stringMatching(/not a DRM device/) });
  });

  it('exit status is 1 only when nothing could be inspected', () => {
    const r = collectInspect({ devices: ['/dev/dri/card99'], roots: { sys: '/nonexistent-sys' } });
    expect(r.vgpuReason).toMatch(/does not exist/);
    expect(inspectExitCode(r)).toBe(1);
    expect(inspectExitCode(report)).toBe(0);
    expect(inspectExitCode({ drm: [], vgpus: [] })).toBe(0);
  });

  const bin = path.resolve('bin/vgpu-flip.js');
  it.runIf(existsSync(path.resolve('dist/cli/main.js')))('the CLI reports errors in JSON without crashing', () => {
    const r = spawnSync(process.execPath, [bin, 'inspect', '--json', '--device', '/dev/null', '/dev/dri/card99'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const j = JSON.parse(r.stdout);
    expect(j['/dev/null'].error.code).toBe('ENOTTY');
    expect(j['/dev/dri/card99'].error.code).toBe('ENOENT');
  });
});

describe('drm_info "device" object from sysfs', () => {
  it('reads PCI ids and bus address, and platform devices', async () => {
    const { mkdtempSync, mkdirSync, writeFileSync, symlinkSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { drmDeviceSysfsInfo } = await import('../../src/inspect/device-info.js');
    const root = mkdtempSync(path.join(tmpdir(), 'vgpu-flip-drmdev-'));
    try {
      const pci = path.join(root, 'devices', 'pci0000:00', '0000:00:02.0');
      mkdirSync(path.join(pci, 'drm', 'card1'), { recursive: true });
      mkdirSync(path.join(pci, 'drm', 'renderD128'), { recursive: true });
      mkdirSync(path.join(root, 'bus', 'pci'), { recursive: true });
      symlinkSync(path.join(root, 'bus', 'pci'), path.join(pci, 'subsystem'));
      for (const [f, v] of [['vendor', '0x8086'], ['device', '0x3e92'], ['subsystem_vendor', '0x1028'], ['subsystem_device', '0x0869']]) writeFileSync(path.join(pci, f!), v + '\n');
      const plat = path.join(root, 'devices', 'platform', 'vkms');
      mkdirSync(path.join(plat, 'drm', 'card0'), { recursive: true });
      mkdirSync(path.join(root, 'bus', 'platform'), { recursive: true });
      symlinkSync(path.join(root, 'bus', 'platform'), path.join(plat, 'subsystem'));
      mkdirSync(path.join(root, 'class', 'drm', 'card1'), { recursive: true });
      mkdirSync(path.join(root, 'class', 'drm', 'card0'), { recursive: true });
      symlinkSync(pci, path.join(root, 'class', 'drm', 'card1', 'device'));
      symlinkSync(plat, path.join(root, 'class', 'drm', 'card0', 'device'));

      expect(drmDeviceSysfsInfo('/dev/dri/card1', root)).toEqual({
        available_nodes: 5,
        bus_type: 0,
        device_data: { vendor: 0x8086, device: 0x3e92, subsystem_vendor: 0x1028, subsystem_device: 0x0869 },
        bus_data: { domain: 0, bus: 0, slot: 2, function: 0 },
      });
      expect(drmDeviceSysfsInfo('/dev/dri/card0', root)).toEqual({
        available_nodes: 1, bus_type: 2, device_data: { compatible: [] }, bus_data: { fullname: 'vkms' },
      });
      expect(drmDeviceSysfsInfo('/dev/dri/card5', root)).toBeNull();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('drm_info "fb" object', () => {
  // drm_info 2.4.0 -j on vkms in the rig (fbcon's framebuffer on the primary plane), 2026-11-23
  const drmInfoFb = { id: 60, width: 1024, height: 768, format: 875713112, modifier: 0, planes: [{ offset: 0, pitch: 4096 }] };

  it('renders GETFB2 like drm_info (modifier only with DRM_MODE_FB_MODIFIERS)', () => {
    const fb = { id: 60, width: 1024, height: 768, format: DRM_FORMAT_XRGB8888, flags: 2, modifier: 0n, pitches: [4096], offsets: [0] };
    expect(JSON.parse(stringifyJson(fbJson(60, fb)))).toEqual(drmInfoFb);
    const legacy = { ...fb, flags: 0, modifier: null };
    expect(fbJson(60, legacy)).toEqual({ id: 60, width: 1024, height: 768, format: DRM_FORMAT_XRGB8888, planes: [{ offset: 0, pitch: 4096 }] });
    // unreadable (GETFB2 failed): just the id
    expect(fbJson(61, null)).toEqual({ id: 61 });
  });
});

describe('inspect tables: the framebuffer a plane shows', () => {
  it('FB shows id, size and format (and a non-linear modifier) when GETFB2 answered', () => {
    const s = snap;
    const primary = s.planes.find((p) => p.type === 'primary')!;
    const withFb = { ...s, planes: s.planes.map((p) => (p.id === primary.id ? { ...p, fbId: 77 } : p)) };
    const fb = { id: 77, width: 1024, height: 768, format: DRM_FORMAT_XRGB8888, flags: 2, modifier: 0n, pitches: [4096], offsets: [0] };
    const text = renderDrmReport({ path: '/dev/dri/card0', snapshot: withFb, fbs: { 77: fb } });
    expect(text).toMatch(/ 77 1024x768 XR24 /);
    const tiled = renderDrmReport({ path: '/dev/dri/card0', snapshot: withFb, fbs: { 77: { ...fb, modifier: 0x0100000000000001n } } });
    expect(tiled).toMatch(/ 77 1024x768 XR24 I915_X_TILED/);
    // without GETFB2 data: the id alone, as before
    expect(renderDrmReport({ path: '/dev/dri/card0', snapshot: withFb })).toMatch(/primary +\S+ +\S+ +77 /);
  });
});
