// Screenshot method choice and in-memory composition (pure logic; the kernel side of writeback
// is covered in test/kernel). The vkms snapshot is one recorded in the rig (6.1): its
// Writeback-1 encoder is not a clone of Virtual-1's, so 'auto' must not route writeback alone.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { chooseMethod, composeLayers, writebackClone, type LayerPicture } from '../../src/capture/screenshot.js';
import { loadSnapshotFile } from '../../src/kms/snapshot-json.js';
import { DRM_FORMAT_ARGB8888, DRM_FORMAT_XRGB8888 } from '../../src/binding/constants.js';

const vkms = loadSnapshotFile(path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'fixtures', 'vkms-snapshot-active.json'));

function solidLayer(name: string, x: number, y: number, w: number, h: number, argb: number, zpos: number, format = DRM_FORMAT_XRGB8888): LayerPicture {
  const px = Buffer.alloc(w * h * 4);
  for (let i = 0; i < w * h; i++) px.writeUInt32LE(argb >>> 0, i * 4);
  return { name, x, y, width: w, height: h, zpos, read: () => ({ pixels: px, stride: w * 4, format }) };
}

describe('writebackClone / chooseMethod', () => {
  it('vkms 6.1: a writeback connector exists but cannot clone Virtual-1: auto composes, writeback routes alone', () => {
    const disp = vkms.connectors.find((c) => c.name === 'Virtual-1')!;
    const wb = writebackClone(vkms, 0, disp.id);
    expect(wb).not.toBeNull();
    expect(wb!.clone).toBe(false);
    expect(chooseMethod('auto', wb).method).toBe('compose');
    expect(chooseMethod('auto', wb).why).toMatch(/cannot clone the display, routing it alone would blank the monitor/);
    expect(chooseMethod('writeback', wb).method).toBe('writeback-alone');
    // nothing on a display connector: writeback cannot blank anything
    expect(writebackClone(vkms, 0, null)!.clone).toBe(true);
    expect(chooseMethod('auto', { clone: true }).method).toBe('writeback');
  });
  it('no writeback connector: compose, and an explicit writeback is refused with a message', () => {
    expect(chooseMethod('auto', null).method).toBe('compose');
    expect(() => chooseMethod('writeback', null)).toThrow('--screenshot-method writeback: the device has no writeback connector for this CRTC (use compose)');
  });
});

describe('composeLayers', () => {
  it('places layers in z order, clips at the edges, blends premultiplied ARGB, lists unreadable layers', () => {
    const layers: LayerPicture[] = [
      solidLayer('cursor', 6, 6, 4, 4, 0x80400000, 2, DRM_FORMAT_ARGB8888), // half-transparent, premultiplied red
      solidLayer('primary', 0, 0, 8, 8, 0xff0000ff, 0),
      { name: 'guest overlay', x: 0, y: 0, width: 2, height: 2, zpos: 1, read: () => ({ unreadable: 'framebuffer 7 belongs to the vendor driver' }) },
    ];
    const { frame, notes } = composeLayers(10, 10, layers);
    const at = (x: number, y: number): number => frame.pixels.readUInt32LE(y * frame.stride + x * 4) & 0xffffff;
    expect(at(0, 0)).toBe(0x0000ff);
    expect(at(9, 0)).toBe(0x000000); // not covered
    expect(at(7, 7)).toBe(0x40007f); // 0x40 red + 0xff blue * (255 - 0x80) / 255
    expect(at(9, 9)).toBe(0x400000); // cursor over black
    expect(notes).toEqual(['guest overlay: not in the picture (framebuffer 7 belongs to the vendor driver)']);
  });
});
