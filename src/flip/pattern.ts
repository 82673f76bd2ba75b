// Test images drawn by the demo, the benchmark and the kernel tests acting as the guest:
// an animated XRGB8888 pattern and an ARGB8888 arrow cursor (premultiplied, only fully opaque
// or fully transparent pixels, so composed pixels are exact). Pure functions.

const BARS = [0xffffff, 0xffff00, 0x00ffff, 0x00ff00, 0xff00ff, 0xff0000, 0x0000ff, 0x202020];

/** 0xRRGGBB of the pattern at (x, y) for frame t. */
export function patternPixel(x: number, y: number, w: number, h: number, t: number): number {
  // moving square (frame counter in its colour)
  const size = Math.max(8, Math.floor(Math.min(w, h) / 6));
  const sx = Math.floor(((t * 7) % Math.max(1, w - size)));
  const sy = Math.floor(h / 2 - size / 2);
  if (x >= sx && x < sx + size && y >= sy && y < sy + size) return 0x000000 | ((t * 37) & 0xff) << 8 | 0x80;
  // top 2/3: colour bars; bottom: a gradient with a frame-dependent phase
  if (y < (h * 2) / 3) return BARS[Math.floor((x * BARS.length) / w)]!;
  const v = (x + t * 4) & 0xff;
  return (v << 16) | ((255 - v) << 8) | ((y * 255) / h) & 0xff;
}

/** The whole pattern as XRGB8888 little endian with the given stride. */
export function drawPattern(w: number, h: number, t: number, stride = w * 4): Buffer {
  const b = Buffer.alloc(stride * h);
  if (stride % 4 !== 0) {
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) b.writeUInt32LE((0xff000000 | patternPixel(x, y, w, h, t)) >>> 0, y * stride + x * 4);
    return b;
  }
  const u32 = new Uint32Array(b.buffer, b.byteOffset, b.length / 4); // little endian hosts
  const sw = stride / 4;
  for (let y = 0; y < h; y++) {
    const row = y * sw;
    for (let x = 0; x < w; x++) u32[row + x] = (0xff000000 | patternPixel(x, y, w, h, t)) >>> 0;
  }
  return b;
}

// classic arrow outline (in 64x64 units)
const ARROW: ReadonlyArray<readonly [number, number]> = [[1, 1], [1, 44], [11, 34], [19, 52], [26, 49], [18, 32], [32, 32]];

function inArrow(x: number, y: number): boolean {
  let inside = false;
  for (let i = 0, j = ARROW.length - 1; i < ARROW.length; j = i++) {
    const [xi, yi] = ARROW[i]!;
    const [xj, yj] = ARROW[j]!;
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Arrow cursor: 0xAARRGGBB at (x, y) of a size x size image (alpha 0 = transparent). */
export function cursorPixel(x: number, y: number, size = 64): number {
  const s = 64 / size;
  const X = (x + 0.5) * s;
  const Y = (y + 0.5) * s;
  if (!inArrow(X, Y)) return 0x00000000;
  const edge = !inArrow(X - 2, Y) || !inArrow(X + 2, Y) || !inArrow(X, Y - 2) || !inArrow(X, Y + 2);
  return edge ? 0xff000000 : 0xffffffff;
}

/** The cursor as ARGB8888 little endian (premultiplied: transparent pixels are 0). */
export function drawCursor(size = 64, stride = size * 4): Buffer {
  const b = Buffer.alloc(stride * size);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) b.writeUInt32LE(cursorPixel(x, y, size) >>> 0, y * stride + x * 4);
  return b;
}

/** Solid XRGB8888 image (for exact pixel tests). */
export function solid(w: number, h: number, rgb: number, stride = w * 4): Buffer {
  const b = Buffer.alloc(stride * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) b.writeUInt32LE((0xff000000 | rgb) >>> 0, y * stride + x * 4);
  return b;
}
