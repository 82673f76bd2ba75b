// GuestDriver over vgpu-sim (the project's reference mdev driver): the real VFIO display path.
import { existsSync } from 'node:fs';
import type { GuestDriver } from './guest-driver.js';

export function simAvailable(): boolean {
  return existsSync('/sys/class/mdev_bus') && existsSync('/sys/module/vgpu_sim');
}

export async function openSimGuest(): Promise<GuestDriver> {
  throw new Error('vgpu-sim guest driver: src/vgpu-sim is not available yet');
}
