// Host tests of the KMS layer's pure parts: snapshot building from (fake) addon data, the JSON
// form, mode blobs, atomic request resolution and state capture.
import { describe, expect, it } from 'vitest';
import { DRM_FORMAT_MOD_LINEAR, DRM_FORMAT_RGB565, DRM_FORMAT_XRGB8888, DRM_MODE_ATOMIC_ALLOW_MODESET, DRM_MODE_ATOMIC_TEST_ONLY } from '../../src/binding/constants.js';
import type { KernelError } from '../../src/binding/errors.js';
import { AtomicRequest, PropertyIndex } from '../../src/kms/atomic.js';
import { MODE_INFO_SIZE, packModeInfo, preferredMode, unpackModeInfo } from '../../src/kms/mode.js';
import { groupFormatModifiers, maskToIndices, planeSupports, readSnapshot } from '../../src/kms/snapshot.js';
import { bigintToHex, hexToBigint, snapshotFromJson, snapshotToJson, snapshotToJsonText } from '../../src/kms/snapshot-json.js';
import { captureState } from '../../src/kms/state.js';
import { MODE_1024, fakeVkmsApi } from './kms-fake-api.js';

const caps = { universalPlanes: true, atomic: true, writebackConnectors: true };

describe('mode blobs', () => {
  it('packs struct drm_mode_modeinfo (68 bytes) and unpacks it back', () => {
    const b = packModeInfo(MODE_1024);
    expect(b.length).toBe(MODE_INFO_SIZE);
    expect(b.readUInt32LE(0)).toBe(65000);
    expect(b.readUInt16LE(4)).toBe(1024);
    expect(b.readUInt16LE(14)).toBe(768);
    expect(b.subarray(36, 44).toString('latin1')).toBe('1024x768');
    expect(unpackModeInfo(b)).toEqual(MODE_1024);
  });
  it('rejects values that do not fit and short blobs', () => {
    expect(() => packModeInfo({ ...MODE_1024, hdisplay: 70000 })).toThrow(/hdisplay=70000/);
    expect(() => unpackModeInfo(Buffer.alloc(10))).toThrow(/too short/);
  });
  it('picks the preferred mode', () => {
    expect(preferredMode([{ ...MODE_1024, type: 0x40, name: 'a' }, MODE_1024])?.name).toBe('1024x768');
    expect(preferredMode([])).toBeNull();
  });
});

describe('readSnapshot (vkms-shaped fake)', () => {
  const s = readSnapshot(3, '/dev/dri/card0', caps, fakeVkmsApi({ active: true }));

  it('lists 1 CRTC, 2 connectors and 10 planes of the right types', () => {
    expect(s.driver.name).toBe('vkms');
    expect(s.crtcs).toHaveLength(1);
    expect(s.connectors.map((c) => c.name)).toEqual(['Virtual-1', 'Writeback-1']);
    expect(s.connectors[1]!.writeback).toBe(true);
    expect(s.planes).toHaveLength(10);
    expect(s.planes.filter((p) => p.type === 'primary')).toHaveLength(1);
    expect(s.planes.filter((p) => p.type === 'overlay')).toHaveLength(8);
    expect(s.planes.filter((p) => p.type === 'cursor')).toHaveLength(1);
  });

  it('skips unsupported caps and keeps the others', () => {
    expect(s.caps['DUMB_BUFFER']).toBe(1n);
    expect('SYNCOBJ' in s.caps).toBe(false);
  });

  it('decodes possible CRTCs to indices and ids', () => {
    const p = s.planes[0]!;
    expect(p.possibleCrtcIndices).toEqual([0]);
    expect(p.possibleCrtcIds).toEqual([40]);
    expect(maskToIndices(0b101, 3)).toEqual([0, 2]);
    expect(maskToIndices(0b1000, 2)).toEqual([]);
  });

  it('reads the active mode from MODE_ID and the plane state from properties', () => {
    const c = s.crtcs[0]!;
    expect(c.active).toBe(true);
    expect(c.modeBlobId).toBe(100);
    expect(c.mode).toEqual(MODE_1024);
    const primary = s.planes.find((p) => p.type === 'primary')!;
    expect(primary.fbId).toBe(77);
    expect(primary.crtcId).toBe(40);
    expect(primary.src).toEqual({ x: 0, y: 0, w: 1024 << 16, h: 768 << 16 });
    expect(primary.crtc).toEqual({ x: 0, y: 0, w: 1024, h: 768 });
    expect(s.connectors[0]!.crtcId).toBe(40);
  });

  it('sign-extends signed ranges (cursor CRTC_X = -5)', () => {
    const cursor = s.planes.find((p) => p.type === 'cursor')!;
    expect(cursor.properties['CRTC_X']!.value).toBe(-5n);
    expect(cursor.crtc.x).toBe(-5);
    expect(cursor.properties['IN_FENCE_FD']!.value).toBe(-1n);
  });

  it('groups IN_FORMATS by format with the linear modifier', () => {
    const p = s.planes[0]!;
    expect(p.inFormats).toBe(true);
    expect(p.formatModifiers[0]).toEqual({ format: DRM_FORMAT_XRGB8888, modifiers: [DRM_FORMAT_MOD_LINEAR] });
    expect(planeSupports(p, DRM_FORMAT_XRGB8888)).toBe(true);
    expect(planeSupports(p, DRM_FORMAT_XRGB8888, 1n)).toBe(false);
    expect(planeSupports(p, 0x12345678)).toBe(false);
  });

  it('implies LINEAR without IN_FORMATS and appends IN_FORMATS-only formats', () => {
    expect(groupFormatModifiers([DRM_FORMAT_XRGB8888], null)).toEqual([{ format: DRM_FORMAT_XRGB8888, modifiers: [0n] }]);
    expect(
      groupFormatModifiers([DRM_FORMAT_XRGB8888], [
        { format: DRM_FORMAT_XRGB8888, modifier: 5n },
        { format: DRM_FORMAT_XRGB8888, modifier: 5n },
        { format: DRM_FORMAT_RGB565, modifier: 0n },
      ]),
    ).toEqual([
      { format: DRM_FORMAT_XRGB8888, modifiers: [5n] },
      { format: DRM_FORMAT_RGB565, modifiers: [0n] },
    ]);
  });

  it('records property ids, kinds and flags by name', () => {
    const p = s.planes[0]!.properties;
    expect(p['FB_ID']).toMatchObject({ kind: 'object', atomic: true, immutable: false });
    expect(p['type']).toMatchObject({ kind: 'enum', immutable: true });
    expect(typeof p['FB_ID']!.id).toBe('number');
  });
});

describe('snapshot JSON', () => {
  const s = readSnapshot(3, '/dev/dri/card0', caps, fakeVkmsApi({ active: true }));

  it('hex-encodes bigints and round-trips exactly', () => {
    const text = snapshotToJsonText(s);
    const parsed = JSON.parse(text);
    expect(parsed.planes[0].formatModifiers[0].modifiers).toEqual(['0x0']);
    expect(parsed.planes[9].properties.CRTC_X.value).toBe('-0x5');
    expect(parsed.caps.DUMB_BUFFER).toBe('0x1');
    expect(snapshotFromJson(text)).toEqual(s);
    expect(snapshotFromJson(snapshotToJson(s))).toEqual(s);
  });

  it('bigint <-> hex helpers', () => {
    expect(bigintToHex(0x0100000000000001n)).toBe('0x100000000000001');
    expect(hexToBigint('0x00ffffffffffffff', 'x')).toBe(0x00ffffffffffffffn);
    expect(hexToBigint('-0x10', 'x')).toBe(-16n);
    expect(hexToBigint('12', 'x')).toBe(12n);
    expect(() => hexToBigint('zz', 'plane 1.value')).toThrow(/plane 1.value/);
    expect(() => snapshotFromJson('{}')).toThrow(/not a KMS snapshot/);
  });
});

describe('AtomicRequest', () => {
  const s = readSnapshot(3, '/dev/dri/card0', caps, fakeVkmsApi());
  const primary = s.planes.find((p) => p.type === 'primary')!;

  function recorder(fail?: string) {
    const calls: { props: Array<[number, number, unknown]>; flags: number; userData?: bigint }[] = [];
    return {
      calls,
      api: {
        drmAtomicCommit(_fd: number, props: Array<[number, number, unknown]>, flags: number, userData?: bigint) {
          calls.push({ props, flags, userData });
          if (fail) {
            throw Object.assign(new Error(`DRM_IOCTL_MODE_ATOMIC on /dev/dri/card0: ${fail}`), {
              op: 'DRM_IOCTL_MODE_ATOMIC', path: '/dev/dri/card0', errno: 22, code: fail,
            }) as KernelError;
          }
          return [];
        },
      },
    };
  }

  it('resolves property names to ids and keeps the last value per property', () => {
    const r = recorder();
    const req = new AtomicRequest(3, new PropertyIndex(s), r.api as never);
    req.set(primary.id, 'FB_ID', 12).set(primary.id, 'CRTC_X', -3).set(primary.id, 'FB_ID', 13n);
    expect(req.size).toBe(2);
    req.commit(DRM_MODE_ATOMIC_ALLOW_MODESET, 9n);
    expect(r.calls[0]!.props).toEqual([
      [primary.id, primary.properties['FB_ID']!.id, 13n],
      [primary.id, primary.properties['CRTC_X']!.id, -3],
    ]);
    expect(r.calls[0]!.flags).toBe(DRM_MODE_ATOMIC_ALLOW_MODESET);
    expect(r.calls[0]!.userData).toBe(9n);
  });

  it('gives clear errors for unknown objects, unknown and immutable properties', () => {
    const req = new AtomicRequest(3, new PropertyIndex(s), recorder().api as never);
    expect(() => req.set(999, 'FB_ID', 0)).toThrow(/object 999 is not a CRTC, connector or plane/);
    expect(() => req.set(primary.id, 'NOPE', 0)).toThrow(/plane \d+ \(primary\) has no property "NOPE" \(it has: .*FB_ID/);
    expect(() => req.set(primary.id, 'type', 0)).toThrow(/immutable/);
    expect(() => req.set(primary.id, 'FB_ID', 1.5)).toThrow(/not an integer/);
    expect(req.setIfPresent(primary.id, 'zpos', 1)).toBe(false);
  });

  it('testOnly adds TEST_ONLY and reports rejection without throwing', () => {
    const ok = recorder();
    const req = new AtomicRequest(3, new PropertyIndex(s), ok.api as never).set(primary.id, 'FB_ID', 1);
    expect(req.testOnly()).toEqual({ ok: true });
    expect(ok.calls[0]!.flags & DRM_MODE_ATOMIC_TEST_ONLY).toBeTruthy();
    const bad = recorder('EINVAL');
    const res = new AtomicRequest(3, new PropertyIndex(s), bad.api as never).set(primary.id, 'FB_ID', 1).testOnly();
    expect(res).toMatchObject({ ok: false, code: 'EINVAL', errno: 22 });
  });

  it('commit errors name the flags and the request', () => {
    const bad = recorder('ERANGE');
    const req = new AtomicRequest(3, new PropertyIndex(s), bad.api as never).set(primary.id, 'FB_ID', 1);
    expect(() => req.commit(DRM_MODE_ATOMIC_ALLOW_MODESET)).toThrow(/ERANGE.*ALLOW_MODESET.*plane \d+ \(primary\)\.FB_ID=1/);
  });
});

describe('captureState', () => {
  it('saves ACTIVE, the mode contents, connector routing and plane state', () => {
    const s = readSnapshot(3, '/dev/dri/card0', caps, fakeVkmsApi({ active: true }));
    const st = captureState(s);
    expect(st.crtcs[0]).toEqual({ id: 40, active: true, mode: MODE_1024, props: { ACTIVE: 1n } });
    expect(st.connectors).toEqual([
      { id: 42, props: { CRTC_ID: 40n } },
      { id: 45, props: { CRTC_ID: 0n } },
    ]);
    const primary = st.planes.find((p) => p.id === 31)!;
    expect(primary.props).toMatchObject({ FB_ID: 77n, CRTC_ID: 40n, SRC_W: 1024n << 16n, CRTC_W: 1024n, CRTC_X: 0n });
    expect(primary.props).not.toHaveProperty('type');
    expect(primary.props).not.toHaveProperty('IN_FENCE_FD');
    // plain data: survives JSON with the snapshot's bigint convention
    expect(JSON.parse(JSON.stringify(st, (_k, v) => (typeof v === 'bigint' ? bigintToHex(v) : v))).planes[0].props.FB_ID).toBe('0x4d');
  });
});

describe('captureState scoped to the CRTCs a presenter uses', () => {
  it('keeps only that CRTC, its connectors and the planes that can be on it (a restore never touches the other monitors)', async () => {
    const { loadSnapshotFile } = await import('../../src/kms/snapshot-json.js');
    const intel = loadSnapshotFile(new URL('../fixtures/flip-intel-snapshot.json', import.meta.url).pathname);
    const all = captureState(intel);
    expect(all.crtcs.map((c) => c.id)).toEqual([80, 81, 82]);
    const pipeB = captureState(intel, { crtcIds: [81], connectorIds: [97] });
    expect(pipeB.crtcs.map((c) => c.id)).toEqual([81]);
    expect(pipeB.connectors.map((c) => c.id)).toEqual([97]); // HDMI-A-1 will be routed there; eDP-1 (on pipe A) is left alone
    expect(pipeB.planes.map((p) => p.id)).toEqual([35, 36, 37, 38]);
    const pipeA = captureState(intel, { crtcIds: [80] });
    expect(pipeA.connectors.map((c) => c.id)).toEqual([95]);
    expect(pipeA.planes.map((p) => p.id)).toEqual([31, 32, 33, 34]);
  });
});
