// Where a guest plane's pixels lie in the vGPU's video memory region, for vendor drivers whose
// dma-buf the CPU cannot map. The kernel's sample driver mbochs exports its dma-bufs read-only
// and its dma-buf mmap requires VM_SHARED, which Linux drops for a mapping of a read-only file:
// every mmap of an mbochs dma-buf fails with EINVAL, so the copy fallback reads the same pages
// through the device's BAR0 region (mapped) instead. Each locator reads what the device itself
// says, per vendor driver; nothing is guessed, and the result must agree with the plane query.
import type { NativeAddon } from '../binding/types.js';

/** A plane's framebuffer inside a VFIO region. */
export interface VideoMemoryPlace {
  regionIndex: number;
  /** byte offset of the framebuffer in that region */
  offset: number;
}

export interface PlaneShape {
  width: number;
  height: number;
  stride: number;
  format: number;
}

export interface VideoMemoryLocator {
  /** e.g. 'mbochs DISPI registers' */
  readonly name: string;
  locate(shape: PlaneShape): VideoMemoryPlace | { why: string };
}

// ---- mbochs: bochs DISPI registers at BAR2 + 0x500, index = (offset - 0x500) / 2, 16 bit ----

export const DISPI = { ID: 0, XRES: 1, YRES: 2, BPP: 3, ENABLE: 4, BANK: 5, VIRT_WIDTH: 6, VIRT_HEIGHT: 7, X_OFFSET: 8, Y_OFFSET: 9, VIDEO_MEMORY_64K: 10 } as const;
const VBE_DISPI_ENABLED = 0x01;
const VFIO_PCI_BAR0_REGION_INDEX = 0;
const VFIO_PCI_BAR2_REGION_INDEX = 2;
const DRM_FORMAT_XRGB8888 = 0x34325258;

/**
 * The framebuffer offset mbochs exports for the current DISPI state (mbochs_check_framebuffer:
 * offset = X_OFFSET * bytepp + Y_OFFSET * stride, stride = max(VIRT_WIDTH, XRES) * bytepp; its
 * dma-buf starts at that offset rounded down to a page), checked against the plane query.
 * `regs` are the DISPI registers by index.
 */
export function mbochsPlace(regs: number[], shape: PlaneShape, memsize: number): VideoMemoryPlace | { why: string } {
  const r = (i: number): number => regs[i] ?? 0;
  if (!(r(DISPI.ENABLE) & VBE_DISPI_ENABLED)) return { why: 'the DISPI registers say the display is disabled' };
  if (r(DISPI.BPP) !== 32 || shape.format !== DRM_FORMAT_XRGB8888) return { why: `DISPI bpp ${r(DISPI.BPP)} (mbochs exports 32 bpp XRGB8888 only)` };
  const stride = Math.max(r(DISPI.VIRT_WIDTH), r(DISPI.XRES)) * 4;
  if (r(DISPI.XRES) !== shape.width || r(DISPI.YRES) !== shape.height || stride !== shape.stride) {
    return { why: `DISPI ${r(DISPI.XRES)}x${r(DISPI.YRES)} stride ${stride} does not match the plane query ${shape.width}x${shape.height} stride ${shape.stride} (the guest changed mode in between?)` };
  }
  // the guest's framebuffer (mbochs' dma-buf starts at this offset rounded down to a page: the
  // same pages for the page-aligned offsets guests use)
  const offset = r(DISPI.X_OFFSET) * 4 + r(DISPI.Y_OFFSET) * stride;
  if (offset + stride * shape.height > memsize) return { why: `the framebuffer at ${offset} does not fit the ${memsize} bytes of video memory` };
  return { regionIndex: VFIO_PCI_BAR0_REGION_INDEX, offset };
}

/** Reads mbochs' DISPI registers through the VFIO fd (2-byte reads: mbochs handles only those). */
export function mbochsLocator(api: NativeAddon, deviceFd: number): VideoMemoryLocator {
  return {
    name: 'mbochs DISPI registers (BAR2 + 0x500)',
    locate(shape) {
      const bar2 = api.vfioRegionInfo(deviceFd, VFIO_PCI_BAR2_REGION_INDEX);
      const regs: number[] = [];
      for (let i = 0; i <= DISPI.VIDEO_MEMORY_64K; i++) {
        const b = api.pread(deviceFd, bar2.offset + BigInt(0x500 + i * 2), 2);
        if (b.length !== 2) return { why: `short read of DISPI register ${i}` };
        regs.push(b.readUInt16LE(0));
      }
      const bar0 = api.vfioRegionInfo(deviceFd, VFIO_PCI_BAR0_REGION_INDEX);
      return mbochsPlace(regs, shape, Number(bar0.size));
    },
  };
}

/** The locator for a vendor driver, by its mdev type (e.g. "mbochs-medium"); null: none known. */
export function videoMemoryLocator(api: NativeAddon, deviceFd: number, mdevType: string | null): VideoMemoryLocator | null {
  if (mdevType && /^mbochs[-_]/.test(mdevType)) return mbochsLocator(api, deviceFd);
  return null;
}
