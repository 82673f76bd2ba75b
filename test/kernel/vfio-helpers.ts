// mdev instances of vgpu_sim for the kernel tests of the VFIO / inspect layers.
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** the mdev type the tests create: vgpu_sim's by default; VGPU_FLIP_TEST_MDEV_TYPE overrides (e.g. mbochs-1) */
export const SIM_TYPE = process.env['VGPU_FLIP_TEST_MDEV_TYPE'] ?? 'vgpu_sim-small';

/**
 * Create an mdev of `type` via sysfs; throws (the test fails) when no parent offers it, with
 * `hint` saying what the rig must load.
 */
export function createMdev(type = SIM_TYPE, hint = 'the rig must load the vgpu_sim module'): string {
  const busDir = '/sys/class/mdev_bus';
  const parents = existsSync(busDir) ? readdirSync(busDir) : [];
  for (const p of parents) {
    const create = path.join(busDir, p, 'mdev_supported_types', type, 'create');
    if (existsSync(create)) {
      const uuid = randomUUID();
      writeFileSync(create, uuid);
      return uuid;
    }
  }
  throw new Error(
    `no mdev parent offers ${type} (parents: ${parents.join(', ') || 'none'}): ${hint}`,
  );
}

export function removeMdev(uuid: string): void {
  try {
    writeFileSync(`/sys/bus/mdev/devices/${uuid}/remove`, '1');
  } catch {
    /* already gone */
  }
}
