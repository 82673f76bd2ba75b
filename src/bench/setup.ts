// Finding the devices for the demo and the benchmark inside the test rig's VM.
import { readdirSync } from 'node:fs';
import { native } from '../binding/index.js';
import { LoopbackGuest, type GuestDriver } from './guest-driver.js';

/** The vkms card node (else the first card), for the virtual host. */
export function findCard(): string {
  let cards: string[] = [];
  try {
    cards = readdirSync('/dev/dri').filter((n) => /^card\d+$/.test(n)).map((n) => `/dev/dri/${n}`).sort();
  } catch {
    /* none */
  }
  for (const c of cards) {
    let fd = -1;
    try {
      fd = native.drmOpen(c);
      if (native.drmGetVersion(fd).name === 'vkms') return c;
    } catch {
      /* not this one */
    } finally {
      if (fd >= 0) native.close(fd);
    }
  }
  if (cards[0]) return cards[0];
  throw new Error('no DRM card in /dev/dri: run inside the test rig (bash test/rig/vm.sh -- ...) or load vkms (modprobe vkms enable_cursor=1 enable_overlay=1 enable_writeback=1)');
}

/**
 * The guest: vgpu-sim when its module is loaded (the real VFIO path), else the loopback guest.
 * `want` forces one.
 */
export async function openGuest(card: string, want?: 'vgpu-sim' | 'loopback'): Promise<GuestDriver> {
  if (want !== 'loopback') {
    try {
      const sim = await import('./sim-guest.js');
      if (want === 'vgpu-sim' || sim.simAvailable()) return await sim.openSimGuest();
    } catch (e) {
      if (want === 'vgpu-sim') throw e;
    }
  }
  return new LoopbackGuest(card);
}
