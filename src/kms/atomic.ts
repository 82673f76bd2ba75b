// wlroots-style atomic request builder: set(objectId, "PROP_NAME", value) resolves the property
// id through a snapshot's property maps, so callers never handle property ids themselves.
import { native } from '../binding/index.js';
import type { NativeAddon, OutFence } from '../binding/types.js';
import {
  DRM_MODE_ATOMIC_ALLOW_MODESET,
  DRM_MODE_ATOMIC_NONBLOCK,
  DRM_MODE_ATOMIC_TEST_ONLY,
  DRM_MODE_PAGE_FLIP_EVENT,
} from '../binding/constants.js';
import { isKernelError } from '../binding/errors.js';
import type { AtomicTestResult, KmsSnapshot, PropertyMap } from './types.js';

export type AtomicValue = bigint | number | OutFence;

/** The marker value for *_OUT_FENCE_PTR properties (the addon passes a pointer it owns). */
export const OUT_FENCE: OutFence = Object.freeze({ outFence: true as const });

export type KmsObjectKind = 'crtc' | 'connector' | 'plane';

interface IndexedObject {
  kind: KmsObjectKind;
  label: string;
  props: PropertyMap;
}

/** objectId -> its kind and properties, from a snapshot. Property ids never change while a device is open. */
export class PropertyIndex {
  private readonly objects = new Map<number, IndexedObject>();

  constructor(readonly snapshot: KmsSnapshot) {
    for (const c of snapshot.crtcs) this.objects.set(c.id, { kind: 'crtc', label: `CRTC ${c.id}`, props: c.properties });
    for (const c of snapshot.connectors)
      this.objects.set(c.id, { kind: 'connector', label: `connector ${c.id} (${c.name})`, props: c.properties });
    for (const p of snapshot.planes)
      this.objects.set(p.id, { kind: 'plane', label: `plane ${p.id} (${p.type})`, props: p.properties });
  }

  describe(objectId: number): string {
    return this.objects.get(objectId)?.label ?? `object ${objectId}`;
  }

  kindOf(objectId: number): KmsObjectKind | undefined {
    return this.objects.get(objectId)?.kind;
  }

  has(objectId: number, propName: string): boolean {
    return this.objects.get(objectId)?.props[propName] !== undefined;
  }

  /** The property id, or a clear error naming the object and the properties it does have. */
  resolve(objectId: number, propName: string): number {
    const obj = this.objects.get(objectId);
    if (!obj) {
      throw new Error(
        `atomic request on ${this.snapshot.path}: object ${objectId} is not a CRTC, connector or plane of this device ` +
          `(CRTCs ${this.snapshot.crtcs.map((c) => c.id).join(',')}; planes ${this.snapshot.planes.map((p) => p.id).join(',')}; ` +
          `connectors ${this.snapshot.connectors.map((c) => c.id).join(',')})`,
      );
    }
    const p = obj.props[propName];
    if (!p) {
      throw new Error(
        `atomic request on ${this.snapshot.path}: ${obj.label} has no property "${propName}" ` +
          `(it has: ${Object.keys(obj.props).sort().join(', ')})`,
      );
    }
    if (p.immutable) {
      throw new Error(`atomic request on ${this.snapshot.path}: property "${propName}" of ${obj.label} is immutable`);
    }
    return p.id;
  }
}

/** Flags in a readable form, for error messages. */
export function atomicFlagsToString(flags: number): string {
  const names: string[] = [];
  if (flags & DRM_MODE_PAGE_FLIP_EVENT) names.push('PAGE_FLIP_EVENT');
  if (flags & DRM_MODE_ATOMIC_TEST_ONLY) names.push('TEST_ONLY');
  if (flags & DRM_MODE_ATOMIC_NONBLOCK) names.push('NONBLOCK');
  if (flags & DRM_MODE_ATOMIC_ALLOW_MODESET) names.push('ALLOW_MODESET');
  const rest = flags & ~(DRM_MODE_PAGE_FLIP_EVENT | DRM_MODE_ATOMIC_TEST_ONLY | DRM_MODE_ATOMIC_NONBLOCK | DRM_MODE_ATOMIC_ALLOW_MODESET);
  if (rest) names.push(`0x${rest.toString(16)}`);
  return names.length ? names.join('|') : '0';
}

export type AtomicCommitApi = Pick<NativeAddon, 'drmAtomicCommit'>;

/**
 * One atomic request. Setting the same property twice keeps the last value. The request is plain
 * data: it can be committed more than once (e.g. TEST_ONLY, then the real commit).
 */
export class AtomicRequest {
  /** [objectId, propId, value] in insertion order (what the addon commits) */
  private triples: Array<[number, number, AtomicValue]> = [];
  /** the triples were handed to the api: copied before the next change (a caller may keep them) */
  private shared = false;
  /** the property name of each triple, for describe() (labels are built only when asked) */
  private readonly names: string[] = [];

  constructor(
    private readonly fd: number,
    readonly index: PropertyIndex,
    private readonly api: AtomicCommitApi = native,
  ) {}

  /** Set objectId's property `propName` (resolved by name; throws for unknown or immutable ones). */
  set(objectId: number, propName: string, value: AtomicValue): this {
    const propId = this.index.resolve(objectId, propName);
    if (typeof value === 'number' && !Number.isSafeInteger(value)) {
      throw new RangeError(
        `atomic request: ${this.index.describe(objectId)} ${propName} = ${value} is not an integer (use bigint for 64-bit values)`,
      );
    }
    if (this.shared) {
      this.triples = this.props();
      this.shared = false;
    }
    // requests are small (a frame sets a few properties): a scan beats building a key string
    const t = this.triples;
    for (let i = 0; i < t.length; i++) {
      const e = t[i]!;
      if (e[0] === objectId && e[1] === propId) {
        e[2] = value;
        return this;
      }
    }
    t.push([objectId, propId, value]);
    this.names.push(propName);
    return this;
  }

  /** set() only when the object has the property (optional properties such as zpos, alpha). */
  setIfPresent(objectId: number, propName: string, value: AtomicValue): boolean {
    if (!this.index.has(objectId, propName)) return false;
    this.set(objectId, propName, value);
    return true;
  }

  /**
   * Show framebuffer fbId on plane planeId of CRTC crtcId: the source rectangle src (whole
   * pixels, origin 0,0 unless given) scaled to the destination rectangle dst on the CRTC.
   */
  placePlane(
    planeId: number,
    crtcId: number,
    fbId: number,
    src: { x?: number; y?: number; w: number; h: number },
    dst: { x: number; y: number; w: number; h: number },
  ): this {
    return this.set(planeId, 'FB_ID', fbId)
      .set(planeId, 'CRTC_ID', crtcId)
      .set(planeId, 'SRC_X', (src.x ?? 0) * 65536)
      .set(planeId, 'SRC_Y', (src.y ?? 0) * 65536)
      .set(planeId, 'SRC_W', src.w * 65536)
      .set(planeId, 'SRC_H', src.h * 65536)
      .set(planeId, 'CRTC_X', dst.x)
      .set(planeId, 'CRTC_Y', dst.y)
      .set(planeId, 'CRTC_W', dst.w)
      .set(planeId, 'CRTC_H', dst.h);
  }

  get size(): number {
    return this.triples.length;
  }

  /** The request as [objectId, propId, value] triples, in insertion order (a copy). */
  props(): Array<[number, number, AtomicValue]> {
    return this.triples.map((e) => [e[0], e[1], e[2]]);
  }

  /** "plane 31 (primary).FB_ID=45, ..." for logs and error messages. */
  describe(): string {
    return this.triples
      .map(([o, , v], i) => `${this.index.describe(o)}.${this.names[i]}=${typeof v === 'object' ? 'OUT_FENCE' : String(v)}`)
      .join(', ');
  }

  /**
   * Commit. Returns the fence fds for OUT_FENCE values (caller closes them; -1 when none).
   * Errors carry the kernel's errno (EINVAL for a rejected configuration, EBUSY when a
   * previous non-blocking commit is still pending, EACCES when not DRM master, ...).
   */
  commit(flags = 0, userData?: bigint): number[] {
    this.shared = true;
    try {
      return this.api.drmAtomicCommit(this.fd, this.triples, flags, userData);
    } catch (e) {
      if (e instanceof Error) {
        e.message += ` [atomic commit ${atomicFlagsToString(flags)} on ${this.index.snapshot.path}: ${this.describe() || 'empty request'}]`;
      }
      throw e;
    }
  }

  /** TEST_ONLY commit: the kernel's verdict, without throwing for a rejected configuration. */
  testOnly(flags = 0): AtomicTestResult {
    this.shared = true;
    try {
      const fences = this.api.drmAtomicCommit(this.fd, this.triples, (flags | DRM_MODE_ATOMIC_TEST_ONLY) & ~DRM_MODE_PAGE_FLIP_EVENT & ~DRM_MODE_ATOMIC_NONBLOCK);
      for (const f of fences) if (f >= 0) native.close(f);
      return { ok: true };
    } catch (e) {
      if (!isKernelError(e)) throw e;
      return { ok: false, code: e.code, errno: e.errno, message: e.message };
    }
  }
}
