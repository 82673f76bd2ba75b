// Counting wrapper around the native addon: every call the engine makes per frame goes through
// it, so the engine (and the benchmark) can report ioctls per frame by kind.
import type { NativeAddon } from '../binding/types.js';
import { loadNative, native } from '../binding/index.js';

/** Addon calls that are one ioctl each (the rest are plain syscalls: close, mmap, read, poll). */
export const IOCTL_CALLS: ReadonlySet<string> = new Set([
  'drmSetClientCap', 'drmGetCap', 'drmGetVersion', 'drmGetResources', 'drmGetConnector', 'drmGetEncoder',
  'drmGetCrtc', 'drmGetPlaneResources', 'drmGetPlane', 'drmGetProperties', 'drmGetPropertyBlob',
  'drmCreatePropertyBlob', 'drmDestroyPropertyBlob', 'drmAtomicCommit', 'drmPrimeFdToHandle',
  'drmPrimeHandleToFd', 'drmGemClose', 'drmAddFb2', 'drmRmFb', 'drmCreateDumb', 'drmMapDumb',
  'drmDestroyDumb', 'drmSetMaster', 'drmDropMaster', 'drmIsMaster', 'drmWaitVblank',
  'vfioDeviceInfo', 'vfioRegionInfo', 'vfioQueryGfxPlane', 'vfioGetGfxDmabuf', 'dmabufSync',
]);

export class CallCounter {
  /** one counter cell per name: the wrappers hold their cell, no lookup per call */
  private readonly cells = new Map<string, { n: number }>();

  private cell(name: string): { n: number } {
    let c = this.cells.get(name);
    if (!c) this.cells.set(name, (c = { n: 0 }));
    return c;
  }

  count(name: string, n = 1): void {
    this.cell(name).n += n;
  }

  /**
   * `api` with each function call counted by name. The functions `api` has when wrapped get a
   * wrapper each, made once (no closure per call); each call looks the function up on `api`
   * again, so a function replaced later (a test's guard) is the one called. Anything else
   * (functions a proxy makes up on access) goes through a counting proxy.
   */
  wrap<T extends object>(api: T): T {
    // the lazy addon proxy (binding/index.ts): wrap the loaded addon itself when it loads
    let target: object = api;
    if ((api as unknown) === native) {
      try {
        target = loadNative();
      } catch {
        /* not built: stays lazy (the first call throws the "run npm install" error) */
      }
    }
    const slow = new Proxy(target, {
      get: (t, prop) => {
        const v = Reflect.get(t, prop);
        if (typeof v !== 'function' || typeof prop !== 'string') return v;
        const c = this.cell(prop);
        return (...args: unknown[]) => {
          c.n++;
          return (v as (...a: unknown[]) => unknown).apply(t, args);
        };
      },
    });
    const fast = Object.create(slow) as Record<string, unknown>;
    const t = target as Record<string, (...a: unknown[]) => unknown>;
    let names: string[] = [];
    try {
      for (let o: object | null = target; o && o !== Object.prototype; o = Object.getPrototypeOf(o) as object | null) names.push(...Object.getOwnPropertyNames(o));
    } catch {
      names = [];
    }
    for (const name of new Set(names)) {
      if (name === 'constructor' || typeof t[name] !== 'function') continue;
      const c = this.cell(name);
      // defined, not assigned: an assignment would go through the proxy to the addon's
      // exports, whose properties are read-only (and a test's proxy over them refuses it)
      Object.defineProperty(fast, name, {
        value: (...args: unknown[]) => {
          c.n++;
          return t[name]!(...args);
        },
        writable: true,
        configurable: true,
        enumerable: true,
      });
    }
    return fast as T;
  }

  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, c] of this.cells) if (c.n) out[k] = c.n;
    return out;
  }

  /** counts since `before` (a snapshot()) */
  since(before: Record<string, number>): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, c] of this.cells) {
      const d = c.n - (before[k] ?? 0);
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
