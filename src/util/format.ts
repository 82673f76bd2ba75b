// Small formatting helpers shared by the CLI output.
import { DRM_FORMAT_MOD_INVALID, DRM_FORMAT_MOD_LINEAR, fourccToString } from '../binding/constants.js';

const VENDORS: Record<number, string> = {
  0x00: 'NONE',
  0x01: 'INTEL',
  0x02: 'AMD',
  0x03: 'NVIDIA',
  0x04: 'SAMSUNG',
  0x05: 'QCOM',
  0x06: 'VIVANTE',
  0x07: 'BROADCOM',
  0x08: 'ARM',
  0x09: 'ALLWINNER',
  0x0a: 'AMLOGIC',
};

const KNOWN_MODIFIERS = new Map<bigint, string>([
  [DRM_FORMAT_MOD_LINEAR, 'LINEAR'],
  [DRM_FORMAT_MOD_INVALID, 'INVALID'],
  [(1n << 56n) | 1n, 'I915_X_TILED'],
  [(1n << 56n) | 2n, 'I915_Y_TILED'],
  [(1n << 56n) | 3n, 'I915_Yf_TILED'],
  [(1n << 56n) | 4n, 'I915_Y_TILED_CCS'],
  [(1n << 56n) | 5n, 'I915_Yf_TILED_CCS'],
]);

/** "LINEAR", "I915_X_TILED", or "AMD(0x...)" for unknown vendor codes. */
export function modifierName(mod: bigint): string {
  const known = KNOWN_MODIFIERS.get(mod);
  if (known) return known;
  const vendor = Number((mod >> 56n) & 0xffn);
  const v = mod & ((1n << 56n) - 1n);
  return `${VENDORS[vendor] ?? `VENDOR${vendor}`}(0x${v.toString(16)})`;
}

/** "XR24" style fourcc, trimmed ("R8  " -> "R8"). */
export function formatName(format: number): string {
  return fourccToString(format).trimEnd();
}

export function hex(v: number | bigint, width = 0): string {
  const s = (typeof v === 'bigint' ? v : BigInt(v >>> 0)).toString(16);
  return '0x' + s.padStart(width, '0');
}
