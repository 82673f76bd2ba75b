// Reading the assignment states of running vgpu-flip processes (format: assignment-state-file.ts).
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { ASSIGNMENT_SCHEMA, defaultRunDir, procStartTime, readStateFileText, type AssignmentStateFile } from './assignment-state-file.js';

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
      v = JSON.parse(readStateFileText(file));
    } catch (e) {
      // a file removed between readdir and read is just gone
      const code = typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : null;
      const why = code === 'ELOOP' ? 'a symlink (ignored)' : code === 'ENOTREG' ? 'not a regular file (ignored)' : code === 'EFBIG' ? 'larger than 1 MiB (ignored)' : code ? `unreadable (${code})` : `not valid JSON (${(e as Error).message})`;
      if (code !== 'ENOENT') out.stale.push({ file, pid: namePid, why });
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
