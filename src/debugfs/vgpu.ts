// vGPU debug attributes under debugfs, read-only:
// - vgpu-sim (native/vgpu-sim/README.md): /vgpu_sim/<uuid>/info, <plane>/status, <plane>/fb_id
//   (the DRM_FB framebuffer id of the plane's current buffer on the host card).
// - Intel GVT-g (drivers/gpu/drm/i915/gvt/debugfs.c, kvmgt.c in Linux 6.1): /dri/<minor>/gvt/
//   with num_tracked_mmio and one vgpu<N>/ folder per vGPU holding `active` (Y/N),
//   `scan_nonprivbb` (engine mask) and `kvmgt_nr_cache_entries`. Upstream has no plane or
//   framebuffer attribute (the DRM_FB proposal was never merged); a `/gvt` folder at the debugfs
//   root is accepted too. Absence is normal: most hosts have neither.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseStatus, SIM_PLANES, type SimPlane, type SimPlaneStatus } from '../vgpu-sim/index.js';
import { parseKeyValues as kv } from '../util/kv.js';

export interface SimPlaneDebug {
  plane: SimPlane;
  status: SimPlaneStatus | null;
  /** DRM_FB framebuffer id of the current buffer on the host card (0: none; null: not read) */
  fbId: number | null;
  /** why a file could not be read */
  error?: string;
}

export interface SimInstanceDebug {
  uuid: string;
  dir: string;
  type: string;
  /** bound to a host DRM device for DRM_FB (module parameter host_card) */
  drmFb: boolean;
  /** the host card vgpu_sim is bound to ('card0'), from /sys/module/vgpu_sim/parameters/host_card */
  hostCard: string | null;
  open: boolean;
  flipCount: number | null;
  planes: SimPlaneDebug[];
  error?: string;
}

export interface GvtVgpuDebug {
  /** 'vgpu1' */
  name: string;
  id: number;
  dir: string;
  active: boolean | null;
  scanNonprivbb: string | null;
  kvmgtCacheEntries: number | null;
}

export interface GvtDebug {
  dir: string;
  /** DRM minor of the i915 device, null for a root-level /gvt folder */
  minor: number | null;
  numTrackedMmio: number | null;
  vgpus: GvtVgpuDebug[];
}

function errCode(e: unknown): string {
  return typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : String(e);
}

function readOpt(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

export interface SimReadOptions {
  /** /sys/module/vgpu_sim/parameters/host_card (tests point it elsewhere) */
  hostCardParam?: string;
  /**
   * read <plane>/fb_id (default true). vgpu-sim creates the host framebuffer of the plane's
   * current buffer on first request, so reading it can add one framebuffer to the instance's
   * cache; it is only read when the instance is bound (drm_fb=1) and the plane is ready.
   */
  fbIds?: boolean;
}

/** Every vgpu-sim instance under <debugfsRoot>/vgpu_sim; [] when there is none. */
export function readSimInstances(debugfsRoot: string, o: SimReadOptions = {}): SimInstanceDebug[] {
  const root = path.join(debugfsRoot, 'vgpu_sim');
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  const hc = readOpt(o.hostCardParam ?? '/sys/module/vgpu_sim/parameters/host_card')?.trim() ?? '';
  const hostCard = hc === '' || hc === '(null)' ? null : hc;
  return names
    .filter((n) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(n))
    .sort()
    .map((uuid) => {
      const dir = path.join(root, uuid);
      const inst: SimInstanceDebug = { uuid, dir, type: '', drmFb: false, hostCard, open: false, flipCount: null, planes: [] };
      try {
        const info = kv(readFileSync(path.join(dir, 'info'), 'utf8'));
        inst.type = info.get('type') ?? '';
        inst.drmFb = info.get('drm_fb') === '1';
        inst.open = info.get('open') === '1';
      } catch (e) {
        inst.error = `reading ${path.join(dir, 'info')}: ${errCode(e)}`;
        return inst;
      }
      const fc = readOpt(path.join(dir, 'flip_count'));
      inst.flipCount = fc === null ? null : Number.parseInt(fc.trim(), 10);
      for (const plane of SIM_PLANES) {
        const pd: SimPlaneDebug = { plane, status: null, fbId: null };
        try {
          pd.status = parseStatus(readFileSync(path.join(dir, plane, 'status'), 'utf8'));
        } catch (e) {
          pd.error = `reading ${path.join(dir, plane, 'status')}: ${e instanceof Error && !('code' in e) ? e.message : errCode(e)}`;
        }
        if ((o.fbIds ?? true) && inst.drmFb && pd.status?.ready) {
          const t = readOpt(path.join(dir, plane, 'fb_id'));
          if (t !== null && /^\d+\s*$/.test(t)) pd.fbId = Number.parseInt(t, 10);
        }
        inst.planes.push(pd);
      }
      return inst;
    });
}

function readGvtDir(dir: string, minor: number | null): GvtDebug {
  const n = readOpt(path.join(dir, 'num_tracked_mmio'));
  const out: GvtDebug = { dir, minor, numTrackedMmio: n === null ? null : Number.parseInt(n.trim(), 10), vgpus: [] };
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    /* unreadable: empty */
  }
  for (const name of names.filter((x) => /^vgpu\d+$/.test(x)).sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)))) {
    const d = path.join(dir, name);
    const active = readOpt(path.join(d, 'active'))?.trim();
    const scan = readOpt(path.join(d, 'scan_nonprivbb'))?.trim();
    const cache = readOpt(path.join(d, 'kvmgt_nr_cache_entries'))?.trim();
    out.vgpus.push({
      name,
      id: Number(name.slice(4)),
      dir: d,
      active: active === undefined ? null : active === 'Y' || active === '1',
      scanNonprivbb: scan ?? null,
      kvmgtCacheEntries: cache === undefined ? null : Number.parseInt(cache, 10),
    });
  }
  return out;
}

/** GVT-g folders: <root>/dri/<minor>/gvt (upstream) and <root>/gvt; [] when absent. */
export function readGvt(debugfsRoot: string): GvtDebug[] {
  const out: GvtDebug[] = [];
  let minors: string[] = [];
  try {
    minors = readdirSync(path.join(debugfsRoot, 'dri'));
  } catch {
    /* no dri folder */
  }
  for (const m of minors.filter((x) => /^\d+$/.test(x)).sort((a, b) => Number(a) - Number(b))) {
    const d = path.join(debugfsRoot, 'dri', m, 'gvt');
    if (existsSync(d)) out.push(readGvtDir(d, Number(m)));
  }
  const top = path.join(debugfsRoot, 'gvt');
  if (existsSync(top)) out.push(readGvtDir(top, null));
  return out;
}
