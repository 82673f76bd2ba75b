// struct drm_mode_modeinfo <-> ModeInfo. The MODE_ID property takes a blob holding exactly this
// struct (68 bytes, native endianness = little endian on every platform we run on).
import type { ModeInfo } from '../binding/types.js';

export const MODE_INFO_SIZE = 68;
const NAME_LEN = 32;

/** Pack a mode into the kernel's struct drm_mode_modeinfo, for a MODE_ID blob. */
export function packModeInfo(mode: ModeInfo): Buffer {
  const b = Buffer.alloc(MODE_INFO_SIZE);
  let o = 0;
  const u32 = (v: number): void => {
    b.writeUInt32LE(v >>> 0, o);
    o += 4;
  };
  const u16 = (v: number, field: string): void => {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff) {
      throw new RangeError(`mode ${JSON.stringify(mode.name)}: ${field}=${v} does not fit in 16 bits`);
    }
    b.writeUInt16LE(v, o);
    o += 2;
  };
  u32(mode.clock);
  u16(mode.hdisplay, 'hdisplay');
  u16(mode.hsyncStart, 'hsyncStart');
  u16(mode.hsyncEnd, 'hsyncEnd');
  u16(mode.htotal, 'htotal');
  u16(mode.hskew, 'hskew');
  u16(mode.vdisplay, 'vdisplay');
  u16(mode.vsyncStart, 'vsyncStart');
  u16(mode.vsyncEnd, 'vsyncEnd');
  u16(mode.vtotal, 'vtotal');
  u16(mode.vscan, 'vscan');
  u32(mode.vrefresh);
  u32(mode.flags);
  u32(mode.type);
  const name = Buffer.from(mode.name, 'latin1');
  name.copy(b, o, 0, Math.min(name.length, NAME_LEN - 1));
  return b;
}

/** Decode a MODE_ID blob (struct drm_mode_modeinfo). */
export function unpackModeInfo(b: Buffer): ModeInfo {
  if (b.length < MODE_INFO_SIZE) {
    throw new RangeError(`mode blob too short: ${b.length} bytes, struct drm_mode_modeinfo is ${MODE_INFO_SIZE}`);
  }
  const nameBytes = b.subarray(36, 36 + NAME_LEN);
  const nul = nameBytes.indexOf(0);
  return {
    clock: b.readUInt32LE(0),
    hdisplay: b.readUInt16LE(4),
    hsyncStart: b.readUInt16LE(6),
    hsyncEnd: b.readUInt16LE(8),
    htotal: b.readUInt16LE(10),
    hskew: b.readUInt16LE(12),
    vdisplay: b.readUInt16LE(14),
    vsyncStart: b.readUInt16LE(16),
    vsyncEnd: b.readUInt16LE(18),
    vtotal: b.readUInt16LE(20),
    vscan: b.readUInt16LE(22),
    vrefresh: b.readUInt32LE(24),
    flags: b.readUInt32LE(28),
    type: b.readUInt32LE(32),
    name: nameBytes.subarray(0, nul < 0 ? NAME_LEN : nul).toString('latin1'),
  };
}

/** DRM_MODE_TYPE_PREFERRED */
export const DRM_MODE_TYPE_PREFERRED = 1 << 3;

/** "1024x768@60" */
export function modeSummary(mode: ModeInfo | null): string {
  if (!mode) return '-';
  return `${mode.hdisplay}x${mode.vdisplay}@${mode.vrefresh}`;
}

/** The connector's preferred mode, else its first one; null without modes. */
export function preferredMode(modes: readonly ModeInfo[]): ModeInfo | null {
  return modes.find((m) => (m.type & DRM_MODE_TYPE_PREFERRED) !== 0) ?? modes[0] ?? null;
}
