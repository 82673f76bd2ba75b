// The idle placeholder's pure parts: fitting a splash to the mode (aspect kept, centred, black
// around it) and decoding a PNG splash (pngjs) into XRGB8888 with alpha over black.
import { describe, expect, it } from 'vitest';
import { PNG } from 'pngjs';
import { fitImage } from '../../src/present/placeholder.js';
import { decodeSplash } from '../../src/kiosk/splash.js';

const px = (b: Buffer, w: number, x: number, y: number): number => b.readUInt32LE((y * w + x) * 4) & 0xffffff;

describe('fitImage', () => {
  it('scales a 2x1 image into 8x8: 8x4 centred vertically, black bars above and below', () => {
    const img = { width: 2, height: 1, pixels: Buffer.from([0, 0, 0xff, 0xff, 0xff, 0, 0, 0xff]) }; // red, blue (B,G,R,X)
    const out = fitImage(img, 8, 8);
    expect(px(out, 8, 0, 0)).toBe(0); // bar
    expect(px(out, 8, 0, 1)).toBe(0);
    expect(px(out, 8, 0, 2)).toBe(0xff0000); // left half red, rows 2..5
    expect(px(out, 8, 3, 5)).toBe(0xff0000);
    expect(px(out, 8, 4, 2)).toBe(0x0000ff); // right half blue
    expect(px(out, 8, 7, 5)).toBe(0x0000ff);
    expect(px(out, 8, 7, 6)).toBe(0); // bar
  });

  it('gives black for an empty image', () => {
    expect(fitImage({ width: 0, height: 0, pixels: Buffer.alloc(0) }, 4, 4).every((b) => b === 0)).toBe(true);
  });
});

describe('decodeSplash', () => {
  it('decodes RGBA into B,G,R,X with transparency over black', () => {
    const png = new PNG({ width: 2, height: 1 });
    png.data.set([0x11, 0x22, 0x33, 0xff, 0xff, 0xff, 0xff, 0x00]);
    const s = decodeSplash(PNG.sync.write(png), 'test.png');
    expect(s).toMatchObject({ width: 2, height: 1 });
    expect([...s.pixels]).toEqual([0x33, 0x22, 0x11, 0xff, 0, 0, 0, 0xff]);
  });

  it('names the file when it is not a PNG', () => {
    expect(() => decodeSplash(Buffer.from('not a png'), '/etc/vgpu-flip/splash.png')).toThrow(/\/etc\/vgpu-flip\/splash.png is not a readable PNG/);
  });
});
