// vGPU debug attribute readers of `vgpu-flip debugfs` on fake debugfs trees: vgpu-sim (status
// lines as recorded in the VM, fb_id only read when asked) and Intel GVT-g (the files upstream
// Linux 6.1 creates: dri/N/gvt/num_tracked_mmio, vgpuN/{active,scan_nonprivbb,kvmgt_nr_cache_entries}).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readGvt, readSimInstances } from '../../src/debugfs/vgpu.js';
import { renderDebugfsText } from '../../src/debugfs/render.js';
import { collectDebugfs } from '../../src/debugfs/collect.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'vgpu-flip-vgpu-'));
  dirs.push(d);
  return d;
}
function put(file: string, text: string): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text);
}

const UUID = 'dd5d97a7-3c3d-40ac-9730-7920debdadd1';
const recorded = readFileSync(path.join(import.meta.dirname, '..', 'fixtures', 'debugfs-vkms-drmfb-sim.txt'), 'utf8');

function simTree(root: string, drmFb: boolean): void {
  const d = path.join(root, 'vgpu_sim', UUID);
  for (const block of recorded.split(/^== /m).slice(1)) {
    const [name = '', l1, l2, id] = block.split('\n');
    put(path.join(d, name.trim(), 'status'), `${l1}\n${l2}\n`);
    put(path.join(d, name.trim(), 'fb_id'), `${id}\n`);
  }
  put(path.join(d, 'info'), `type=small vram_size=33554432 max_width=1920 max_height=1080 open=1 cached_buffers=2 next_id=6 drm_fb=${drmFb ? 1 : 0}\n`);
  put(path.join(d, 'flip_count'), '7\n');
  put(path.join(root, 'vgpu_sim', 'not-a-uuid', 'info'), 'x');
}

describe('readSimInstances', () => {
  it('instances, plane status and (when bound) the DRM_FB ids of ready planes', () => {
    const root = tmp();
    simTree(root, true);
    put(path.join(root, 'param'), 'card0\n');
    const [inst, ...more] = readSimInstances(root, { hostCardParam: path.join(root, 'param') });
    expect(more).toEqual([]);
    expect(inst).toMatchObject({ uuid: UUID, type: 'small', drmFb: true, hostCard: 'card0', open: true, flipCount: 7 });
    expect(inst!.planes.map((p) => [p.plane, p.status?.ready, p.status?.fourcc, p.status?.width, p.fbId])).toEqual([
      ['primary', true, 'XR24', 640, 61],
      ['cursor', true, 'AR24', 64, 62],
      ['overlay', false, '????', 0, null], // not ready: not read
    ]);
    expect(inst!.planes[0]!.status!.offset).toBe(0x100000n);
    // not asked to, or not bound: fb_id is left alone
    expect(readSimInstances(root, { fbIds: false, hostCardParam: path.join(root, 'none') })[0]!.planes.map((p) => p.fbId)).toEqual([null, null, null]);
    const unbound = tmp();
    simTree(unbound, false);
    expect(readSimInstances(unbound, { hostCardParam: path.join(root, 'none') })[0]!).toMatchObject({ drmFb: false, hostCard: null });
    expect(readSimInstances(path.join(root, 'nothing'))).toEqual([]);
  });

  it('a broken instance folder is reported on the instance, not thrown', () => {
    const root = tmp();
    mkdirSync(path.join(root, 'vgpu_sim', UUID), { recursive: true });
    const [inst] = readSimInstances(root);
    expect(inst!.error).toMatch(/info: ENOENT/);
  });
});

describe('readGvt', () => {
  it('upstream GVT-g folders under dri/N/gvt, and a root-level gvt folder', () => {
    const root = tmp();
    const g = path.join(root, 'dri', '0', 'gvt');
    put(path.join(g, 'num_tracked_mmio'), '2731\n');
    put(path.join(g, 'vgpu2', 'active'), 'Y\n');
    put(path.join(g, 'vgpu2', 'scan_nonprivbb'), '0x0\n');
    put(path.join(g, 'vgpu2', 'kvmgt_nr_cache_entries'), '12\n');
    put(path.join(g, 'vgpu2', 'mmio_diff'), 'Offset HW vGPU Diff\n');
    put(path.join(g, 'vgpu10', 'active'), 'N\n');
    put(path.join(root, 'gvt', 'num_tracked_mmio'), '5\n');
    const gvt = readGvt(root);
    expect(gvt).toEqual([
      {
        dir: g,
        minor: 0,
        numTrackedMmio: 2731,
        vgpus: [
          { name: 'vgpu2', id: 2, dir: path.join(g, 'vgpu2'), active: true, scanNonprivbb: '0x0', kvmgtCacheEntries: 12 },
          { name: 'vgpu10', id: 10, dir: path.join(g, 'vgpu10'), active: false, scanNonprivbb: null, kvmgtCacheEntries: null },
        ],
      },
      { dir: path.join(root, 'gvt'), minor: null, numTrackedMmio: 5, vgpus: [] },
    ]);
    expect(readGvt(tmp())).toEqual([]);
  });

  it('shows up in the text report next to the DRM side', () => {
    const root = tmp();
    put(path.join(root, 'dri', '0', 'state'), readFileSync(path.join(import.meta.dirname, '..', 'fixtures', 'debugfs-vkms-idle-state.txt'), 'utf8'));
    put(path.join(root, 'dri', '0', 'gvt', 'vgpu1', 'active'), 'Y\n');
    const text = renderDebugfsText(collectDebugfs({ debugfsRoot: root, runDir: path.join(root, 'run') }));
    expect(text).toMatch(/GVT-g \(.*dri\/0\/gvt\)/);
    expect(text).toMatch(/vgpu1\s+yes/);
    expect(text).toMatch(/\(host\)\s+-\s+60\s+XR24\s+1024x768\s+\[fbcon\]\s+no\s+31 plane-0\s+51 crtc-0\s+52 Virtual-1\s+1024x768\+0\+0/);
  });
});
