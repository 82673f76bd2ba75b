// The tool's own assignment state, for `vgpu-flip debugfs`: a running `vgpu-flip assign` (or
// demo) publishes what it put where as one JSON file per process,
//
//   $VGPU_FLIP_RUN_DIR/<pid>.json        (default /run/vgpu-flip/<pid>.json)
//
// written atomically (a temporary file in the same folder, then rename), refreshed when the
// assignment or a plane's framebuffer changes (at most 4 times a second) and every 2 s for the
// counters, removed when the engine stops or the process exits. A file whose process is gone
// (killed with SIGKILL, crashed in native code) is stale: readers ignore it (the pid is dead, or
// was reused by a process that started later than the one that wrote the file).
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { FlipEngine } from '../flip/engine.js';
import type { FrameEvent, PresentPath } from '../flip/events.js';
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

export interface PublishOptions {
  vgpu?: string | null;
  /** DRM card node the engine drives (default: the engine's device path) */
  device?: string;
  command?: string;
  /** folder (default $VGPU_FLIP_RUN_DIR or /run/vgpu-flip) */
  dir?: string;
  /** a problem writing the file (reported once); default: one line on stderr */
  warn?: (message: string) => void;
  /** refresh period for the counters, ms (default 2000) */
  refreshMs?: number;
}

export interface Publisher {
  /** the file written */
  readonly file: string;
  /** the file exists now (written and not removed) */
  readonly written: boolean;
  /** write now (tests) */
  flush(): void;
  /** stop listening and remove the file (idempotent) */
  close(): void;
}

/**
 * Publish `engine`'s assignment state until close(), the engine's 'stopped' event or the
 * process exit. Never throws: a folder that cannot be written only disables publishing.
 */
export function publishAssignmentState(engine: FlipEngine, o: PublishOptions = {}): Publisher {
  const dir = o.dir ?? defaultRunDir();
  const pid = process.pid;
  const file = path.join(dir, `${pid}.json`);
  const tmp = path.join(dir, `.${pid}.json.tmp`);
  const device = o.device ?? engine.device.path;
  const startedAt = new Date().toISOString();
  const procStart = procStartTime(pid);
  const drmMinor = drmMinorOf(device);
  const warn = o.warn ?? ((m: string) => process.stderr.write(`vgpu-flip: ${m}\n`));
  const planes = new Map<GuestPlaneKind, { fbId: number; bufferId: number | null; path: PresentPath | null; recent: number[] }>();
  let state: AssignmentStateFile['state'] = 'starting';
  let lastError: string | null = null;
  let dirty = true;
  let disabled = false;
  let closed = false;
  let written = false;

  const planeRt = (k: GuestPlaneKind): { fbId: number; bufferId: number | null; path: PresentPath | null; recent: number[] } => {
    let p = planes.get(k);
    if (!p) {
      p = { fbId: 0, bufferId: null, path: null, recent: [] };
      planes.set(k, p);
    }
    return p;
  };

  const snapshot = (): AssignmentStateFile => {
    const layout = engine.assignedLayout;
    const paths = engine.lastAssigned?.paths ?? {};
    let crtc: AssignmentStateFile['crtc'] = null;
    if (layout) crtc = { id: layout.crtcId, index: layout.crtcIndex };
    else {
      try {
        crtc = { id: engine.crtcId, index: -1 };
      } catch {
        crtc = null; // not started yet
      }
    }
    let mode: string | null = null;
    try {
      const m = engine.currentMode;
      if (m) mode = `${m.hdisplay}x${m.vdisplay}@${m.vrefresh}`;
    } catch {
      mode = null;
    }
    const conn = engine.displayConnector;
    const s = engine.stats;
    return {
      schema: ASSIGNMENT_SCHEMA,
      pid,
      procStart,
      command: o.command ?? 'assign',
      startedAt,
      updatedAt: new Date().toISOString(),
      vgpu: o.vgpu ?? null,
      guest: labelOf(engine),
      device,
      drmMinor,
      path: engine.path,
      state,
      crtc,
      connector: conn ? { id: conn.id, name: conn.name } : null,
      mode,
      planes: (layout?.assignments ?? []).map((a) => {
        const rt = planeRt(a.guest);
        return {
          guest: a.guest,
          path: publishedPath(rt.path ?? paths[a.guest] ?? null, engine.path),
          hwPlaneId: a.planeId,
          hwPlaneType: a.planeType,
          hwPlaneIndex: a.planeIndex,
          crtcId: layout!.crtcId,
          fbId: rt.fbId,
          bufferId: rt.bufferId,
          recentFbIds: [...rt.recent],
          src: { ...a.src },
          dst: { ...a.dst },
        };
      }),
      fbIdsInUse: safe(() => engine.liveFbs(), []),
      stats: { frames: s.frames, commits: s.commits, assignCommits: s.assignCommits, kernelFlips: s.kernelFlips, guestFlips: s.guestFlips, errors: s.errors },
      lastError,
    };
  };

  const write = (): void => {
    if (disabled || closed) return;
    dirty = false;
    try {
      mkdirSync(dir, { recursive: true, mode: 0o755 });
      writeFileSync(tmp, JSON.stringify(snapshot(), null, 2) + '\n', { mode: 0o644 });
      renameSync(tmp, file);
      written = true;
    } catch (e) {
      disabled = true;
      const code = typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : String(e);
      warn(`cannot publish the assignment state as ${file} (${code}${code === 'EACCES' || code === 'EPERM' ? ': run as root or set VGPU_FLIP_RUN_DIR to a writable folder' : ''}); \`vgpu-flip debugfs\` will not show this assignment`);
      try {
        unlinkSync(tmp);
      } catch {
        /* not there */
      }
    }
  };

  const remove = (): void => {
    for (const f of [file, tmp]) {
      try {
        unlinkSync(f);
      } catch {
        /* gone already */
      }
    }
    written = false;
  };

  const onAssigned = (): void => {
    state = 'assigned';
    dirty = true;
    write(); // an assignment is worth a write at once
  };
  const onFrame = (f: FrameEvent): void => {
    const rt = planeRt(f.plane);
    if (rt.fbId !== f.fbId || rt.path !== f.path || rt.bufferId !== f.id) {
      rt.fbId = f.fbId;
      rt.bufferId = f.id;
      rt.path = f.path;
      if (f.fbId && rt.recent[rt.recent.length - 1] !== f.fbId) {
        const i = rt.recent.indexOf(f.fbId);
        if (i >= 0) rt.recent.splice(i, 1);
        rt.recent.push(f.fbId);
        if (rt.recent.length > 16) rt.recent.shift();
      }
      dirty = true;
    }
  };
  const onFallback = (e: { plane: GuestPlaneKind }): void => {
    planeRt(e.plane).path = 'copy';
    dirty = true;
  };
  const onError = (e: { message: string; stage: string }): void => {
    lastError = `${e.stage}: ${e.message.split('\n')[0]}`;
    dirty = true;
  };
  const onStopped = (): void => {
    state = 'stopped';
    close();
  };
  engine.on('assigned', onAssigned);
  engine.on('frame', onFrame);
  engine.on('fallback', onFallback);
  engine.on('error', onError);
  engine.on('stopped', onStopped);

  const fast = setInterval(() => {
    if (dirty) write();
  }, 250);
  const slow = setInterval(() => {
    dirty = true;
  }, o.refreshMs ?? 2000);
  fast.unref();
  slow.unref();
  // process.exit() (SIGINT/SIGTERM handlers) skips finally blocks: the file goes anyway
  const onExit = (): void => remove();
  process.on('exit', onExit);

  function close(): void {
    if (closed) return;
    closed = true;
    clearInterval(fast);
    clearInterval(slow);
    engine.off('assigned', onAssigned);
    engine.off('frame', onFrame);
    engine.off('fallback', onFallback);
    engine.off('error', onError);
    engine.off('stopped', onStopped);
    process.off('exit', onExit);
    remove();
  }

  write(); // 'starting': the process is known before its first assignment
  return {
    file,
    flush(): void {
      write();
    },
    close,
    get written(): boolean {
      return written;
    },
  };
}

function publishedPath(p: PresentPath | null, enginePath: 'drm_fb' | 'dmabuf' | 'region'): PublishedPath {
  if (p === null) return enginePath;
  if (p === 'copy') return enginePath === 'region' ? 'region' : 'copy';
  return p;
}

function labelOf(engine: FlipEngine): string {
  const g = (engine as unknown as { guest?: { label?: string } }).guest;
  return safe(() => g?.label ?? '', '');
}

function safe<T>(f: () => T, dflt: T): T {
  try {
    return f();
  } catch {
    return dflt;
  }
}

// ------------------------------------------------------------------ reader

export interface StaleState {
  file: string;
  pid: number | null;
  why: string;
}

export interface AssignmentStates {
  dir: string;
  live: AssignmentStateFile[];
  stale: StaleState[];
  /** the folder could not be listed for another reason than its absence */
  error: string | null;
}

export interface ReadStatesOptions {
  /** is this pid alive? default: signal 0 (EPERM counts as alive) */
  alive?: (pid: number) => boolean;
  /** start time of a pid (default /proc/<pid>/stat) */
  startTime?: (pid: number) => number | null;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return typeof e === 'object' && e !== null && 'code' in e && (e as { code: unknown }).code === 'EPERM';
  }
}

/** Validate one parsed file; a message saying what is wrong, or null. */
export function checkStateFile(v: unknown): string | null {
  if (typeof v !== 'object' || v === null) return 'not a JSON object';
  const o = v as Record<string, unknown>;
  if (o.schema !== ASSIGNMENT_SCHEMA) return `schema ${JSON.stringify(o.schema)}, expected ${ASSIGNMENT_SCHEMA}`;
  if (typeof o.pid !== 'number' || !Number.isInteger(o.pid) || o.pid <= 0) return 'no valid pid';
  if (!Array.isArray(o.planes)) return 'no planes list';
  return null;
}

/** The assignment states of running vgpu-flip processes (stale files are listed, not used). */
export function readAssignmentStates(dir = defaultRunDir(), o: ReadStatesOptions = {}): AssignmentStates {
  const out: AssignmentStates = { dir, live: [], stale: [], error: null };
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    const code = typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : String(e);
    if (code !== 'ENOENT') out.error = `cannot list ${dir}: ${code}`;
    return out;
  }
  const alive = o.alive ?? pidAlive;
  const startTime = o.startTime ?? ((pid: number) => procStartTime(pid));
  for (const name of names.filter((n) => /^\d+\.json$/.test(n)).sort((a, b) => parseInt(a, 10) - parseInt(b, 10))) {
    const file = path.join(dir, name);
    const namePid = Number.parseInt(name, 10);
    let v: unknown;
    try {
      v = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      // a file removed between readdir and read is just gone
      const code = typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : null;
      if (code !== 'ENOENT') out.stale.push({ file, pid: namePid, why: code ? `unreadable (${code})` : `not valid JSON (${(e as Error).message})` });
      continue;
    }
    const bad = checkStateFile(v);
    if (bad) {
      out.stale.push({ file, pid: namePid, why: bad });
      continue;
    }
    const s = v as AssignmentStateFile;
    if (s.pid !== namePid) {
      out.stale.push({ file, pid: s.pid, why: `written for pid ${s.pid}, named ${name}` });
      continue;
    }
    if (!alive(s.pid)) {
      out.stale.push({ file, pid: s.pid, why: `process ${s.pid} is not running` });
      continue;
    }
    if (s.procStart !== null && s.procStart !== undefined) {
      const t = startTime(s.pid);
      if (t !== null && t !== s.procStart) {
        out.stale.push({ file, pid: s.pid, why: `pid ${s.pid} belongs to another process now (start time ${t}, file says ${s.procStart})` });
        continue;
      }
    }
    out.live.push(s);
  }
  return out;
}
