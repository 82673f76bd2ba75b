// The bench's C side (src/bench/flip-loop.c): built with gcc and libdrm's headers where the
// bench runs (inside the rig's VM; test/rig/prepare.sh and setup.sh install gcc and libdrm-dev),
// then run as children: the reference loop and the QEMU-like poller get the tool's own DRM
// master fd and the vGPU's VFIO device fd (a VFIO group opens in one process only), the guest
// flips through vgpu-sim's debugfs, hogs load every CPU.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SOURCE = path.join(ROOT, 'src', 'bench', 'flip-loop.c');

/** Build flip-loop (once per source version) and return its path. */
export function buildFlipLoop(): string {
  if (!existsSync(SOURCE)) throw new Error(`${SOURCE} is missing`);
  const sum = createHash('sha256').update(readFileSync(SOURCE)).digest('hex').slice(0, 12);
  const dir = path.join(process.env['TMPDIR'] ?? os.tmpdir(), 'vgpu-flip-bench');
  const bin = path.join(dir, `flip-loop-${sum}`);
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync('gcc', ['-O2', '-Wall', '-I/usr/include/libdrm', '-o', bin, SOURCE], { stdio: 'pipe' });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(`gcc could not build ${SOURCE} (needs gcc and libdrm-dev: bash setup.sh): ${err.stderr?.toString() || err.message}`);
  }
  return bin;
}

export interface ChildResult<T> {
  value: T;
  ms: number;
}

/**
 * Run flip-loop with `args`; `fds` become the child's fds 3, 4, ... Resolves with its JSON
 * output; rejects with its stderr when it fails or runs longer than timeoutMs.
 */
export function runFlipLoop<T>(bin: string, args: (string | number)[], fds: number[] = [], timeoutMs = 120_000): Promise<ChildResult<T>> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const c = spawn(bin, args.map(String), { stdio: ['ignore', 'pipe', 'pipe', ...fds] });
    let out = '';
    let err = '';
    c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('error', reject);
    c.on('close', (code, sig) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`flip-loop ${args[0]} ${sig ? `killed (${sig})` : `exited with ${code}`}: ${err.trim() || out.trim().slice(0, 300)}`));
      try {
        resolve({ value: JSON.parse(out) as T, ms: Date.now() - t0 });
      } catch {
        reject(new Error(`flip-loop ${args[0]}: not JSON: ${out.slice(0, 300)}`));
      }
    });
  });
}

/** `n` CPU hogs; stop() kills them. */
export function startHogs(bin: string, n: number): { n: number; stop(): void } {
  const kids: ChildProcess[] = Array.from({ length: n }, () => spawn(bin, ['hog'], { stdio: 'ignore' }));
  return { n, stop: () => kids.forEach((k) => k.kill('SIGKILL')) };
}

export interface GuestRun {
  /** [t0, t1, buffer, t2] per flip (t2: kflip_wait returned, 0 without it) */
  flips: [number, number, number, number][];
}

/**
 * vgpu-sim's guest flipping at `fps` between `offsets` `count` times (a REGION guest: one
 * offset, and `draw` gives the video memory file and the plane's stride and height; `kflipWait`:
 * wait for each in-kernel DRM_FB flip with that debugfs file).
 */
export function runGuest(bin: string, flipFile: string, offsets: number[], fps: number, count: number, o: { draw?: { vram: string; stride: number; height: number }; kflipWait?: string } = {}): Promise<ChildResult<GuestRun>> {
  const args: (string | number)[] = ['guest', flipFile, offsets.join(','), fps, count];
  if (o.kflipWait) args.push(`wait=${o.kflipWait}`);
  if (o.draw) args.push(o.draw.vram, o.draw.stride, o.draw.height);
  return runFlipLoop<GuestRun>(bin, args, [], 60_000 + (count / fps) * 4000);
}
