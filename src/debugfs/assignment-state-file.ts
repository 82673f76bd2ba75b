// Assignment state files (see assignment-state.ts): the format, and safe file I/O in a shared
// run folder (O_EXCL|O_NOFOLLOW creation, defensive reads).
import { closeSync, constants as fsc, fstatSync, lstatSync, openSync, readFileSync, readSync, statSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { GuestPlaneKind } from '../flip/planner.js';

export const ASSIGNMENT_SCHEMA = 'vgpu-flip/assignment-state@1';

export function defaultRunDir(): string {
  return process.env.VGPU_FLIP_RUN_DIR || '/run/vgpu-flip';
}

export interface RectJson {
  x: number;
  y: number;
  w: number;
  h: number;
}

export type PublishedPath = 'drm_fb' | 'dmabuf' | 'region' | 'copy';

export interface PublishedPlane {
  guest: GuestPlaneKind;
  /**
   * how the guest plane reaches the screen: the vendor's host fb ('drm_fb'), an imported
   * dma-buf ('dmabuf'), copies from the REGION path ('region'), or copies after a DMABUF plane
   * fell back ('copy')
   */
  path: PublishedPath;
  hwPlaneId: number;
  hwPlaneType: string;
  hwPlaneIndex: number;
  crtcId: number;
  /** the framebuffer the hardware plane shows now (as far as this process knows; 0: none yet) */
  fbId: number;
  /** dmabuf_id (DMABUF), region index (REGION) or framebuffer id (DRM_FB) of that frame */
  bufferId: number | null;
  /** framebuffer ids this plane used recently (most recent last, at most 16) */
  recentFbIds: number[];
  src: RectJson;
  dst: RectJson;
}

export interface AssignmentStateFile {
  schema: typeof ASSIGNMENT_SCHEMA;
  pid: number;
  /** /proc/<pid>/stat start time (clock ticks since boot): tells a reused pid apart */
  procStart: number | null;
  command: string;
  startedAt: string;
  updatedAt: string;
  /** vGPU UUID, null for a guest that is not an mdev (tests' loopback guest) */
  vgpu: string | null;
  guest: string;
  device: string;
  /** DRM minor of `device` (the N of /sys/kernel/debug/dri/N), null if unknown */
  drmMinor: number | null;
  path: 'drm_fb' | 'dmabuf' | 'region';
  /** 'starting': no assignment yet; 'assigned'; 'stopped' (about to exit) */
  state: 'starting' | 'assigned' | 'stopped';
  crtc: { id: number; index: number } | null;
  connector: { id: number; name: string } | null;
  mode: string | null;
  planes: PublishedPlane[];
  /** every framebuffer id the process holds (fb cache + copy buffers; DRM_FB: none of its own) */
  fbIdsInUse: number[];
  stats: { frames: number; commits: number; assignCommits: number; kernelFlips: number; guestFlips: number | null; errors: number };
  lastError: string | null;
}

/** Linux: /proc/<pid>/stat field 22 (start time), null elsewhere or when unreadable. */
export function procStartTime(pid: number, procRoot = '/proc'): number | null {
  try {
    const s = readFileSync(path.join(procRoot, String(pid), 'stat'), 'utf8');
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses; fields after the last ')'
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    const v = Number(rest[19]);
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

/** DRM minor of a card node (its char device's minor number), null when not a char device. */
export function drmMinorOf(device: string): number | null {
  try {
    const st = statSync(device);
    if (!st.isCharacterDevice()) return null;
    const rdev = st.rdev;
    return (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
  } catch {
    const m = /card(\d+)$/.exec(device);
    return m ? Number(m[1]) : null;
  }
}

export class UnsafeRunDir extends Error {
  readonly code = 'EUNSAFE';
}

/** The run folder must be a real folder, not writable by others unless sticky (as /tmp). */
export function checkRunDir(dir: string): void {
  const st = lstatSync(dir);
  if (st.isSymbolicLink()) throw new UnsafeRunDir(`${dir} is a symlink`);
  if (!st.isDirectory()) throw new UnsafeRunDir(`${dir} is not a folder`);
  if ((st.mode & 0o002) !== 0 && (st.mode & 0o1000) === 0) throw new UnsafeRunDir(`${dir} is writable by everyone without the sticky bit`);
}

/** Create `f` (O_EXCL|O_NOFOLLOW, 0644) and write `data`; a leftover or planted entry is unlinked first, once. */
export function writeExclusive(f: string, data: string): void {
  const flags = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;
  let fd: number;
  try {
    fd = openSync(f, flags, 0o644);
  } catch (e) {
    if ((e as { code?: string }).code !== 'EEXIST') throw e;
    unlinkSync(f); // removes a symlink itself, not its target
    fd = openSync(f, flags, 0o644);
  }
  try {
    const b = Buffer.from(data);
    let off = 0;
    while (off < b.length) off += writeSync(fd, b, off, b.length - off);
  } finally {
    closeSync(fd);
  }
}

/** Read a state file defensively: no symlinks, regular files only, at most 1 MiB. */
export function readStateFileText(f: string): string {
  const fd = openSync(f, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw Object.assign(new Error(`${f} is not a regular file`), { code: 'ENOTREG' });
    if (st.size > MAX_STATE_BYTES) throw Object.assign(new Error(`${f} is ${st.size} bytes`), { code: 'EFBIG' });
    const b = Buffer.alloc(st.size);
    let off = 0;
    while (off < b.length) {
      const n = readSync(fd, b, off, b.length - off, off);
      if (n === 0) break;
      off += n;
    }
    return b.subarray(0, off).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

const MAX_STATE_BYTES = 1 << 20;

