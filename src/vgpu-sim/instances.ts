// vgpu-sim mdev instances (sysfs): the types the parent offers, creating and listing instances.
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { SIM_PARENT, SimError, readText, roots, writeText, type SimRoots } from './sysfs.js';

// ------------------------------------------------------------------ instances

export interface SimTypeInfo {
  /** e.g. 'vgpu_sim-small' */
  name: string;
  parent: string;
  availableInstances: number;
  description: string;
  /** the type's sysfs folder */
  path: string;
}

/** The mdev types offered by the vgpu_sim parent ([] when the module is not loaded). */
export function listSimTypes(r: SimRoots = {}): SimTypeInfo[] {
  const dir = path.join(roots(r).mdevBus, SIM_PARENT, 'mdev_supported_types');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .map((name) => {
      const p = path.join(dir, name);
      return {
        name,
        parent: SIM_PARENT,
        availableInstances: Number.parseInt(readText(path.join(p, 'available_instances')).trim(), 10),
        description: readText(path.join(p, 'description')).trim(),
        path: p,
      };
    });
}

export interface SimInstance {
  uuid: string;
  type: string;
  /** remove the mdev (idempotent; the device must not be open, the kernel waits otherwise) */
  remove(): void;
}

/** Create an instance of `type` ('vgpu_sim-small', 'vgpu_sim-large' or just 'small'). */
export function createSimInstance(type = 'vgpu_sim-small', uuid: string = randomUUID(), r: SimRoots = {}): SimInstance {
  const rr = roots(r);
  const full = type.startsWith(`${SIM_PARENT}-`) ? type : `${SIM_PARENT}-${type}`;
  const typeDir = path.join(rr.mdevBus, SIM_PARENT, 'mdev_supported_types', full);
  if (!existsSync(typeDir)) {
    const known = listSimTypes(r).map((t) => t.name);
    throw new SimError(
      `vgpu-sim: no mdev type ${full} (known: ${known.join(', ') || 'none; is the vgpu_sim module loaded?'})`,
      typeDir,
      'ENOENT',
    );
  }
  const avail = Number.parseInt(readText(path.join(typeDir, 'available_instances')).trim(), 10);
  if (avail === 0) {
    throw new SimError(`vgpu-sim: no ${full} instance available (video memory budget used up; remove instances first)`, typeDir, 'ENOSPC');
  }
  writeText(path.join(typeDir, 'create'), uuid);
  let removed = false;
  return {
    uuid,
    type: full,
    remove(): void {
      if (removed) return;
      const f = path.join(rr.mdevDevices, uuid, 'remove');
      if (existsSync(f)) writeText(f, '1');
      removed = true;
    },
  };
}

/** UUIDs of the existing vgpu-sim instances. */
export function listSimInstances(r: SimRoots = {}): string[] {
  const dir = roots(r).debugfs;
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => /^[0-9a-f-]{36}$/.test(n)).sort();
}

