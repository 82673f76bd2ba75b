// ADDFB2's modifier argument, decided once per device: with DRM_CAP_ADDFB2_MODIFIERS the
// modifier is always passed (LINEAR included: a driver may pick a tiled layout for "no
// modifier"); without the cap only a linear (or unspecified) buffer can be added, and a tiled
// one is refused with a message instead of being shown as garbage.
import { DRM_FORMAT_MOD_INVALID, DRM_FORMAT_MOD_LINEAR } from '../binding/constants.js';

export function addFb2Modifier(modifier: bigint, capModifiers: boolean, device: string): { modifiers?: bigint[] } {
  if (modifier === DRM_FORMAT_MOD_INVALID) return {};
  if (capModifiers) return { modifiers: [modifier] };
  if (modifier === DRM_FORMAT_MOD_LINEAR) return {};
  throw new Error(
    `${device} does not accept framebuffer modifiers (DRM_CAP_ADDFB2_MODIFIERS is 0) and the guest buffer has modifier 0x${modifier.toString(16)} (not linear): it cannot be shown without copying`,
  );
}
