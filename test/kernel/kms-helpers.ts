// Shared helpers for the kernel tests of the KMS / inspect layers (run inside the VM).
import { readFileSync } from 'node:fs';
import { native } from '../../src/binding/index.js';
import { listCardNodes } from '../../src/inspect/collect.js';

/** The vkms card node; throws (the test fails) when vkms is not loaded. */
export function findVkmsCard(): string {
  const cards = listCardNodes();
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
  throw new Error(
    `no vkms card among [${cards.join(', ') || 'no /dev/dri/card*'}]: the rig must load vkms (enable_cursor=1 enable_overlay=1 enable_writeback=1)`,
  );
}

/** The debugfs state file of the DRM minor behind a card node, or null when unreadable. */
export function readDebugfsState(card: string): string | null {
  const minor = card.match(/card(\d+)$/)?.[1];
  if (minor === undefined) return null;
  try {
    return readFileSync(`/sys/kernel/debug/dri/${minor}/state`, 'utf8');
  } catch {
    return null;
  }
}
