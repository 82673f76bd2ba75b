// vgpu-sim's files: where they are (sysfs, debugfs) and reading/writing them with errors that
// say which file and what to do. Plain file I/O only.
import { readFileSync, writeFileSync } from 'node:fs';

export const SIM_PARENT = 'vgpu_sim';
export const SIM_MODULE = 'vgpu_sim';
export type SimPlane = 'primary' | 'cursor' | 'overlay';
export const SIM_PLANES: readonly SimPlane[] = ['primary', 'cursor', 'overlay'];

export interface SimRoots {
  /** default /sys/class/mdev_bus */
  mdevBus?: string;
  /** default /sys/bus/mdev/devices */
  mdevDevices?: string;
  /** default /sys/kernel/debug/vgpu_sim */
  debugfs?: string;
}

export function roots(r: SimRoots = {}): Required<SimRoots> {
  return {
    mdevBus: r.mdevBus ?? '/sys/class/mdev_bus',
    mdevDevices: r.mdevDevices ?? '/sys/bus/mdev/devices',
    debugfs: r.debugfs ?? '/sys/kernel/debug/vgpu_sim',
  };
}

/** An error of a vgpu-sim sysfs/debugfs access, with the file and what to do. */
export class SimError extends Error {
  constructor(
    message: string,
    readonly file: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'SimError';
  }
}

export function errCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : undefined;
}

export function hintFor(code: string | undefined, file: string): string {
  switch (code) {
    case 'ENOENT':
      return file.includes('/sys/kernel/debug')
        ? 'is debugfs mounted (mount -t debugfs none /sys/kernel/debug) and the instance alive?'
        : 'is the vgpu_sim module loaded (modprobe vgpu_sim / insmod vgpu_sim.ko)?';
    case 'EACCES':
    case 'EPERM':
      return 'vgpu-sim debugfs and mdev sysfs files need root';
    case 'EINVAL':
      return 'the module rejected the text (see native/vgpu-sim/README.md for the syntax)';
    default:
      return '';
  }
}

export function writeText(file: string, text: string): void {
  try {
    writeFileSync(file, text);
  } catch (e) {
    const code = errCode(e);
    const hint = hintFor(code, file);
    throw new SimError(`vgpu-sim: writing "${text}" to ${file} failed: ${code ?? String(e)}${hint ? ` (${hint})` : ''}`, file, code);
  }
}

export function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    const code = errCode(e);
    const hint = hintFor(code, file);
    throw new SimError(`vgpu-sim: reading ${file} failed: ${code ?? String(e)}${hint ? ` (${hint})` : ''}`, file, code);
  }
}

