// Helpers of the kiosk daemon's kernel tests (run inside the VM): the daemon and the control
// CLI as child processes (as a user runs them), waits whose failure message is made at the
// timeout, and pixels of a screenshot PNG.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PNG } from 'pngjs';
import { screendump } from './display2-helpers.js';
import { sleep } from './flip-helpers.js';

export const BIN = path.join(import.meta.dirname, '..', '..', 'bin', 'vgpu-flip.js');

export type LogLine = { event?: string; msg: string; level?: unknown; output?: string; kept?: string[]; [k: string]: unknown };

export interface Daemon {
  p: ChildProcess;
  exited: Promise<number | null>;
  /** its JSON log lines so far */
  events: () => LogLine[];
  /** its stderr so far */
  log: () => string;
}

let lastLog = '';

/** the log of the daemon started last, as it is now (for failure messages) */
export function daemonLog(): string {
  return lastLog;
}

/** `vgpu-flip kiosk --run cfg --log-format json [args]` as a child process, its JSON log lines as they arrive. */
export function runDaemon(cfg: string, o: { env?: NodeJS.ProcessEnv; args?: string[] } = {}): Daemon {
  const p = spawn(process.execPath, [BIN, 'kiosk', '--run', cfg, '--log-format', 'json', ...(o.args ?? [])], { stdio: ['ignore', 'pipe', 'pipe'], ...(o.env ? { env: o.env } : {}) });
  let err = '';
  lastLog = '';
  p.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    lastLog = err;
  });
  const exited = new Promise<number | null>((r) => p.on('exit', r));
  const events = (): LogLine[] => err.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);
  return { p, exited, events, log: () => err };
}

/** Wait for cond; the failure message is made at the timeout (the log as it is then). */
export async function until(cond: () => boolean, ms: number, what: () => string): Promise<void> {
  for (const end = Date.now() + ms; !cond(); await sleep(20)) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what()}`);
  }
}

/** The CLI as a user runs it (async: the test's guests keep going meanwhile); `as`: setpriv arguments. */
export function cli(args: string[], as?: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const cmd = as ? 'setpriv' : process.execPath;
  const argv = as ? [...as, process.execPath, BIN, ...args] : [BIN, ...args];
  return new Promise((resolve) => {
    const c = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => c.kill('SIGKILL'), 120_000);
    c.on('close', (status) => {
      clearTimeout(t);
      resolve({ status, stdout, stderr });
    });
  });
}

export interface Picture {
  width: number;
  height: number;
  /** 0xRRGGBB */
  at: (x: number, y: number) => number;
}

/** An EDID of test/fixtures/ (hex with # comment lines), as bytes: a whole number of 128-byte blocks. */
export function fixtureEdid(name: string): Buffer {
  const text = readFileSync(path.join(import.meta.dirname, '..', 'fixtures', name), 'utf8');
  const b = Buffer.from(text.split('\n').filter((l) => !l.startsWith('#')).join('').replace(/\s+/g, ''), 'hex');
  if (b.length === 0 || b.length % 128 !== 0) throw new Error(`${name} has ${b.length} bytes, not a multiple of 128`);
  return b;
}

/** A PNG's pixels (a file, or its bytes). */
export function readPng(png: string | Buffer): Picture {
  const img = PNG.sync.read(typeof png === 'string' ? readFileSync(png) : png);
  return {
    width: img.width,
    height: img.height,
    at: (x, y) => {
      const i = (y * img.width + x) * 4;
      return (img.data[i]! << 16) | (img.data[i + 1]! << 8) | img.data[i + 2]!;
    },
  };
}

/** Sampled pixels (every `step` pixels) of a rectangle of a picture that differ from want(x, y): how many, and the first. */
export function mismatches(
  pic: Picture,
  r: { x: number; y: number; w: number; h: number },
  want: (x: number, y: number) => number,
  step = 5,
): { bad: number; first: string } {
  let bad = 0;
  let first = '';
  for (let y = r.y; y < r.y + r.h; y += step) {
    for (let x = r.x; x < r.x + r.w; x += step) {
      const got = x < pic.width && y < pic.height ? pic.at(x, y) : -1;
      if (got === want(x, y)) continue;
      if (!bad++) first = `(${x},${y}) is #${got.toString(16)}, want #${want(x, y).toString(16)}`;
    }
  }
  return { bad, first };
}

/**
 * Wait until head `head` of the rig's second display shows `want(x, y)` at every sampled pixel
 * (QEMU screendump). Generous: the daemon's start (node loading its modules over the rig's 9p
 * share) takes 10+ s under TCG while the test process runs beside it.
 */
export async function headShows(head: number, what: string, want: (x: number, y: number) => number, w: number, h: number): Promise<void> {
  const end = Date.now() + 90_000;
  for (;;) {
    const s = await screendump(head);
    let bad = 0;
    let first = '';
    for (let y = 0; y < h; y += 9) {
      for (let x = 0; x < w; x += 7) {
        if (s.width === w && s.at(x, y) === want(x, y)) continue;
        if (!bad++) first = `(${x},${y}) is #${s.at(x, y).toString(16)}`;
      }
    }
    if (bad === 0) return;
    if (Date.now() > end) throw new Error(`head ${head} does not show ${what} after 90 s: ${bad} sampled pixels differ, first ${first} (${s.width}x${s.height}); daemon log: ${lastLog.slice(-4000)}`);
    await sleep(250);
  }
}

/**
 * The picture with its last pixel changed (XRGB8888, in place): a second buffer that differs from
 * the first where no check samples it (the samplers step from 0 by 3, 5, 7 or 9; 1023,767 is on
 * none of their grids), so each flip between the two is a changed frame.
 */
export function oneDifferentPixel(pixels: Buffer): Buffer {
  const i = pixels.length - 4;
  pixels.writeUInt32LE((pixels.readUInt32LE(i) ^ 0x00ffffff) >>> 0, i);
  return pixels;
}
