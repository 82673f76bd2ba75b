// The VMM process behind `assign --pid/--domain/--pid-file`: notice when it exits (a pidfd
// polled by the event loop: it becomes readable when the process exits; a liveness check every
// 500 ms where the addon has no pidfdOpen), and find it again when it comes back (--wait).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { native } from '../binding/index.js';
import { readLibvirtDomain, readPidFile } from './libvirt.js';
import { readVgpu } from './sysfs.js';
import type { SysRoots } from './types.js';

export interface VmmWatch {
  /** 'pidfd' (event loop, no timer) or 'poll' (kill(pid, 0) + start time every 500 ms) */
  readonly how: 'pidfd' | 'poll';
  /** stop watching (idempotent) */
  stop(): void;
}

export interface WatchDeps {
  /** pidfd_open (default: the addon's, when it has one) */
  pidfdOpen?: ((pid: number) => number) | undefined;
  pollReadable?: (fd: number, cb: () => void) => { stop(): void };
  close?: (fd: number) => void;
  /** is the process (still the one of this start time) alive? (fallback path) */
  alive?: (pid: number) => boolean;
  intervalMs?: number;
  procRoot?: string;
}

/** /proc/PID/stat start time, null when gone. */
export function startTimeOf(pid: number, procRoot = '/proc'): number | null {
  try {
    const s = readFileSync(path.join(procRoot, String(pid), 'stat'), 'utf8');
    const v = Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[19]);
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

/** Call onExit once when process `pid` exits. Throws (ESRCH) when it is not running now. */
export function watchVmmExit(pid: number, onExit: () => void, d: WatchDeps = {}): VmmWatch {
  const open = 'pidfdOpen' in d ? d.pidfdOpen : native.pidfdOpen?.bind(native);
  let done = false;
  const fire = (): void => {
    if (done) return;
    done = true;
    onExit();
  };
  if (open) {
    const pidfd = open(pid);
    const close = d.close ?? ((fd: number) => native.close(fd));
    const poller = (d.pollReadable ?? ((fd, cb) => native.pollReadable(fd, cb)))(pidfd, () => {
      stop();
      fire();
    });
    let stopped = false;
    const stop = (): void => {
      if (stopped) return;
      stopped = true;
      poller.stop();
      try {
        close(pidfd);
      } catch {
        /* already closed */
      }
    };
    return { how: 'pidfd', stop: () => ((done = true), stop()) };
  }
  const procRoot = d.procRoot ?? '/proc';
  const t0 = startTimeOf(pid, procRoot);
  const alive = d.alive ?? ((p: number) => t0 !== null && startTimeOf(p, procRoot) === t0);
  if (!alive(pid)) throw Object.assign(new Error(`pid ${pid}: no such process`), { code: 'ESRCH' });
  const timer = setInterval(() => {
    if (!alive(pid)) {
      clearInterval(timer);
      fire();
    }
  }, d.intervalMs ?? 500);
  return { how: 'poll', stop: () => ((done = true), clearInterval(timer)) };
}

/** How to find the VMM again: the same libvirt domain, pid file, or the holder of the vGPU's group. */
export type VmmLocator =
  | { kind: 'domain'; name: string; runDir?: string }
  | { kind: 'pid-file'; file: string }
  | { kind: 'holder'; uuid: string; roots?: SysRoots }
  | { kind: 'pid'; pid: number };

export function describeLocator(l: VmmLocator): string {
  switch (l.kind) {
    case 'domain':
      return `libvirt domain ${l.name}`;
    case 'pid-file':
      return `pid file ${l.file}`;
    case 'holder':
      return `a process holding vGPU ${l.uuid}`;
    case 'pid':
      return `pid ${l.pid}`;
  }
}

/** The VMM's pid now, or null (not running). Never throws. */
export function locateVmm(l: VmmLocator, exclude?: number): number | null {
  let pid: number | null = null;
  try {
    if (l.kind === 'domain') pid = readLibvirtDomain(l.name, l.runDir).pid;
    else if (l.kind === 'pid-file') pid = readPidFile(l.file);
    else if (l.kind === 'holder') pid = readVgpu(l.uuid, l.roots).holders[0]?.pid ?? null;
    else pid = l.pid;
  } catch {
    pid = null;
  }
  if (pid === null || pid === exclude) return null;
  return startTimeOf(pid) !== null ? pid : null;
}

export interface WaitOptions {
  /** first delay (ms, default 250), doubled up to maxMs (default 1500) */
  minMs?: number;
  maxMs?: number;
  /** aborts the wait (SIGINT) */
  signal?: AbortSignal;
  /** the pid that just exited (not "back" even if a stale pid file still names it) */
  exclude?: number;
  /** try to attach to a found pid; a thrown error means "not ready yet" (the VM is still starting) */
  attach: (pid: number) => void | Promise<void>;
  /** one line per new situation (not every retry) */
  log?: (s: string) => void;
}

/** Wait, with backoff (every 1.5 s at most), for the VMM to come back and attach to it. Resolves with its pid. */
export async function waitForVmm(l: VmmLocator, o: WaitOptions): Promise<number> {
  const min = o.minMs ?? 250;
  const max = o.maxMs ?? 1500;
  let delay = min;
  let lastMsg = '';
  const say = (m: string): void => {
    if (m !== lastMsg) o.log?.(m);
    lastMsg = m;
  };
  for (;;) {
    if (o.signal?.aborted) throw new Error('waiting for the VMM: interrupted');
    const pid = locateVmm(l, o.exclude);
    if (pid !== null) {
      try {
        await o.attach(pid);
        return pid;
      } catch (e) {
        say(`VMM pid ${pid} found (${describeLocator(l)}), not ready yet: ${(e as Error).message.split('\n')[0]}; retrying`);
      }
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, delay);
      o.signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
    });
    delay = Math.min(max, delay * 2);
  }
}
