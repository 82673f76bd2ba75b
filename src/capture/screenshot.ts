// What is on a CRTC, as a picture, taken by the process that holds DRM master (the only one
// that may commit). Two ways:
//  - writeback: the device composes the frame into a buffer of ours (vkms' Writeback-1). When
//    the writeback encoder can clone the display's encoder, the CRTC drives both at once and the
//    monitor keeps its picture; when it cannot (vkms on 6.1), the CRTC is routed to writeback
//    alone for one frame, which blanks the monitor: only when asked (method 'writeback').
//  - compose: the layers we put on the CRTC, read from memory (copy buffers, mapped dma-bufs)
//    and composed in z-order at their places; what cannot be read (a vendor's DRM_FB
//    framebuffer, planes that are not ours) is listed in `notes`.
// 'auto' takes writeback when it does not blank the monitor, else compose.
import type { KmsSnapshot } from '../kms/types.js';
import { fourccToString } from '../binding/constants.js';
import { findWritebackConnector, type CapturedFrame } from './writeback.js';

export type ScreenshotMethod = 'auto' | 'writeback' | 'compose';

/** One layer on the CRTC, as the presenter knows it. */
export interface LayerPicture {
  /** e.g. 'guest primary' */
  name: string;
  /** where it is on the CRTC (unscaled: width x height of the buffer shown from 0,0) */
  x: number;
  y: number;
  width: number;
  height: number;
  /** z order (higher on top) */
  zpos: number;
  /** its pixels now (XRGB8888 / ARGB8888 rows of `stride`), or why they cannot be read */
  read(): { pixels: Buffer; stride: number; format: number } | { unreadable: string };
}

export interface Screenshot extends CapturedFrame {
  method: 'writeback' | 'writeback-alone' | 'compose';
  /** what the picture leaves out or how it was taken, for the user */
  notes: string[];
}

/**
 * Can the writeback connector of this CRTC be driven together with the display connector
 * (its encoder is in the possible_clones of the display's encoder)? null: no writeback at all.
 */
export function writebackClone(s: KmsSnapshot, crtcIndex: number, displayConnectorId: number | null): { writebackId: number; clone: boolean } | null {
  const wb = findWritebackConnector(s, crtcIndex);
  if (!wb) return null;
  if (displayConnectorId === null) return { writebackId: wb.id, clone: true };
  const disp = s.connectors.find((c) => c.id === displayConnectorId);
  const encIndex = (id: number): number => s.encoders.findIndex((e) => e.id === id);
  const dispEnc = s.encoders.find((e) => e.id === (disp?.encoderId ?? 0)) ?? s.encoders.find((e) => disp?.encoders.includes(e.id));
  const clone = dispEnc !== undefined && wb.encoders.some((id) => encIndex(id) >= 0 && (dispEnc.possibleClones & (1 << encIndex(id))) !== 0);
  return { writebackId: wb.id, clone };
}

/** The method 'auto' resolves to, and why. */
export function chooseMethod(asked: ScreenshotMethod, wb: { clone: boolean } | null): { method: 'writeback' | 'writeback-alone' | 'compose'; why: string } {
  if (asked === 'compose') return { method: 'compose', why: 'composed from the layers in memory (asked)' };
  if (asked === 'writeback') {
    if (!wb) throw new Error('--screenshot-method writeback: the device has no writeback connector for this CRTC (use compose)');
    return wb.clone
      ? { method: 'writeback', why: 'writeback connector driven beside the display' }
      : { method: 'writeback-alone', why: 'writeback connector routed alone for one frame (the monitor blanks for a frame: asked)' };
  }
  if (wb?.clone) return { method: 'writeback', why: 'writeback connector driven beside the display' };
  return {
    method: 'compose',
    why: wb
      ? 'composed from the layers in memory: the writeback connector cannot clone the display, routing it alone would blank the monitor (--screenshot-method writeback to do it anyway)'
      : 'composed from the layers in memory: the device has no writeback connector',
  };
}

/** Compose the layers (lowest zpos first) onto a black width x height XRGB8888 frame. */
export function composeLayers(width: number, height: number, layers: LayerPicture[]): { frame: CapturedFrame; notes: string[] } {
  const stride = width * 4;
  const pixels = Buffer.alloc(stride * height);
  const notes: string[] = [];
  for (const l of [...layers].sort((a, b) => a.zpos - b.zpos)) {
    const r = l.read();
    if ('unreadable' in r) {
      notes.push(`${l.name}: not in the picture (${r.unreadable})`);
      continue;
    }
    const f = fourccToString(r.format);
    if (f !== 'XR24' && f !== 'AR24') {
      notes.push(`${l.name}: not in the picture (format ${f}; only XR24/AR24 are composed)`);
      continue;
    }
    const alpha = f === 'AR24';
    for (let y = 0; y < l.height; y++) {
      const dy = l.y + y;
      if (dy < 0 || dy >= height) continue;
      for (let x = 0; x < l.width; x++) {
        const dx = l.x + x;
        if (dx < 0 || dx >= width) continue;
        const so = y * r.stride + x * 4;
        if (so + 4 > r.pixels.length) break;
        const v = r.pixels.readUInt32LE(so);
        const a = alpha ? v >>> 24 : 255;
        if (a === 0) continue;
        const o = dy * stride + dx * 4;
        if (a === 255) {
          pixels.writeUInt32LE((v | 0xff000000) >>> 0, o);
          continue;
        }
        // premultiplied alpha over what is below (DRM's default blend mode)
        for (let c = 0; c < 3; c++) pixels[o + c] = Math.min(255, r.pixels[so + c]! + Math.round((pixels[o + c]! * (255 - a)) / 255));
        pixels[o + 3] = 0xff;
      }
    }
  }
  return { frame: { width, height, stride, pixels, waitMs: 0 }, notes };
}
