// `assign --screenshot FILE.png` and SIGUSR1: a picture of what is on the CRTC, taken by the
// assigning process itself (it holds DRM master; no second process may commit). The method
// (writeback beside the display, writeback alone, or composed from the layers) and what the
// picture leaves out are reported with it.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { frameToPng } from '../../capture/writeback.js';
import type { ScreenshotMethod } from '../../capture/screenshot.js';
import type { FlipEngine } from '../../flip/engine.js';
import { UsageError } from '../../flip/session.js';

export interface ScreenshotReport {
  file: string;
  method: string;
  width: number;
  height: number;
  notes: string[];
}

export function parseScreenshotMethod(s: string | undefined): ScreenshotMethod {
  if (s === undefined) return 'auto';
  if (s === 'auto' || s === 'writeback' || s === 'compose') return s;
  throw new UsageError(`--screenshot-method ${JSON.stringify(s)}: expected auto, writeback or compose`);
}

export function checkScreenshotFile(file: string): void {
  if (!/\.png$/i.test(file)) throw new UsageError(`--screenshot ${JSON.stringify(file)}: the file name must end in .png`);
}

/** The n-th file of a SIGUSR1 series: shot.png -> shot-1.png; no --screenshot: ./vgpu-flip-<pid>-1.png */
export function seriesName(base: string | undefined, n: number, pid = process.pid): string {
  if (!base) return path.resolve(`vgpu-flip-${pid}-${n}.png`);
  return base.replace(/(\.png)$/i, `-${n}$1`);
}

/**
 * Take screenshots for one session: the first (with --screenshot) once the planes are assigned,
 * and one per SIGUSR1. Errors are reported, never fatal.
 */
export function setupScreenshots(
  engine: FlipEngine,
  o: { file?: string; method: ScreenshotMethod },
  report: (r: ScreenshotReport | { error: string }) => void,
): { first: Promise<void>; dispose(): void } {
  let n = 0;
  let busy: Promise<void> = Promise.resolve();
  const take = (file: string): Promise<void> =>
    (busy = busy.then(async () => {
      try {
        const shot = await engine.screenshot(o.method);
        writeFileSync(file, frameToPng(shot));
        report({ file, method: shot.method, width: shot.width, height: shot.height, notes: shot.notes });
      } catch (e) {
        report({ error: `screenshot ${file}: ${(e as Error).message}` });
      }
    }));
  const onUsr1 = (): void => void take(seriesName(o.file, ++n));
  process.on('SIGUSR1', onUsr1);
  const first = o.file
    ? engine.waitAssigned(30_000).then(
        // one frame after the assignment, so the picture shows it
        () => new Promise<void>((r) => setTimeout(r, 100)).then(() => take(o.file!)),
        (e: Error) => report({ error: `screenshot ${o.file}: no assignment to show (${e.message})` }),
      )
    : Promise.resolve();
  return {
    first,
    dispose(): void {
      process.off('SIGUSR1', onUsr1);
    },
  };
}
