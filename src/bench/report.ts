// The bench's output: a readable line per case as it completes (progress), and with --json one
// JSON object per case on stdout (JSON lines, each with the commit measured), so runs can be
// compared across commits. Also kept in .vm-out/bench.jsonl when that folder exists.
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FlipCase, IdleCase } from './cases.js';
import type { CLoopResult } from './reference.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const OUT_DIR = path.join(ROOT, '.vm-out');

const PATH_NAME: Record<string, string> = { drm_fb: 'DRM_FB', dmabuf: 'DMABUF', region: 'REGION', 'qemu-poll30': 'QEMU-like 30 ms poll (DMABUF)' };

function revision(): string {
  try {
    const rev = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no', '--', 'src', 'native'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${rev}+changes` : rev;
  } catch {
    return 'unknown';
  }
}

export const fmtCase = (c: IdleCase | FlipCase): string => {
  const what = `${PATH_NAME[c.path]}${c.path === 'qemu-poll30' ? '' : c.events ? ', display event' : ', no event'}`;
  if (c.case === 'idle') {
    return `idle ${c.seconds.toFixed(1)} s   ${what}: ${c.ioctlsPerSecond.toFixed(2)} ioctls/s, tool CPU ${(c.cpuUsPerSecond / 1000).toFixed(2)} ms/s, ${c.commits} commits${c.errors ? `, ${c.errors} errors` : ''}`;
  }
  const o = c.onScreen;
  return `flip ${c.fps} fps, ${c.hogs} hogs   ${what}: guest flip -> screen p50 ${o.p50} p99 ${o.p99} max ${o.max} vblanks ` +
    `(${o.flips} flips, ${o.skipped} dropped); ${c.ioctlsPerSecond.toFixed(1)} ioctls/s, CPU ${(c.cpuUsPerSecond / 1000).toFixed(1)} ms/s` +
    `${c.errors ? `, ${c.errors} errors` : ''}`;
};

export const fmtRatio = (tool: { cpuUsPerFrame: number; fps: number }, c: CLoopResult): string =>
  `C reference loop (DMABUF per-frame work, raw ioctls): ${c.cpuUsPerFrame.toFixed(0)} us CPU per frame (${c.fps.toFixed(1)} fps, ${c.ioctlsPerFrame.toFixed(2)} ioctls/frame); ` +
  `tool ${tool.cpuUsPerFrame.toFixed(0)} us (${tool.fps.toFixed(1)} fps): ratio ${(tool.cpuUsPerFrame / c.cpuUsPerFrame).toFixed(2)}x (goal <= 1.2x)`;

export class Report {
  readonly rev = revision();
  readonly lines: object[] = [];

  constructor(private readonly json: boolean) {}

  /** Progress and readable figures: stderr with --json (stdout stays JSON lines), else stdout. */
  say(text: string): void {
    (this.json ? process.stderr : process.stdout).write(`${text}\n`);
  }

  /** One case: its readable line, and its JSON line with --json. */
  add<T extends { case: string }>(obj: T, readable?: string): void {
    const line = { bench: 'vgpu-flip', rev: this.rev, ...obj };
    this.lines.push(line);
    if (readable) this.say(readable);
    if (this.json) process.stdout.write(`${JSON.stringify(line)}\n`);
  }

  /** Keep the JSON lines in .vm-out/bench.jsonl (when the folder exists: the rig). */
  save(): string | null {
    if (!existsSync(OUT_DIR)) return null;
    const f = path.join(OUT_DIR, 'bench.jsonl');
    try {
      writeFileSync(f, this.lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
      return f;
    } catch {
      return null;
    }
  }
}
