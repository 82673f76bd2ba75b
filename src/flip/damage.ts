// Damage of a copied frame: which rows of the framebuffer changed, as the rectangles of the
// plane property FB_DAMAGE_CLIPS (struct drm_mode_rect: x1, y1 inclusive, x2, y2 exclusive,
// framebuffer coordinates, include/uapi/drm/drm_mode.h). Pure.
//
// What counts as changed (copy.ts computes it): the union of the rows that differ from the
// frame on screen (the uapi's definition: "changed since the last plane update") and the rows
// written into the buffer now being flipped to (drivers with one upload target per buffer,
// such as virtio-gpu on Linux 6.1, upload only the clips of that buffer). Either kind of driver
// gets at least what it needs.

export interface DamageRect {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

/** Rows marked one by one, kept as runs [start, end). */
export class RowDamage {
  private readonly runs: Array<[number, number]> = [];

  add(y: number): void {
    const last = this.runs[this.runs.length - 1];
    if (last && last[1] === y) last[1] = y + 1;
    else this.runs.push([y, y + 1]);
  }

  get empty(): boolean {
    return this.runs.length === 0;
  }

  /** Full-width rectangles, at most `maxRects`: the smallest gaps between runs are closed first. */
  rects(width: number, maxRects = 16): DamageRect[] {
    const runs = mergeRuns(this.runs, Math.max(1, maxRects));
    return runs.map(([y1, y2]) => ({ x1: 0, y1, x2: width, y2 }));
  }
}

/** Close the smallest gaps between sorted, disjoint runs until at most `max` remain. */
export function mergeRuns(runs: ReadonlyArray<readonly [number, number]>, max: number): Array<[number, number]> {
  if (runs.length <= max) return runs.map(([a, b]) => [a, b]);
  const gaps = runs.slice(1).map((r, i) => ({ i, size: r[0] - runs[i]![1] }));
  gaps.sort((a, b) => a.size - b.size || a.i - b.i);
  const close = new Set(gaps.slice(0, runs.length - max).map((g) => g.i));
  const out: Array<[number, number]> = [[runs[0]![0], runs[0]![1]]];
  for (let i = 1; i < runs.length; i++) {
    if (close.has(i - 1)) out[out.length - 1]![1] = runs[i]![1];
    else out.push([runs[i]![0], runs[i]![1]]);
  }
  return out;
}

/** The FB_DAMAGE_CLIPS blob: an array of struct drm_mode_rect (four __s32 each). */
export function packDamageClips(rects: readonly DamageRect[]): Buffer {
  const b = Buffer.alloc(rects.length * 16);
  rects.forEach((r, i) => {
    b.writeInt32LE(r.x1, i * 16);
    b.writeInt32LE(r.y1, i * 16 + 4);
    b.writeInt32LE(r.x2, i * 16 + 8);
    b.writeInt32LE(r.y2, i * 16 + 12);
  });
  return b;
}
