// Where mbochs keeps the guest's framebuffer, from its DISPI registers (pure logic; the kernel
// test against the real mbochs is test/kernel/sample-drivers.test.ts).
import { describe, expect, it } from 'vitest';
import { DISPI, mbochsPlace } from '../../src/vfio/video-memory.js';

const XR24 = 0x34325258;
function regs(o: Partial<Record<keyof typeof DISPI, number>>): number[] {
  const r = new Array(11).fill(0) as number[];
  for (const [k, v] of Object.entries(o)) r[DISPI[k as keyof typeof DISPI]] = v;
  return r;
}

describe('mbochsPlace', () => {
  const shape = { width: 800, height: 600, stride: 3200, format: XR24 };
  const on = { ENABLE: 0x41, BPP: 32, XRES: 800, YRES: 600, VIRT_WIDTH: 800, VIRT_HEIGHT: 1216 };
  it('offset = Y_OFFSET * stride + X_OFFSET * 4 in BAR0 (a page flip by panning)', () => {
    expect(mbochsPlace(regs(on), shape, 16 << 20)).toEqual({ regionIndex: 0, offset: 0 });
    expect(mbochsPlace(regs({ ...on, Y_OFFSET: 608 }), shape, 16 << 20)).toEqual({ regionIndex: 0, offset: 608 * 3200 });
  });
  it('refuses what does not agree with the plane query, a disabled display, or memory overrun', () => {
    expect(mbochsPlace(regs({ ...on, ENABLE: 0 }), shape, 16 << 20)).toEqual({ why: 'the DISPI registers say the display is disabled' });
    expect(mbochsPlace(regs({ ...on, XRES: 1024, YRES: 768, VIRT_WIDTH: 1024 }), shape, 16 << 20)).toEqual({
      why: 'DISPI 1024x768 stride 4096 does not match the plane query 800x600 stride 3200 (the guest changed mode in between?)',
    });
    expect(mbochsPlace(regs({ ...on, Y_OFFSET: 5000 }), shape, 16 << 20)).toMatchObject({ why: expect.stringMatching(/does not fit the 16777216 bytes/) });
    expect(mbochsPlace(regs({ ...on, BPP: 16 }), shape, 16 << 20)).toMatchObject({ why: expect.stringMatching(/bpp 16/) });
  });
});
