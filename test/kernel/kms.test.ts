// Kernel tests of the KMS layer against vkms: snapshot, atomic TEST_ONLY + real commits with a
// dumb buffer on the primary plane, a page flip with its event, dma-buf import without leaking
// GEM handles, and restoring the state found at start.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../src/binding/index.js';
import {
  DRM_FORMAT_MOD_LINEAR,
  DRM_FORMAT_XRGB8888,
  DRM_MODE_ATOMIC_ALLOW_MODESET,
  DRM_MODE_ATOMIC_NONBLOCK,
  DRM_MODE_PAGE_FLIP_EVENT,
  DRM_CLOEXEC,
  DRM_RDWR,
} from '../../src/binding/constants.js';
import { hasCode } from '../../src/binding/errors.js';
import { DrmDevice } from '../../src/kms/device.js';
import { preferredMode } from '../../src/kms/mode.js';
import { planeSupports } from '../../src/kms/snapshot.js';
import { snapshotFromJson, snapshotToJsonText } from '../../src/kms/snapshot-json.js';
import { captureState, restoreState } from '../../src/kms/state.js';
import type { KmsSnapshot, SavedKmsState } from '../../src/kms/types.js';
import type { DrmEvent } from '../../src/binding/types.js';
import { findVkmsCard, readDebugfsState } from './kms-helpers.js';

/** VGPU_FLIP_RECORD_FIXTURES=<writable dir>: write recorded snapshots there (for test/fixtures/). */
function record(name: string, s: KmsSnapshot): void {
  const dir = process.env['VGPU_FLIP_RECORD_FIXTURES'];
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, name), snapshotToJsonText(s));
}

let card = '';
let dev: DrmDevice;
let initial: KmsSnapshot;
let saved: SavedKmsState;

beforeAll(() => {
  card = findVkmsCard();
  // with writeback connectors, as the flip engine's capture uses them
  dev = DrmDevice.open(card, { writeback: true });
  initial = dev.snapshot();
  saved = captureState(initial);
});

afterAll(() => {
  dev?.close();
});

describe('DrmDevice on vkms', () => {
  it('opens with universal planes + atomic and reads the driver version', () => {
    expect(dev.clientCaps).toMatchObject({ universalPlanes: true, atomic: true });
    expect(dev.version.name).toBe('vkms');
  });

  it('snapshot: 1 CRTC, 10 planes (1 primary, 8 overlay, 1 cursor), XRGB8888 linear, property ids', () => {
    const s = initial;
    expect(s.crtcs).toHaveLength(1);
    expect(s.planes).toHaveLength(10);
    expect(s.planes.filter((p) => p.type === 'primary')).toHaveLength(1);
    expect(s.planes.filter((p) => p.type === 'overlay')).toHaveLength(8);
    expect(s.planes.filter((p) => p.type === 'cursor')).toHaveLength(1);
    for (const p of s.planes) {
      expect(p.possibleCrtcIds).toEqual([s.crtcs[0]!.id]);
      expect(planeSupports(p, DRM_FORMAT_XRGB8888, DRM_FORMAT_MOD_LINEAR)).toBe(true);
      for (const n of ['FB_ID', 'CRTC_ID', 'SRC_X', 'SRC_W', 'CRTC_X', 'CRTC_H']) expect(p.properties[n]?.id).toBeGreaterThan(0);
    }
    expect(s.crtcs[0]!.properties['MODE_ID']?.id).toBeGreaterThan(0);
    expect(s.crtcs[0]!.properties['ACTIVE']?.id).toBeGreaterThan(0);
    const virt = s.connectors.find((c) => c.name === 'Virtual-1');
    expect(virt?.status).toBe('connected');
    expect(virt?.modes.length).toBeGreaterThan(0);
    expect(virt?.properties['CRTC_ID']?.id).toBeGreaterThan(0);
  });

  it('snapshot survives the JSON form (and records the fixture when asked)', () => {
    const text = snapshotToJsonText(initial);
    expect(snapshotFromJson(text)).toEqual(initial);
    record('vkms-snapshot.json', initial);
  });

  it('writeback connectors appear with the writeback cap', () => {
    const wb = DrmDevice.open(card, { writeback: true });
    try {
      const s = wb.snapshot();
      expect(wb.clientCaps.writebackConnectors).toBe(true);
      expect(s.connectors.map((c) => c.name)).toContain('Writeback-1');
      expect(s.connectors.find((c) => c.writeback)?.properties['WRITEBACK_FB_ID']).toBeDefined();
    } finally {
      wb.close();
    }
  });
});

describe('atomic commits on vkms', () => {
  it('TEST_ONLY, then a real commit enabling the CRTC with a dumb buffer on the primary plane, a flip, then restore', async () => {
    const s = dev.snapshot();
    const crtc = s.crtcs[0]!;
    const conn = s.connectors.find((c) => c.name === 'Virtual-1')!;
    const primary = s.planes.find((p) => p.type === 'primary')!;
    const mode = preferredMode(conn.modes)!;
    const w = mode.hdisplay;
    const h = mode.vdisplay;

    const fb1 = dev.createDumbFramebuffer(w, h, DRM_FORMAT_XRGB8888);
    const fb2 = dev.createDumbFramebuffer(w, h, DRM_FORMAT_XRGB8888);
    const m = fb1.map();
    new Uint32Array(m.buffer).fill(0xff2060a0);
    m.unmap();
    const blob = dev.createModeBlob(mode);

    const req = dev
      .atomic()
      .set(conn.id, 'CRTC_ID', crtc.id)
      .set(crtc.id, 'ACTIVE', 1)
      .set(crtc.id, 'MODE_ID', blob.id)
      .placePlane(primary.id, crtc.id, fb1.fbId, { w, h }, { x: 0, y: 0, w, h });

    // without ALLOW_MODESET a modeset is refused only when the state really changes: a primary
    // plane not covering the CRTC is refused by vkms in any case
    const bad = dev.atomic().set(primary.id, 'FB_ID', fb1.fbId).set(primary.id, 'CRTC_ID', crtc.id)
      .set(primary.id, 'SRC_W', 16 << 16).set(primary.id, 'SRC_H', 16 << 16)
      .set(primary.id, 'CRTC_W', 16).set(primary.id, 'CRTC_H', 16)
      .set(crtc.id, 'ACTIVE', 1).set(crtc.id, 'MODE_ID', blob.id).set(conn.id, 'CRTC_ID', crtc.id);
    const badRes = bad.testOnly(DRM_MODE_ATOMIC_ALLOW_MODESET);
    expect(badRes.ok).toBe(false);

    expect(req.testOnly(DRM_MODE_ATOMIC_ALLOW_MODESET)).toEqual({ ok: true });
    req.commit(DRM_MODE_ATOMIC_ALLOW_MODESET);

    const after = dev.snapshot();
    record('vkms-snapshot-active.json', after);
    expect(after.crtcs[0]!.active).toBe(true);
    expect(after.crtcs[0]!.mode).toMatchObject({ hdisplay: w, vdisplay: h });
    const p1 = after.planes.find((p) => p.id === primary.id)!;
    expect(p1.fbId).toBe(fb1.fbId);
    expect(p1.crtcId).toBe(crtc.id);
    expect(p1.crtc).toEqual({ x: 0, y: 0, w, h });
    const state = readDebugfsState(card);
    if (state !== null) expect(state).toMatch(new RegExp(`fb=${fb1.fbId}\\b`));

    // page flip to fb2 with an event carrying our user data
    const flip = dev.atomic().set(primary.id, 'FB_ID', fb2.fbId);
    const ev = await dev.commitAndWait(flip, DRM_MODE_ATOMIC_NONBLOCK, 5000);
    expect(ev.type).toBe('flip');
    expect(ev.crtcId === crtc.id || ev.crtcId === 0).toBe(true);
    expect(dev.snapshot().planes.find((p) => p.id === primary.id)!.fbId).toBe(fb2.fbId);

    // restore what was there at start, in one commit
    const res = restoreState(dev, saved);
    expect(res.disabledPlanes).toEqual([]);
    const restored = dev.snapshot();
    expect(restored.crtcs[0]!.active).toBe(initial.crtcs[0]!.active);
    expect(restored.crtcs[0]!.mode).toEqual(initial.crtcs[0]!.mode);
    for (const p of initial.planes) {
      const q = restored.planes.find((x) => x.id === p.id)!;
      expect({ id: q.id, fb: q.fbId, crtc: q.crtcId, src: q.src, dst: q.crtc }).toEqual({ id: p.id, fb: p.fbId, crtc: p.crtcId, src: p.src, dst: p.crtc });
    }
    expect(restored.connectors.find((c) => c.id === conn.id)!.crtcId).toBe(conn.crtcId);

    blob.destroy();
    fb1.destroy();
    fb2.destroy();
    expect(dev.liveFramebuffers()).toEqual([]);
    expect(dev.liveBlobs()).toEqual([]);
  });

  it('restores an active state (mode re-created from the saved contents) after another modeset', () => {
    const s = dev.snapshot();
    const crtc = s.crtcs[0]!;
    const conn = s.connectors.find((c) => c.name === 'Virtual-1')!;
    const primary = s.planes.find((p) => p.type === 'primary')!;
    const overlay = s.planes.find((p) => p.type === 'overlay')!;
    const modes = conn.modes.filter((m) => m.hdisplay <= 1280);
    const modeA = preferredMode(conn.modes)!;
    const modeB = modes.find((m) => m.hdisplay !== modeA.hdisplay) ?? modeA;
    const enable = (mode: typeof modeA, fbId: number, withOverlay: number): void => {
      const blob = dev.createModeBlob(mode);
      try {
        const r = dev.atomic()
          .set(conn.id, 'CRTC_ID', crtc.id).set(crtc.id, 'ACTIVE', 1).set(crtc.id, 'MODE_ID', blob.id)
          .set(primary.id, 'FB_ID', fbId).set(primary.id, 'CRTC_ID', crtc.id)
          .set(primary.id, 'SRC_X', 0).set(primary.id, 'SRC_Y', 0)
          .set(primary.id, 'SRC_W', mode.hdisplay << 16).set(primary.id, 'SRC_H', mode.vdisplay << 16)
          .set(primary.id, 'CRTC_X', 0).set(primary.id, 'CRTC_Y', 0)
          .set(primary.id, 'CRTC_W', mode.hdisplay).set(primary.id, 'CRTC_H', mode.vdisplay);
        if (withOverlay) {
          r.set(overlay.id, 'FB_ID', withOverlay).set(overlay.id, 'CRTC_ID', crtc.id)
            .set(overlay.id, 'SRC_W', 64 << 16).set(overlay.id, 'SRC_H', 64 << 16)
            .set(overlay.id, 'CRTC_X', -10).set(overlay.id, 'CRTC_Y', 20).set(overlay.id, 'CRTC_W', 64).set(overlay.id, 'CRTC_H', 64);
        }
        r.commit(DRM_MODE_ATOMIC_ALLOW_MODESET);
      } finally {
        blob.destroy(); // the CRTC state keeps its own reference
      }
    };
    const fbA = dev.createDumbFramebuffer(modeA.hdisplay, modeA.vdisplay);
    const fbB = dev.createDumbFramebuffer(modeB.hdisplay, modeB.vdisplay);
    const small = dev.createDumbFramebuffer(64, 64);
    try {
      enable(modeA, fbA.fbId, 0);
      const stateA = captureState(dev.snapshot());
      expect(stateA.crtcs[0]!.mode).toMatchObject({ hdisplay: modeA.hdisplay });

      enable(modeB, fbB.fbId, small.fbId);
      const mid = dev.snapshot();
      expect(mid.planes.find((p) => p.id === overlay.id)!.crtc.x).toBe(-10);
      expect(mid.crtcs[0]!.mode!.hdisplay).toBe(modeB.hdisplay);

      restoreState(dev, stateA);
      const back = dev.snapshot();
      expect(back.crtcs[0]!.active).toBe(true);
      expect(back.crtcs[0]!.mode).toEqual(stateA.crtcs[0]!.mode);
      expect(back.planes.find((p) => p.id === primary.id)!.fbId).toBe(fbA.fbId);
      expect(back.planes.find((p) => p.id === overlay.id)!).toMatchObject({ fbId: 0, crtcId: 0 });
    } finally {
      restoreState(dev, saved);
      small.destroy();
      fbB.destroy();
      fbA.destroy();
    }
    expect(dev.snapshot().crtcs[0]!.active).toBe(initial.crtcs[0]!.active);
    expect(dev.liveBlobs()).toEqual([]);
  });

  it('an unknown property gives a clear error before any ioctl', () => {
    const plane = dev.currentSnapshot().planes[0]!;
    expect(() => dev.atomic().set(plane.id, 'NO_SUCH_PROP', 1)).toThrow(/has no property "NO_SUCH_PROP"/);
  });
});

describe('framebuffers', () => {
  it('imports a dma-buf (PRIME) into a framebuffer and closes the GEM handle, also on failure', () => {
    const exporter = DrmDevice.open(card);
    const importer = DrmDevice.open(card);
    let dmabuf = -1;
    try {
      const dumb = native.drmCreateDumb(exporter.fd, 64, 64, 32);
      dmabuf = native.drmPrimeHandleToFd(exporter.fd, dumb.handle, DRM_CLOEXEC | DRM_RDWR);
      const fbId = importer.importDmabuf(dmabuf, { width: 64, height: 64, format: DRM_FORMAT_XRGB8888, modifier: DRM_FORMAT_MOD_LINEAR, stride: dumb.pitch });
      expect(fbId).toBeGreaterThan(0);
      expect(importer.liveFramebuffers()).toEqual([fbId]);
      // the first handle of a fresh file is 1: it must be closed already
      expect(() => native.drmGemClose(importer.fd, 1)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
      // a plane accepts it
      const s = importer.snapshot();
      const overlay = s.planes.find((p) => p.type === 'overlay')!;
      const t = importer.atomic().set(overlay.id, 'FB_ID', fbId).set(overlay.id, 'CRTC_ID', s.crtcs[0]!.id)
        .set(overlay.id, 'SRC_W', 64 << 16).set(overlay.id, 'SRC_H', 64 << 16).set(overlay.id, 'CRTC_W', 64).set(overlay.id, 'CRTC_H', 64);
      // TEST_ONLY depends on the CRTC state; only check that it answers
      expect(typeof t.testOnly().ok).toBe('boolean');
      importer.rmFb(fbId);
      expect(importer.liveFramebuffers()).toEqual([]);

      // failing ADDFB2 (stride too small): error names the import, handle still closed
      let err: unknown;
      try {
        importer.importDmabuf(dmabuf, { width: 64, height: 64, format: DRM_FORMAT_XRGB8888, stride: 4 });
      } catch (e) {
        err = e;
      }
      expect(hasCode(err, 'EINVAL')).toBe(true);
      expect((err as Error).message).toMatch(/importing dma-buf fd \d+: 64x64 XR24 stride 4/);
      expect(() => native.drmGemClose(importer.fd, 1)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
      expect(importer.liveFramebuffers()).toEqual([]);
      native.drmDestroyDumb(exporter.fd, dumb.handle);
    } finally {
      if (dmabuf >= 0) native.close(dmabuf);
      importer.close();
      exporter.close();
    }
  });
});

describe('master and events', () => {
  it('set/drop master moves the right to commit between two fds', () => {
    const other = DrmDevice.open(card);
    try {
      // `dev` opened first in this process and is master: the other fd cannot become master
      expect(() => other.setMaster()).toThrow(expect.objectContaining({ op: 'DRM_IOCTL_SET_MASTER', code: 'EBUSY', path: card }));
      // and a non-master cannot commit, not even TEST_ONLY
      expect(other.atomic().testOnly()).toMatchObject({ ok: false, code: 'EACCES' });
      expect(dev.atomic().testOnly()).toEqual({ ok: true });
      dev.dropMaster();
      other.setMaster();
      expect(other.atomic().testOnly()).toEqual({ ok: true });
      expect(dev.atomic().testOnly()).toMatchObject({ ok: false, code: 'EACCES' });
      other.dropMaster();
    } finally {
      other.close();
      dev.setMaster();
    }
    expect(dev.atomic().testOnly()).toEqual({ ok: true });
  });

  it('the uv_poll poller wakes the loop for a flip event with sequence, time, CRTC and user data', async () => {
    const s = dev.snapshot();
    const crtc = s.crtcs[0]!;
    const conn = s.connectors.find((c) => c.name === 'Virtual-1')!;
    const primary = s.planes.find((p) => p.type === 'primary')!;
    const mode = preferredMode(conn.modes)!;
    const fb1 = dev.createDumbFramebuffer(mode.hdisplay, mode.vdisplay);
    const fb2 = dev.createDumbFramebuffer(mode.hdisplay, mode.vdisplay);
    const blob = dev.createModeBlob(mode);
    let poller: { stop(): void } | null = null;
    try {
      dev.atomic()
        .set(conn.id, 'CRTC_ID', crtc.id).set(crtc.id, 'ACTIVE', 1).set(crtc.id, 'MODE_ID', blob.id)
        .set(primary.id, 'FB_ID', fb1.fbId).set(primary.id, 'CRTC_ID', crtc.id)
        .set(primary.id, 'SRC_X', 0).set(primary.id, 'SRC_Y', 0)
        .set(primary.id, 'SRC_W', mode.hdisplay << 16).set(primary.id, 'SRC_H', mode.vdisplay << 16)
        .set(primary.id, 'CRTC_X', 0).set(primary.id, 'CRTC_Y', 0)
        .set(primary.id, 'CRTC_W', mode.hdisplay).set(primary.id, 'CRTC_H', mode.vdisplay)
        .commit(DRM_MODE_ATOMIC_ALLOW_MODESET);
      expect(native.drmReadEvents(dev.fd)).toEqual([]); // non-blocking: nothing pending
      expect(native.pollWait(dev.fd, 0)).toBe(false);
      const vblank = native.drmWaitVblank(dev.fd, 0);
      expect(Number.isInteger(vblank)).toBe(true);

      let wakeups = 0;
      const got = new Promise<DrmEvent[]>((resolve) => {
        poller = native.pollReadable(dev.fd, () => {
          wakeups++;
          const evs = native.drmReadEvents(dev.fd);
          if (evs.length) resolve(evs);
        });
      });
      // one poller per fd
      expect(() => native.pollReadable(dev.fd, () => undefined)).toThrow(expect.objectContaining({ code: 'EBUSY' }));
      const userData = 0xfeedc0de12345n;
      const fbProp = primary.properties['FB_ID']!.id;
      const t0 = performance.now();
      native.drmAtomicCommit(dev.fd, [[primary.id, fbProp, fb2.fbId]], DRM_MODE_ATOMIC_NONBLOCK | DRM_MODE_PAGE_FLIP_EVENT, userData);
      const evs = await Promise.race([got, new Promise<never>((_r, rej) => setTimeout(() => rej(new Error('no flip event within 5 s')), 5000))]);
      expect(wakeups).toBeGreaterThanOrEqual(1);
      expect(performance.now() - t0).toBeLessThan(5000);
      expect(evs).toHaveLength(1);
      const ev = evs[0]!;
      expect(ev).toMatchObject({ type: 'flip', userData, crtcId: crtc.id });
      expect(ev.sequence).toBeGreaterThanOrEqual(vblank);
      expect(ev.timeUs).toBeGreaterThan(0);
      poller!.stop();
      poller!.stop(); // idempotent
      poller = null;
      // after stop() a new poller may watch the fd again
      const again = native.pollReadable(dev.fd, () => undefined);
      again.stop();

      // a vblank event (DRM_IOCTL_WAIT_VBLANK with _DRM_VBLANK_EVENT) with its own user data
      const target = native.drmWaitVblank(dev.fd, 0, 0xabcdef0123n);
      expect(native.pollWait(dev.fd, 3000)).toBe(true);
      const vb = native.drmReadEvents(dev.fd);
      expect(vb).toHaveLength(1);
      expect(vb[0]).toMatchObject({ type: 'vblank', userData: 0xabcdef0123n, crtcId: crtc.id });
      expect(vb[0]!.sequence).toBeGreaterThanOrEqual(target);
      expect(vb[0]!.timeUs).toBeGreaterThanOrEqual(ev.timeUs);
    } finally {
      (poller as { stop(): void } | null)?.stop();
      restoreState(dev, saved);
      blob.destroy();
      fb1.destroy();
      fb2.destroy();
    }
    expect(dev.liveFramebuffers()).toEqual([]);
  });
});
