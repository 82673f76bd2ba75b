// Helpers of the flip-engine kernel tests (run inside the VM).
import { readdirSync, readFileSync } from 'node:fs';
import { DRM_FORMAT_ARGB8888, DRM_FORMAT_XRGB8888 } from '../../src/binding/constants.js';
import { DRM_MODE_ATOMIC_ALLOW_MODESET } from '../../src/binding/constants.js';
import { regionSource } from '../../src/flip/copy.js';
import { preferredMode, type DrmDevice } from '../../src/kms/index.js';

/** Number of open fds of this process. */
export function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

export function debugfsDir(card: string): string {
  const minor = card.match(/card(\d+)$/)?.[1] ?? '0';
  return `/sys/kernel/debug/dri/${minor}`;
}

/** Framebuffer ids listed in debugfs (framebuffer[ID]: lines). */
export function debugfsFramebuffers(card: string): number[] {
  const text = readFileSync(`${debugfsDir(card)}/framebuffer`, 'utf8');
  return [...text.matchAll(/framebuffer\[(\d+)\]/g)].map((m) => Number(m[1]));
}

export function debugfsFile(card: string, name: string): string {
  try {
    return readFileSync(`${debugfsDir(card)}/${name}`, 'utf8');
  } catch (e) {
    return `(unreadable: ${(e as Error).message})`;
  }
}

/** The number of dma-bufs alive in the system (debugfs dma_buf/bufinfo). */
export function dmabufCount(): number {
  try {
    const t = readFileSync('/sys/kernel/debug/dma_buf/bufinfo', 'utf8');
    const m = t.match(/Total (\d+) objects/);
    return m ? Number(m[1]) : -1;
  } catch {
    return -1;
  }
}

export interface Leaks {
  fds: number;
  fbs: number[];
  dmabufs: number;
  clients: string;
}

export function leakSnapshot(card: string): Leaks {
  return { fds: fdCount(), fbs: debugfsFramebuffers(card), dmabufs: dmabufCount(), clients: debugfsFile(card, 'clients') };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** The loopback guest of src/bench (PRIME-exported dumb buffers); tests call it DumbGuest. */
export { LoopbackGuest as DumbGuest } from '../../src/bench/guest-driver.js';

export { regionSource, DRM_FORMAT_ARGB8888, DRM_FORMAT_XRGB8888 };

/**
 * The flip tests start from a lit CRTC, as on a host whose console shows something. The rig
 * boots with fbcon lighting vkms unless --no-fbdev: then light CRTC 0 here, with the
 * connector's preferred mode and a black dumb buffer on the primary plane (what fbcon does),
 * and return the function that turns it off again. A no-op when the CRTC is lit already.
 */
export function lightCrtcIfDark(dev: DrmDevice, crtcIndex = 0): () => void {
  const s = dev.snapshot();
  const crtc = s.crtcs.find((c) => c.index === crtcIndex);
  if (!crtc) throw new Error(`${dev.path}: no CRTC ${crtcIndex}`);
  if (crtc.active && crtc.mode) return () => undefined;
  const conn = s.connectors.find((c) => !c.writeback && c.status === 'connected' && c.modes.length > 0);
  if (!conn) throw new Error(`${dev.path}: CRTC ${crtcIndex} is dark and no connected connector offers a mode`);
  const mode = preferredMode(conn.modes) ?? conn.modes[0]!;
  const primary = s.planes.find((p) => p.type === 'primary' && p.possibleCrtcIndices.includes(crtcIndex));
  if (!primary) throw new Error(`${dev.path}: no primary plane for CRTC ${crtcIndex}`);
  const w = mode.hdisplay;
  const h = mode.vdisplay;
  const fb = dev.createDumbFramebuffer(w, h, DRM_FORMAT_XRGB8888); // dumb buffers start zeroed: black
  const blob = dev.createModeBlob(mode);
  try {
    dev
      .atomic()
      .set(conn.id, 'CRTC_ID', crtc.id)
      .set(crtc.id, 'ACTIVE', 1)
      .set(crtc.id, 'MODE_ID', blob.id)
      .placePlane(primary.id, crtc.id, fb.fbId, { w, h }, { x: 0, y: 0, w, h })
      .commit(DRM_MODE_ATOMIC_ALLOW_MODESET);
  } catch (e) {
    fb.destroy();
    blob.destroy();
    throw new Error(`lighting CRTC ${crtcIndex} of ${dev.path} with ${w}x${h} on ${conn.name} failed: ${(e as Error).message}`, { cause: e });
  }
  return () => {
    try {
      dev
        .atomic()
        .set(conn.id, 'CRTC_ID', 0)
        .set(crtc.id, 'ACTIVE', 0)
        .set(crtc.id, 'MODE_ID', 0)
        .set(primary.id, 'FB_ID', 0)
        .set(primary.id, 'CRTC_ID', 0)
        .commit(DRM_MODE_ATOMIC_ALLOW_MODESET);
    } finally {
      fb.destroy();
      blob.destroy();
    }
  };
}

/**
 * debugfs `state` without the kernel's own mapping addresses (`vaddr=`): vkms maps a
 * framebuffer again whenever it is committed, so the address of a restored fb changes while
 * the display state is the same.
 */
export function displayState(card: string): string {
  return debugfsFile(card, 'state').replace(/^\s*vaddr=.*\n/gm, '');
}
