// Several guests on one output (issue 13): two vgpu-sim instances side by side on the vkms CRTC
// plus one guest's cursor, in ONE atomic commit per vblank; one guest resetting never stalls
// the other; buffers, fds and framebuffers come back to their starting counts. Pixels are read
// back through vkms' writeback connector. Fails (does not skip) when vkms or vgpu-sim is missing.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DrmDevice } from '../../src/kms/index.js';
import { FlipEngine } from '../../src/flip/engine.js';
import type { EngineErrorEvent, FrameEvent } from '../../src/flip/events.js';
import { compareRegion } from '../../src/capture/writeback.js';
import { cursorPixel, drawCursor, drawPattern, patternPixel } from '../../src/flip/pattern.js';
import { createSimMdev, openSimGuest, SimGuestDriver } from '../../src/bench/sim-guest.js';
import { Guest, VfioGuestSource } from '../../src/present/guest.js';
import { addGuest } from '../../src/present/compose.js';
import { SimGuest, createSimInstance } from '../../src/vgpu-sim/index.js';
import { findVkmsCard } from './kms-helpers.js';
import { leakSnapshot, lightCrtcIfDark, sleep, waitFor } from './flip-helpers.js';

let card = '';
let dev: DrmDevice;
let unlight: () => void = () => undefined;
let A: SimGuestDriver;
let B: SimGuestDriver;
let W = 0;
let H = 0;
const engines: FlipEngine[] = [];
const cleanups: (() => void)[] = [];

beforeAll(async () => {
  card = findVkmsCard();
  dev = DrmDevice.open(card, { writeback: true });
  unlight = lightCrtcIfDark(dev);
  A = await openSimGuest();
  B = new SimGuestDriver(createSimMdev(), true);
  const m = dev.snapshot().crtcs[0]!.mode!;
  W = m.hdisplay;
  H = m.vdisplay;
});

afterEach(async () => {
  for (const e of engines.splice(0)) await e.stop();
  A.disable();
  B.disable();
});

afterAll(() => {
  B?.close();
  A?.close();
  try {
    unlight();
  } finally {
    dev?.close();
  }
});

/** Guest A (left half, with its cursor) and guest B (right half) on CRTC 0. */
/** `displayEvents`: false polls both guests every frame (the default uses vgpu-sim's display event) */
function twoGuests(withCursor: boolean, displayEvents?: boolean): { e: FlipEngine; errors: string[] } {
  const half = W / 2;
  A.setPrimary(half, H);
  A.presentPrimary(drawPattern(half, H, 1));
  B.setPrimary(half, H);
  B.presentPrimary(drawPattern(half, H, 2));
  if (withCursor) {
    A.moveCursor(100, 120);
    A.setCursor(drawCursor(64), 64, 0, 0);
  }
  const e = new FlipEngine({
    drm: dev,
    vfio: A.vfio,
    crtcIndex: 0,
    planes: [
      { kind: 'primary', name: 'a/primary', z: 0, placement: { kind: 'position', x: 0, y: 0 } },
      ...(withCursor ? [{ kind: 'cursor' as const, name: 'a/cursor', z: 2 }] : []),
    ],
    ...(displayEvents !== undefined ? { displayEvents } : {}),
  });
  engines.push(e);
  const gB = new Guest(new VfioGuestSource(B.vfio, e.display.api), { path: 'dmabuf', ...(displayEvents !== undefined ? { displayEvents } : {}) });
  addGuest(e, gB, [{ kind: 'primary', name: 'b/primary', z: 3, placement: { kind: 'position', x: half, y: 0 } }]);
  const errors: string[] = [];
  e.on('error', (x: EngineErrorEvent) => errors.push(`${x.layer ?? x.plane ?? ''} ${x.stage}: ${x.message}`));
  return { e, errors };
}

function expectBoth(f: Awaited<ReturnType<FlipEngine['capture']>>, ta: number, tb: number, cursor: boolean): void {
  const half = W / 2;
  const left = compareRegion(f, 0, 0, half, H, (x, y) => {
    if (cursor && x >= 100 && x < 164 && y >= 120 && y < 184 && cursorPixel(x - 100, y - 120) >>> 24) return cursorPixel(x - 100, y - 120) & 0xffffff;
    return patternPixel(x, y, half, H, ta);
  });
  expect(left.mismatches, `guest A (left): ${JSON.stringify(left.first)}`).toBe(0);
  const right = compareRegion(f, half, 0, half, H, (x, y) => patternPixel(x, y, half, H, tb));
  expect(right.mismatches, `guest B (right): ${JSON.stringify(right.first)}`).toBe(0);
}

describe('two guests on one output', () => {
  it('side by side + a cursor: writeback shows both at their places; polled, both guests flipping is ONE commit', async () => {
    // polled: the next frame looks at every guest and commits what changed at once. (With
    // display events each guest is looked at when it signals, at its own vGPU's vblank: the
    // test below.)
    const { e, errors } = twoGuests(true, false);
    e.start();
    await waitFor(() => (e.assignedLayout?.assignments.length ?? 0) === 3, 15_000, `all three layers assigned (${e.whyNotAssigned()})`);
    const layout = e.assignedLayout!;
    expect(layout.assignments.map((x) => x.layer).sort()).toEqual(['a/cursor', 'a/primary', 'b/primary']);
    // vkms: a primary plane must cover the CRTC, so the two half-screen guests are on overlays
    const byLayer = Object.fromEntries(layout.assignments.map((x) => [x.layer, x]));
    expect(byLayer['b/primary']!.dst).toMatchObject({ x: W / 2, y: 0 });
    expect(new Set(layout.assignments.map((x) => x.planeId)).size).toBe(3);
    expectBoth(await e.capture(), 1, 2, true);

    // both guests draw and flip between two frames: the next frame commits both at once
    await sleep(200);
    const c0 = e.stats.commits;
    const frames: FrameEvent[] = [];
    e.on('frame', (f) => frames.push(f));
    A.presentPrimary(drawPattern(W / 2, H, 3));
    B.presentPrimary(drawPattern(W / 2, H, 4));
    await waitFor(() => frames.filter((f) => f.sequence > 0).length >= 2, 5000, 'the frame with both guests');
    await sleep(200);
    expect(e.stats.commits - c0).toBe(1);
    const seqs = frames.filter((f) => f.sequence > 0);
    expect(seqs.map((f) => f.layer).sort()).toEqual(['a/primary', 'b/primary']);
    expect(seqs[0]!.sequence).toBe(seqs[1]!.sequence); // one page flip for both
    expectBoth(await e.capture(), 3, 4, true);
    expect(errors).toEqual([]);
  });

  it('with display events: each guest is looked at when it signals; their flips make at most one commit per vblank, both on screen', async () => {
    const { e, errors } = twoGuests(false);
    e.start();
    await waitFor(() => (e.assignedLayout?.assignments.length ?? 0) === 2, 15_000, `both layers assigned (${e.whyNotAssigned()})`);
    expect(e.guests.every((g) => g.events !== null), 'both vGPUs offer the display event').toBe(true);
    await sleep(200);
    const c0 = e.stats.commits;
    const frames: FrameEvent[] = [];
    e.on('frame', (f) => frames.push(f));
    A.presentPrimary(drawPattern(W / 2, H, 5));
    B.presentPrimary(drawPattern(W / 2, H, 6));
    await waitFor(() => new Set(frames.filter((f) => f.sequence > 0).map((f) => f.layer)).size === 2, 5000, 'both guests\' new frames');
    await sleep(200);
    const commits = e.stats.commits - c0;
    expect(commits).toBeGreaterThanOrEqual(1);
    expect(commits).toBeLessThanOrEqual(2); // one per guest signal at most
    const seqs = frames.filter((f) => f.sequence > 0).map((f) => f.sequence);
    expect(new Set(seqs).size).toBe(commits); // never two commits for one vblank
    expectBoth(await e.capture(), 5, 6, false);
    expect(errors).toEqual([]);
  });

  it('guest A resets and comes back while guest B keeps flipping: B never stalls, A shows again', async () => {
    const { e, errors } = twoGuests(false);
    e.start();
    await waitFor(() => (e.assignedLayout?.assignments.length ?? 0) === 2, 15_000, `both guests assigned (${e.whyNotAssigned()})`);
    // guest B flips as soon as its previous frame is on screen
    const bFrames: number[] = [];
    let flipping = true;
    e.on('frame', (f) => {
      if (f.layer !== 'b/primary' || f.sequence === 0) return;
      bFrames.push(Date.now());
      if (flipping) B.flipPrimary();
    });
    B.flipPrimary();
    await waitFor(() => bFrames.length >= 5, 10_000, 'guest B flipping');
    const notReady: string[] = [];
    e.on('not-ready', (x) => notReady.push(`${x.layer}:${x.action}`));
    A.reset();
    const atReset = bFrames.length;
    await waitFor(() => notReady.length > 0, 5000, 'guest A not ready');
    expect(notReady).toEqual(['a/primary:keep']);
    // B goes on while A is down: ten more frames of B, however fast TCG runs, with A still not ready
    await waitFor(() => bFrames.length - atReset >= 10, 20_000, `guest B's frames while A is down (${bFrames.length - atReset})`);
    // A comes back with the same mode (as after a reboot): its plane shows again (the same shape
    // needs no new plan: the buffer is flipped to, or is the same one), B still on screen
    A.setPrimary(W / 2, H);
    A.presentPrimary(drawPattern(W / 2, H, 7));
    const leftOk = async (): Promise<{ mismatches: number; first: unknown }> =>
      compareRegion(await e.capture(), 0, 0, W / 2, H, (x, y) => patternPixel(x, y, W / 2, H, 7));
    for (let end = Date.now() + 20_000; (await leftOk()).mismatches !== 0; await sleep(100)) {
      if (Date.now() > end) throw new Error(`guest A's new frame not on screen 20 s after it came back: ${JSON.stringify((await leftOk()).first)}`);
    }
    const atBack = bFrames.length;
    await waitFor(() => bFrames.length - atBack >= 5, 20_000, `guest B's frames after A came back (${bFrames.length - atBack})`);
    flipping = false;
    await sleep(200);
    const f = await e.capture();
    const left = compareRegion(f, 0, 0, W / 2, H, (x, y) => patternPixel(x, y, W / 2, H, 7));
    expect(left.mismatches, JSON.stringify(left.first)).toBe(0);
    expect(errors).toEqual([]);
  });

  it('2,000 guest flips across two guests: fds, dma-bufs, framebuffers and DRM clients back to their starting counts', async () => {
    const before = leakSnapshot(card);
    const { e, errors } = twoGuests(false);
    e.start();
    await waitFor(() => (e.assignedLayout?.assignments.length ?? 0) === 2, 15_000, 'both guests assigned');
    let flips = 0;
    e.on('frame', (f) => {
      if (f.sequence === 0 || flips >= 2000) return;
      flips++;
      if (f.layer === 'a/primary') A.flipPrimary();
      else B.flipPrimary();
    });
    A.flipPrimary();
    B.flipPrimary();
    await waitFor(() => flips >= 2000, 120_000, `2,000 flips (at ${flips})`);
    await e.stop();
    engines.splice(engines.indexOf(e), 1);
    expect(errors).toEqual([]);
    expect(e.stats.planes['a/primary']!.imports + e.stats.planes['b/primary']!.imports).toBeLessThanOrEqual(6); // 3 buffers each, imported once
    A.disable();
    B.disable();
    await sleep(100);
    expect(leakSnapshot(card)).toEqual(before);
  });

  it('a guest whose mdev is removed leaves the output (its plane off, its fds closed so the removal finishes); the other guest keeps presenting', async () => {
    const before = leakSnapshot(card);
    const half = W / 2;
    // guest C: an instance of its own (removed by this test), on the right; guest A on the left
    const C = new SimGuestDriver(createSimMdev(), false);
    let removal: ReturnType<typeof spawn> | null = null;
    try {
      A.setPrimary(half, H);
      A.presentPrimary(drawPattern(half, H, 1));
      C.setPrimary(half, H);
      C.presentPrimary(drawPattern(half, H, 5));
      const e = new FlipEngine({ drm: dev, vfio: A.vfio, crtcIndex: 0, planes: [{ kind: 'primary', name: 'a/primary', z: 0, placement: { kind: 'position', x: 0, y: 0 } }] });
      engines.push(e);
      const mdev = `/sys/bus/mdev/devices/${C.uuid}`;
      const gC = new Guest(new VfioGuestSource(C.vfio, e.display.api, { owned: true }), {
        path: 'dmabuf',
        gone: () => (existsSync(mdev) ? null : `vGPU ${C.uuid} was removed`),
      });
      addGuest(e, gC, [{ kind: 'primary', name: 'c/primary', z: 3, placement: { kind: 'position', x: half, y: 0 } }]);
      const errors: EngineErrorEvent[] = [];
      e.on('error', (x) => errors.push(x));
      const aFrames: number[] = [];
      let flipping = true;
      e.on('frame', (f) => {
        if (f.layer !== 'a/primary' || f.sequence === 0) return;
        aFrames.push(f.sequence);
        if (flipping) A.flipPrimary();
      });
      e.start();
      await waitFor(() => (e.assignedLayout?.assignments.length ?? 0) === 2, 15_000, `both guests assigned (${e.whyNotAssigned()})`);
      A.flipPrimary();
      await waitFor(() => aFrames.length >= 3, 10_000, 'guest A flipping');
      const shown = await e.capture();
      expect(compareRegion(shown, half, 0, half, H, (x, y) => patternPixel(x, y, half, H, 5)).mismatches).toBe(0);
      const cPlane = e.assignedLayout!.assignments.find((x) => x.layer === 'c/primary')!.planeId;

      // the removal waits for every fd of the device to close: run it in another process
      removal = spawn('sh', ['-c', `echo 1 > ${mdev}/remove`], { stdio: 'ignore' });
      const removed = new Promise<number | null>((res) => removal!.on('exit', res));
      await waitFor(() => errors.some((x) => x.stage === 'guest'), 20_000, 'the guest-gone report');
      expect(errors.map((x) => `${x.stage}: ${x.message}`)).toEqual([expect.stringMatching(new RegExp(`^guest: vGPU ${C.uuid} was removed: its layers are taken off the screen`))]);
      expect(errors[0]!.fatal).toBe(false);
      expect(await Promise.race([removed, sleep(20_000).then(() => 'still blocked after 20 s')])).toBe(0);
      expect(C.vfio.closed).toBe(true);
      expect(existsSync(mdev)).toBe(false);
      expect(e.layers.map((l) => l.name)).toEqual(['a/primary']);
      expect(Object.keys(e.stats.planes)).toEqual(['a/primary']);
      // the plane that showed C is off; A goes on presenting
      const plane = dev.snapshot().planes.find((p) => p.id === cPlane)!;
      expect(plane.fbId).toBe(0);
      const atGone = aFrames.length;
      await waitFor(() => aFrames.length - atGone >= 5, 20_000, `guest A's frames after C left (${aFrames.length - atGone})`);
      flipping = false;
      await sleep(200);
      A.presentPrimary(drawPattern(half, H, 9));
      let after = await e.capture();
      for (const end = Date.now() + 20_000; compareRegion(after, 0, 0, half, H, (x, y) => patternPixel(x, y, half, H, 9)).mismatches !== 0; after = await e.capture()) {
        if (Date.now() > end) throw new Error("guest A's last frame not on screen within 20 s of C leaving");
        await sleep(100);
      }
      expect(compareRegion(after, half, 0, half, H, (x, y) => patternPixel(x, y, half, H, 5)).mismatches).toBeGreaterThan(half * H / 2); // C is not on screen
      expect(errors).toHaveLength(1);
      await e.stop();
      engines.splice(engines.indexOf(e), 1);
    } finally {
      C.close();
      if (removal && removal.exitCode === null) removal.kill();
    }
    A.disable();
    await sleep(100);
    expect(leakSnapshot(card)).toEqual(before);
  });

  it('the CLI: `assign --vgpu A --vgpu B@X,0` puts both guests on the CRTC (JSON), and a bad placement is a usage error', () => {
    const bin = path.join(import.meta.dirname, '..', '..', 'bin', 'vgpu-flip.js');
    const bad = spawnSync(process.execPath, [bin, 'assign', '--vgpu', A.uuid, '--vgpu', `${B.uuid}@left`, '--device', card], { encoding: 'utf8', timeout: 60_000 });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/the placement after @ must be X,Y, center or fill/);
    // the CLI opens the vGPUs' VFIO devices itself: two instances this process does not hold,
    // driven through debugfs
    const half = W / 2;
    const ia = createSimInstance('vgpu_sim-small');
    const ib = createSimInstance('vgpu_sim-small');
    cleanups.push(() => ia.remove(), () => ib.remove());
    for (const [inst, t] of [[ia, 1], [ib, 2]] as const) {
      const g = new SimGuest(inst.uuid);
      g.setMode('primary', { fourcc: 'XR24', width: half, height: H });
      g.writePixels(0, drawPattern(half, H, t));
      g.flip('primary', 0);
    }
    const dir = mkdtempSync(path.join(os.tmpdir(), 'multi-'));
    dev.dropMaster(); // the CLI becomes DRM master itself
    try {
      const shot = path.join(dir, 'both.png');
      const r = spawnSync(process.execPath, [bin, 'assign', '--vgpu', `${ia.uuid}@0,0`, '--vgpu', `${ib.uuid}@${half},0`, '--device', card, '--path', 'dmabuf', '--once', '--json', '--screenshot', shot], { encoding: 'utf8', timeout: 90_000 });
      expect(r.status, r.stderr + r.stdout).toBe(0);
      const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; [k: string]: unknown });
      const assigned = lines.filter((l) => l.type === 'assigned').pop() as { layout: { assignments: { layer: string }[] } } | undefined;
      expect(assigned?.layout.assignments.map((x) => x.layer).sort()).toEqual([`${ia.uuid.slice(0, 8)}/primary`, `${ib.uuid.slice(0, 8)}/primary`].sort());
      expect(readFileSync(shot).subarray(1, 4).toString()).toBe('PNG');
    } finally {
      rmSync(dir, { recursive: true, force: true });
      for (const c of cleanups.splice(0)) c();
      dev.setMaster();
    }
  });
});
