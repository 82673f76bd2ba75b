// Counting wrapper around the native addon: every call the engine makes per frame goes through
// it, so the engine (and the benchmark) can report ioctls per frame by kind.
import type { NativeAddon } from '../binding/types.js';

/** Addon calls that are one ioctl each (the rest are plain syscalls: close, mmap, read, poll). */
export const IOCTL_CALLS: ReadonlySet<string> = new Set([
  'drmSetClientCap', 'drmGetCap', 'drmGetVersion', 'drmGetResources', 'drmGetConnector', 'drmGetEncoder',
  'drmGetCrtc', 'drmGetPlaneResources', 'drmGetPlane', 'drmGetProperties', 'drmGetPropertyBlob',
  'drmCreatePropertyBlob', 'drmDestroyPropertyBlob', 'drmAtomicCommit', 'drmPrimeFdToHandle',
  'drmPrimeHandleToFd', 'drmGemClose', 'drmAddFb2', 'drmRmFb', 'drmCreateDumb', 'drmMapDumb',
  'drmDestroyDumb', 'drmSetMaster', 'drmDropMaster', 'drmWaitVblank',
  'vfioDeviceInfo', 'vfioRegionInfo', 'vfioQueryGfxPlane', 'vfioGetGfxDmabuf', 'dmabufSync',
]);

export class CallCounter {
  readonly counts = new Map<string, number>();

  count(name: string, n = 1): void {
    this.counts.set(name, (this.counts.get(name) ?? 0) + n);
  }

  /** A proxy of `api` that counts each function call by name. */
  wrap<T extends object>(api: T): T {
    return new Proxy(api, {
      get: (target, prop, receiver) => {
        const v = Reflect.get(target, prop, receiver);
        if (typeof v !== 'function' || typeof prop !== 'string') return v;
        return (...args: unknown[]) => {
          this.count(prop);
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }

  /** counts since `before` (a snapshot()) */
  since(before: Record<string, number>): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, v] of this.counts) {
      const d = v - (before[k] ?? 0);
      if (d) out[k] = d;
    }
    return out;
  }

  static ioctls(counts: Record<string, number>): number {
    let n = 0;
    for (const [k, v] of Object.entries(counts)) if (IOCTL_CALLS.has(k)) n += v;
    return n;
  }
}

export type CountedNative = NativeAddon;
