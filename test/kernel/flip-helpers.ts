// Helpers of the flip-engine kernel tests (run inside the VM).
import { readdirSync, readFileSync } from 'node:fs';
import { DRM_FORMAT_ARGB8888, DRM_FORMAT_XRGB8888 } from '../../src/binding/constants.js';
import { regionSource } from '../../src/flip/copy.js';

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
