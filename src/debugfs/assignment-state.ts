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
// The folder is shared (/run): files are created with O_CREAT|O_EXCL|O_NOFOLLOW (a planted
// symlink or file is removed, never followed), a folder that is a symlink or writable by
// others without the sticky bit is refused, and readers open with O_NOFOLLOW, accept only
// regular files of at most 1 MiB and validate the JSON.
import { mkdirSync, renameSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import type { FlipEngine } from '../flip/engine.js';
import type { FrameEvent, PresentPath } from '../flip/events.js';
import type { GuestPlaneKind } from '../flip/planner.js';
import { ASSIGNMENT_SCHEMA, checkRunDir, defaultRunDir, drmMinorOf, procStartTime, UnsafeRunDir, writeExclusive, type AssignmentStateFile, type PublishedPath } from './assignment-state-file.js';

export * from './assignment-state-file.js';
export * from './assignment-state-read.js';

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
      checkRunDir(dir);
      writeExclusive(tmp, JSON.stringify(snapshot(), null, 2) + '\n');
      renameSync(tmp, file); // replaces a planted symlink at `file` itself, never follows it
      written = true;
    } catch (e) {
      disabled = true;
      const code = typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : String(e);
      const detail = e instanceof UnsafeRunDir ? `: ${e.message}` : '';
      warn(`cannot publish the assignment state as ${file} (${code}${detail}${code === 'EACCES' || code === 'EPERM' ? ': run as root or set VGPU_FLIP_RUN_DIR to a writable folder' : ''}); \`vgpu-flip debugfs\` will not show this assignment`);
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
