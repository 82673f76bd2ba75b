// The flip engine against the real kernel (vkms), with a guest made of PRIME-exported dumb
// buffers (DumbGuest): DMABUF import, fb cache, flips, cursor, not-ready, errors, capture,
// restore and leak checks. The vgpu-sim based tests are in flip-vgpu.test.ts.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DrmDevice } from '../../src/kms/index.js';
import { FlipEngine } from '../../src/flip/engine.js';
import { CallCounter } from '../../src/flip/counting.js';
import type { FrameEvent, EngineErrorEvent } from '../../src/flip/events.js';
import { compareRegion, frameToPng } from '../../src/capture/writeback.js';
import { cursorPixel, patternPixel } from '../../src/flip/pattern.js';
import { findVkmsCard } from './kms-helpers.js';
import { DumbGuest, leakSnapshot, sleep, waitFor, DRM_FORMAT_ARGB8888, debugfsFile, displayState, lightCrtcIfDark } from './flip-helpers.js';
import { writeFileSync, mkdirSync } from 'node:fs';
import { native } from '../../src/binding/index.js';
import { DRM_MODE_OBJECT_PLANE } from '../../src/binding/constants.js';

let card = '';
let dev: DrmDevice;
let unlight: () => void = () => undefined;
let guest: DumbGuest;

beforeAll(() => {
  card = findVkmsCard();
  dev = DrmDevice.open(card, { writeback: true });
  unlight = lightCrtcIfDark(dev); // --no-fbdev: the CRTC starts dark
  guest = new DumbGuest(card);
});

const engines: FlipEngine[] = [];
afterEach(async () => {
  // a failed test must not leave its engine presenting into the next one
  for (const e of engines.splice(0)) await e.stop();
  guest.disable();
});

afterAll(() => {
  guest?.close();
  try {
    unlight();
  } finally {
    dev?.close();
  }
});

function newEngine(o: { planes: ConstructorParameters<typeof FlipEngine>[0]['planes']; notReady?: 'keep' | 'blank'; counter?: CallCounter }): FlipEngine {
  const e = new FlipEngine({
    drm: dev,
    guest: () => guest.source(),
    crtcIndex: 0,
    planes: o.planes,
    notReady: o.notReady ?? 'keep',
    ...(o.counter ? { counter: o.counter } : {}),
  });
  engines.push(e);
  return e;
}

/** plane id -> fb id from debugfs state */
function planeFbs(state: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of state.matchAll(/plane\[(\d+)\][^\n]*\n\s*crtc=([^\n]*)\n\s*fb=(\d+)/g)) out[m[1]!] = `${m[2]}:${m[3]}`;
  return out;
}

describe('flip engine on vkms with a dumb-buffer guest', () => {
  it('primary at native size on the primary plane + cursor: the captured pixels are the guest pixels', async () => {
    const snap = dev.snapshot();
    const mode = snap.crtcs[0]!.mode!;
    const W = mode.hdisplay;
    const H = mode.vdisplay;
    const before = leakSnapshot(card);
    const stateBefore = planeFbs(debugfsFile(card, 'state'));
    const prim = guest.createBuffer(W, H);
    guest.fill(prim, (x, y) => 0xff000000 | patternPixel(x, y, W, H, 3));
    const cur = guest.createBuffer(64, 64, DRM_FORMAT_ARGB8888);
    guest.fill(cur, (x, y) => cursorPixel(x, y));
    guest.show('primary', prim);
    guest.show('cursor', cur, 100, 50);
    const engine = newEngine({ planes: [{ kind: 'primary' }, { kind: 'cursor' }] });
    const assigned = engine.waitAssigned(5000);
    engine.start();
    const a = await assigned;
    expect(a.layout.assignments.map((x) => x.planeType)).toEqual(['primary', 'cursor']);
    const f = await engine.capture();
    mkdirSync('/tmp/flip-test', { recursive: true });
    writeFileSync('/tmp/flip-test/primary-cursor.png', frameToPng(f));
    // primary everywhere the cursor is transparent, cursor where it is opaque
    const prim1 = compareRegion(f, 0, 0, W, H, (x, y) => {
      const cx = x - 100;
      const cy = y - 50;
      if (cx >= 0 && cy >= 0 && cx < 64 && cy < 64 && cursorPixel(cx, cy) >>> 24 !== 0) return cursorPixel(cx, cy) & 0xffffff;
      return patternPixel(x, y, W, H, 3);
    });
    expect(prim1.mismatches, JSON.stringify(prim1.first)).toBe(0);
    expect(prim1.total).toBe(W * H);
    expect(planeFbs(debugfsFile(card, 'state'))).not.toEqual(stateBefore);
    await engine.stop();
    // the display found at start (fbcon on the primary plane) is back
    expect(planeFbs(debugfsFile(card, 'state'))).toEqual(stateBefore);
    const after = leakSnapshot(card);
    expect(after.fds).toBe(before.fds);
    expect(after.fbs).toEqual(before.fbs);
  });

  it('a smaller primary centred on an overlay over black; cursor partly off screen', async () => {
    const W = 640;
    const H = 480;
    const prim = guest.createBuffer(W, H);
    guest.fill(prim, () => 0xff336699);
    const cur = guest.createBuffer(64, 64, DRM_FORMAT_ARGB8888);
    guest.fill(cur, () => 0xffff0000);
    guest.show('primary', prim);
    guest.show('cursor', cur, -20, -30);
    const engine = newEngine({ planes: [{ kind: 'primary', placement: { kind: 'center' } }, { kind: 'cursor' }] });
    const assigned = engine.waitAssigned(5000);
    engine.start();
    const a = await assigned;
    expect(a.layout.assignments[0]!.planeType).toBe('overlay');
    expect(a.explanation.join('\n')).toMatch(/must cover the whole CRTC/);
    const mode = engine.currentMode;
    const ox = Math.floor((mode.hdisplay - W) / 2);
    const oy = Math.floor((mode.vdisplay - H) / 2);
    const f = await engine.capture();
    const inCursor = (x: number, y: number): boolean => x >= ox - 20 && x < ox + 44 && y >= oy - 30 && y < oy + 34;
    expect(compareRegion(f, ox, oy, W, H, (x, y) => (inCursor(ox + x, oy + y) ? 0xff0000 : 0x336699)).mismatches).toBe(0);
    // the cursor position is in guest-screen coordinates: it moves with the centred primary
    expect(compareRegion(f, ox - 20, oy - 30, 64, 64, () => 0xff0000).mismatches).toBe(0);
    expect(compareRegion(f, 0, 0, mode.hdisplay, 10, () => 0x000000).mismatches).toBe(0);
    await engine.stop();
  });

  it('100 guest flips -> 100 frames, each buffer imported once, <= 2 ioctls per frame, no leaks', async () => {
    const snap = dev.snapshot();
    const W = snap.crtcs[0]!.mode!.hdisplay;
    const H = snap.crtcs[0]!.mode!.vdisplay;
    const before = leakSnapshot(card);
    const bufs = [0, 1, 2].map((i) => {
      const b = guest.createBuffer(W, H);
      guest.fill(b, () => 0xff000000 | (0x40 * (i + 1)) << 8);
      return b;
    });
    guest.show('primary', bufs[0]!);
    guest.exports = 0;
    const counter = new CallCounter();
    const engine = newEngine({ planes: [{ kind: 'primary' }], counter });
    const frames: FrameEvent[] = [];
    engine.on('frame', (e) => frames.push(e));
    const assigned = engine.waitAssigned(5000);
    engine.start();
    await assigned;
    frames.length = 0;
    let steadyBefore: Record<string, number> = {};
    for (let i = 1; i <= 100; i++) {
      guest.show('primary', bufs[i % 3]!);
      const want = i;
      await waitFor(() => frames.length >= want, 2000, `frame ${i}`);
      if (i === 10) steadyBefore = counter.snapshot();
    }
    const steady = counter.since(steadyBefore);
    const perFrame = CallCounter.ioctls(steady) / 90;
    expect(frames.length).toBe(100);
    expect(frames.map((f) => f.id)).toEqual(Array.from({ length: 100 }, (_, i) => bufs[(i + 1) % 3]!.id));
    expect(guest.exports).toBe(3);
    expect(engine.stats.planes.primary!.imports).toBe(3);
    expect(steady['drmAddFb2'] ?? 0).toBe(0);
    expect(perFrame).toBeLessThanOrEqual(2);
    // commit -> flip takes at least one vblank (how many more depends on how fast TCG runs:
    // that figure is the bench's, not a test's)
    const lats = frames.map((f) => f.latencyVblanks);
    expect(Math.min(...lats)).toBeGreaterThanOrEqual(1);
    await engine.stop();
    const after = leakSnapshot(card);
    expect(after.fds).toBe(before.fds);
    expect(after.fbs).toEqual(before.fbs);
    expect(engine.liveFbs()).toEqual([]);
  });

  it('guest not ready: waits, keeps the last frame or blanks, resumes on its own; query errors are retried and reported', async () => {
    const snap = dev.snapshot();
    const W = snap.crtcs[0]!.mode!.hdisplay;
    const H = snap.crtcs[0]!.mode!.vdisplay;
    const b = guest.createBuffer(W, H);
    guest.fill(b, () => 0xff00ff00);
    guest.show('primary', null);
    const engine = newEngine({ planes: [{ kind: 'primary' }], notReady: 'blank' });
    const events: string[] = [];
    const errors: EngineErrorEvent[] = [];
    engine.on('not-ready', (e) => events.push(`not-ready:${e.action}`));
    engine.on('assigned', (e) => events.push(`assigned:${e.reason}`));
    engine.on('error', (e) => errors.push(e));
    engine.on('recovered', (e) => events.push(`recovered:${e.stage}`));
    engine.start();
    await sleep(200);
    expect(events).toEqual(['not-ready:wait']);
    guest.show('primary', b);
    await waitFor(() => events.includes('assigned:primary: first frame'), 2000, 'assignment').catch((e) => {
      throw new Error(`${e.message}; events ${JSON.stringify(events)}; errors ${JSON.stringify(errors)}; why: ${engine.whyNotAssigned()}`);
    });
    let f = await engine.capture();
    expect(compareRegion(f, 0, 0, W, H, () => 0x00ff00).mismatches).toBe(0);
    // guest disables its display: blank policy turns the plane off
    guest.show('primary', null);
    await waitFor(() => events.includes('not-ready:blank'), 2000, 'not-ready');
    await sleep(100);
    f = await engine.capture();
    expect(compareRegion(f, 0, 0, W, H, () => 0x000000).mismatches).toBe(0);
    // back
    guest.show('primary', b);
    await waitFor(() => events.includes('assigned:primary: guest plane is back'), 2000, 'resume');
    // transient query errors: retried, reported after 3 in a row with the ioctl and errno, recovered
    guest.failNextQueries = 5;
    await waitFor(() => events.includes('recovered:query'), 3000, 'recovery');
    expect(errors.some((e) => e.stage === 'query' && e.kernel?.code === 'ENOMEM' && e.kernel.op === 'VFIO_DEVICE_QUERY_GFX_PLANE')).toBe(true);
    await engine.stop();
    expect(debugfsFile(card, 'state')).toMatch(/crtc\[/);
  });

  it('guest resolution change: re-plans and shows the new size', async () => {
    const b1 = guest.createBuffer(800, 600);
    guest.fill(b1, () => 0xff112233);
    const b2 = guest.createBuffer(320, 200);
    guest.fill(b2, () => 0xff445566);
    guest.show('primary', b1);
    const engine = newEngine({ planes: [{ kind: 'primary', placement: { kind: 'position', x: 10, y: 20 } }] });
    const reasons: string[] = [];
    engine.on('assigned', (e) => reasons.push(e.reason));
    engine.start();
    await waitFor(() => reasons.length === 1, 3000, 'first assignment');
    guest.show('primary', b2);
    await waitFor(() => reasons.length === 2, 3000, 'second assignment');
    expect(reasons[1]).toMatch(/800x600 -> 320x200/);
    const f = await engine.capture();
    expect(compareRegion(f, 10, 20, 320, 200, () => 0x445566).mismatches).toBe(0);
    expect(compareRegion(f, 330, 20, 10, 10, () => 0).mismatches).toBe(0);
    await engine.stop();
  });

  it('REGION path: double-buffered dumb buffers, right pixels; an idle guest is neither copied nor committed, a change copies only the rows that differ', async () => {
    const W = 320;
    const H = 240;
    const b = guest.createBuffer(W, H);
    guest.fill(b, (x, y) => 0xff000000 | patternPixel(x, y, W, H, 1));
    guest.show('primary', b);
    const engine = new FlipEngine({ drm: dev, guest: () => guest.source(), crtcIndex: 0, planes: [{ kind: 'primary', placement: { kind: 'position', x: 40, y: 30 } }], path: 'region' });
    engines.push(engine);
    const assigned = engine.waitAssigned(5000);
    engine.start();
    const a = await assigned;
    expect(a.paths.primary).toBe('copy');
    await sleep(200);
    const f = await engine.capture();
    expect(compareRegion(f, 40, 30, W, H, (x, y) => patternPixel(x, y, W, H, 1)).mismatches).toBe(0);
    const st = engine.stats.planes.primary!;
    expect(st.imports).toBe(0);
    // an idle guest: copied once, then compared every frame, neither copied nor committed again
    const commits0 = engine.stats.commits;
    const ticks0 = engine.stats.ticks;
    await waitFor(() => engine.stats.ticks >= ticks0 + 10, 10_000, '10 more frames of the output');
    expect([st.copies, st.bytesCopied, engine.stats.commits - commits0]).toEqual([1, W * H * 4, 0]);
    // rows 10..19 change: copied into the other (never written) buffer whole, one commit
    guest.fill(b, (x, y) => 0xff000000 | (y >= 10 && y < 20 ? 0x00ff00 : patternPixel(x, y, W, H, 1)));
    await waitFor(() => st.copies === 2, 10_000, 'the second copy');
    // the same rows change again: only they differ from that buffer's frame: 10 rows copied
    guest.fill(b, (x, y) => 0xff000000 | (y >= 10 && y < 20 ? 0x0000ff : patternPixel(x, y, W, H, 1)));
    await waitFor(() => st.copies === 3, 10_000, 'the third copy');
    expect(st.bytesCopied).toBe(2 * W * H * 4 + 10 * W * 4);
    await waitFor(() => engine.stats.frames > 0 && engine.stats.commits - commits0 === 2, 10_000, 'two commits, one per change');
    // both carried FB_DAMAGE_CLIPS (the rig's vkms offers the property): the plane state holds
    // the last one, rows 10..19 (they differ from the screen and from the buffer written)
    expect(st.damageClips).toBe(2);
    const plane = dev.snapshot().planes.find((p) => p.fbId !== 0 && p.crtc.x === 40 && p.crtc.y === 30)!;
    expect(plane, 'the REGION layer\'s plane').toBeDefined();
    const clipsId = native.drmGetProperties(dev.fd, plane.id, DRM_MODE_OBJECT_PLANE).find((p) => p.name === 'FB_DAMAGE_CLIPS');
    expect(clipsId, 'FB_DAMAGE_CLIPS on the plane (test/rig/vkms-damage-clips.patch)').toBeDefined();
    const blob = native.drmGetPropertyBlob(dev.fd, Number(clipsId!.value));
    expect(blob && [...new Int32Array(blob.buffer, blob.byteOffset, blob.length / 4)]).toEqual([0, 10, W, 20]);
    const g = await engine.capture();
    expect(compareRegion(g, 40, 30, W, H, (x, y) => (y >= 10 && y < 20 ? 0x0000ff : patternPixel(x, y, W, H, 1))).mismatches).toBe(0);
    await engine.stop();
    expect(engine.liveFbs()).toEqual([]);
  });

  it('TEST_ONLY passes but the real commit fails: falls back to copying that plane and says so', async () => {
    const snap = dev.snapshot();
    const W = snap.crtcs[0]!.mode!.hdisplay;
    const H = snap.crtcs[0]!.mode!.vdisplay;
    const b = guest.createBuffer(W, H);
    guest.fill(b, () => 0xff0a0b0c);
    guest.show('primary', b);
    // a driver that cannot map imported buffers: real commits with an imported fb fail with EINVAL
    const imported = new Set<number>();
    const { native } = await import('../../src/binding/index.js');
    const fake = new Proxy(native, {
      get(target, prop, recv) {
        const v = Reflect.get(target, prop, recv);
        if (prop === 'drmAddFb2') {
          return (fd: number, args: Parameters<typeof native.drmAddFb2>[1]) => {
            const id = native.drmAddFb2(fd, args);
            imported.add(id);
            return id;
          };
        }
        if (prop === 'drmAtomicCommit') {
          return (fd: number, props: Parameters<typeof native.drmAtomicCommit>[1], flags: number, ud?: bigint) => {
            const testOnly = (flags & 0x100) !== 0;
            if (!testOnly && props.some(([, , val]) => typeof val === 'number' && imported.has(val))) {
              throw Object.assign(new Error('DRM_IOCTL_MODE_ATOMIC on /dev/dri/card0: EINVAL (Invalid argument)'), { op: 'DRM_IOCTL_MODE_ATOMIC', path: card, errno: 22, code: 'EINVAL' });
            }
            return native.drmAtomicCommit(fd, props, flags, ud);
          };
        }
        return v;
      },
    });
    const engine = new FlipEngine({ drm: dev, guest: () => guest.source(), crtcIndex: 0, planes: [{ kind: 'primary' }], native: fake });
    engines.push(engine);
    const fallbacks: string[] = [];
    engine.on('fallback', (e) => fallbacks.push(`${e.plane}:${e.to}:${e.reason}`));
    const assigned = engine.waitAssigned(5000);
    engine.start();
    const a = await assigned;
    expect(a.paths.primary).toBe('copy');
    expect(fallbacks).toHaveLength(1);
    expect(fallbacks[0]).toMatch(/primary:copy:TEST_ONLY passed but the commit failed: .*EINVAL/);
    expect(a.explanation.join('\n')).toMatch(/copy path \(fallback/);
    const f = await engine.capture();
    expect(compareRegion(f, 0, 0, W, H, () => 0x0a0b0c).mismatches).toBe(0);
    expect(engine.stats.planes.primary!.bytesCopied).toBeGreaterThan(0);
    await engine.stop();
  });

  it('modeset only when asked (--mode WxH, --mode guest); the mode found at start is restored', async () => {
    const start = dev.snapshot().crtcs[0]!.mode!;
    const b = guest.createBuffer(800, 600);
    guest.fill(b, () => 0xff123456);
    guest.show('primary', b);
    let engine = new FlipEngine({ drm: dev, guest: () => guest.source(), crtcIndex: 0, planes: [{ kind: 'primary' }], mode: { width: 800, height: 600 } });
    engines.push(engine);
    let assigned = engine.waitAssigned(5000);
    engine.start();
    let a = await assigned;
    expect(a.modeset).toBe(true);
    expect(a.layout.assignments[0]!.planeType).toBe('primary'); // the guest now covers the CRTC
    let f = await engine.capture();
    expect([f.width, f.height]).toEqual([800, 600]);
    expect(compareRegion(f, 0, 0, 800, 600, () => 0x123456).mismatches).toBe(0);
    await engine.stop();
    expect(dev.snapshot().crtcs[0]!.mode).toMatchObject({ hdisplay: start.hdisplay, vdisplay: start.vdisplay });

    const g = guest.createBuffer(640, 480);
    guest.fill(g, () => 0xff654321);
    guest.show('primary', g);
    engine = new FlipEngine({ drm: dev, guest: () => guest.source(), crtcIndex: 0, planes: [{ kind: 'primary' }], mode: 'guest' });
    engines.push(engine);
    assigned = engine.waitAssigned(5000);
    engine.start();
    a = await assigned;
    expect(a.modeset).toBe(true);
    expect(engine.currentMode).toMatchObject({ hdisplay: 640, vdisplay: 480 });
    f = await engine.capture();
    expect(compareRegion(f, 0, 0, 640, 480, () => 0x654321).mismatches).toBe(0);
    await engine.stop();
    expect(dev.snapshot().crtcs[0]!.mode).toMatchObject({ hdisplay: start.hdisplay, vdisplay: start.vdisplay });
    // without a mode request there is no modeset
    engine = new FlipEngine({ drm: dev, guest: () => guest.source(), crtcIndex: 0, planes: [{ kind: 'primary' }] });
    engines.push(engine);
    assigned = engine.waitAssigned(5000);
    engine.start();
    expect((await assigned).modeset).toBe(false);
    await engine.stop();
  });

  it('an unknown mode or CRTC is refused before the screen changes', () => {
    const before = displayState(card);
    expect(() => new FlipEngine({ drm: dev, guest: () => guest.source(), crtcIndex: 0, planes: [{ kind: 'primary' }], mode: { width: 1234, height: 567 } }).start()).toThrow(
      /mode 1234x567 is not offered by connector Virtual-1 \(it offers: /,
    );
    expect(() => new FlipEngine({ drm: dev, guest: () => guest.source(), crtcIndex: 4, planes: [{ kind: 'primary' }] }).start()).toThrow(/CRTC 4 does not exist.*0\.\.0/);
    expect(displayState(card)).toBe(before);
  });

  it('cursor: moves and hotspot changes without re-import; hotspot-origin placement; hidden cursor disappears', async () => {
    const snap = dev.snapshot();
    const W = snap.crtcs[0]!.mode!.hdisplay;
    const H = snap.crtcs[0]!.mode!.vdisplay;
    const p = guest.createBuffer(W, H);
    guest.fill(p, () => 0xff202020);
    const c = guest.createBuffer(64, 64, DRM_FORMAT_ARGB8888);
    guest.fill(c, (x, y) => (x < 16 && y < 16 ? 0xff00ff00 : 0x00000000));
    guest.show('primary', p);
    guest.show('cursor', c, 300, 200, 8, 4);
    const engine = new FlipEngine({ drm: dev, guest: () => guest.source(), crtcIndex: 0, planes: [{ kind: 'primary' }, { kind: 'cursor' }], cursorOrigin: 'hotspot' });
    engines.push(engine);
    const assigned = engine.waitAssigned(5000);
    engine.start();
    await assigned;
    let f = await engine.capture();
    // x/y is the pointer: the image's top-left is at (300-8, 200-4)
    const square = (fx: number, fy: number) => compareRegion(f, fx, fy, 16, 16, () => 0x00ff00).mismatches;
    expect(square(292, 196)).toBe(0);
    const importsBefore = engine.stats.planes.cursor!.imports;
    for (let i = 1; i <= 20; i++) {
      guest.show('cursor', c, 300 + i * 10, 200 - i * 5, 8 + (i % 2), 4);
      await sleep(20);
    }
    await sleep(100);
    f = await engine.capture();
    expect(square(300 + 200 - 8 - 0, 200 - 100 - 4)).toBe(0); // i=20: hotspot x 8
    expect(engine.stats.planes.cursor!.imports).toBe(importsBefore);
    expect(engine.stats.planes.cursor!.moves).toBeGreaterThan(5);
    // partly off screen (negative position) is fine
    guest.show('cursor', c, 4, 2, 8, 4);
    await sleep(100);
    f = await engine.capture();
    expect(compareRegion(f, 0, 0, 12, 14, () => 0x00ff00).mismatches).toBe(0);
    // the guest hides its cursor: the plane goes off
    guest.show('cursor', null);
    await sleep(100);
    f = await engine.capture();
    expect(compareRegion(f, 0, 0, 64, 64, () => 0x202020).mismatches).toBe(0);
    await engine.stop();
  });
});
