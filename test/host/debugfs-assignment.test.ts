// The assignment state a running `vgpu-flip assign` publishes for `vgpu-flip debugfs`: written
// atomically, refreshed on the engine's events, removed on stop; stale files (dead or reused
// pids, garbage) ignored by the reader. The engine is a stand-in emitting the real event types.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EventEmitter } from 'eventemitter3';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ASSIGNMENT_SCHEMA,
  procStartTime,
  publishAssignmentState,
  readAssignmentStates,
  type AssignmentStateFile,
} from '../../src/debugfs/assignment-state.js';
import type { FlipEngine } from '../../src/flip/engine.js';
import type { EngineEvents } from '../../src/flip/events.js';
import type { Layout } from '../../src/flip/planner.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'vgpu-flip-run-'));
  dirs.push(d);
  return d;
}

const LAYOUT: Layout = {
  crtcId: 51,
  crtcIndex: 0,
  assignments: [
    { guest: 'primary', planeId: 33, planeType: 'overlay', planeIndex: 1, src: { x: 0, y: 0, w: 640, h: 480 }, dst: { x: 100, y: 80, w: 640, h: 480 }, rank: 1 },
    { guest: 'cursor', planeId: 49, planeType: 'cursor', planeIndex: 9, src: { x: 0, y: 0, w: 64, h: 64 }, dst: { x: 200, y: 130, w: 64, h: 64 }, rank: 0 },
  ],
  disable: [31],
  cost: 1,
};

class FakeEngine extends EventEmitter<EngineEvents> {
  path = 'dmabuf' as const;
  layout: Layout | null = null;
  lastAssigned: { paths: Record<string, string> } | null = null;
  fbs: number[] = [];
  guest = { label: 'vfio-device test' };
  stats = { ticks: 0, commits: 0, assignCommits: 0, kernelFlips: 0, guestFlips: null, frames: 0, errors: 0, planes: {} };
  device = { path: '/dev/dri/card0' };
  displayConnector = { id: 52, name: 'Virtual-1' };
  currentMode = { hdisplay: 1024, vdisplay: 768, vrefresh: 60 };
  get assignedLayout(): Layout | null {
    return this.layout;
  }
  get crtcId(): number {
    return 51;
  }
  liveFbs(): number[] {
    return this.fbs;
  }
}

const read = (f: string): AssignmentStateFile => JSON.parse(readFileSync(f, 'utf8')) as AssignmentStateFile;

describe('publishAssignmentState', () => {
  it('writes <pid>.json atomically, follows assignment and frames, removes it on stop', () => {
    const dir = tmp();
    const e = new FakeEngine();
    const warnings: string[] = [];
    const pub = publishAssignmentState(e as unknown as FlipEngine, { dir, vgpu: 'dd5d97a7-3c3d-40ac-9730-7920debdadd1', warn: (m) => warnings.push(m) });
    expect(pub.file).toBe(path.join(dir, `${process.pid}.json`));
    let s = read(pub.file);
    expect(s).toMatchObject({ schema: ASSIGNMENT_SCHEMA, pid: process.pid, state: 'starting', planes: [], path: 'dmabuf', device: '/dev/dri/card0', guest: 'vfio-device test', mode: '1024x768@60', connector: { id: 52, name: 'Virtual-1' } });
    expect(s.procStart).toBe(procStartTime(process.pid));
    // the assignment is written at once
    e.layout = LAYOUT;
    e.lastAssigned = { paths: { primary: 'dmabuf', cursor: 'dmabuf' } };
    e.fbs = [62, 63];
    e.emit('assigned', { layout: LAYOUT, paths: { primary: 'dmabuf', cursor: 'dmabuf' }, explanation: [], modeset: false, reason: 'first frame' });
    e.emit('frame', { plane: 'primary', id: 1, fbId: 62, path: 'dmabuf', sequence: 0, vblankUs: 0, latencyUs: 0, latencyVblanks: 0, imported: true, bytesCopied: 0, frame: 0 });
    e.emit('frame', { plane: 'cursor', id: 2, fbId: 63, path: 'dmabuf', sequence: 0, vblankUs: 0, latencyUs: 0, latencyVblanks: 0, imported: true, bytesCopied: 0, frame: 0 });
    pub.flush();
    s = read(pub.file);
    expect(s.state).toBe('assigned');
    expect(s.crtc).toEqual({ id: 51, index: 0 });
    expect(s.fbIdsInUse).toEqual([62, 63]);
    expect(s.planes).toEqual([
      { guest: 'primary', path: 'dmabuf', hwPlaneId: 33, hwPlaneType: 'overlay', hwPlaneIndex: 1, crtcId: 51, fbId: 62, bufferId: 1, recentFbIds: [62], src: LAYOUT.assignments[0]!.src, dst: LAYOUT.assignments[0]!.dst },
      expect.objectContaining({ guest: 'cursor', hwPlaneId: 49, fbId: 63, bufferId: 2 }),
    ]);
    // a flip to another buffer and back: recent list without duplicates, most recent last
    for (const [id, fb] of [[3, 64], [1, 62]] as const) {
      e.emit('frame', { plane: 'primary', id, fbId: fb, path: 'dmabuf', sequence: 5, vblankUs: 1, latencyUs: 1, latencyVblanks: 1, imported: false, bytesCopied: 0, frame: 1 });
    }
    e.emit('fallback', { plane: 'cursor', from: 'dmabuf', to: 'copy', reason: 'test' });
    e.emit('error', { stage: 'commit', message: 'EINVAL\nmore', kernel: null, count: 1, fatal: false });
    pub.flush();
    s = read(pub.file);
    expect(s.planes[0]).toMatchObject({ fbId: 62, bufferId: 1, recentFbIds: [64, 62] });
    expect(s.planes[1]!.path).toBe('copy');
    expect(s.lastError).toBe('commit: EINVAL');
    expect(readdirSync(dir)).toEqual([`${process.pid}.json`]); // no temporary file left
    // the engine stops: the file goes, listeners are removed
    e.emit('stopped', { restored: true, message: 'display restored' });
    expect(existsSync(pub.file)).toBe(false);
    expect(pub.written).toBe(false);
    expect(e.listenerCount('frame')).toBe(0);
    pub.close(); // idempotent
    expect(warnings).toEqual([]);
  });

  it('the REGION path is published as "region" (the engine calls its frames copies)', () => {
    const dir = tmp();
    const e = new FakeEngine();
    (e as unknown as { path: string }).path = 'region';
    const pub = publishAssignmentState(e as unknown as FlipEngine, { dir });
    e.layout = LAYOUT;
    e.emit('assigned', { layout: LAYOUT, paths: { primary: 'copy', cursor: 'copy' }, explanation: [], modeset: false, reason: 'x' });
    e.emit('frame', { plane: 'primary', id: 0, fbId: 70, path: 'copy', sequence: 0, vblankUs: 0, latencyUs: 0, latencyVblanks: 0, imported: false, bytesCopied: 1228800, frame: 0 });
    pub.flush();
    expect(read(pub.file).planes.map((p) => [p.guest, p.path, p.fbId])).toEqual([
      ['primary', 'region', 70],
      ['cursor', 'region', 0],
    ]);
    pub.close();
    expect(existsSync(pub.file)).toBe(false);
  });

  it('an unwritable folder disables publishing with one warning, never throws', () => {
    const dir = tmp();
    const blocker = path.join(dir, 'file');
    writeFileSync(blocker, 'x');
    const warnings: string[] = [];
    const e = new FakeEngine();
    const pub = publishAssignmentState(e as unknown as FlipEngine, { dir: path.join(blocker, 'sub'), warn: (m) => warnings.push(m) });
    e.emit('assigned', { layout: LAYOUT, paths: {}, explanation: [], modeset: false, reason: 'x' });
    pub.flush();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/cannot publish the assignment state as .*\(ENOTDIR\)/);
    pub.close();
  });
});

describe('readAssignmentStates', () => {
  const base = (pid: number, over: Partial<AssignmentStateFile> = {}): AssignmentStateFile => ({
    schema: ASSIGNMENT_SCHEMA,
    pid,
    procStart: 100,
    command: 'assign',
    startedAt: '',
    updatedAt: '',
    vgpu: null,
    guest: '',
    device: '/dev/dri/card0',
    drmMinor: 0,
    path: 'dmabuf',
    state: 'assigned',
    crtc: null,
    connector: null,
    mode: null,
    planes: [],
    fbIdsInUse: [],
    stats: { frames: 0, commits: 0, assignCommits: 0, kernelFlips: 0, guestFlips: null, errors: 0 },
    lastError: null,
    ...over,
  });

  it('keeps live processes, ignores dead or reused pids and garbage, with reasons', () => {
    const dir = tmp();
    const put = (name: string, v: unknown): void => writeFileSync(path.join(dir, name), typeof v === 'string' ? v : JSON.stringify(v));
    put('10.json', base(10));
    put('11.json', base(11)); // dead
    put('12.json', base(12)); // pid reused: other start time
    put('13.json', '{ not json');
    put('14.json', { ...base(14), schema: 'other@9' });
    put('15.json', base(99)); // wrong name
    put('.16.json.tmp', base(16)); // a write in progress: not looked at
    put('notes.txt', 'x');
    const r = readAssignmentStates(dir, { alive: (pid) => pid !== 11, startTime: (pid) => (pid === 12 ? 555 : 100) });
    expect(r.live.map((s) => s.pid)).toEqual([10]);
    expect(r.stale.map((s) => [path.basename(s.file), s.why.replace(/\(.*\)/, '(...)')])).toEqual([
      ['11.json', 'process 11 is not running'],
      ['12.json', 'pid 12 belongs to another process now (...)'],
      ['13.json', 'not valid JSON (...)'],
      ['14.json', 'schema "other@9", expected vgpu-flip/assignment-state@1'],
      ['15.json', 'written for pid 99, named 15.json'],
    ]);
    expect(r.error).toBeNull();
  });

  it('a missing folder is no error; this process counts as alive by default', () => {
    expect(readAssignmentStates(path.join(tmp(), 'none'))).toEqual({ dir: expect.any(String), live: [], stale: [], error: null });
    const dir = tmp();
    writeFileSync(path.join(dir, `${process.pid}.json`), JSON.stringify(base(process.pid, { procStart: procStartTime(process.pid) })));
    expect(readAssignmentStates(dir).live).toHaveLength(1);
  });
});
