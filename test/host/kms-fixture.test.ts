// Host tests on the snapshots recorded from vkms in the VM (test/fixtures/vkms-snapshot*.json,
// recorded by test/kernel/kms.test.ts with VGPU_FLIP_RECORD_FIXTURES=<dir>).
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DRM_FORMAT_MOD_LINEAR, DRM_FORMAT_XRGB8888 } from '../../src/binding/constants.js';
import { AtomicRequest, PropertyIndex } from '../../src/kms/atomic.js';
import { findConnector, planeSupports, planesForCrtc } from '../../src/kms/snapshot.js';
import { loadSnapshotFile, snapshotFromJson, snapshotToJson } from '../../src/kms/snapshot-json.js';
import { captureState } from '../../src/kms/state.js';
import { drmDeviceJson } from '../../src/inspect/json.js';
import { renderSnapshotText } from '../../src/inspect/text.js';

const dir = path.resolve('test/fixtures');
const idle = loadSnapshotFile(path.join(dir, 'vkms-snapshot.json'));
const active = loadSnapshotFile(path.join(dir, 'vkms-snapshot-active.json'));

describe('recorded vkms snapshots', () => {
  it('have vkms topology: 1 CRTC, Virtual-1 + Writeback-1, 10 planes', () => {
    for (const s of [idle, active]) {
      expect(s.driver.name).toBe('vkms');
      expect(s.crtcs).toHaveLength(1);
      expect(s.connectors.map((c) => c.name)).toEqual(['Virtual-1', 'Writeback-1']);
      expect(s.planes.map((p) => p.type)).toEqual(['primary', ...Array(8).fill('overlay'), 'cursor']);
      expect(planesForCrtc(s, s.crtcs[0]!.id)).toHaveLength(10);
      for (const p of s.planes) expect(planeSupports(p, DRM_FORMAT_XRGB8888, DRM_FORMAT_MOD_LINEAR)).toBe(true);
    }
  });

  it('idle: CRTC off; active: mode set and the primary plane showing a framebuffer', () => {
    expect(idle.crtcs[0]!.active).toBe(false);
    expect(idle.crtcs[0]!.mode).toBeNull();
    const c = active.crtcs[0]!;
    expect(c.active).toBe(true);
    expect(c.mode?.hdisplay).toBeGreaterThan(0);
    const primary = active.planes[0]!;
    expect(primary.fbId).toBeGreaterThan(0);
    expect(primary.crtcId).toBe(c.id);
    expect(primary.crtc).toMatchObject({ x: 0, y: 0, w: c.mode!.hdisplay, h: c.mode!.vdisplay });
    expect(findConnector(active, 'Virtual-1')!.crtcId).toBe(c.id);
  });

  it('round-trips through JSON unchanged', () => {
    expect(snapshotFromJson(JSON.parse(JSON.stringify(snapshotToJson(active))))).toEqual(active);
  });

  it('resolves every atomic property the flip engine needs', () => {
    const idx = new PropertyIndex(active);
    const calls: unknown[] = [];
    const req = new AtomicRequest(3, idx, { drmAtomicCommit: (_fd, props) => (calls.push(props), []) });
    const crtc = active.crtcs[0]!;
    const wb = findConnector(active, 'Writeback-1')!;
    req.set(crtc.id, 'ACTIVE', 1).set(crtc.id, 'MODE_ID', 5).set(wb.id, 'WRITEBACK_FB_ID', 9).set(wb.id, 'CRTC_ID', crtc.id);
    for (const p of active.planes) {
      for (const n of ['FB_ID', 'CRTC_ID', 'SRC_X', 'SRC_Y', 'SRC_W', 'SRC_H', 'CRTC_X', 'CRTC_Y', 'CRTC_W', 'CRTC_H']) req.set(p.id, n, 0);
    }
    req.commit();
    expect((calls[0] as unknown[]).length).toBe(4 + 10 * 10);
    expect(wb.properties['WRITEBACK_OUT_FENCE_PTR']).toBeDefined();
  });

  it('capture of the active state restores mode, routing and the primary plane', () => {
    const st = captureState(active);
    expect(st.crtcs[0]!.mode).toEqual(active.crtcs[0]!.mode);
    expect(st.connectors.find((c) => c.id === findConnector(active, 'Virtual-1')!.id)!.props['CRTC_ID']).toBe(BigInt(active.crtcs[0]!.id));
    expect(st.planes[0]!.props['FB_ID']).toBe(BigInt(active.planes[0]!.fbId));
  });

  it('renders as drm_info JSON and tables', () => {
    const j = drmDeviceJson({ path: active.path, snapshot: active }) as { planes: { properties: { IN_FORMATS: { data: { modifier: bigint; formats: number[] }[] } } }[] };
    expect(j.planes).toHaveLength(10);
    expect(j.planes[0]!.properties.IN_FORMATS.data[0]).toMatchObject({ modifier: 0n });
    expect(renderSnapshotText(active)).toMatch(/Planes \(10: 1 primary, 8 overlay, 1 cursor\)/);
  });
});
