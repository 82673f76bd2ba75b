// Finding an unmappable dma-buf tail in the vGPU's video memory: only a unique, exact match counts.
import { describe, expect, it } from 'vitest';
import { locateInRegion, withTail } from '../../src/flip/dmabuf-tail.js';
import type { CopySource } from '../../src/flip/copy.js';

const PAGE = 4096;
function noise(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}
const src = (b: Buffer): CopySource & { length: number } => ({ kind: 'region', length: b.length, read: (fn) => fn(b), close: () => undefined });

describe('locateInRegion', () => {
  const vram = noise(64 * PAGE, 1);
  it('finds the unique page-aligned offset whose content equals the mapped part', () => {
    expect(locateInRegion(vram, vram.subarray(8 * PAGE, 20 * PAGE))).toBe(8 * PAGE);
  });
  it('absent when nothing matches; ambiguous for a uniform frame over uniform memory', () => {
    expect(locateInRegion(vram, noise(4 * PAGE, 2))).toBe('absent');
    expect(locateInRegion(Buffer.alloc(64 * PAGE), Buffer.alloc(4 * PAGE))).toBe('ambiguous');
    expect(locateInRegion(vram, Buffer.alloc(100))).toBe('absent'); // less than a page mapped
  });
  it('withTail: the mapped part from the dma-buf, the rest from the region', () => {
    const total = 3 * PAGE + 1000;
    const mapped = Buffer.from(vram.subarray(4 * PAGE, 7 * PAGE));
    const s = withTail(src(mapped), src(vram), 4 * PAGE, total);
    const got = s.read((px) => Buffer.from(px));
    expect(got.length).toBe(total);
    expect(got.equals(vram.subarray(4 * PAGE, 4 * PAGE + total))).toBe(true);
  });
});
