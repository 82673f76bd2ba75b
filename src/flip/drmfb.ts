// DRM_FB path helpers: where a guest plane's host framebuffer id comes from when the tool has
// no VFIO fd (an "fb id resolver"), and the pure bits of the DRM_FB watch loop (geometry
// check, status line). See native/include/vfio_gfx_drm_fb.h for the kernel side.
//
// With DRM_FB the vendor driver owns a framebuffer object of the host DRM device per guest
// buffer and flips the hardware plane itself (in-kernel atomic commit) whenever the guest
// flips. vgpu-flip resolves the id, plans + TEST_ONLY-checks + commits once, then only
// watches. The id comes from VFIO_DEVICE_QUERY_GFX_PLANE (DRM_FB) on the VFIO fd, or, when a
// VMM owns the VFIO group, from a debug attribute of the vendor driver (`--via debugfs`).
import { closeSync, existsSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { DrmFb2, GfxPlaneInfo } from '../binding/types.js';
import { DRM_PLANE_TYPE_CURSOR, DRM_PLANE_TYPE_OVERLAY, DRM_PLANE_TYPE_PRIMARY, fourcc as fourccCode, fourccToString } from '../binding/constants.js';
import type { Rect } from '../kms/types.js';
import type { CopySource } from './copy.js';
import type { EnginePath, GuestSource } from '../present/guest.js';
import type { GuestPlaneKind } from './planner.js';

/**
 * A way to resolve a vGPU plane's host framebuffer id without the VFIO fd. One implementation
 * per vendor driver attribute: vgpu-sim's debugfs `fb_id` here; Intel GVT-g's proposed
 * attribute would be another (add it to FB_ID_RESOLVERS).
 */
export interface FbIdResolver {
  /** short name, e.g. 'vgpu-sim debugfs' */
  readonly name: string;
  /** where it reads from (for messages), e.g. the attribute's path */
  readonly source: string;
  /** the host framebuffer id of the guest plane's current buffer, 0 when it has none */
  fbId(plane: GuestPlaneKind): number;
  /**
   * What a VFIO DRM_FB query would answer for the plane (format, size, stride, position,
   * hotspot) with id = the framebuffer id; size 0 when the plane is off / not showable.
   * Throws an Error with `code` 'ENOENT' once the instance is gone.
   */
  planeInfo(plane: GuestPlaneKind): GfxPlaneInfo;
  /** whether the vendor driver is bound to a host DRM device (DRM_FB usable at all) */
  supported(): boolean;
  /** null while the vGPU exists; otherwise why it is gone */
  gone(): string | null;
}

/** A vendor driver's resolver factory: returns null when the vGPU is not one of its instances. */
export interface FbIdResolverFactory {
  readonly name: string;
  open(uuid: string, roots?: ResolverRoots): FbIdResolver | null;
}

export interface ResolverRoots {
  /** default /sys/kernel/debug */
  debugfs?: string;
}

const PLANE_DRM_TYPE: Record<GuestPlaneKind, number> = {
  primary: DRM_PLANE_TYPE_PRIMARY,
  cursor: DRM_PLANE_TYPE_CURSOR,
  overlay: DRM_PLANE_TYPE_OVERLAY,
};

function errCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : undefined;
}

function withCode(message: string, code: string | undefined, cause: unknown): Error {
  const e = new Error(message, { cause });
  if (code) (e as Error & { code: string }).code = code;
  return e;
}

/** Parse the first line of vgpu-sim's `<plane>/status` into a DRM_FB plane info (id filled by the caller). */
export function parseSimStatusInfo(text: string, plane: GuestPlaneKind): GfxPlaneInfo {
  const m = new Map<string, string>();
  for (const tok of (text.split('\n')[0] ?? '').trim().split(/\s+/)) {
    const i = tok.indexOf('=');
    if (i > 0) m.set(tok.slice(0, i), tok.slice(i + 1));
  }
  const n = (k: string): number => {
    const v = m.get(k);
    if (v === undefined || !/^-?(0x[0-9a-f]+|\d+)$/i.test(v)) throw new Error(`vgpu-sim status: field ${k} missing or not a number in ${JSON.stringify(text.split('\n')[0])}`);
    return Number(v);
  };
  const ready = m.get('ready') === '1';
  const size = ready ? n('size') : 0;
  const fcc = m.get('fourcc') ?? '';
  const noHot = 0xffffffff;
  return {
    flags: 0,
    drmPlaneType: PLANE_DRM_TYPE[plane],
    drmFormat: size && fcc.length === 4 && !fcc.includes('?') ? fourccCode(fcc) : 0,
    drmFormatMod: size ? BigInt(m.get('modifier') ?? '0') : 0n,
    width: size ? n('width') : 0,
    height: size ? n('height') : 0,
    stride: size ? n('stride') : 0,
    size,
    xPos: size ? n('x') | 0 : 0,
    yPos: size ? n('y') | 0 : 0,
    xHot: size ? (plane === 'cursor' ? n('xhot') >>> 0 : noHot) : 0,
    yHot: size ? (plane === 'cursor' ? n('yhot') >>> 0 : noHot) : 0,
    id: 0,
  };
}

/**
 * vgpu-sim's debugfs attributes: `/sys/kernel/debug/vgpu_sim/<uuid>/<plane>/fb_id` (and the
 * instance attribute `fb_id`: write a plane name, read its framebuffer id) and
 * `<plane>/status` for the plane's shape. A read of fb_id creates the framebuffer on demand.
 */
export class SimDebugfsResolver implements FbIdResolver {
  readonly name = 'vgpu-sim debugfs';
  readonly dir: string;

  constructor(
    readonly uuid: string,
    roots: ResolverRoots = {},
  ) {
    this.dir = path.join(roots.debugfs ?? '/sys/kernel/debug', 'vgpu_sim', uuid);
  }

  get source(): string {
    return path.join(this.dir, '<plane>', 'fb_id');
  }

  private read(rel: string): string {
    const f = path.join(this.dir, rel);
    try {
      return readFileSync(f, 'utf8');
    } catch (e) {
      const code = errCode(e);
      throw withCode(`vgpu-sim debugfs: reading ${f} failed: ${code ?? String(e)}${code === 'ENOENT' ? ' (instance removed? debugfs not mounted?)' : code === 'EACCES' || code === 'EPERM' ? ' (debugfs needs root)' : ''}`, code, e);
    }
  }

  /**
   * The plane's own attribute `<plane>/fb_id`. (The instance attribute `fb_id` gives the same
   * id after writing the plane name, but the selected plane is shared by every reader of that
   * file: another tool resolving a different plane in between would hand us its id.)
   */
  fbId(plane: GuestPlaneKind): number {
    const t = this.read(`${plane}/fb_id`).trim();
    if (!/^\d+$/.test(t)) throw new Error(`vgpu-sim debugfs: ${path.join(this.dir, plane, 'fb_id')} gave ${JSON.stringify(t)}, expected a number`);
    return Number(t);
  }

  /** The instance attribute as the proposal describes it: write the plane name, read the id. */
  fbIdByName(plane: GuestPlaneKind): number {
    const f = path.join(this.dir, 'fb_id');
    let fd = -1;
    try {
      fd = openSync(f, 'r+');
      writeSync(fd, plane);
      const buf = Buffer.alloc(32);
      const n = readSync(fd, buf, 0, buf.length, 0);
      const t = buf.subarray(0, n).toString('utf8').trim();
      if (!/^\d+$/.test(t)) throw new Error(`vgpu-sim debugfs: ${f} gave ${JSON.stringify(t)}, expected a number`);
      return Number(t);
    } catch (e) {
      const code = errCode(e);
      if (!code) throw e;
      throw withCode(`vgpu-sim debugfs: resolving the ${plane} plane's framebuffer id through ${f} failed: ${code}${code === 'ENOENT' ? ' (instance removed? debugfs not mounted?)' : ''}`, code, e);
    } finally {
      if (fd >= 0) closeSync(fd);
    }
  }

  planeInfo(plane: GuestPlaneKind): GfxPlaneInfo {
    // fb id, shape, fb id again: a guest flip or mode change in between would pair a shape
    // with another buffer's id; retry until both reads agree
    for (let i = 0; ; i++) {
      const before = this.fbId(plane);
      const info = parseSimStatusInfo(this.read(`${plane}/status`), plane);
      const after = this.fbId(plane);
      if (before === after || i >= 4) {
        if (after === 0 || info.size === 0) return { ...info, size: 0, width: 0, height: 0, drmFormat: 0, id: 0 };
        return { ...info, id: after };
      }
    }
  }

  supported(): boolean {
    return /(^|\s)drm_fb=1(\s|$)/.test(this.read('info'));
  }

  gone(): string | null {
    return existsSync(this.dir) ? null : `vgpu-sim instance ${this.uuid} is gone (${this.dir} no longer exists)`;
  }
}

/** Known attribute flavours, tried in order. Intel GVT-g's proposed attribute would go here. */
export const FB_ID_RESOLVERS: readonly FbIdResolverFactory[] = [
  {
    name: 'vgpu-sim debugfs',
    open(uuid, roots) {
      const r = new SimDebugfsResolver(uuid, roots);
      return existsSync(r.dir) ? r : null;
    },
  },
];

/** The resolver for a vGPU, or an Error that says what is missing and what to do. */
export function openFbIdResolver(uuid: string, roots: ResolverRoots = {}, factories: readonly FbIdResolverFactory[] = FB_ID_RESOLVERS): FbIdResolver {
  for (const f of factories) {
    const r = f.open(uuid, roots);
    if (r) return r;
  }
  const dbg = roots.debugfs ?? '/sys/kernel/debug';
  const mounted = existsSync(path.join(dbg, 'dri')) || existsSync(path.join(dbg, 'vgpu_sim'));
  throw new Error(
    `--via debugfs: no framebuffer id attribute for vGPU ${uuid} (known: ${factories.map((f) => f.name).join(', ')}); ` +
      (mounted
        ? `${dbg} has none for this instance: is it a vgpu-sim instance (the only driver with such an attribute so far)?`
        : `is debugfs mounted (mount -t debugfs none ${dbg}) and are you root?`),
  );
}

/**
 * A GuestSource for the DRM_FB path through a resolver: queries answer from the attribute,
 * there is no dma-buf or region access (the VMM holds the VFIO fd).
 */
export class ResolverGuestSource implements GuestSource {
  constructor(readonly resolver: FbIdResolver) {}
  get label(): string {
    return `${this.resolver.name} (${this.resolver.source})`;
  }
  query(kind: GuestPlaneKind, p: EnginePath): GfxPlaneInfo {
    if (p !== 'drm_fb') throw new Error(`${this.label}: only the DRM_FB path works without the VFIO fd (asked for ${p})`);
    return this.resolver.planeInfo(kind);
  }
  getDmabuf(): number {
    throw new Error(`${this.label}: no dma-buf without the VFIO fd (use the VFIO device: drop --via debugfs, or --pid <VMM pid>)`);
  }
  openRegion(): CopySource {
    throw new Error(`${this.label}: no REGION access without the VFIO fd (use the VFIO device: drop --via debugfs, or --pid <VMM pid>)`);
  }
  gone(): string | null {
    return this.resolver.gone();
  }
}

// ---- pure helpers of the watch loop ------------------------------------------------------------

/** The state of one hardware plane as read back (properties, integer pixels). */
export interface HwPlaneState {
  fbId: number;
  crtcId: number;
  src: Rect;
  dst: Rect;
}

/**
 * After the vendor driver followed a guest mode change on its own: does the hardware plane now
 * show the new framebuffer whole, where the plan wants it? (Else: plan again.)
 */
export function followsPlan(hw: HwPlaneState, fbId: number, crtcId: number, want: { src: Rect; dst: Rect }): string | null {
  if (hw.fbId !== fbId) return hw.fbId === 0 ? 'the hardware plane was turned off' : `the hardware plane still shows framebuffer ${hw.fbId}, not ${fbId} (the in-kernel flip failed?)`;
  if (hw.crtcId !== crtcId) return `the hardware plane is on CRTC ${hw.crtcId}, not ${crtcId}`;
  const same = (a: Rect, b: Rect): boolean => a.x === b.x && a.y === b.y && a.w === b.w && a.h === b.h;
  const r = (a: Rect): string => `${a.w}x${a.h}+${a.x}+${a.y}`;
  if (!same(hw.src, want.src)) return `source ${r(hw.src)} instead of ${r(want.src)}`;
  if (!same(hw.dst, want.dst)) return `destination ${r(hw.dst)} instead of ${r(want.dst)}`;
  return null;
}

/**
 * A framebuffer id from the vendor driver goes on a plane only if GETFB2 says it is what the
 * driver described (size, format, pitch): null when it is, else what is wrong.
 */
export function vendorFbMismatch(fb: DrmFb2 | Error, id: number, want: { width: number; height: number; format: number; stride: number }): string | null {
  if (fb instanceof Error) return `framebuffer ${id} cannot be looked up on the host DRM device (GETFB2: ${fb.message.split(' [')[0]}): the vendor driver named a framebuffer that does not exist there (bound to another card?)`;
  const got = `${fb.width}x${fb.height} ${fourccToString(fb.format)} pitch ${fb.pitches[0] ?? 0}`;
  const exp = `${want.width}x${want.height} ${fourccToString(want.format)} pitch ${want.stride}`;
  if (fb.width !== want.width || fb.height !== want.height || fb.format >>> 0 !== want.format >>> 0 || (fb.pitches[0] ?? 0) !== want.stride) {
    return `framebuffer ${id} is ${got} but the vendor driver described the guest plane as ${exp}`;
  }
  return null;
}

/** Counters of the DRM_FB path (engine stats + the guest's own flip counter when known). */
export interface DrmFbCounters {
  /** guest flips since the assignment (vgpu-sim flip_count delta), null if unknown */
  guestFlips: number | null;
  /** buffer changes the engine saw the kernel follow without a commit */
  kernelFlipsSeen: number;
  /** user-space atomic commits since start, and how many were (re)assignments */
  commits: number;
  assignCommits: number;
  errors: number;
}

/** User-space commits per guest flip, excluding (re)assignments: 0 on a working DRM_FB path. */
export function commitsPerGuestFlip(c: DrmFbCounters): number | null {
  const flips = c.guestFlips ?? c.kernelFlipsSeen;
  if (!flips) return null;
  return (c.commits - c.assignCommits) / flips;
}

export function drmFbStatusLine(c: DrmFbCounters): string {
  const per = commitsPerGuestFlip(c);
  return (
    `drm_fb (kernel flips) | guest flips ${c.guestFlips ?? '?'} | kernel flips seen ${c.kernelFlipsSeen} | ` +
    `user commits ${c.commits} (assignments ${c.assignCommits}, per guest flip ${per === null ? '-' : per.toFixed(2)}) | errors ${c.errors}`
  );
}

/** What identifies a buffer's shape (a framebuffer of another shape is not "the same plane, flipped"). */
export function shapeKey(i: { width: number; height: number; drmFormat: number; drmFormatMod: bigint; stride: number }): string {
  return `${i.width}x${i.height}:${i.drmFormat >>> 0}:${i.drmFormatMod}:${i.stride}`;
}

/**
 * The framebuffer ids the vendor driver reported for one guest plane recently, with their
 * shapes: a hardware plane showing one of them (same shape) while the guest already reports
 * another is the kernel following a guest that flipped again between two looks, not a failure.
 */
export class GuestFbHistory {
  private readonly ids = new Map<number, string>();
  constructor(readonly capacity = 32) {}
  note(info: { id: number; width: number; height: number; drmFormat: number; drmFormatMod: bigint; stride: number }): void {
    if (!info.id) return;
    this.ids.delete(info.id);
    this.ids.set(info.id, shapeKey(info));
    while (this.ids.size > this.capacity) this.ids.delete(this.ids.keys().next().value!);
  }
  shapeOf(id: number): string | undefined {
    return this.ids.get(id);
  }
  clear(): void {
    this.ids.clear();
  }
}

/**
 * Is the hardware plane following the guest? 'exact': it shows the guest's current framebuffer;
 * 'racing': another framebuffer of the guest plane's shape (a recent buffer of the guest, or one
 * it went through between two looks, or the in-kernel commit for the current one is still in
 * flight): look again; 'no': off, or a framebuffer of another shape (the kernel could not follow).
 * `shapeOf` gives a framebuffer's shape key (the history, else GETFB2), undefined if unknown.
 */
export function followVerdict(hwFbId: number, guestId: number, guestShape: string, shapeOf: (fbId: number) => string | undefined): 'exact' | 'racing' | 'no' {
  if (hwFbId !== 0 && hwFbId === guestId) return 'exact';
  if (hwFbId !== 0 && shapeOf(hwFbId) === guestShape) return 'racing';
  return 'no';
}

/** Looks in a row, with the guest idle, that found the plane on another fb of the guest's shape before re-planning. */
export const MAX_RACING_LOOKS = 3;

/**
 * The watch's bookkeeping of 'racing' looks. While the guest keeps flipping (its id changed
 * since the last look) a racing look only asks for another look; once the guest is idle the
 * hardware plane must catch up within MAX_RACING_LOOKS looks, else the in-kernel flip failed
 * and the engine re-plans (`fail`).
 */
export function racingStep(verdict: 'exact' | 'racing' | 'no', guestIdle: boolean, racingLooks: number): { racingLooks: number; fail: boolean } {
  if (verdict === 'exact') return { racingLooks: 0, fail: false };
  if (verdict === 'no') return { racingLooks: 0, fail: true };
  if (!guestIdle) return { racingLooks: Math.max(racingLooks, 1), fail: false };
  const n = racingLooks + 1;
  return { racingLooks: n, fail: n >= MAX_RACING_LOOKS };
}
