// The join of `vgpu-flip debugfs` and its collection from a debugfs tree, on text recorded in
// the VM (vkms + vgpu-sim, Debian 6.1): guest plane -> framebuffer -> hardware plane -> CRTC ->
// connector, with and without a running vgpu-flip's assignment state; the clear errors when
// debugfs is not there.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { AssignmentStateFile } from '../../src/debugfs/assignment-state.js';
import { collectDebugfs, DebugfsUnavailableError } from '../../src/debugfs/collect.js';
import { joinDebugfs, type DeviceState } from '../../src/debugfs/join.js';
import { debugfsJson, renderDebugfsJson, renderDebugfsText } from '../../src/debugfs/render.js';
import { parseDrmState } from '../../src/debugfs/state.js';
import type { SimInstanceDebug } from '../../src/debugfs/vgpu.js';
import { parseStatus } from '../../src/vgpu-sim/index.js';
import { main } from '../../src/cli/main.js';

const FIX = path.join(import.meta.dirname, '..', 'fixtures');
const fx = (name: string): string => readFileSync(path.join(FIX, name), 'utf8');
// the instance the fixtures were recorded with
const UUID = 'dd5d97a7-3c3d-40ac-9730-7920debdadd1';

function device(stateFile: string): DeviceState {
  return { minor: 0, driver: 'vkms', state: parseDrmState(fx(stateFile)), framebuffers: null, planeTypes: new Map() };
}

function assignment(file: string): AssignmentStateFile {
  return JSON.parse(fx(file)) as AssignmentStateFile;
}

/** vgpu-sim as recorded during the DRM_FB assignment (debugfs-vkms-drmfb-sim.txt) */
function simDrmFb(): SimInstanceDebug {
  const blocks = fx('debugfs-vkms-drmfb-sim.txt').split(/^== /m).slice(1);
  return {
    uuid: UUID,
    dir: `/sys/kernel/debug/vgpu_sim/${UUID}`,
    type: 'small',
    drmFb: true,
    hostCard: 'card0',
    open: true,
    flipCount: 1,
    planes: blocks.map((b) => {
      const [name = '', l1 = '', l2 = '', id = '0'] = b.split('\n');
      return { plane: name.trim() as 'primary', status: parseStatus(`${l1}\n${l2}\n`), fbId: Number(id) };
    }),
  };
}

describe('joinDebugfs', () => {
  it('DMABUF: guest plane -> the tool\'s imported fb -> overlay plane -> CRTC -> connector', () => {
    const a = assignment('debugfs-vkms-dmabuf-assignment.json');
    const { rows, notes } = joinDebugfs({ devices: [device('debugfs-vkms-dmabuf-state.txt')], sim: [], assignments: [a] });
    expect(notes).toEqual([]);
    expect(rows).toHaveLength(2);
    const [primary, cursor] = rows;
    expect(primary).toMatchObject({
      guest: { source: 'vgpu-flip', vgpu: UUID, plane: 'primary', path: 'dmabuf', pid: a.pid },
      fb: { id: 62, format: 'XR24', width: 640, height: 480, imported: true, origin: 'vgpu-flip', allocatedBy: 'node', vgpuSim: null },
      hwPlane: { id: 33, name: 'plane-1', type: 'overlay' },
      crtc: { id: 51, name: 'crtc-0', active: true, mode: '1024x768@60' },
      connectors: [{ id: 52, name: 'Virtual-1' }],
      dst: { x: 100, y: 80, w: 640, h: 480 },
      notes: [],
    });
    expect(cursor).toMatchObject({ guest: { plane: 'cursor' }, fb: { id: 63, format: 'AR24' }, hwPlane: { id: 49, type: 'cursor' }, dst: { x: 200, y: 130, w: 64, h: 64 } });
  });

  it('DRM_FB with the assignment state: the fb is vgpu-sim\'s own, placed by vgpu-flip', () => {
    const a = assignment('debugfs-vkms-drmfb-assignment.json');
    const { rows } = joinDebugfs({ devices: [device('debugfs-vkms-drmfb-state.txt')], sim: [simDrmFb()], assignments: [a] });
    expect(rows.map((r) => [r.guest?.source, r.guest?.plane, r.guest?.path, r.fb?.id, r.fb?.origin, r.fb?.vgpuSim?.plane, r.hwPlane?.id, r.crtc?.id, r.connectors[0]?.name])).toEqual([
      ['vgpu-flip', 'primary', 'drm_fb', 61, 'vgpu-sim', 'primary', 33, 51, 'Virtual-1'],
      ['vgpu-flip', 'cursor', 'drm_fb', 62, 'vgpu-sim', 'cursor', 49, 51, 'Virtual-1'],
    ]);
    expect(rows.every((r) => r.notes.length === 0)).toBe(true);
  });

  it('DRM_FB without any assignment state: vgpu-sim\'s fb_id attribute still names the guest plane', () => {
    const { rows } = joinDebugfs({ devices: [device('debugfs-vkms-drmfb-state.txt')], sim: [simDrmFb()], assignments: [] });
    expect(rows.map((r) => [r.guest?.source, r.guest?.vgpu, r.guest?.plane, r.fb?.id, r.hwPlane?.id])).toEqual([
      ['vgpu-sim', UUID, 'primary', 61, 33],
      ['vgpu-sim', UUID, 'cursor', 62, 49],
    ]);
    expect(rows[0]!.notes[0]).toMatch(/not a running vgpu-flip/);
  });

  it('idle: the host\'s own content (fbcon) is a row too; no guest', () => {
    const { rows } = joinDebugfs({ devices: [device('debugfs-vkms-idle-state.txt')], sim: [], assignments: [] });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ guest: null, fb: { id: 60, origin: 'kernel', allocatedBy: '[fbcon]', imported: false }, hwPlane: { id: 31 }, crtc: { id: 51 }, dst: { x: 0, y: 0, w: 1024, h: 768 } });
  });

  it('disagreements and guest planes that are not on screen are reported', () => {
    const a = assignment('debugfs-vkms-dmabuf-assignment.json');
    // the assignment state says the tool showed other fbs than the ones on the planes
    const moved: AssignmentStateFile = { ...a, fbIdsInUse: [90], planes: a.planes.map((p) => ({ ...p, fbId: 90, recentFbIds: [90] })) };
    const r1 = joinDebugfs({ devices: [device('debugfs-vkms-dmabuf-state.txt')], sim: [], assignments: [moved] });
    expect(r1.rows[0]!.notes).toEqual([`shows fb 62, but vgpu-flip pid ${a.pid} last put fb 90 there`]);
    // the same assignment against the idle state: the planes are off
    const r2 = joinDebugfs({ devices: [device('debugfs-vkms-idle-state.txt')], sim: [], assignments: [a] });
    const off = r2.rows.filter((r) => r.guest);
    expect(off.map((r) => [r.guest!.plane, r.hwPlane?.id, r.fb])).toEqual([
      ['primary', 33, null],
      ['cursor', 49, null],
    ]);
    expect(off[0]!.notes[0]).toMatch(/plane is off now/);
    // an enabled vgpu-sim plane nobody shows
    const sim = simDrmFb();
    const r3 = joinDebugfs({ devices: [device('debugfs-vkms-idle-state.txt')], sim: [sim], assignments: [] });
    expect(r3.rows.filter((r) => r.guest).map((r) => [r.guest!.plane, r.fb?.id, r.hwPlane, r.notes[0]])).toEqual([
      ['primary', 61, null, 'guest plane is up but on no hardware plane'],
      ['cursor', 62, null, 'guest plane is up but on no hardware plane'],
    ]);
    // a process that has not assigned yet
    const r4 = joinDebugfs({ devices: [device('debugfs-vkms-idle-state.txt')], sim: [], assignments: [{ ...a, state: 'starting', planes: [] }] });
    expect(r4.notes[0]).toMatch(/has no assignment yet/);
  });
});

// ------------------------------------------------------------------ collection from a tree

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  vi.restoreAllMocks();
});

function tmp(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'vgpu-flip-debugfs-'));
  dirs.push(d);
  return d;
}

/** A debugfs tree: dri/0/{state,framebuffer,name} and optionally a vgpu_sim instance. */
function fakeDebugfs(kind: 'idle' | 'dmabuf' | 'drmfb', withSim = false): string {
  const root = tmp();
  mkdirSync(path.join(root, 'dri', '0'), { recursive: true });
  mkdirSync(path.join(root, 'dri', '128'), { recursive: true }); // a render node: ignored
  writeFileSync(path.join(root, 'dri', '0', 'state'), fx(`debugfs-vkms-${kind}-state.txt`));
  writeFileSync(path.join(root, 'dri', '0', 'name'), 'vkms dev=vkms unique=vkms\n');
  if (kind !== 'idle') writeFileSync(path.join(root, 'dri', '0', 'framebuffer'), fx(`debugfs-vkms-${kind}-framebuffer.txt`));
  if (withSim) {
    const sim = simDrmFb();
    const d = path.join(root, 'vgpu_sim', UUID);
    for (const p of sim.planes) {
      mkdirSync(path.join(d, p.plane), { recursive: true });
      const b = fx('debugfs-vkms-drmfb-sim.txt').split(/^== /m).find((x) => x.startsWith(p.plane))!.split('\n');
      writeFileSync(path.join(d, p.plane, 'status'), `${b[1]}\n${b[2]}\n`);
      writeFileSync(path.join(d, p.plane, 'fb_id'), `${b[3]}\n`);
    }
    writeFileSync(path.join(d, 'info'), 'type=small vram_size=33554432 max_width=1920 max_height=1080 open=1 cached_buffers=2 next_id=6 drm_fb=1\n');
    writeFileSync(path.join(d, 'flip_count'), '1\n');
  }
  return root;
}

function runDirWith(file: AssignmentStateFile): string {
  const d = tmp();
  // the recorded file names a pid of the VM: publish it as this (live) process
  const me = { ...file, pid: process.pid, procStart: null };
  writeFileSync(path.join(d, `${process.pid}.json`), JSON.stringify(me));
  return d;
}

describe('collectDebugfs', () => {
  it('reads the tree, the assignment state and vgpu-sim, and joins them (DRM_FB)', () => {
    const root = fakeDebugfs('drmfb', true);
    const rep = collectDebugfs({ debugfsRoot: root, runDir: runDirWith(assignment('debugfs-vkms-drmfb-assignment.json')), simHostCardParam: path.join(root, 'none') });
    expect(rep.devices.map((d) => [d.minor, d.driver, d.framebuffers?.length])).toEqual([[0, 'vkms', 3]]);
    expect(rep.assignments.live).toHaveLength(1);
    expect(rep.sim[0]!.planes.map((p) => p.fbId)).toEqual([61, 62, null]);
    expect(rep.rows.map((r) => [r.guest?.source, r.guest?.plane, r.fb?.id, r.fb?.origin, r.hwPlane?.id, r.crtc?.id, r.connectors.map((c) => c.name).join()])).toEqual([
      ['vgpu-flip', 'primary', 61, 'vgpu-sim', 33, 51, 'Virtual-1'],
      ['vgpu-flip', 'cursor', 62, 'vgpu-sim', 49, 51, 'Virtual-1'],
    ]);
    const text = renderDebugfsText(rep);
    expect(text).toMatch(/dd5d97a7 primary\s+drm_fb\s+61\s+XR24\s+640x480\s+vgpu-sim\s+yes\s+33 overlay\s+51 crtc-0\s+52 Virtual-1\s+640x480\+100\+80/);
    const json = JSON.parse(renderDebugfsJson(rep)) as { rows: { fb: { modifier: string } }[]; devices: unknown[] };
    expect(json.rows[0]!.fb.modifier).toBe('0x0');
    expect(json.devices).toHaveLength(1);
  });

  it('DMABUF: vgpu-sim\'s fb_id files are not read when every imported fb is claimed by vgpu-flip', () => {
    const root = fakeDebugfs('dmabuf', true);
    const rep = collectDebugfs({ debugfsRoot: root, runDir: runDirWith(assignment('debugfs-vkms-dmabuf-assignment.json')) });
    expect(rep.sim[0]!.planes.map((p) => p.fbId)).toEqual([null, null, null]);
    expect(rep.rows.map((r) => [r.guest?.plane, r.guest?.path, r.fb?.id, r.fb?.origin, r.hwPlane?.id])).toEqual([
      ['primary', 'dmabuf', 62, 'vgpu-flip', 33],
      ['cursor', 'dmabuf', 63, 'vgpu-flip', 49],
    ]);
  });

  it('without a state file the DRM side is still shown, with a note; plane types when the KMS side answers', () => {
    const root = fakeDebugfs('idle');
    const rep = collectDebugfs({ debugfsRoot: root, runDir: path.join(root, 'no-such-run-dir'), planeTypes: (m) => (m === 0 ? new Map([[31, 'primary']]) : null) });
    expect(rep.rows).toHaveLength(1);
    expect(rep.rows[0]!.hwPlane).toEqual({ id: 31, name: 'plane-0', type: 'primary', zpos: 0 });
    expect(renderDebugfsText(rep)).toMatch(/\[fbcon\]\s+no\s+31 primary\s+51 crtc-0/);
    expect(collectDebugfs({ debugfsRoot: root, runDir: root, planeTypes: () => { throw new Error('no addon'); } }).rows[0]!.hwPlane!.type).toBeNull();
    expect(rep.notes.join('\n')).toMatch(/no running vgpu-flip assignment/);
    expect(debugfsJson(rep)).toMatchObject({ rows: [{ guest: null, fb: { id: 60 } }] });
  });

  it('says what to do when debugfs is not mounted, the folder is missing, no DRM device, an unknown --device', () => {
    const empty = tmp();
    const e1 = (() => {
      try {
        collectDebugfs({ debugfsRoot: empty, runDir: empty });
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(e1).toBeInstanceOf(DebugfsUnavailableError);
    expect((e1 as DebugfsUnavailableError).reason).toBe('not-mounted');
    expect((e1 as Error).message).toContain(`mount -t debugfs none ${empty}`);
    expect(() => collectDebugfs({ debugfsRoot: path.join(empty, 'nope') })).toThrow(/does not exist: debugfs is not mounted there; mount it \(as root\)/);
    const noDri = tmp();
    mkdirSync(path.join(noDri, 'vgpu_sim'));
    expect(() => collectDebugfs({ debugfsRoot: noDri, mountsFile: path.join(noDri, 'x') })).toThrow(/no DRM device: .*dri does not exist/);
    const noState = tmp();
    mkdirSync(path.join(noState, 'dri', '0'), { recursive: true });
    expect(() => collectDebugfs({ debugfsRoot: noState, isRoot: false })).toThrow(/no DRM device with an atomic state dump .*run as root/);
    const root = fakeDebugfs('idle');
    expect(() => collectDebugfs({ debugfsRoot: root, device: 'card3' })).toThrow(/no DRM device with minor 3 .*there: 0/);
    expect(collectDebugfs({ debugfsRoot: root, device: '/dev/dri/card0', runDir: root }).devices).toHaveLength(1);
  });

  it('the CLI: a clear message on stderr, exit status 3, no stack trace', async () => {
    const empty = tmp();
    let err = '';
    vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => {
      err += String(s);
      return true;
    });
    const before = process.exitCode;
    try {
      await main(['node', 'vgpu-flip', 'debugfs', '--debugfs', empty, '--json']);
      expect(process.exitCode).toBe(3);
    } finally {
      process.exitCode = before;
    }
    expect(err).toBe(`vgpu-flip debugfs: debugfs is not mounted at ${empty} (the folder is empty): mount it (as root): mount -t debugfs none ${empty}\n`);
  });
});
