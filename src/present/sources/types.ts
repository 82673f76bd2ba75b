// What a layer's source does: turn the guest buffer the guest shows now into a framebuffer a
// hardware plane can scan out, and keep that framebuffer alive exactly as long as the hardware
// may read it. One implementation per display path: dmabuf.ts (zero copy, per buffer copy
// fallback), copy.ts (REGION), drm-fb.ts (the vendor's own framebuffers, flipped by the kernel).
import type { GfxPlaneInfo } from '../../binding/types.js';
import type { Obtained } from '../../flip/dmabuf-buffers.js';
import type { PresentPath } from '../../flip/events.js';
import type { BufferDesc } from '../../flip/fb-cache.js';
import type { DamageRect } from '../../flip/damage.js';

/** A framebuffer for one frame of a layer. */
export interface Presentable {
  fbId: number;
  /** a fresh import this frame */
  imported: boolean;
  /** bytes copied this frame */
  bytes: number;
  /** DMABUF: the guest buffer behind it */
  got?: Obtained;
  /** a copy (REGION, DMABUF fallback): the guest's pixels equal what is on screen: nothing to copy or commit */
  unchanged?: boolean;
  /** a copy: the rows that changed (FB_DAMAGE_CLIPS where the plane has it); absent: all */
  damage?: DamageRect[];
}

export type Pixels = { pixels: Buffer; stride: number; format: number } | { unreadable: string };

export interface LayerSource {
  /** the layer's display path ('copy' for REGION) */
  readonly path: PresentPath;
  /** null when this frame shows the guest buffer itself; else why it is copied */
  readonly copying: string | null;
  /** the framebuffer for guest buffer `id`, or null: skip this frame (the source reported why) */
  obtain(id: number, desc: BufferDesc, info: GfxPlaneInfo, frame: number): Presentable | null;
  /** a nonblocking commit with `fbId` on the plane is about to be made (0: the plane goes off) */
  committing(fbId: number): void;
  /** that commit failed: `fbId` (the previous one) is still what the plane shows */
  commitFailed(fbId: number): void;
  /** the commit was accepted: `p` is on its way to the screen */
  presented(p: Presentable | null, fbId: number): void;
  /** the page flip completed, `fbId` (0: none) is on screen now: what it replaced may go */
  flipCompleted(fbId: number): void;
  /** a blocking commit (an assignment) put `p` on screen */
  assigned(p: Presentable): void;
  /** TEST_ONLY passed but the commit failed for this never-shown buffer: copy it from now on. false: not such a buffer */
  refuse(p: Presentable, reason: string): boolean;
  /** the framebuffers this source holds */
  liveFbs(): number[];
  /** the pixels of a framebuffer of this source (screenshots) */
  pixelsOf(fbId: number): Pixels;
  /** release everything; the errors met on the way */
  release(): unknown[];
}
