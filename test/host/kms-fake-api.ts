// A fake KmsReadApi shaped like vkms (enable_cursor/overlay/writeback): 1 CRTC, Virtual-1 and
// Writeback-1 connectors, 10 planes (1 primary, 8 overlay, 1 cursor). For host tests of the
// pure snapshot logic; the kernel tests check the real thing.
import type { DrmProperty, ModeInfo } from '../../src/binding/types.js';
import { DRM_FORMAT_ARGB8888, DRM_FORMAT_XRGB8888, DRM_FORMAT_RGB565, DRM_MODE_OBJECT_FB, DRM_MODE_OBJECT_CRTC } from '../../src/binding/constants.js';
import { packModeInfo } from '../../src/kms/mode.js';
import type { KmsReadApi } from '../../src/kms/snapshot.js';

export const MODE_1024: ModeInfo = {
  clock: 65000, hdisplay: 1024, hsyncStart: 1048, hsyncEnd: 1184, htotal: 1344, hskew: 0,
  vdisplay: 768, vsyncStart: 771, vsyncEnd: 777, vtotal: 806, vscan: 0, vrefresh: 60,
  flags: 0xa, type: 0x40 | 0x8, name: '1024x768',
};

const ATOMIC = 0x80000000;
const IMMUTABLE = 4;
let nextProp = 1;
const ids = new Map<string, number>();
function pid(name: string): number {
  let id = ids.get(name);
  if (id === undefined) ids.set(name, (id = nextProp++));
  return id;
}
const range = (name: string, value: bigint, min: bigint, max: bigint, flags = 0): DrmProperty => ({
  id: pid(name), name, flags: 2 | flags, kind: 'range', value, range: [min, max],
});
const srange = (name: string, value: bigint): DrmProperty => ({
  id: pid(name), name, flags: (2 << 6) | ATOMIC, kind: 'signed_range', value: BigInt.asUintN(64, value),
  range: [-(1n << 31n), (1n << 31n) - 1n],
});
const obj = (name: string, value: bigint, objectType: number): DrmProperty => ({
  id: pid(name), name, flags: (1 << 6) | ATOMIC, kind: 'object', value, objectType,
});
const blob = (name: string, value: bigint, flags = 0): DrmProperty => ({ id: pid(name), name, flags: 16 | flags, kind: 'blob', value });
const enumProp = (name: string, value: bigint, names: string[], flags = 8): DrmProperty => ({
  id: pid(name), name, flags, kind: 'enum', value, enums: names.map((n, i) => ({ name: n, value: BigInt(i) })),
});

export interface FakeOptions {
  /** primary plane shows fb 77 at (x,y) with CRTC active in 1024x768 */
  active?: boolean;
  cursorX?: bigint;
}

export function fakeVkmsApi(opts: FakeOptions = {}): KmsReadApi & { blobs: Map<number, Buffer> } {
  const CRTC = 40;
  const CONN = 42;
  const WB = 45;
  const ENC = 41;
  const WBENC = 44;
  const planeIds = [31, 33, 34, 35, 36, 37, 38, 39, 46, 47];
  const active = opts.active ?? false;
  const blobs = new Map<number, Buffer>();
  blobs.set(100, packModeInfo(MODE_1024));
  // IN_FORMATS blob (struct drm_format_modifier_blob): version 1, 3 formats, 1 modifier LINEAR for all
  const fmts = [DRM_FORMAT_XRGB8888, DRM_FORMAT_ARGB8888, DRM_FORMAT_RGB565];
  const inFormats = Buffer.alloc(24 + 4 * fmts.length + 24);
  inFormats.writeUInt32LE(1, 0); // version
  inFormats.writeUInt32LE(0, 4); // flags
  inFormats.writeUInt32LE(fmts.length, 8);
  inFormats.writeUInt32LE(24, 12); // formats_offset
  inFormats.writeUInt32LE(1, 16); // count_modifiers
  inFormats.writeUInt32LE(24 + 4 * fmts.length, 20); // modifiers_offset
  fmts.forEach((f, i) => inFormats.writeUInt32LE(f, 24 + 4 * i));
  const mo = 24 + 4 * fmts.length;
  inFormats.writeBigUInt64LE(0b111n, mo); // formats bitmask
  inFormats.writeUInt32LE(0, mo + 8); // offset
  inFormats.writeBigUInt64LE(0n, mo + 16); // modifier LINEAR
  blobs.set(101, inFormats);

  const planeType = (id: number): bigint => (id === 31 ? 1n : id === 47 ? 2n : 0n);
  const planeProps = (id: number): DrmProperty[] => {
    const on = active && id === 31;
    const cursor = id === 47;
    return [
      enumProp('type', planeType(id), ['Overlay', 'Primary', 'Cursor'], 8 | IMMUTABLE),
      obj('FB_ID', on ? 77n : 0n, DRM_MODE_OBJECT_FB),
      { id: pid('IN_FENCE_FD'), name: 'IN_FENCE_FD', flags: (2 << 6) | ATOMIC, kind: 'signed_range', value: BigInt.asUintN(64, -1n), range: [-1n, 2147483647n] },
      obj('CRTC_ID', on ? BigInt(CRTC) : 0n, DRM_MODE_OBJECT_CRTC),
      srange('CRTC_X', cursor ? (opts.cursorX ?? -5n) : 0n),
      srange('CRTC_Y', 0n),
      range('CRTC_W', on ? 1024n : 0n, 0n, 0x7fffffffn, ATOMIC),
      range('CRTC_H', on ? 768n : 0n, 0n, 0x7fffffffn, ATOMIC),
      range('SRC_X', 0n, 0n, 0xffffffffn, ATOMIC),
      range('SRC_Y', 0n, 0n, 0xffffffffn, ATOMIC),
      range('SRC_W', on ? 1024n << 16n : 0n, 0n, 0xffffffffn, ATOMIC),
      range('SRC_H', on ? 768n << 16n : 0n, 0n, 0xffffffffn, ATOMIC),
      blob('IN_FORMATS', 101n, IMMUTABLE),
    ];
  };
  return {
    blobs,
    drmGetVersion: () => ({ major: 1, minor: 0, patch: 0, name: 'vkms', date: '20180514', desc: 'Virtual Kernel Mode Setting' }),
    drmGetCap: (_fd, cap) => {
      if (cap === 0x13 || cap === 0x14) throw Object.assign(new Error('EINVAL'), { op: 'DRM_IOCTL_GET_CAP', path: '', errno: 22, code: 'EINVAL' });
      return cap === 1 ? 1n : 0n;
    },
    drmGetResources: () => ({
      fbs: active ? [77] : [], crtcs: [CRTC], connectors: [CONN, WB], encoders: [ENC, WBENC],
      minWidth: 1, maxWidth: 8192, minHeight: 1, maxHeight: 8192,
    }),
    drmGetConnector: (_fd, id) => ({
      id, type: id === CONN ? 15 : 18, typeId: 1, status: 1, mmWidth: 0, mmHeight: 0, subpixel: 0,
      encoderId: id === CONN && active ? ENC : 0, encoders: [id === CONN ? ENC : WBENC],
      modes: id === CONN ? [MODE_1024, { ...MODE_1024, hdisplay: 1920, vdisplay: 1080, type: 0x40, name: '1920x1080' }] : [],
    }),
    drmGetEncoder: (_fd, id) => ({ id, type: id === ENC ? 5 : 8, crtcId: id === ENC && active ? CRTC : 0, possibleCrtcs: 1, possibleClones: 0 }),
    drmGetCrtc: (_fd, id) => ({
      id, bufferId: active ? 77 : 0, x: 0, y: 0, width: active ? 1024 : 0, height: active ? 768 : 0,
      modeValid: active, mode: active ? MODE_1024 : null, gammaSize: 0,
    }),
    drmGetPlaneResources: () => planeIds,
    drmGetPlane: (_fd, id) => ({
      id, crtcId: active && id === 31 ? CRTC : 0, fbId: active && id === 31 ? 77 : 0,
      crtcX: 0, crtcY: 0, x: 0, y: 0, possibleCrtcs: 1, gammaSize: 0,
      formats: [DRM_FORMAT_XRGB8888, DRM_FORMAT_ARGB8888, DRM_FORMAT_RGB565],
    }),
    drmGetProperties: (_fd, id) => {
      if (id === CRTC) {
        return [
          range('ACTIVE', active ? 1n : 0n, 0n, 1n, ATOMIC),
          blob('MODE_ID', active ? 100n : 0n, ATOMIC),
          srange('OUT_FENCE_PTR', 0n),
        ];
      }
      if (id === CONN || id === WB) {
        const p: DrmProperty[] = [
          enumProp('DPMS', 0n, ['On', 'Standby', 'Suspend', 'Off']),
          obj('CRTC_ID', id === CONN && active ? BigInt(CRTC) : 0n, DRM_MODE_OBJECT_CRTC),
        ];
        if (id === WB) p.push(blob('WRITEBACK_PIXEL_FORMATS', 0n, IMMUTABLE | ATOMIC), obj('WRITEBACK_FB_ID', 0n, DRM_MODE_OBJECT_FB));
        return p;
      }
      return planeProps(id);
    },
    drmGetPropertyBlob: (_fd, id) => (id === 0 ? null : (blobs.get(id) ?? null)),
    drmDecodeInFormats: (b: Buffer) => {
      // minimal decoder for the fake (the real one is the addon's)
      const count = b.readUInt32LE(8), fo = b.readUInt32LE(12), nm = b.readUInt32LE(16), mo2 = b.readUInt32LE(20);
      const f = Array.from({ length: count }, (_, i) => b.readUInt32LE(fo + 4 * i));
      const out: { format: number; modifier: bigint }[] = [];
      for (let m = 0; m < nm; m++) {
        const mask = b.readBigUInt64LE(mo2 + 24 * m), off = b.readUInt32LE(mo2 + 24 * m + 8), mod = b.readBigUInt64LE(mo2 + 24 * m + 16);
        for (let i = 0; i < 64; i++) if ((mask >> BigInt(i)) & 1n) out.push({ format: f[off + i]!, modifier: mod });
      }
      return out;
    },
  };
}
