// A PNG splash for an output's idle placeholder, decoded with pngjs into XRGB8888 (the
// placeholder fits it to the mode). Errors name the file and what is wrong with it.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { PNG as PngType } from 'pngjs';
import type { PlaceholderFill } from '../present/placeholder.js';
import type { OutputConfig } from './model.js';

/** pngjs, loaded on first use: most configurations have no splash, and the daemon starts faster */
const png = (): typeof PngType => (createRequire(import.meta.url)('pngjs') as { PNG: typeof PngType }).PNG;

export interface SplashImage {
  width: number;
  height: number;
  /** XRGB8888: B, G, R, X bytes, stride width * 4; transparent pixels over black */
  pixels: Buffer;
}

export function decodeSplash(data: Buffer, what = 'splash'): SplashImage {
  let img: PngType;
  try {
    img = png().sync.read(data);
  } catch (e) {
    throw new Error(`${what} is not a readable PNG: ${(e as Error).message}`);
  }
  const { width, height } = img;
  if (width > 16384 || height > 16384) throw new Error(`${what} is ${width}x${height}: at most 16384x16384`);
  const pixels = Buffer.alloc(width * height * 4);
  const src = img.data; // RGBA
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

/** What an output shows while its VMs are not on screen (keep-last-frame: black while a VM is missing). */
export function idleOf(o: OutputConfig, log: (level: 'error', msg: string, fields: Record<string, unknown>) => void): { notReady: 'keep' | 'blank'; placeholder: PlaceholderFill } {
  const i = o.idle;
  const notReady = i.kind === 'keep-last-frame' ? 'keep' : 'blank';
  if (i.kind === 'color') return { notReady, placeholder: { kind: 'color', rgb: i.rgb } };
  if (i.kind === 'splash') {
    try {
      return { notReady, placeholder: { kind: 'image', ...readSplash(i.path) } };
    } catch (e) {
      log('error', `output ${o.name}: splash ${i.path}: ${(e as Error).message}; showing black instead`, { output: o.name });
    }
  }
  return { notReady, placeholder: { kind: 'color', rgb: 0 } };
}
