// DRM_FB layers: the vendor driver exposes each guest buffer as a framebuffer of this DRM device
// and moves the hardware plane itself when the guest flips (an in-kernel commit). The layer
// commits once (an assignment) and then only watches, read-only: does the hardware plane show
// the guest's framebuffer? The verdict rules are pure functions in src/flip/drmfb.ts.
import type { DrmFb2, GfxPlaneInfo, NativeAddon } from '../../binding/types.js';
import { DRM_MODE_OBJECT_PLANE } from '../../binding/constants.js';
import type { DrmDevice } from '../../kms/index.js';
import type { Rect } from '../../kms/types.js';
import type { QueryOutcome } from '../../flip/decide.js';
import { followsPlan, followVerdict, GuestFbHistory, racingStep, shapeKey, vendorFbMismatch, type HwPlaneState } from '../../flip/drmfb.js';
import type { BufferDesc } from '../../flip/fb-cache.js';
import type { LayerSource, Pixels, Presentable } from './types.js';

export interface DrmFbHost {
  /** a vendor framebuffer that does not match its description (reported once per id) */
  problem(stage: string, error: unknown): void;
}

/** What a look at a hardware plane found. */
export interface FollowResult {
  /** null: following (or still racing a flipping guest); else why it is not */
  why: string | null;
  /** the guest's newer buffer that the plane shows (a second query caught up) */
  caughtUp?: GfxPlaneInfo;
}

export class DrmFbSource implements LayerSource {
  readonly path = 'drm_fb' as const;
  readonly copying = null;
  /** framebuffer ids the vendor reported for this plane recently (with shapes) */
  readonly history = new GuestFbHistory();
  /** looks in a row that found the hardware plane on another recent guest fb */
  racingLooks = 0;
  private readonly badFbs = new Set<number>();

  constructor(
    private readonly api: NativeAddon,
    private readonly dev: DrmDevice,
    private readonly label: string,
    private readonly host: DrmFbHost,
  ) {}

  /** the id is already a framebuffer of this device (owned by the vendor driver): check it is what the guest says */
  obtain(id: number, desc: BufferDesc): Presentable | null {
    const bad = vendorFbMismatch(this.fb2(id), id, desc);
    if (bad) {
      if (this.badFbs.has(id)) return null; // reported once
      this.badFbs.add(id);
      this.host.problem(`DRM_FB framebuffer ${id} from the vendor driver`, new Error(`${this.label}: ${bad}; not putting it on a plane`));
      return null;
    }
    return { fbId: id, imported: false, bytes: 0 };
  }

  committing(): void {}
  commitFailed(): void {}
  presented(): void {}
  flipCompleted(): void {}
  assigned(): void {
    this.racingLooks = 0;
  }
  refuse(): boolean {
    return false;
  }
  liveFbs(): number[] {
    return [];
  }
  pixelsOf(fbId: number): Pixels {
    return { unreadable: `framebuffer ${fbId} belongs to the vendor driver (DRM_FB) and cannot be mapped here; --screenshot-method writeback reads it through the device` };
  }
  release(): unknown[] {
    return [];
  }

  /**
   * GETPLANE: does hardware plane `planeId` show the guest's framebuffer `id`? A plane on
   * another framebuffer of the guest's shape while the guest is still flipping is 'racing':
   * look again later. `requery` asks the guest once more (a guest flipping faster than we
   * look is often one buffer ahead of our query by the time the plane is read back, and a
   * watch sampling a cycle of buffers at a multiple of its length sees the same id: "idle");
   * `guestFlipped` is the guest's own counter's verdict (null: no counter).
   */
  following(planeId: number, id: number, last: GfxPlaneInfo, guestIdle: boolean, requery: () => QueryOutcome, guestFlipped: boolean | null): FollowResult {
    const hw = this.hwPlane(planeId, false);
    if ('error' in hw) return { why: hw.error };
    let v = followVerdict(hw.fbId, id, shapeKey(last), (fb) => this.shapeOf(fb));
    let caughtUp: GfxPlaneInfo | undefined;
    if (v === 'racing') {
      const q = requery();
      if (q.status === 'ok' && shapeKey(q.info) === shapeKey(last)) {
        this.history.note(q.info);
        if (q.info.id === hw.fbId) {
          caughtUp = q.info;
          v = 'exact';
        } else if (q.info.id !== id) {
          guestIdle = false; // still flipping
        }
      }
    }
    if (guestFlipped !== null) guestIdle = guestIdle && !guestFlipped;
    const step = racingStep(v, guestIdle, this.racingLooks);
    this.racingLooks = step.racingLooks;
    const out: FollowResult = { why: null };
    if (caughtUp) out.caughtUp = caughtUp;
    if (!step.fail) return out;
    if (v === 'racing') out.why = `the hardware plane keeps showing framebuffer ${hw.fbId}, not the guest's ${id} (the in-kernel flip failed?)`;
    else out.why = hw.fbId === 0 ? 'the hardware plane was turned off' : `the hardware plane shows framebuffer ${hw.fbId} (another shape), not the guest's ${id} (the in-kernel flip failed?)`;
    return out;
  }

  /**
   * After a guest mode change: did the vendor driver move the hardware plane to the new
   * framebuffer with the geometry the plan wants (`want`)? null: yes; else why not.
   */
  followedModeChange(planeId: number, id: number, info: GfxPlaneInfo, crtcId: number, want: { src: Rect; dst: Rect }): string | null {
    const hw = this.hwPlane(planeId, true);
    if ('error' in hw) return hw.error;
    // the guest may have flipped again (same new shape) since the query
    const racing = followVerdict(hw.fbId, id, shapeKey(info), (fb) => this.shapeOf(fb)) === 'racing';
    this.racingLooks = racing ? Math.max(this.racingLooks, 1) : 0;
    return followsPlan(hw, racing ? hw.fbId : id, crtcId, want);
  }

  /** Is the hardware plane still on a framebuffer (guest reset with keep_last_frame)? */
  stillShowing(planeId: number): boolean {
    const hw = this.hwPlane(planeId, false);
    return !('error' in hw) && hw.fbId !== 0;
  }

  /** A framebuffer's shape key: from the guest's recent buffers, else GETFB2. undefined: unknown / gone. */
  private shapeOf(fbId: number): string | undefined {
    const known = this.history.shapeOf(fbId);
    if (known !== undefined) return known;
    const fb = this.fb2(fbId);
    if (fb instanceof Error) return undefined;
    return shapeKey({ width: fb.width, height: fb.height, drmFormat: fb.format, drmFormatMod: fb.modifier ?? 0n, stride: fb.pitches[0] ?? 0 });
  }

  private fb2(fbId: number): DrmFb2 | Error {
    try {
      return this.api.drmGetFb2(this.dev.fd, fbId);
    } catch (e) {
      return e as Error;
    }
  }

  /** The hardware plane as the kernel has it now: GETPLANE (fb, crtc) or, with geometry, its properties. */
  private hwPlane(planeId: number, geometry: boolean): HwPlaneState | { error: string } {
    try {
      if (!geometry) {
        const pl = this.api.drmGetPlane(this.dev.fd, planeId);
        const zero = { x: 0, y: 0, w: 0, h: 0 };
        return { fbId: pl.fbId, crtcId: pl.crtcId, src: zero, dst: zero };
      }
      const props = this.api.drmGetProperties(this.dev.fd, planeId, DRM_MODE_OBJECT_PLANE);
      const v = (name: string): number => {
        const pr = props.find((x) => x.name === name);
        return pr ? Number(BigInt.asIntN(64, pr.value)) : 0;
      };
      return {
        fbId: v('FB_ID'),
        crtcId: v('CRTC_ID'),
        src: { x: v('SRC_X') / 65536, y: v('SRC_Y') / 65536, w: v('SRC_W') / 65536, h: v('SRC_H') / 65536 },
        dst: { x: v('CRTC_X'), y: v('CRTC_Y'), w: v('CRTC_W'), h: v('CRTC_H') },
      };
    } catch (e) {
      return { error: `cannot read hardware plane ${planeId} back (${(e as Error).message})` };
    }
  }
}
