import { describe, expect, it } from 'vitest';
import { inflateSync } from 'node:zlib';
import { crc32, encodePng, xrgb8888ToRgb } from '../../src/capture/png.js';
import { compareRegion, pixelAt, type CapturedFrame } from '../../src/capture/writeback.js';

describe('PNG encoder', () => {
  it('crc32 matches the reference value', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
  });

  it('writes a valid RGB PNG whose IDAT inflates to filtered rows', () => {
    const rgb = Buffer.from([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255]);
    const png = encodePng(2, 2, rgb, 3);
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(png.readUInt32BE(16)).toBe(2);
    expect(png.readUInt32BE(20)).toBe(2);
    const idatLen = png.readUInt32BE(33);
    expect(png.toString('latin1', 37, 41)).toBe('IDAT');
    const raw = inflateSync(png.subarray(41, 41 + idatLen));
    expect([...raw]).toEqual([0, 255, 0, 0, 0, 255, 0, 1 - 1, 0, 0, 255, 255, 255, 255]);
    expect(png.toString('latin1', png.length - 8, png.length - 4)).toBe('IEND');
  });

  it('converts XRGB8888 with stride and compares regions', () => {
    const stride = 12;
    const px = Buffer.alloc(stride * 2);
    px.writeUInt32LE(0x00112233, 0);
    px.writeUInt32LE(0xff445566, 4);
    px.writeUInt32LE(0x00778899, stride);
    expect([...xrgb8888ToRgb(px, 2, 2, stride).subarray(0, 6)]).toEqual([0x11, 0x22, 0x33, 0x44, 0x55, 0x66]);
    const f: CapturedFrame = { width: 2, height: 2, stride, pixels: px, waitMs: 0 };
    expect(pixelAt(f, 1, 0)).toBe(0x445566);
    const r = compareRegion(f, -1, 0, 2, 2, (x, y) => (x === 1 && y === 0 ? 0x112233 : x === 1 && y === 1 ? 0x778800 : null));
    expect(r.total).toBe(2);
    expect(r.mismatches).toBe(1);
    expect(r.first).toEqual({ x: 0, y: 1, got: 0x778899, want: 0x778800 });
  });
});
