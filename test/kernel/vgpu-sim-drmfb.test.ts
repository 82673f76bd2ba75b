// Kernel tests of vgpu-sim's DRM_FB plane type (issue 5, kernel side): the host framebuffer
// id through VFIO and debugfs, in-kernel flips of the host plane after one assignment, mode
// change, disable/reset (and keep_last_frame), instance removal and module unload attempts
// while assigned. Binds vgpu_sim to the vkms card through the host_card parameter when the rig
// did not (--param vgpu_sim.host_card=card0). Run in the VM:
//   bash test/rig/vm.sh --check-dmesg -- npx vitest run --project kernel test/kernel/vgpu-sim-drmfb
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DRM_FORMAT_XRGB8888 } from '../../src/binding/constants.js';
import { VfioDevice } from '../../src/vfio/device.js';
import { SimGuest, createSimInstance, type SimInstance } from '../../src/vgpu-sim/index.js';
import { findVkmsCard } from './kms-helpers.js';
import { VkmsScene, frameShows } from './vgpu-sim-kms.js';

const PARAM = '/sys/module/vgpu_sim/parameters/host_card';
const KEEP = '/sys/module/vgpu_sim/parameters/keep_last_frame';
const W = 640;
const H = 480;
const OFF_B = 0x200000;

function pattern(seed: number, bytes = W * H * 4): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes / 4; i++) b.writeUInt32LE((0xff000000 | ((i * 2654435761 + seed * 40503) >>> 8)) >>> 0, i * 4);
  return b;
}

function dmesgProblems(): string[] {
  const log = execFileSync('dmesg', { encoding: 'utf8' });
  return log.split('\n').filter((l) => /WARNING:|BUG:|Oops|KASAN|Call Trace|refcount_t|UBSAN|list_(add|del) corruption|general protection/.test(l));
}

let card = '';
let inst: SimInstance | null = null;
let guest: SimGuest;
let dev: VfioDevice | null = null;
let scene: VkmsScene | null = null;

beforeAll(() => {
  card = findVkmsCard();
  const cur = readFileSync(PARAM, 'utf8').trim();
  if (cur === '' || cur === '(null)') writeFileSync(PARAM, path.basename(card));
  inst = createSimInstance('vgpu_sim-small');
  guest = new SimGuest(inst.uuid);
  dev = VfioDevice.open(inst.uuid);
});

afterAll(() => {
  try {
    writeFileSync(KEEP, '0');
    scene?.close();
    dev?.close();
  } finally {
    inst?.remove();
  }
});

describe('DRM_FB', () => {
  it('PROBE DRM_FB answers 0 once bound to the host card', () => {
    expect(guest.info().drmFb, `vgpu_sim not bound to ${card} (dmesg: ${execFileSync('dmesg', { encoding: 'utf8' }).split('\n').filter((l) => l.includes('vgpu_sim')).join(' | ')})`).toBe(true);
    expect(dev!.probePath('drm_fb')).toEqual({ supported: true });
    expect(dev!.bestPath()).toBe('drm_fb');
  });

  it('gives a host framebuffer id, the same through VFIO and the debugfs attributes', () => {
    guest.setMode('primary', { fourcc: 'XR24', width: W, height: H });
    guest.writePixels(0, pattern(1));
    guest.writePixels(OFF_B, pattern(2));
    const q = dev!.queryPlane('primary', 'drm_fb');
    expect(q).toMatchObject({ ready: true, drmFormat: DRM_FORMAT_XRGB8888, width: W, height: H, stride: W * 4, size: W * H * 4 });
    expect(q.id).toBeGreaterThan(0);
    expect(dev!.queryPlane('primary', 'drm_fb').id).toBe(q.id);
    expect(guest.fbId('primary')).toBe(q.id);
    writeFileSync(path.join(guest.dir, 'fb_id'), 'primary');
    expect(Number(readFileSync(path.join(guest.dir, 'fb_id'), 'utf8'))).toBe(q.id);
    // a real framebuffer object of the host device
    const minor = card.match(/card(\d+)$/)![1];
    expect(readFileSync(`/sys/kernel/debug/dri/${minor}/framebuffer`, 'utf8')).toContain(`framebuffer[${q.id}]`);
    // a disabled plane has none
    expect(guest.fbId('cursor')).toBe(0);
    expect(dev!.queryPlane('cursor', 'drm_fb')).toMatchObject({ ready: false, size: 0, id: 0 });
  });

  it('after one assignment the kernel flips the host plane on every guest flip and mode change', () => {
    const idA = guest.fbId('primary');
    scene = new VkmsScene(card);
    expect(scene.showOnOverlay(idA, W, H)).toBe('OK');
    expect(scene.overlayFb()).toBe(idA);
    expect(scene.overlayState()).toMatch(/imported=yes/);

    const k0 = guest.status('primary').kflips;
    const flips0 = guest.flipCount();
    guest.flip('primary', OFF_B);
    const idB = guest.fbId('primary');
    expect(idB).not.toBe(idA);
    expect(dev!.queryPlane('primary', 'drm_fb').id).toBe(idB);
    expect(scene.overlayFb()).toBe(idB);

    // the composed frame shows the guest's pixels of the buffer it flipped to
    expect(frameShows(scene.capture(), pattern(2), W * 4, 0, 0, W, H)).toEqual({ ok: true });
    guest.flip('primary', 0);
    expect(scene.overlayFb()).toBe(idA);
    expect(frameShows(scene.capture(), pattern(1), W * 4, 0, 0, W, H)).toEqual({ ok: true });
    // the guest draws into the shown buffer: zero copy, the next composition has it
    guest.writePixels(0, pattern(3));
    expect(frameShows(scene.capture(), pattern(3), W * 4, 0, 0, W, H)).toEqual({ ok: true });
    guest.writePixels(0, pattern(1));

    for (let i = 0; i < 100; i++) {
      const off = i % 2 === 0 ? OFF_B : 0;
      guest.flip('primary', off);
      expect(scene.overlayFb()).toBe(off === 0 ? idA : idB);
    }
    expect(guest.flipCount()).toBe(flips0 + 102);
    const st = guest.status('primary');
    expect(st.kflipErr).toBe(0);
    expect(st.kflips).toBe(k0 + 102);

    // mode change: new framebuffer, the plane follows with the new size
    guest.setMode('primary', { fourcc: 'XR24', width: 320, height: 240 });
    const idC = guest.fbId('primary');
    expect([idA, idB]).not.toContain(idC);
    expect(scene.overlayFb()).toBe(idC);
    const block = scene.overlayState() ?? '';
    expect(block).toContain(`fb=${idC}`);
    expect(block).toContain('size=320x240');
    expect(block).toMatch(/crtc-pos=320x240\+0\+0/);
    const small = pattern(1).subarray(0, 320 * 240 * 4); // 320x240 packed from offset 0
    expect(frameShows(scene.capture(), small, 320 * 4, 0, 0, 320, 240)).toEqual({ ok: true });
  });

  it('disables the host plane when the guest disables the plane, keeps it with keep_last_frame', () => {
    guest.disable('primary');
    expect(scene!.overlayFb()).toBe(0);
    expect(dev!.queryPlane('primary', 'drm_fb').size).toBe(0);

    guest.setMode('primary', { fourcc: 'XR24', width: W, height: H });
    const id = guest.fbId('primary');
    expect(scene!.showOnOverlay(id, W, H)).toBe('OK');
    writeFileSync(KEEP, '1');
    guest.reset();
    expect(scene!.overlayFb()).toBe(id);
    writeFileSync(KEEP, '0');
    guest.setMode('primary', { fourcc: 'XR24', width: W, height: H });
    expect(guest.fbId('primary')).toBe(id); // the same buffer state is still cached
    guest.reset();
    expect(scene!.overlayFb()).toBe(0);
  });

  it('refuses module unload while assigned, and instance removal turns the plane off safely', () => {
    // the VMM goes away; the compositor resolves the id through debugfs alone
    dev!.close();
    dev = null;
    guest.setMode('overlay', { fourcc: 'XR24', width: W, height: H, offset: OFF_B });
    const id = guest.fbId('overlay');
    expect(id).toBeGreaterThan(0);
    expect(scene!.showOnOverlay(id, W, H, 10, 20)).toBe('OK');
    expect(scene!.overlayFb()).toBe(id);

    const rm = spawnSync('rmmod', ['vgpu_sim'], { encoding: 'utf8' });
    expect(rm.status).not.toBe(0); // the host framebuffer holds the module's dma-buf
    expect(readFileSync(PARAM, 'utf8')).toBeTruthy(); // still loaded
    expect(scene!.overlayFb()).toBe(id);

    inst!.remove();
    inst = null;
    expect(scene!.overlayFb()).toBe(0);
    // the host display keeps working
    expect(scene!.showOnOverlay(0, W, H)).toBe('OK');
    expect(dmesgProblems()).toEqual([]);
  });
});
