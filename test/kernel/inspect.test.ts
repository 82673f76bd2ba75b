// Kernel tests of `vgpu-flip inspect` in the VM: the real CLI (node bin/vgpu-flip.js, built in
// dist/) and the library against vkms; clear errors for a nonexistent card, a non-DRM file and a
// busy VFIO group (held by this test process while the CLI runs as a child).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DRM_FORMAT_XRGB8888, DRM_MODE_ATOMIC_ALLOW_MODESET } from '../../src/binding/constants.js';
import { native } from '../../src/binding/index.js';
import { DrmDevice } from '../../src/kms/device.js';
import { preferredMode } from '../../src/kms/mode.js';
import { captureState, restoreState } from '../../src/kms/state.js';
import { collectInspect } from '../../src/inspect/collect.js';
import { renderInspectText } from '../../src/inspect/text.js';
import { VfioDevice, VfioGroupBusyError } from '../../src/vfio/device.js';
import { readVgpu } from '../../src/vfio/sysfs.js';
import { findVkmsCard } from './kms-helpers.js';
import { SIM_TYPE, createMdev, removeMdev } from './vfio-helpers.js';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const bin = path.join(root, 'bin', 'vgpu-flip.js');

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

let card = '';
beforeAll(() => {
  if (!existsSync(path.join(root, 'dist', 'cli', 'main.js'))) {
    throw new Error('dist/ is not built: run `npm run build` before the kernel tests');
  }
  card = findVkmsCard();
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

function checkVkmsJson(d: Any): void {
  expect(d.driver.name).toBe('vkms');
  expect(d.device).toMatchObject({ bus_type: 2, bus_data: { fullname: 'vkms' } });
  expect(d.crtcs).toHaveLength(1);
  expect(d.planes).toHaveLength(10);
  const typeName = (p: Any): string => p.properties.type.spec.find((e: Any) => e.value === p.properties.type.value).name;
  expect(d.planes.filter((p: Any) => typeName(p) === 'Primary')).toHaveLength(1);
  expect(d.planes.filter((p: Any) => typeName(p) === 'Overlay')).toHaveLength(8);
  expect(d.planes.filter((p: Any) => typeName(p) === 'Cursor')).toHaveLength(1);
  expect(d.planes.map((p: Any) => p.plane_type).sort()).toEqual(['cursor', ...Array(8).fill('overlay'), 'primary']);
  for (const p of d.planes) {
    expect(p.formats).toContain(DRM_FORMAT_XRGB8888);
    const inFormats = p.properties.IN_FORMATS.data as { modifier: number; formats: number[] }[];
    const linear = inFormats.find((e) => e.modifier === 0);
    expect(linear?.formats).toContain(DRM_FORMAT_XRGB8888);
  }
  expect(d.connectors.map((c: Any) => c.name)).toEqual(expect.arrayContaining(['Virtual-1', 'Writeback-1']));
}

describe('inspect on vkms', () => {
  it('the CLI prints vkms with 1 CRTC and 10 planes in drm_info JSON', () => {
    const r = cli('inspect', '--json');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toHaveProperty('vgpus');
    checkVkmsJson(j[card]);
  });

  it('the CLI prints readable tables', () => {
    const r = cli('inspect', '--device', card);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^${card}: vkms `));
    expect(r.stdout).toMatch(/Planes \(10: 1 primary, 8 overlay, 1 cursor\)/);
    expect(r.stdout).toMatch(/XR24/);
    expect(r.stdout).toMatch(/LINEAR/);
  });

  it('the library gives the same topology', () => {
    const rep = collectInspect({ devices: [card], probe: false });
    const s = rep.drm[0]!.snapshot!;
    expect(s.crtcs).toHaveLength(1);
    expect(s.planes.map((p) => p.type).sort()).toEqual(['cursor', ...Array(8).fill('overlay'), 'primary']);
    expect(renderInspectText(rep)).toMatch(/1 primary, 8 overlay, 1 cursor/);
  });

  it('a nonexistent card and a non-DRM file are reported, not crashes', () => {
    const r = cli('inspect', '--json', '--device', '/dev/dri/card97', '/dev/null', card);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    const j = JSON.parse(r.stdout);
    expect(j['/dev/dri/card97'].error).toMatchObject({ op: 'open', path: '/dev/dri/card97', code: 'ENOENT', errno: 2, message: expect.stringMatching(/open on \/dev\/dri\/card97: ENOENT/) });
    expect(j['/dev/null'].error).toMatchObject({ op: 'DRM_IOCTL_VERSION', path: '/dev/null', code: 'ENOTTY', errno: 25, message: expect.stringMatching(/not a DRM device/) });
    checkVkmsJson(j[card]);
    const t = cli('inspect', '--device', '/dev/dri/card97', '/dev/null');
    expect(t.stdout).toMatch(/\/dev\/dri\/card97: error: .*ENOENT/);
    expect(t.stdout).toMatch(/\/dev\/null: error: .*not a DRM device/);
  });
});

// ---- busy VFIO group: needs an mdev of vgpu_sim ------------------------------------------------

describe('inspect with a busy vGPU', () => {
  let uuid = '';
  let held: VfioDevice | null = null;

  afterAll(() => {
    held?.close();
    if (uuid) {
      removeMdev(uuid);
    }
  });

  it('a busy group: the library error names the holder; inspect shows the holder and PROBEs through its fd (no error row)', () => {
    uuid = createMdev();
    const v = readVgpu(uuid);
    expect(v.type).toBe(SIM_TYPE);
    expect(v.iommuGroup).not.toBeNull();
    expect(v.groupNodeExists).toBe(true);

    held = VfioDevice.open(uuid);
    expect(held.probe().dmabuf.supported === null).toBe(false);

    // a second open (even from this process) is refused: the error names us and suggests --pid
    let err: unknown;
    try {
      VfioDevice.open(uuid).close();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VfioGroupBusyError);
    expect((err as VfioGroupBusyError).holders.map((h) => h.pid)).toContain(process.pid);
    expect((err as Error).message).toMatch(new RegExp(`busy: held by pid ${process.pid} .*--pid ${process.pid}`));

    const r = cli('inspect', '--json', '--device', card);
    expect(r.stderr).toBe('');
    const j = JSON.parse(r.stdout);
    const e = j.vgpus.devices.find((x: Any) => x.uuid === uuid);
    expect(e).toBeDefined();
    expect(e.type).toBe(SIM_TYPE);
    expect(e.holders.map((h: Any) => h.pid)).toContain(process.pid);
    // held, and PROBE answered through the holder's device fd (pidfd_getfd as root): no error row
    expect(e.error).toBeUndefined();
    expect(e.probe_via).toMatch(new RegExp(`^pidfd pid ${process.pid} fd \\d+`));
    expect(e.probe).not.toBeNull();

    const t = cli('inspect', '--device', card);
    expect(t.stdout).toMatch(new RegExp(`${uuid}.*${SIM_TYPE}.*${process.pid}`));
    expect(t.stdout).not.toMatch(/EBUSY/);
  });
});

// ---- the framebuffer a plane shows (drm_info's plane "fb" and FB_ID data, from GETFB2) ---------

describe('inspect shows what framebuffer a plane scans out', () => {
  it('plane "fb" and FB_ID data carry width, height, format, modifier and planes, like drm_info', () => {
    const dev = DrmDevice.open(card);
    const saved = captureState(dev.snapshot());
    const s = dev.currentSnapshot();
    const crtc = s.crtcs[0]!;
    const conn = s.connectors.find((c) => c.name === 'Virtual-1')!;
    const primary = s.planes.find((p) => p.type === 'primary')!;
    const mode = preferredMode(conn.modes)!;
    const fb = dev.createDumbFramebuffer(mode.hdisplay, mode.vdisplay, DRM_FORMAT_XRGB8888);
    const blob = dev.createModeBlob(mode);
    try {
      dev.atomic()
        .set(conn.id, 'CRTC_ID', crtc.id).set(crtc.id, 'ACTIVE', 1).set(crtc.id, 'MODE_ID', blob.id)
        .placePlane(primary.id, crtc.id, fb.fbId, { w: mode.hdisplay, h: mode.vdisplay }, { x: 0, y: 0, w: mode.hdisplay, h: mode.vdisplay })
        .commit(DRM_MODE_ATOMIC_ALLOW_MODESET);

      // the addon: GETFB2 describes it and leaves no GEM handle behind on a fresh fd
      const other = native.drmOpen(card);
      try {
        const f = native.drmGetFb2(other, fb.fbId);
        expect(f).toMatchObject({ id: fb.fbId, width: mode.hdisplay, height: mode.vdisplay, format: DRM_FORMAT_XRGB8888 });
        expect(f.pitches).toHaveLength(1);
        expect(f.pitches[0]).toBeGreaterThanOrEqual(mode.hdisplay * 4);
        expect(f.offsets).toEqual([0]);
        expect(() => native.drmGemClose(other, 1)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
        expect(() => native.drmGetFb2(other, 0x7ffffff0)).toThrow(expect.objectContaining({ op: 'DRM_IOCTL_MODE_GETFB2', code: 'ENOENT', path: card }));
      } finally {
        native.close(other);
      }

      // the CLI (another process) shows it in drm_info's layout
      const r = cli('inspect', '--json', '--device', card, '--no-probe');
      expect(r.status).toBe(0);
      const j = JSON.parse(r.stdout)[card];
      const p = j.planes.find((x: Any) => x.id === primary.id);
      expect(p.fb_id).toBe(fb.fbId);
      expect(p.fb).toMatchObject({ id: fb.fbId, width: mode.hdisplay, height: mode.vdisplay, format: DRM_FORMAT_XRGB8888, planes: [{ offset: 0, pitch: expect.any(Number) }] });
      if ('modifier' in p.fb) expect(p.fb.modifier).toBe(0);
      expect(p.properties.FB_ID.data).toEqual(p.fb);
      // planes without a framebuffer: null, as drm_info
      expect(j.planes.filter((x: Any) => x.fb_id === 0).every((x: Any) => x.fb === null && x.properties.FB_ID.data === null)).toBe(true);
      // the table names it too
      const t = cli('inspect', '--device', card, '--no-probe');
      expect(t.stdout).toMatch(new RegExp(`\\n +${primary.id} +primary +\\S+ +\\S+ +${fb.fbId} ${mode.hdisplay}x${mode.vdisplay} XR24 `));
      // the platform device is named as libdrm names it
      expect(j.device).toMatchObject({ bus_type: 2, device_data: { compatible: ['vkms'] } });
    } finally {
      restoreState(dev, saved);
      blob.destroy();
      fb.destroy();
      dev.close();
    }
  });
});
