// Counters of the presentation core, per layer and per output (what `status` and the bench show).

export interface PlaneStats {
  flips: number;
  moves: number;
  /** VFIO_DEVICE_GET_GFX_DMABUF calls (one per dmabuf_id held) */
  exports: number;
  imports: number;
  cacheHits: number;
  copies: number;
  bytesCopied: number;
  notReadyFrames: number;
  errors: number;
  /** DRM_FB: guest buffer changes the kernel followed on its own (seen by the watch, no commit) */
  kernelFlips: number;
  /** REGION: flips that told the driver which rows changed (FB_DAMAGE_CLIPS) */
  damageClips: number;
}

export function newPlaneStats(): PlaneStats {
  return { flips: 0, moves: 0, exports: 0, imports: 0, cacheHits: 0, copies: 0, bytesCopied: 0, notReadyFrames: 0, errors: 0, kernelFlips: 0, damageClips: 0 };
}

export interface EngineStats {
  ticks: number;
  /** every user-space atomic commit (not TEST_ONLY) that the kernel accepted */
  commits: number;
  /** of those, the ones that (re)assigned planes (plan + TEST_ONLY + commit) */
  assignCommits: number;
  /** DRM_FB: buffer changes followed by the kernel, seen by the watch (sum over layers) */
  kernelFlips: number;
  /** DRM_FB: the guests' flips since their first assignment (their own counters), null if unknown */
  guestFlips: number | null;
  frames: number;
  errors: number;
  /** per layer (a single guest's layers are named by their kind: primary, cursor, overlay) */
  planes: Record<string, PlaneStats>;
}

export function newEngineStats(): EngineStats {
  return { ticks: 0, commits: 0, assignCommits: 0, kernelFlips: 0, guestFlips: null, frames: 0, errors: 0, planes: {} };
}

/** The guests' own flip counters added up (DRM_FB statistics); null unless every guest has one. */
export function sumGuestFlips(guests: readonly { hasFlipCounter: boolean; flips: number | null }[]): number | null {
  // every frame: no arrays made
  let sum = 0;
  let counters = 0;
  for (const g of guests) {
    if (!g.hasFlipCounter) continue;
    if (g.flips === null) return null;
    sum += g.flips;
    counters++;
  }
  return counters ? sum : null;
}
