// The tail of a dma-buf that cannot be mapped. An exporter's size need not be page aligned
// (mbochs: stride * height), and dma_buf_mmap refuses a mapping that reaches past the last whole
// page, so the last (size % 4096) bytes, most of the frame's last row, are missing from a CPU
// copy. Drivers like mbochs export pages of the vGPU's video memory, which the VFIO device also
// offers as a mmap-able region (BAR0). This finds the dma-buf's pages in that region by content
// (the whole mapped part must match, at exactly one page-aligned offset) and reads the tail
// from there. Nothing is guessed: no unique match, no tail (and the caller says so).
import type { CopySource } from './copy.js';

const PAGE = 4096;
/** full comparisons at most per search (a uniform frame over uniform memory matches everywhere) */
const MAX_CANDIDATES = 32;

/** Where `prefix` (page aligned, at least one page) lies in `region`: its offset, or why not. */
export function locateInRegion(region: Buffer, prefix: Buffer): number | 'ambiguous' | 'absent' {
  if (prefix.length < PAGE) return 'absent';
  const first = prefix.subarray(0, PAGE);
  let found = -1;
  let tried = 0;
  for (let off = 0; off + prefix.length <= region.length; off += PAGE) {
    if (region.compare(first, 0, PAGE, off, off + PAGE) !== 0) continue;
    if (++tried > MAX_CANDIDATES) return 'ambiguous';
    if (region.compare(prefix, 0, prefix.length, off, off + prefix.length) !== 0) continue;
    if (found >= 0) return 'ambiguous';
    found = off;
  }
  return found >= 0 ? found : 'absent';
}

/**
 * A CPU source of the whole buffer: the mapped part from the dma-buf (with its sync brackets),
 * the tail from the region at `offset + view.length`. Closing it closes the view, not the region.
 */
export function withTail(view: CopySource & { readonly length: number }, region: CopySource, offset: number, total: number): CopySource {
  let staging: Buffer | null = null;
  return {
    kind: 'dmabuf',
    read<T>(fn: (pixels: Buffer) => T): T {
      staging ??= Buffer.alloc(total);
      const st = staging;
      view.read((px) => px.copy(st, 0, 0, Math.min(px.length, total)));
      region.read((r) => r.copy(st, view.length, offset + view.length, Math.min(r.length, offset + total)));
      return fn(st);
    },
    close(): void {
      view.close();
      staging = null;
    },
  };
}
