// Host tests of src/vgpu-sim (instance management and the debugfs guest) against a fake
// sysfs/debugfs tree in a temporary folder: the text written and the parsing of what the
// module prints (formats as in native/vgpu-sim/README.md).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SimError, SimGuest, createSimInstance, listSimInstances, listSimTypes, parseStatus, type SimRoots } from '../../src/vgpu-sim/index.js';

const UUID = '4d81b3d3-d37d-44dd-b9b3-2aca3cf51b4c';
let root = '';
let roots: SimRoots;

function put(rel: string, text = ''): string {
  const f = path.join(root, rel);
  mkdirSync(path.dirname(f), { recursive: true });
  writeFileSync(f, text);
  return f;
}

function read(rel: string): string {
  return readFileSync(path.join(root, rel), 'utf8');
}

beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), 'vsim-host-'));
  roots = { mdevBus: path.join(root, 'bus'), mdevDevices: path.join(root, 'devices'), debugfs: path.join(root, 'dbg') };
  for (const [t, n, d] of [
    ['small', '7', 'video memory 32 MiB, max 1920x1080, planes primary cursor overlay'],
    ['large', '1', 'video memory 128 MiB, max 3840x2160, planes primary cursor overlay'],
  ] as const) {
    put(`bus/vgpu_sim/mdev_supported_types/vgpu_sim-${t}/available_instances`, `${n}\n`);
    put(`bus/vgpu_sim/mdev_supported_types/vgpu_sim-${t}/description`, `${d}\n`);
    put(`bus/vgpu_sim/mdev_supported_types/vgpu_sim-${t}/create`);
  }
  const d = `dbg/${UUID}`;
  put(`${d}/info`, 'type=small vram_size=33554432 max_width=1920 max_height=1080 open=1 cached_buffers=3 next_id=9 drm_fb=0\n');
  put(`${d}/flip_count`, '42\n');
  put(`${d}/reset`);
  put(`${d}/vram`, '\0'.repeat(8192));
  for (const f of ['query', 'dmabuf', 'new_ids']) put(`${d}/fault/${f}`, 'none\n');
  for (const p of ['primary', 'cursor', 'overlay']) for (const f of ['mode', 'flip', 'disable', 'status', 'fb_id', 'not_ready']) put(`${d}/${p}/${f}`, '0\n');
});

afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('instances', () => {
  it('lists the types with availability and description', () => {
    expect(listSimTypes(roots)).toEqual([
      expect.objectContaining({ name: 'vgpu_sim-large', availableInstances: 1, parent: 'vgpu_sim' }),
      expect.objectContaining({ name: 'vgpu_sim-small', availableInstances: 7, description: expect.stringContaining('32 MiB') }),
    ]);
    expect(listSimTypes({ mdevBus: path.join(root, 'nothing') })).toEqual([]);
  });

  it('creates by writing the UUID, accepts the short type name, removes once', () => {
    const i = createSimInstance('small', UUID, roots);
    expect(i).toMatchObject({ uuid: UUID, type: 'vgpu_sim-small' });
    expect(read('bus/vgpu_sim/mdev_supported_types/vgpu_sim-small/create')).toBe(UUID);
    put(`devices/${UUID}/remove`);
    i.remove();
    expect(read(`devices/${UUID}/remove`)).toBe('1');
    writeFileSync(path.join(root, `devices/${UUID}/remove`), '');
    i.remove();
    expect(read(`devices/${UUID}/remove`)).toBe('');
  });

  it('fails clearly for an unknown type or no availability', () => {
    expect(() => createSimInstance('huge', UUID, roots)).toThrow(/no mdev type vgpu_sim-huge \(known: vgpu_sim-large, vgpu_sim-small\)/);
    put('bus/vgpu_sim/mdev_supported_types/vgpu_sim-large/available_instances', '0\n');
    expect(() => createSimInstance('vgpu_sim-large', UUID, roots)).toThrow(/no vgpu_sim-large instance available/);
    expect(() => createSimInstance('small', UUID, { mdevBus: path.join(root, 'nothing') })).toThrow(/is the vgpu_sim module loaded/);
  });

  it('lists instances from debugfs', () => {
    put('dbg/not-a-uuid/info');
    expect(listSimInstances(roots)).toEqual([UUID]);
  });
});

describe('SimGuest', () => {
  it('fails with a hint when the instance folder is missing', () => {
    expect(() => new SimGuest('00000000-0000-0000-0000-000000000000', roots)).toThrow(SimError);
  });

  it('writes the mode text the module parses', () => {
    const g = new SimGuest(UUID, roots);
    g.setMode('primary', { fourcc: 'XR24', width: 1024, height: 768 });
    expect(read(`dbg/${UUID}/primary/mode`)).toBe('fourcc=XR24 width=1024 height=768 offset=0 modifier=0x0');
    g.setMode('cursor', { fourcc: 0x34325241, width: 64, height: 64, stride: 256, offset: 0x400000n, x: -3, y: 5, xhot: 1, yhot: 2, modifier: 0x100000000000001n });
    expect(read(`dbg/${UUID}/cursor/mode`)).toBe(
      'fourcc=0x34325241 width=64 height=64 stride=256 offset=4194304 x=-3 y=5 xhot=1 yhot=2 modifier=0x100000000000001',
    );
    g.move('cursor', 7, 8);
    expect(read(`dbg/${UUID}/cursor/mode`)).toBe('x=7 y=8');
  });

  it('flips, disables, resets and reads counters', () => {
    const g = new SimGuest(UUID, roots);
    g.flip('overlay', 0x200000);
    expect(read(`dbg/${UUID}/overlay/flip`)).toBe(String(0x200000));
    g.disable('overlay');
    expect(read(`dbg/${UUID}/overlay/disable`)).toBe('1');
    g.reset();
    expect(read(`dbg/${UUID}/reset`)).toBe('1');
    expect(g.flipCount()).toBe(42);
    put(`dbg/${UUID}/primary/fb_id`, '57\n');
    expect(g.fbId('primary')).toBe(57);
    expect(g.info()).toEqual({ type: 'small', vramSize: 33554432, maxWidth: 1920, maxHeight: 1080, open: true, cachedBuffers: 3, drmFb: false });
  });

  it('writes and reads video memory at an offset', () => {
    const g = new SimGuest(UUID, roots);
    g.writePixels(4096, Buffer.from('hello'));
    expect(g.readPixels(4096, 5).toString()).toBe('hello');
    expect(g.readPixels(8190, 10).length).toBe(2); // end of the (fake) file
  });

  it('injects and reads faults', () => {
    const g = new SimGuest(UUID, roots);
    g.injectFault('query', 'ENOMEM', 3);
    expect(read(`dbg/${UUID}/fault/query`)).toBe('ENOMEM 3');
    put(`dbg/${UUID}/fault/dmabuf`, 'EBUSY 2\n');
    expect(g.pendingFault('dmabuf')).toEqual({ errno: 'EBUSY', count: 2 });
    put(`dbg/${UUID}/fault/dmabuf`, 'none\n');
    expect(g.pendingFault('dmabuf')).toBeNull();
    g.setNewIdsEveryQuery(true);
    expect(read(`dbg/${UUID}/fault/new_ids`)).toBe('1');
    g.setNotReady('cursor', true);
    expect(read(`dbg/${UUID}/cursor/not_ready`)).toBe('1');
    g.clearFaults();
    expect(read(`dbg/${UUID}/fault/query`)).toBe('none');
    expect(read(`dbg/${UUID}/cursor/not_ready`)).toBe('0');
  });
});

describe('parseStatus', () => {
  it('parses a ready plane and an unusable one with its reason', () => {
    const ok = parseStatus(
      'plane=primary ready=1 size=1228800 enabled=1 fourcc=XR24 width=640 height=480 stride=2560 offset=0x0 x=0 y=0 xhot=0 yhot=0 modifier=0x0 region_ok=1 kflips=3 kflip_err=0\nreason=ok\n',
    );
    expect(ok).toEqual({
      plane: 'primary', ready: true, size: 1228800, enabled: true, fourcc: 'XR24', width: 640, height: 480, stride: 2560,
      offset: 0n, x: 0, y: 0, regionOk: true, kflips: 3, kflipErr: 0, kflipCoalesced: 0, kflipIdle: 0, kflipPending: false, reason: 'ok',
    });
    const bad = parseStatus(
      'plane=cursor ready=0 size=0 enabled=1 fourcc=XR24 width=640 height=480 stride=100 offset=0x200000 x=-4 y=0 xhot=0 yhot=0 modifier=0x0 region_ok=0 kflips=0 kflip_err=-22\nreason=stride 100 smaller than width*cpp 2560\n',
    );
    expect(bad).toMatchObject({ plane: 'cursor', ready: false, offset: 0x200000n, x: -4, kflipErr: -22, reason: 'stride 100 smaller than width*cpp 2560' });
  });
});
