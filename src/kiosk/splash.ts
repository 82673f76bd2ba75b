// A PNG splash for an output's idle placeholder, decoded with pngjs into XRGB8888 (the
// placeholder fits it to the mode). Errors name the file and what is wrong with it.
import { readFileSync } from 'node:fs';
import { PNG } from 'pngjs';

export interface SplashImage {
  width: number;
  height: number;
  /** XRGB8888: B, G, R, X bytes, stride width * 4; transparent pixels over black */
  pixels: Buffer;
}

export function decodeSplash(data: Buffer, what = 'splash'): SplashImage {
  let png: PNG;
  try {
    png = PNG.sync.read(data);
  } catch (e) {
    throw new Error(`${what} is not a readable PNG: ${(e as Error).message}`);
  }
  const { width, height } = png;
  if (width > 16384 || height > 16384) throw new Error(`${what} is ${width}x${height}: at most 16384x16384`);
  const pixels = Buffer.alloc(width * height * 4);
  const src = png.data; // RGBA
  for (let i = 0; i < width * height; i++) {
    const a = src[i * 4 + 3]!;
    pixels[i * 4] = (src[i * 4 + 2]! * a) / 255; // B
    pixels[i * 4 + 1] = (src[i * 4 + 1]! * a) / 255; // G
    pixels[i * 4 + 2] = (src[i * 4]! * a) / 255; // R
    pixels[i * 4 + 3] = 0xff;
  }
  return { width, height, pixels };
}

export function readSplash(path: string): SplashImage {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new Error(`cannot read ${path} (${code})`);
  }
  return decodeSplash(data, path);
}
