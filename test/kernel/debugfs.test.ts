// Kernel tests of `vgpu-flip debugfs` in the VM: the real CLI (node bin/vgpu-flip.js, built in
// dist/) as child processes. While `vgpu-flip assign` shows a vgpu-sim guest on vkms (DMABUF,
// then DRM_FB), `vgpu-flip debugfs --json` must join each guest plane to the hardware plane,
// CRTC and connector the assignment really used (checked against the assign process's own
// 'assigned' event and the kernel's state dump); without the assignment state file it still
// shows the DRM side; an unmounted debugfs path and a non-root user get a clear message.
//   bash test/rig/vm.sh --check-dmesg -- npx vitest run --configLoader runner --project kernel test/kernel/debugfs
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SimGuest, createSimInstance, type SimInstance } from '../../src/vgpu-sim/index.js';
import { findVkmsCard } from './kms-helpers.js';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const bin = path.join(root, 'bin', 'vgpu-flip.js');
const HOST_CARD = '/sys/module/vgpu_sim/parameters/host_card';
const W = 640;
const H = 480;
const OFF_B = 0x200000;
const CURSOR_OFF = 0x400000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** The CLI as a child process (async: the test keeps running while it works). */
function cli(args: string[], env: Record<string, string> = {}, extra: { uid?: number; gid?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [bin, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], ...extra });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => c.kill('SIGKILL'), 60_000);
    c.on('error', reject);
    c.on('close', (status) => {
      clearTimeout(t);
      resolve({ status, stdout, stderr });
    });
  });
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

let card = '';
let minor = '';
let inst: SimInstance | null = null;
let guest: SimGuest;
let runDir = '';
let assign: ChildProcessWithoutNullStreams | null = null;
/** the DMABUF assignment's published state (for the stale-file test) */
let published: Any = null;

function pattern(seed: number, bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes / 4; i++) b.writeUInt32LE((0xff000000 | ((i * 2654435761 + seed * 40503) >>> 8)) >>> 0, i * 4);
  return b;
}

beforeAll(() => {
  if (!existsSync(path.join(root, 'dist', 'cli', 'main.js'))) throw new Error('dist/ is not built: run `npm run build` before the kernel tests');
  card = findVkmsCard();
  minor = card.match(/card(\d+)$/)![1]!;
  // DRM_FB needs vgpu_sim bound to the vkms card (the rig's --param vgpu_sim.host_card=card0 does it too)
  const cur = readFileSync(HOST_CARD, 'utf8').trim();
  if (cur === '' || cur === '(null)') writeFileSync(HOST_CARD, path.basename(card));
  inst = createSimInstance('vgpu_sim-small');
  guest = new SimGuest(inst.uuid);
  guest.setMode('primary', { fourcc: 'XR24', width: W, height: H });
  guest.writePixels(0, pattern(1, W * H * 4));
  guest.writePixels(OFF_B, pattern(2, W * H * 4));
  guest.writePixels(CURSOR_OFF, Buffer.alloc(64 * 64 * 4, 0xff));
  guest.setMode('cursor', { fourcc: 'AR24', width: 64, height: 64, offset: CURSOR_OFF, x: 100, y: 50 });
  runDir = mkdtempSync('/tmp/vgpu-flip-run-');
});

async function stopAssign(): Promise<number | null> {
  const a = assign;
  assign = null;
  if (!a || a.exitCode !== null) return a?.exitCode ?? null;
  const done = new Promise<number | null>((r) => a.on('exit', (code) => r(code)));
  a.kill('SIGINT');
  return done;
}

afterEach(async () => {
  await stopAssign();
});

afterAll(() => {
  try {
    rmSync(runDir, { recursive: true, force: true });
  } finally {
    inst?.remove();
  }
});

/** Start `vgpu-flip assign` and wait for its 'assigned' event and its published state. */
async function startAssign(pathArg: 'dmabuf' | 'drm-fb'): Promise<{ assigned: Any; pid: number; stateFile: string; out: () => string }> {
  const c = spawn(
    process.execPath,
    [bin, 'assign', '--vgpu', inst!.uuid, '--device', card, '--plane', 'primary', '--plane', 'cursor', '--path', pathArg, '--position', '100,80', '--duration', '90', '--json'],
    { env: { ...process.env, VGPU_FLIP_RUN_DIR: runDir }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  assign = c;
  let out = '';
  let err = '';
  c.stdout.on('data', (d: Buffer) => (out += d.toString()));
  c.stderr.on('data', (d: Buffer) => (err += d.toString()));
  await waitFor(() => out.includes('"type":"assigned"') || c.exitCode !== null, 60_000, `vgpu-flip assign --path ${pathArg} to assign (stderr: ${err})`);
  expect(c.exitCode, `assign exited early: ${out}\n${err}`).toBeNull();
  const assigned = out
    .split('\n')
    .filter((l) => l.includes('"type":"assigned"'))
    .map((l) => JSON.parse(l) as Any)[0];
  const stateFile = path.join(runDir, `${c.pid}.json`);
  await waitFor(() => existsSync(stateFile) && (JSON.parse(readFileSync(stateFile, 'utf8')) as Any).state === 'assigned', 10_000, `the assignment state ${stateFile}`);
  return { assigned, pid: c.pid!, stateFile, out: () => out + err };
}

/** plane[ID] block of the kernel's state dump: its fb= and crtc= lines */
function kernelPlane(id: number): { fb: number; crtc: string } {
  const text = readFileSync(`/sys/kernel/debug/dri/${minor}/state`, 'utf8');
  const block = text.split(/^(?=plane\[|crtc\[|connector\[)/m).find((b) => b.startsWith(`plane[${id}]:`));
  if (!block) throw new Error(`plane ${id} is not in the state dump`);
  return { fb: Number(/^\tfb=(\d+)/m.exec(block)![1]), crtc: /^\tcrtc=(.*)$/m.exec(block)![1]! };
}

function guestRow(rep: Any, plane: string): Any {
  return rep.rows.find((r: Any) => r.guest?.plane === plane && r.guest?.vgpu === inst!.uuid);
}

describe('vgpu-flip debugfs joins guest planes to hardware planes', () => {
  it('DMABUF: guest plane -> the tool\'s imported fb -> the assigned hardware plane -> CRTC -> connector', async () => {
    const a = await startAssign('dmabuf');
    const layout = a.assigned.layout;
    const r = await cli(['debugfs', '--json', '--device', card], { VGPU_FLIP_RUN_DIR: runDir });
    expect(r.status, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout) as Any;
    expect(rep.assignments.map((x: Any) => x.pid)).toEqual([a.pid]);
    for (const kind of ['primary', 'cursor']) {
      const want = layout.assignments.find((x: Any) => x.guest === kind);
      const row = guestRow(rep, kind);
      expect(row, `${kind} row in ${r.stdout}`).toBeDefined();
      const k = kernelPlane(want.planeId);
      expect(row).toMatchObject({
        guest: { source: 'vgpu-flip', path: 'dmabuf', pid: a.pid },
        hwPlane: { id: want.planeId, type: want.planeType },
        crtc: { id: layout.crtcId, active: true },
        dst: want.dst,
        notes: [],
      });
      // the fb is the one the kernel shows on that plane, imported, made by the tool
      expect(row.fb).toMatchObject({ id: k.fb, imported: true, origin: 'vgpu-flip', vgpuSim: null, format: kind === 'primary' ? 'XR24' : 'AR24' });
      expect(row.crtc.name).toBe(k.crtc);
      expect(row.connectors.map((c: Any) => c.name)).toEqual(['Virtual-1']);
    }
    expect(guestRow(rep, 'primary').fb).toMatchObject({ width: W, height: H });
    // the table says the same
    const t = await cli(['debugfs', '--device', card], { VGPU_FLIP_RUN_DIR: runDir });
    expect(t.status, t.stderr).toBe(0);
    const pid = layout.assignments.find((x: Any) => x.guest === 'primary').planeId;
    expect(t.stdout).toMatch(new RegExp(`${inst!.uuid.slice(0, 8)} primary\\s+dmabuf\\s+\\d+\\s+XR24\\s+640x480\\s+vgpu-flip ${a.pid} \\(\\S+\\)\\s+yes\\s+${pid} overlay\\s+${layout.crtcId} crtc-0\\s+\\d+ Virtual-1\\s+640x480\\+100\\+80`));
    expect(t.stdout).toContain('vgpu-flip processes:');
    published = JSON.parse(readFileSync(a.stateFile, 'utf8'));
    // SIGINT: the assign process restores the display and removes its state file
    expect(await stopAssign()).toBe(130);
    expect(existsSync(a.stateFile)).toBe(false);
  });

  it('DRM_FB: the fb is vgpu-sim\'s own host framebuffer; the join follows in-kernel flips; without the state file it still shows the DRM side', async () => {
    expect(guest.info().drmFb, 'vgpu_sim is not bound to the vkms card (host_card)').toBe(true);
    const a = await startAssign('drm-fb');
    const layout = a.assigned.layout;
    const hwPrimary = layout.assignments.find((x: Any) => x.guest === 'primary');
    const check = async (env: Record<string, string>, source: string): Promise<Any> => {
      const r = await cli(['debugfs', '--json'], env);
      expect(r.status, r.stderr).toBe(0);
      const rep = JSON.parse(r.stdout) as Any;
      const row = guestRow(rep, 'primary');
      expect(row, r.stdout).toBeDefined();
      const k = kernelPlane(hwPrimary.planeId);
      expect(row).toMatchObject({
        guest: { source, plane: 'primary', path: 'drm_fb' },
        fb: { id: k.fb, origin: 'vgpu-sim', vgpuSim: { uuid: inst!.uuid, plane: 'primary' }, imported: true, width: W, height: H },
        hwPlane: { id: hwPrimary.planeId },
        crtc: { id: layout.crtcId },
        connectors: [expect.objectContaining({ name: 'Virtual-1' })],
        dst: hwPrimary.dst,
      });
      expect(row.fb.id).toBe(guest.fbId('primary'));
      const cursor = guestRow(rep, 'cursor');
      expect(cursor).toMatchObject({ guest: { source }, hwPlane: { id: layout.assignments.find((x: Any) => x.guest === 'cursor').planeId } });
      return rep;
    };
    const fb0 = guest.fbId('primary');
    await check({ VGPU_FLIP_RUN_DIR: runDir }, 'vgpu-flip');
    // the guest flips: the kernel moves the hardware plane to the new fb by itself
    guest.flip('primary', OFF_B);
    await waitFor(() => kernelPlane(hwPrimary.planeId).fb !== fb0, 5_000, 'the in-kernel flip');
    const after = await check({ VGPU_FLIP_RUN_DIR: runDir }, 'vgpu-flip');
    expect(guestRow(after, 'primary').fb.id).not.toBe(fb0);
    expect(guestRow(after, 'primary').notes).toEqual([]);
    // no assignment state at all (another folder): the vGPU's fb_id attribute still names the guest plane
    const empty = mkdtempSync('/tmp/vgpu-flip-run-empty-');
    try {
      const rep = await check({ VGPU_FLIP_RUN_DIR: empty }, 'vgpu-sim');
      expect(rep.assignments).toEqual([]);
      expect(rep.notes.join('\n')).toMatch(/no running vgpu-flip assignment/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
    expect(await stopAssign()).toBe(130);
    expect(existsSync(a.stateFile)).toBe(false);
    guest.flip('primary', 0);
  });

  it('the state file of a process that is gone is ignored as stale', async () => {
    // a real file of the DMABUF assignment above, as a process killed with SIGKILL leaves it
    // (not done for real here: it would leave the display without its console for later tests)
    expect(published, 'the DMABUF test ran first').not.toBeNull();
    const dead = spawn(process.execPath, ['-e', '0']);
    const pid = dead.pid!;
    await new Promise<void>((r) => dead.on('exit', () => r()));
    const file = path.join(runDir, `${pid}.json`);
    writeFileSync(file, JSON.stringify({ ...published, pid }));
    try {
      const r = await cli(['debugfs', '--json'], { VGPU_FLIP_RUN_DIR: runDir });
      expect(r.status, r.stderr).toBe(0);
      const rep = JSON.parse(r.stdout) as Any;
      expect(rep.assignments).toEqual([]);
      expect(rep.staleAssignments).toEqual([{ file, pid, why: `process ${pid} is not running` }]);
      expect(rep.notes.join('\n')).toContain(`ignored stale assignment state ${file}`);
      for (const row of rep.rows) expect(row.guest?.pid ?? null).not.toBe(pid);
    } finally {
      rmSync(file, { force: true });
    }
  });

  it('with no vgpu-flip running, the DRM side and the idle guest planes are shown', async () => {
    expect(readdirSync(runDir).filter((n) => n.endsWith('.json'))).toEqual([]);
    // --kms: plane types from the KMS API (read-only queries)
    const r = await cli(['debugfs', '--json', '--kms'], { VGPU_FLIP_RUN_DIR: runDir });
    expect(r.status, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout) as Any;
    const dev = rep.devices.find((d: Any) => String(d.minor) === minor);
    expect(dev).toMatchObject({ driver: 'vkms' });
    expect(dev.planes).toHaveLength(10);
    expect(dev.planes.map((p: Any) => p.type).sort()).toEqual(['cursor', ...Array(8).fill('overlay'), 'primary']);
    expect(dev.crtcs).toHaveLength(1);
    expect(dev.connectors.map((c: Any) => c.name)).toEqual(['Virtual-1', 'Writeback-1']);
    // the console's own framebuffer (fbcon lights vkms in the rig unless --no-fbdev)
    const host = rep.rows.filter((x: Any) => x.guest === null && x.minor === Number(minor));
    for (const h of host) expect(h.fb.origin).not.toBe('vgpu-sim');
    // the guest planes are up but nobody shows them
    expect(guestRow(rep, 'primary')).toMatchObject({ guest: { source: 'vgpu-sim' }, hwPlane: null, notes: ['guest plane is up but on no hardware plane'] });
    const sim = rep.vgpuSim.find((s: Any) => s.uuid === inst!.uuid);
    expect(sim).toMatchObject({ drmFb: true, type: 'small' });
    expect(sim.planes.map((p: Any) => [p.plane, p.status.enabled])).toEqual([
      ['primary', true],
      ['cursor', true],
      ['overlay', false],
    ]);
  });

  it('an unmounted debugfs path and a non-root user: a clear message, non-zero exit, no stack trace', async () => {
    const empty = mkdtempSync('/tmp/vgpu-flip-nodebugfs-');
    try {
      for (const args of [['debugfs', '--debugfs', empty], ['debugfs', '--json']]) {
        const env: Record<string, string> = args.length === 2 ? { VGPU_FLIP_DEBUGFS: empty } : {};
        const r = await cli(args, env);
        expect(r.status).toBe(3);
        expect(r.stdout).toBe('');
        expect(r.stderr).toBe(`vgpu-flip debugfs: debugfs is not mounted at ${empty} (the folder is empty): mount it (as root): mount -t debugfs none ${empty}\n`);
      }
      // (a missing folder, no dri/ folder, no state file: host tests of collectDebugfs)
      mkdirSync(path.join(empty, 'dri'));
      const noDrm = await cli(['debugfs', '--debugfs', empty]);
      expect(noDrm.status).toBe(2);
      expect(noDrm.stderr).toMatch(/^vgpu-flip debugfs: no DRM device with an atomic state dump under /);
      expect(noDrm.stderr).not.toMatch(/\n\s+at /);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
    // debugfs is root-only (mode 0700): the nobody user is told to run as root
    const r = await cli(['debugfs'], { HOME: '/tmp' }, { uid: 65534, gid: 65534 });
    expect(r.stderr).toMatch(/^vgpu-flip debugfs: cannot read \/sys\/kernel\/debug \(EACCES\): debugfs is readable by root only: run as root/);
    expect(r.status).toBe(4);
  });
});
