// The display path of a kiosk VM's guest, chosen when its vGPU is opened (daemon.ts startVm).
import { drmFbBoundElsewhere } from '../flip/session-checks.js';
import type { EnginePath } from '../present/guest.js';
import type { VfioDevice } from '../vfio/index.js';

/**
 * The display path of a VM's guest: the first of `paths` (the configuration's preference) that
 * the vGPU supports (PROBE) and that can show it on every card its layers are on (`devices`):
 * DRM_FB's framebuffers belong to the card the vendor driver is bound to, so a layer on another
 * card cannot show them. `skipped`: why a preferred path was passed over (for the log).
 */
export function chooseVmPath(vfio: VfioDevice, uuid: string | null, paths: readonly string[], devices: readonly string[]): { path: EnginePath | null; skipped: string[] } {
  const skipped: string[] = [];
  for (const name of paths) {
    const p = name.replace('-', '_') as EnginePath;
    if (vfio.probePath(p).supported !== true) continue;
    const elsewhere = p === 'drm_fb' ? devices.map((d) => drmFbBoundElsewhere(uuid, d)).find((x) => x !== null) : undefined;
    if (!elsewhere) return { path: p, skipped };
    skipped.push(`${name}: ${elsewhere}`);
  }
  return { path: null, skipped };
}
