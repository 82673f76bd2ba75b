// Kernel tests of vgpu-sim (native/vgpu-sim), the project's own mdev vendor driver, through
// the TypeScript VFIO layer, the addon and the debugfs guest (src/vgpu-sim). Run in the VM:
//   bash test/rig/vm.sh --check-dmesg -- npx vitest run --project kernel test/kernel/vgpu-sim
// Nothing here skips: a missing module, device or tool fails the test.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fstatSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../src/binding/index.js';
import { isKernelError } from '../../src/binding/errors.js';
import {
  DMA_BUF_SYNC_END,
  DMA_BUF_SYNC_READ,
  DMA_BUF_SYNC_START,
  DRM_FORMAT_XRGB8888,
} from '../../src/binding/constants.js';
import { VfioDevice } from '../../src/vfio/device.js';
import { DrmDevice } from '../../src/kms/device.js';
import { SimGuest, createSimInstance, listSimInstances, listSimTypes, type SimErrno, type SimInstance } from '../../src/vgpu-sim/index.js';
import { findVkmsCard, readDebugfsState } from './kms-helpers.js';
import { vkmsOverlayCommit } from './vgpu-sim-kms.js';

const REPO = path.resolve(import.meta.dirname, '../..');
const W = 640;
const H = 480;
const STRIDE = W * 4;
const FRAME = STRIDE * H;
const PAGE = 4096;
const OFF_B = 0x200000; // a second buffer in video memory (page aligned)

/** XRGB8888 test pattern, different per seed */
function pattern(seed: number, bytes = FRAME): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes / 4; i++) b.writeUInt32LE((0xff000000 | ((i * 2654435761 + seed * 40503) >>> 8)) >>> 0, i * 4);
  return b;
}

function errnoOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (isKernelError(e)) return e.code;
    throw e;
  }
  return 'OK';
}

function groupOf(uuid: string): number {
  return Number(path.basename(readlinkSync(`/sys/bus/mdev/devices/${uuid}/iommu_group`)));
}

let inst: SimInstance | null = null;
let inst2: SimInstance | null = null;
let guest: SimGuest;
let dev: VfioDevice;
let abiCheck = '';

beforeAll(() => {
  const types = listSimTypes();
  expect(types.map((t) => t.name), 'vgpu_sim module not loaded (the rig loads vgpu_sim.ko)').toEqual(
    expect.arrayContaining(['vgpu_sim-small', 'vgpu_sim-large']),
  );
  abiCheck = path.join(process.env.TMPDIR ?? '/tmp', `vsim-abi-check-${process.pid}`);
  execFileSync('gcc', ['-O1', '-o', abiCheck, path.join(REPO, 'native/vgpu-sim/tools/abi-check.c')], { stdio: 'pipe' });
});

afterAll(() => {
  try {
    dev?.close();
  } finally {
    inst?.remove();
    inst2?.remove();
  }
});

describe('vgpu-sim instances', () => {
  it('creates two instances and keeps available_instances honest', () => {
    const before = new Map(listSimTypes().map((t) => [t.name, t.availableInstances]));
    const small0 = before.get('vgpu_sim-small')!;
    const large0 = before.get('vgpu_sim-large')!;
    expect(small0).toBeGreaterThanOrEqual(2);
    expect(large0).toBeGreaterThanOrEqual(1);
    inst = createSimInstance('vgpu_sim-small');
    inst2 = createSimInstance('vgpu_sim-small');
    const after = new Map(listSimTypes().map((t) => [t.name, t.availableInstances]));
    expect(after.get('vgpu_sim-small')).toBe(small0 - 2);
    // the budget is shared: 64 MiB less means large (128 MiB) instances may drop too
    expect(after.get('vgpu_sim-large')!).toBeLessThanOrEqual(large0);
    guest = new SimGuest(inst.uuid);
    expect(guest.info()).toMatchObject({ type: 'small', vramSize: 32 << 20, maxWidth: 1920, maxHeight: 1080 });
    dev = VfioDevice.open(inst.uuid);
    expect(groupOf(inst.uuid)).toBe(dev.groupId);
    expect(guest.info().open).toBe(true);
  });
});

describe('vgpu-sim instances: the budget', () => {
  it('available_instances reaches 0 and the kernel then refuses another instance (ENOSPC)', () => {
    const avail = (n: string): number => listSimTypes().find((t) => t.name === n)!.availableInstances;
    const small0 = avail('vgpu_sim-small');
    const large: SimInstance[] = [];
    try {
      while (avail('vgpu_sim-large') > 0 && large.length < 8) large.push(createSimInstance('vgpu_sim-large'));
      expect(large.length).toBeGreaterThanOrEqual(1);
      expect(avail('vgpu_sim-large')).toBe(0);
      // each large instance takes 4 small ones' worth of video memory
      expect(avail('vgpu_sim-small')).toBe(Math.max(0, small0 - 4 * large.length));
      // creating past the budget through sysfs directly: the kernel says no, nothing is created
      const before = listSimInstances().length;
      let code = '';
      try {
        writeFileSync('/sys/class/mdev_bus/vgpu_sim/mdev_supported_types/vgpu_sim-large/create', randomUUID());
      } catch (e) {
        code = (e as NodeJS.ErrnoException).code ?? String(e);
      }
      expect(code).toBe('ENOSPC');
      expect(listSimInstances()).toHaveLength(before);
      // the helper refuses up front with a clear message
      expect(() => createSimInstance('vgpu_sim-large')).toThrow(/no vgpu_sim-large instance available/);
    } finally {
      for (const l of large) l.remove();
    }
    expect(avail('vgpu_sim-small')).toBe(small0);
  });
});

describe('the VFIO display ABI', () => {
  it('answers PROBE: DMABUF and REGION yes, DRM_FB exactly when bound to a host card', () => {
    const p = dev.probe();
    expect(p.dmabuf).toEqual({ supported: true });
    expect(p.region).toEqual({ supported: true });
    // unbound (host_card empty): EINVAL; the DRM_FB tests bind it (vgpu-sim-drmfb.test.ts)
    const bound = guest.info().drmFb;
    const param = readFileSync('/sys/module/vgpu_sim/parameters/host_card', 'utf8').trim();
    if (param === '' || param === '(null)') expect(bound).toBe(false);
    expect(p.drm_fb).toEqual({ supported: bound });
  });

  it('gives EINVAL for bad argsz, unknown flag bits and type combinations', () => {
    const r = spawnSync(abiCheck, ['3'], { stdio: ['ignore', 'pipe', 'pipe', dev.fd], encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout) as Record<string, number>;
    const EINVAL = 22;
    expect(res).toEqual({
      argsz_0: EINVAL,
      argsz_minus_1: EINVAL,
      argsz_min: 0,
      argsz_full: 0,
      argsz_large: 0,
      unknown_bit4: EINVAL,
      unknown_bit31: EINVAL,
      probe_none: EINVAL,
      probe_two: EINVAL,
      query_none: EINVAL,
      query_two: EINVAL,
      bad_plane_type: EINVAL,
      unknown_dmabuf_id: 2, // ENOENT
    });
  });

  it('reports not ready (0 with size 0) before the guest enables a plane', () => {
    for (const t of ['primary', 'cursor', 'overlay'] as const) {
      for (const p of ['dmabuf', 'region'] as const) {
        const q = dev.queryPlane(t, p);
        expect(q.ready).toBe(false);
        expect(q.size).toBe(0);
      }
    }
  });

  it('returns the guest pixels identically through the dma-buf mmap and the region', () => {
    const px = pattern(1);
    guest.setMode('primary', { fourcc: 'XR24', width: W, height: H });
    guest.writePixels(0, px);
    expect(guest.status('primary')).toMatchObject({ ready: true, reason: 'ok', size: FRAME });

    const q = dev.queryPlane('primary', 'dmabuf');
    expect(q).toMatchObject({ ready: true, drmFormat: DRM_FORMAT_XRGB8888, drmFormatMod: 0n, width: W, height: H, stride: STRIDE, size: FRAME, x: 0, y: 0, hotspot: null });
    expect(q.id).toBeGreaterThan(0);

    const fd = dev.getDmabuf(q.id);
    try {
      const m = native.mmap(fd, 0n, q.size, false);
      try {
        native.dmabufSync(fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ);
        expect(Buffer.from(m.buffer, 0, FRAME).equals(px)).toBe(true);
        native.dmabufSync(fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ);
      } finally {
        m.unmap();
      }
    } finally {
      native.close(fd);
    }

    const r = dev.queryPlane('primary', 'region');
    expect(r).toMatchObject({ ready: true, width: W, height: H, stride: STRIDE, size: FRAME });
    const ri = dev.regionInfo(r.id);
    expect(ri.size).toBe(32n << 20n);
    // pread through the device fd, and mmap of the region
    const got = Buffer.alloc(FRAME);
    let done = 0;
    while (done < FRAME) {
      const chunk = native.pread(dev.fd, ri.offset + BigInt(done), Math.min(1 << 20, FRAME - done));
      expect(chunk.length).toBeGreaterThan(0);
      chunk.copy(got, done);
      done += chunk.length;
    }
    expect(got.equals(px)).toBe(true);
    const rm = native.mmap(dev.fd, ri.offset, FRAME, true);
    try {
      expect(Buffer.from(rm.buffer, 0, FRAME).equals(px)).toBe(true);
      // writes through the region land where the guest reads them
      Buffer.from(rm.buffer, PAGE, 4).writeUInt32LE(0xdeadbeef);
      expect(guest.readPixels(PAGE, 4).readUInt32LE()).toBe(0xdeadbeef);
    } finally {
      rm.unmap();
    }
    native.pwrite(dev.fd, ri.offset + BigInt(PAGE), px.subarray(PAGE, PAGE + 4));
    expect(guest.readPixels(PAGE, 4).equals(px.subarray(PAGE, PAGE + 4))).toBe(true);
  });

  it('keeps the dmabuf_id for the same state and changes it on flip and mode change', () => {
    guest.setMode('primary', { fourcc: 'XR24', width: W, height: H });
    const a1 = dev.queryPlane('primary', 'dmabuf').id;
    const a2 = dev.queryPlane('primary', 'dmabuf').id;
    expect(a2).toBe(a1);
    const flips = guest.flipCount();
    guest.writePixels(OFF_B, pattern(2));
    guest.flip('primary', OFF_B);
    expect(guest.flipCount()).toBe(flips + 1);
    const b = dev.queryPlane('primary', 'dmabuf');
    expect(b.id).not.toBe(a1);
    expect(dev.queryPlane('primary', 'dmabuf').id).toBe(b.id);
    // the new buffer shows the new pixels
    const fd = dev.getDmabuf(b.id);
    try {
      const m = native.mmap(fd, 0n, FRAME, false);
      expect(Buffer.from(m.buffer, 0, FRAME).equals(pattern(2))).toBe(true);
      m.unmap();
    } finally {
      native.close(fd);
    }
    // flipping back gives the cached state's id again; a mode change gives another
    guest.flip('primary', 0);
    expect(dev.queryPlane('primary', 'dmabuf').id).toBe(a1);
    guest.setMode('primary', { fourcc: 'XR24', width: 320, height: 240 });
    const c = dev.queryPlane('primary', 'dmabuf');
    expect(c).toMatchObject({ width: 320, height: 240, stride: 1280 });
    expect([a1, b.id]).not.toContain(c.id);
    // REGION cannot describe a buffer that is not at offset 0
    guest.flip('primary', OFF_B);
    expect(dev.queryPlane('primary', 'region').size).toBe(0);
    expect(guest.status('primary').regionOk).toBe(false);
    guest.flip('primary', 0);
  });

  it('keeps a dma-buf valid after the guest flips away and resets', () => {
    guest.setMode('primary', { fourcc: 'XR24', width: W, height: H });
    guest.writePixels(0, pattern(3));
    const q = dev.queryPlane('primary', 'dmabuf');
    const fd = dev.getDmabuf(q.id);
    const m = native.mmap(fd, 0n, FRAME, false);
    try {
      guest.flip('primary', OFF_B);
      guest.reset();
      expect(dev.queryPlane('primary', 'dmabuf').size).toBe(0);
      expect(Buffer.from(m.buffer, 0, FRAME).equals(pattern(3))).toBe(true);
    } finally {
      m.unmap();
      native.close(fd);
    }
  });

  it('reports cursor position and hotspot, and a signed position', () => {
    guest.setMode('cursor', { fourcc: 'AR24', width: 64, height: 64, offset: 0x400000, x: -5, y: 17, xhot: 3, yhot: 4 });
    const q = dev.queryPlane('cursor', 'dmabuf');
    expect(q).toMatchObject({ ready: true, width: 64, height: 64, x: -5, y: 17, hotspot: { x: 3, y: 4 } });
    guest.disable('cursor');
    expect(dev.queryPlane('cursor', 'dmabuf').size).toBe(0);
  });

  it('reports size 0 and the reason for settings it cannot show, never reading out of bounds', () => {
    const vram = 32 << 20;
    const bad: Array<[Parameters<SimGuest['setMode']>[1], RegExp]> = [
      [{ fourcc: 'XR24', width: W, height: H, stride: 100 }, /stride 100 smaller/],
      [{ fourcc: 'XR24', width: W, height: H, offset: vram }, /beyond video memory/],
      [{ fourcc: 'XR24', width: W, height: H, offset: vram - PAGE }, /beyond video memory/],
      [{ fourcc: 'XR24', width: W, height: H, offset: 0xffffffff_fffff000n }, /beyond video memory/],
      [{ fourcc: 'XR24', width: 1920, height: 1080, stride: 0xfffffffc }, /beyond video memory/],
      [{ fourcc: 'XR24', width: W, height: H, offset: 100 }, /not page aligned/],
      [{ fourcc: 'NV12', width: W, height: H }, /not supported/],
      [{ fourcc: 'XR24', width: W, height: H, modifier: 0x0100000000000001n }, /modifier/],
      [{ fourcc: 'XR24', width: 4000, height: H }, /exceeds the maximum/],
      [{ fourcc: 'XR24', width: 0, height: H }, /empty size/],
    ];
    for (const [mode, why] of bad) {
      guest.setMode('overlay', mode);
      const st = guest.status('overlay');
      expect(st.ready, JSON.stringify(mode, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))).toBe(false);
      expect(st.reason).toMatch(why);
      expect(dev.queryPlane('overlay', 'dmabuf').size).toBe(0);
      expect(dev.queryPlane('overlay', 'region').size).toBe(0);
    }
    guest.disable('overlay');
  });
});

describe('fault injection', () => {
  it('fails the next N queries with exactly the errno asked for', () => {
    guest.setMode('primary', { fourcc: 'XR24', width: W, height: H });
    for (const errno of ['ENOMEM', 'EBUSY', 'EINVAL', 'EIO'] as SimErrno[]) {
      guest.injectFault('query', errno, 2);
      expect(guest.pendingFault('query')).toEqual({ errno, count: 2 });
      expect(errnoOf(() => dev.queryPlane('primary', 'dmabuf'))).toBe(errno);
      expect(errnoOf(() => dev.queryPlane('primary', 'region'))).toBe(errno);
      expect(guest.pendingFault('query')).toBeNull();
      expect(dev.queryPlane('primary', 'dmabuf').ready).toBe(true);
    }
    // probes are capability checks and are not failed
    guest.injectFault('query', 'EIO', 1);
    expect(dev.probePath('dmabuf')).toEqual({ supported: true });
    expect(errnoOf(() => dev.queryPlane('primary', 'dmabuf'))).toBe('EIO');
  });

  it('fails the next N GET_GFX_DMABUF calls with exactly the errno asked for', () => {
    const id = dev.queryPlane('primary', 'dmabuf').id;
    for (const errno of ['ENOMEM', 'EBUSY', 'EINVAL', 'EIO'] as SimErrno[]) {
      guest.injectFault('dmabuf', errno, 1);
      expect(errnoOf(() => dev.getDmabuf(id))).toBe(errno);
      const fd = dev.getDmabuf(id);
      native.close(fd);
    }
  });

  it('changes dmabuf_ids on every query on request, with a bounded cache', () => {
    guest.setNewIdsEveryQuery(true);
    const ids = new Set<number>();
    for (let i = 0; i < 40; i++) ids.add(dev.queryPlane('primary', 'dmabuf').id);
    expect(ids.size).toBe(40);
    expect(guest.info().cachedBuffers).toBeLessThanOrEqual(16);
    guest.setNewIdsEveryQuery(false);
    const a = dev.queryPlane('primary', 'dmabuf').id;
    expect(dev.queryPlane('primary', 'dmabuf').id).toBe(a);
    // the cache is freed when the device is closed (and ids start over after reopening)
    expect(guest.info().cachedBuffers).toBeGreaterThan(0);
    dev.close();
    expect(guest.info()).toMatchObject({ open: false, cachedBuffers: 0 });
    dev = VfioDevice.open(inst!.uuid);
    expect(guest.info()).toMatchObject({ open: true, cachedBuffers: 0 });
    expect(dev.queryPlane('primary', 'dmabuf').ready).toBe(true);
    expect(guest.info().cachedBuffers).toBe(1);
  });

  it('reports a plane as not ready on request', () => {
    guest.setNotReady('primary', true);
    expect(dev.queryPlane('primary', 'dmabuf').size).toBe(0);
    expect(guest.status('primary')).toMatchObject({ ready: false, reason: 'not ready (fault injected)' });
    guest.setNotReady('primary', false);
    expect(dev.queryPlane('primary', 'dmabuf').ready).toBe(true);
  });
});

describe('vkms import', () => {
  it('imports the dma-buf into vkms and a real atomic commit shows it on an overlay plane', () => {
    guest.setMode('primary', { fourcc: 'XR24', width: W, height: H });
    guest.writePixels(0, pattern(4));
    const q = dev.queryPlane('primary', 'dmabuf');
    const dmabuf = dev.getDmabuf(q.id);
    const card = findVkmsCard();
    try {
      const r = vkmsOverlayCommit(card, dmabuf, { width: q.width, height: q.height, stride: q.stride, format: q.drmFormat });
      expect(r.testOnly).toBe('OK');
      expect(r.commit).toBe('OK');
      const state = readDebugfsState(card);
      expect(state, 'debugfs dri state unreadable').not.toBeNull();
      const block = r.stateOfOverlay ?? '';
      expect(block).toContain(`fb=${r.fbId}`);
      expect(block).toMatch(/imported=yes/);
      expect(block).toContain(`size=${W}x${H}`);
    } finally {
      native.close(dmabuf);
    }
  });
});

/** The debugfs dma_buf/bufinfo block of the dma-buf behind fd: its exporter and attached devices. */
function bufinfoOf(fd: number): { expName: string; attached: string[] } | null {
  const ino = fstatSync(fd).ino;
  const lines = readFileSync('/sys/kernel/debug/dma_buf/bufinfo', 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const cols = lines[i]!.split('\t');
    if (cols.length < 7 || !/^\d{8,}$/.test(cols[0]!) || Number(cols[5]) !== ino) continue;
    const attached: string[] = [];
    let j = i + 1;
    while (j < lines.length && !lines[j]!.startsWith('\tAttached Devices:')) j++;
    for (j++; j < lines.length && lines[j]!.startsWith('\t'); j++) attached.push(lines[j]!.trim());
    return { expName: cols[4]!, attached };
  }
  return null;
}

describe('dma-buf attachments', () => {
  it('an import attaches vkms to the exported buffer (attach + map), removing the fb detaches it', () => {
    guest.setMode('primary', { fourcc: 'XR24', width: W, height: H });
    const q = dev.queryPlane('primary', 'dmabuf');
    const fd = dev.getDmabuf(q.id);
    const kms = DrmDevice.open(findVkmsCard());
    try {
      expect(bufinfoOf(fd)).toEqual({ expName: 'vgpu_sim', attached: [] });
      const fbId = kms.importDmabuf(fd, { width: W, height: H, format: DRM_FORMAT_XRGB8888, modifier: 0n, stride: STRIDE });
      expect(bufinfoOf(fd)).toEqual({ expName: 'vgpu_sim', attached: ['vkms'] });
      kms.rmFb(fbId);
      expect(bufinfoOf(fd)!.attached).toEqual([]);
    } finally {
      kms.close();
      native.close(fd);
    }
  });
});

describe('instance removal while a dma-buf is held', () => {
  it('keeps the buffer readable until released, without a crash or leak', () => {
    const g2 = new SimGuest(inst2!.uuid);
    g2.setMode('overlay', { fourcc: 'XR24', width: W, height: H, offset: OFF_B });
    g2.writePixels(OFF_B, pattern(5));
    const d2 = VfioDevice.open(inst2!.uuid);
    let fd = -1;
    try {
      const q = d2.queryPlane('overlay', 'dmabuf');
      expect(q.ready).toBe(true);
      fd = d2.getDmabuf(q.id);
    } finally {
      d2.close();
    }
    // every dma-buf pins the module: the reference count shows the buffer being released
    const refcnt = (): number => Number(readFileSync('/sys/module/vgpu_sim/refcnt', 'utf8'));
    const held = refcnt();
    const m = native.mmap(fd, 0n, FRAME, false);
    inst2!.remove();
    inst2 = null;
    const mid = refcnt();
    expect(mid).toBeGreaterThan(0); // the held dma-buf still pins the module
    expect(mid).toBeLessThanOrEqual(held);
    expect(readFileSync('/proc/self/maps', 'utf8')).toBeTruthy();
    try {
      expect(Buffer.from(m.buffer, 0, FRAME).equals(pattern(5))).toBe(true);
      // a fresh mapping of the released instance's buffer still works too
      const m2 = native.mmap(fd, 0n, PAGE, false);
      expect(Buffer.from(m2.buffer, 0, 16).equals(pattern(5).subarray(0, 16))).toBe(true);
      m2.unmap();
      // and it still imports into vkms and survives a real commit (attach, map, vmap) with its instance gone
      const r = vkmsOverlayCommit(findVkmsCard(), fd, { width: W, height: H, stride: STRIDE, format: DRM_FORMAT_XRGB8888 });
      expect(r).toMatchObject({ testOnly: 'OK', commit: 'OK' });
      expect(r.stateOfOverlay).toMatch(/imported=yes/);
    } finally {
      m.unmap();
      native.close(fd);
    }
    expect(refcnt()).toBeLessThan(mid); // released with its last fd / mapping
    const small = listSimTypes().find((t) => t.name === 'vgpu_sim-small')!;
    expect(small.availableInstances).toBeGreaterThanOrEqual(1);
  });
});

describe('kernel log', () => {
  it('has no warnings from the driver so far', () => {
    const log = execFileSync('dmesg', { encoding: 'utf8' });
    const bad = log.split('\n').filter((l) => /WARNING:|BUG:|Oops|KASAN|Call Trace|refcount_t|UBSAN|list_(add|del) corruption|general protection/.test(l));
    expect(bad).toEqual([]);
  });
});


describe('module README', () => {
  it('documents every debugfs file of an instance (and nothing that does not exist)', () => {
    const readme = readFileSync(path.join(REPO, 'native/vgpu-sim/README.md'), 'utf8');
    const documented = new Set<string>();
    for (const m of readme.matchAll(/^\| `([^`]+)` \| [rw]+ \|/gm)) {
      const name = m[1]!;
      if (name.startsWith('<plane>/')) for (const p of ['primary', 'cursor', 'overlay']) documented.add(`${p}/${name.slice(8)}`);
      else documented.add(name);
    }
    const dir = `/sys/kernel/debug/vgpu_sim/${inst!.uuid}`;
    const present = new Set<string>();
    const walk = (rel: string): void => {
      for (const e of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
        const r = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) walk(r);
        else present.add(r);
      }
    };
    walk('');
    expect([...present].sort()).toEqual([...documented].sort());
    // the README's examples use the files it documents
    expect(readme).toMatch(/### Examples/);
    for (const f of ['primary/mode', 'vram', 'primary/flip', 'flip_count', 'fault/dmabuf', 'overlay/not_ready', 'reset']) {
      expect(readme).toContain(`$D/${f}`);
    }
  });
});
