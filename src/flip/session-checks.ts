// Checks of an assignment session that do not need the engine: the display path (PROBE order
// DRM_FB, DMABUF, REGION, or forced), the DRM node, vendor-specific hints (only for that vendor).
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** DRM's character device major number (drivers/gpu/drm/drm_drv.c: DRM_MAJOR 226). */
export const DRM_MAJOR = 226;

/** --device must be a DRM node: a character device of major 226. Throws a UsageError saying what it is instead. */
export function checkDrmNode(dev: string, stat: typeof statSync = statSync): void {
  let st;
  try {
    st = stat(dev);
  } catch (e) {
    const code = (e as { code?: string }).code ?? String(e);
    throw new UsageError(`--device ${dev}: ${code === 'ENOENT' ? 'no such file' : code} (DRM card nodes: ls /dev/dri/card*; \`vgpu-flip inspect\` lists them)`);
  }
  if (!st.isCharacterDevice()) {
    const what = st.isDirectory() ? 'a directory' : st.isFile() ? 'a regular file' : st.isBlockDevice() ? 'a block device' : 'not a character device';
    throw new UsageError(`--device ${dev} is ${what}, not a DRM node (a /dev/dri/cardN character device of major ${DRM_MAJOR})`);
  }
  const rdev = Number(st.rdev);
  const major = ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 0x100000000) & 0xfffff000);
  if (major !== DRM_MAJOR) {
    throw new UsageError(`--device ${dev} is a character device of major ${major}, not a DRM node (major ${DRM_MAJOR}: /dev/dri/cardN)`);
  }
}

export type DisplayPath = 'drm_fb' | 'dmabuf' | 'region';
export type ProbeFn = (p: DisplayPath) => { supported: boolean | null; error?: { message: string } };

/**
 * The display path: the first of DRM_FB, DMABUF, REGION the vGPU supports (PROBE), or the
 * forced one, which must be supported. Throws a UsageError saying what is supported instead.
 * `offWhy`: how to say "unsupported" when the answer does not come from PROBE (--via debugfs).
 */
export function choosePath(probe: ProbeFn, forced?: DisplayPath, offWhy?: string, vendor: string | null = null): { path: DisplayPath; check: string } {
  const name = (p: DisplayPath): string => p.toUpperCase();
  if (forced) {
    const a = probe(forced);
    if (a.supported === true) return { path: forced, check: `${name(forced)} path supported (PROBE), as asked` };
    const why = a.supported === false ? (offWhy ?? 'the vendor driver answers EINVAL to PROBE') : `PROBE failed: ${a.error?.message}`;
    const others = PATH_ORDER.filter((x) => x !== forced && probe(x).supported === true);
    const alt = others.length ? ` (supported: ${others.map((x) => `--path ${x.replace('_', '-')}`).join(', ')})` : '';
    const hint = forced === 'drm_fb' ? drmFbHint(vendor) : '';
    throw new UsageError(`vGPU does not support the ${name(forced)} plane path: ${why}${alt}${hint}`);
  }
  // preference: the kernel flips (DRM_FB), then zero copy (DMABUF), then copies (REGION)
  const answers = PATH_ORDER.map((p) => ({ p, a: probe(p) }));
  const first = answers.find((x) => x.a.supported === true);
  if (!first) {
    const said = answers.map((x) => `${name(x.p)}: ${x.a.supported === false ? 'EINVAL' : x.a.error?.message ?? '?'}`).join(', ');
    throw new UsageError(`vGPU supports none of the DRM_FB, DMABUF and REGION plane paths (PROBE ${said})`);
  }
  const skipped = answers.slice(0, answers.indexOf(first)).map((x) => name(x.p));
  return { path: first.p, check: `${name(first.p)} path chosen (PROBE${skipped.length ? `; not supported: ${skipped.join(', ')}` : ''})` };
}

const PATH_ORDER: readonly DisplayPath[] = ['drm_fb', 'dmabuf', 'region'];

/** vgpu-sim's host card (module parameter host_card), null when not loaded / not set. */
export function simHostCard(): string | null {
  try {
    const v = readFileSync('/sys/module/vgpu_sim/parameters/host_card', 'utf8').trim();
    return v === '' || v === '(null)' ? null : v;
  } catch {
    return null;
  }
}

/**
 * Why DRM_FB cannot show vGPU `uuid` on card `devPath` (null: it can, or it cannot be told): the
 * vendor's framebuffers are objects of the card it is bound to, and no other card knows their
 * ids. Known for vgpu-sim (module parameter host_card).
 */
export function drmFbBoundElsewhere(uuid: string | null, devPath: string): string | null {
  const bound = uuid && existsSync(`/sys/kernel/debug/vgpu_sim/${uuid}`) ? simHostCard() : null;
  if (!bound || bound === cardName(devPath)) return null;
  return `vgpu-sim's framebuffers live on ${bound} (module parameter host_card), not on ${devPath}`;
}

export function cardName(devPath: string): string {
  try {
    return path.basename(realpathSync(devPath));
  } catch {
    return path.basename(devPath);
  }
}

/** The guest's own flip counter of a vgpu-sim instance (debugfs flip_count), if readable. */
export function simFlipCounter(uuid: string): (() => number | null) | null {
  const f = `/sys/kernel/debug/vgpu_sim/${uuid}/flip_count`;
  if (!existsSync(f)) return null;
  return () => {
    try {
      const n = Number.parseInt(readFileSync(f, 'utf8').trim(), 10);
      return Number.isFinite(n) ? n : null;
    } catch {
      return null;
    }
  };
}

/**
 * The vendor driver of an mdev: its type id's prefix (the mdev core names types
 * "<parent driver>-<type>": vgpu_sim-small, i915-GVTg_V5_4, mbochs-small), null when unknown.
 */
export function vendorDriverOf(mdevType: string | null): string | null {
  if (!mdevType) return null;
  const i = mdevType.indexOf('-');
  return i > 0 ? mdevType.slice(0, i) : null;
}

/** What to do when DRM_FB is not offered: vendor specific only for that vendor's driver. */
export function drmFbHint(vendor: string | null): string {
  if (vendor === 'vgpu_sim' && existsSync('/sys/module/vgpu_sim/parameters/host_card')) {
    return '; vgpu-sim offers DRM_FB once bound to a host card: echo card0 > /sys/module/vgpu_sim/parameters/host_card (or load it with host_card=card0)';
  }
  return '; DRM_FB needs a vendor driver that exposes host framebuffers (VFIO_GFX_PLANE_TYPE_DRM_FB, bit 3): use --path dmabuf or region';
}

/** How the guest will be looked at: on its display event, or every frame (assign's check list). */
export function displayEventCheck(find: () => { index: number } | null, displayEvents: boolean | undefined): string {
  if (displayEvents === false) return 'display event: not used (--no-display-events): the guest is looked at every frame';
  try {
    const d = find();
    return d
      ? `display event: IRQ ${d.index}: the guest is looked at when it signals a change (no polling)`
      : 'display event: the vendor driver offers none: the guest is looked at every frame (less often while it shows the same picture)';
  } catch (e) {
    return `display event: cannot tell (${(e as Error).message}): the guest is looked at every frame`;
  }
}
