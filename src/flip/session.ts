// An assignment session: open the devices, validate everything that can be validated before
// the screen changes, run the engine, report, restore on exit / SIGINT / SIGTERM / fatal error.
// Used by `vgpu-flip assign`, `vgpu-flip demo` and the benchmark.
import { native } from '../binding/index.js';
import { describeKernelError } from '../binding/errors.js';
import { DrmDevice } from '../kms/index.js';
import { VfioDevice, isUuid, readVgpu, PLANE_PATH_FLAGS, DRM_PLANE_TYPES } from '../vfio/index.js';
import { FlipEngine, parseModeRequest, chooseMode, connectorFor, type GuestPlaneRequest, type GuestSource, type ModeRequest } from './engine.js';
import type { NotReadyPolicy } from './decide.js';
import { descOf, isNotReady } from './decide.js';
import { explainPlan, formatName, planLayouts, type GuestPlaneKind, type GuestPlaneSpec, type Placement } from './planner.js';

export interface AssignOptions {
  vgpu?: string;
  /** use the VFIO device fd of this process (a VMM holding the group) */
  pid?: number;
  /** an already open VFIO device (demo, tests) */
  vfioDevice?: VfioDevice;
  /** a guest that is not a VFIO device (the loopback guest of tests); replaces --vgpu */
  guestSource?: GuestSource;
  /** an already open DRM device (tests, demo); not closed by the session */
  drmDevice?: DrmDevice;
  planes: GuestPlaneKind[];
  crtc: number;
  hwPlanes?: number[];
  placement?: Placement;
  mode?: string;
  /** forced display path; default: DMABUF, else REGION (DRM_FB only when asked) */
  path?: 'drm_fb' | 'dmabuf' | 'region';
  device?: string;
  notReady?: NotReadyPolicy;
  /** open the DRM device with the writeback cap (for capture) */
  writeback?: boolean;
  cursorOrigin?: 'top-left' | 'hotspot';
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function parsePosition(s: string): Placement {
  const m = /^(-?\d+),(-?\d+)$/.exec(s.trim());
  if (!m) throw new UsageError(`--position ${JSON.stringify(s)}: expected X,Y (e.g. 100,50)`);
  return { kind: 'position', x: Number(m[1]), y: Number(m[2]) };
}

export interface Session {
  engine: FlipEngine;
  drm: DrmDevice;
  vfio: VfioDevice | null;
  /** what was checked before starting */
  checks: string[];
  /** stop the engine (restores the display) and close what the session opened */
  close(): Promise<void>;
}

/**
 * Open and validate. Throws UsageError / Error with an explanation, before anything on the
 * screen changes: unknown vGPU, CRTC out of range, mode not offered, no plane for the format.
 */
export function openSession(o: AssignOptions): Session {
  const checks: string[] = [];
  if (o.planes.length === 0) throw new UsageError('say which guest plane(s) to assign: --plane primary [--plane cursor]');
  if (new Set(o.planes).size !== o.planes.length) throw new UsageError('each --plane may be given once');
  if (o.hwPlanes && o.hwPlanes.length > o.planes.length) throw new UsageError('more --hw-plane than --plane options (they pair up in order)');
  const modeGuest = o.mode === 'guest';
  const modeReq: ModeRequest | undefined = o.mode && !modeGuest ? parseModeRequest(o.mode) : undefined;

  let vfio: VfioDevice | undefined = o.vfioDevice;
  let ownVfio = false;
  if (!vfio && !o.guestSource) {
    if (!o.vgpu) throw new UsageError('--vgpu <uuid> is required (list vGPUs with `vgpu-flip inspect`)');
    if (!isUuid(o.vgpu)) throw new UsageError(`--vgpu ${JSON.stringify(o.vgpu)} is not a UUID (list vGPUs with \`vgpu-flip inspect\`)`);
    const info = readVgpu(o.vgpu, {}, []);
    if (info.devicePath === null) {
      throw new UsageError(`unknown vGPU ${o.vgpu}: ${info.sysfsPath} does not exist (list vGPUs with \`vgpu-flip inspect\`)`);
    }
    vfio = o.pid !== undefined ? VfioDevice.fromPid(o.pid, { uuid: o.vgpu }) : VfioDevice.open(o.vgpu);
    ownVfio = true;
    checks.push(`vGPU ${o.vgpu} (${info.type ?? 'unknown type'}) opened${o.pid !== undefined ? ` from pid ${o.pid}` : ''}`);
  }
  let drm = o.drmDevice;
  let ownDrm = false;
  // what the checks below need from the guest, whether it is a VFIO device or not
  const gs = o.guestSource;
  const probeOk = (p: 'drm_fb' | 'dmabuf' | 'region'): { supported: boolean | null; error?: { message: string } } => {
    if (vfio) return vfio.probePath(p);
    return { supported: p !== 'drm_fb' };
  };
  const queryNow = (kind: GuestPlaneKind, p: 'drm_fb' | 'dmabuf' | 'region') =>
    vfio ? native.vfioQueryGfxPlane(vfio.fd, PLANE_PATH_FLAGS[p], DRM_PLANE_TYPES[kind]) : gs!.query(kind, p);
  try {
    // the display path: probe
    let path: 'drm_fb' | 'dmabuf' | 'region';
    if (o.path) {
      path = o.path;
      const probe = probeOk(path);
      if (probe.supported !== true) {
        const why = probe.supported === false ? 'the vendor driver answers EINVAL to PROBE' : `PROBE failed: ${probe.error?.message}`;
        const others = (['drm_fb', 'dmabuf', 'region'] as const).filter((x) => x !== path && probeOk(x).supported === true);
        const alt = others.length ? ` (supported: ${others.map((x) => `--path ${x.replace('_', '-')}`).join(', ')})` : '';
        throw new UsageError(`vGPU does not support the ${path.toUpperCase()} plane path: ${why}${alt}`);
      }
      checks.push(`${path.toUpperCase()} path supported (PROBE), as asked`);
    } else {
      const dmabuf = probeOk('dmabuf');
      if (dmabuf.supported === true) path = 'dmabuf';
      else if (probeOk('region').supported === true) path = 'region';
      else throw new UsageError(`vGPU supports neither the DMABUF nor the REGION plane path (PROBE: ${dmabuf.error?.message ?? 'EINVAL'})`);
      checks.push(`${path.toUpperCase()} path chosen (PROBE)`);
    }
    if (!drm) {
      drm = DrmDevice.open(o.device ?? '/dev/dri/card0', { writeback: o.writeback ?? false });
      ownDrm = true;
    }
    try {
      drm.setMaster();
    } catch (e) {
      throw new UsageError(
        `cannot become DRM master of ${drm.path} (${describeKernelError(e)}): another process (a display server?) owns the display; ` +
          'stop it, or run vgpu-flip from a text console where nothing else uses the card',
      );
    }
    checks.push(`DRM master of ${drm.path} (${drm.version.name})`);
    const snap = drm.snapshot();
    const crtc = snap.crtcs.find((c) => c.index === o.crtc);
    if (!crtc) {
      throw new UsageError(`--crtc ${o.crtc} is out of range: ${drm.path} has ${snap.crtcs.length} CRTC(s), 0..${snap.crtcs.length - 1}`);
    }
    const conn = connectorFor(snap, crtc);
    const { mode, modeset } = chooseMode(crtc, conn, modeReq);
    checks.push(`CRTC ${o.crtc} (id ${crtc.id}) ${modeset ? `will be set to ${mode.hdisplay}x${mode.vdisplay}@${mode.vrefresh} on ${conn?.name}` : `keeps ${mode.hdisplay}x${mode.vdisplay}@${mode.vrefresh}`}`);
    for (const id of o.hwPlanes ?? []) {
      const pl = snap.planes.find((p) => p.id === id);
      if (!pl) throw new UsageError(`--hw-plane ${id} does not exist on ${drm.path} (planes: ${snap.planes.map((p) => `${p.id} ${p.type}`).join(', ')})`);
      if (!pl.possibleCrtcIndices.includes(o.crtc)) throw new UsageError(`--hw-plane ${id} cannot be used on CRTC ${o.crtc}`);
    }
    // static check of the guest planes that are already up: can any hardware plane show them?
    const specs: GuestPlaneSpec[] = [];
    for (let i = 0; i < o.planes.length; i++) {
      const kind = o.planes[i]!;
      let raw;
      try {
        raw = queryNow(kind, path);
      } catch (e) {
        checks.push(`guest ${kind}: query failed now (${describeKernelError(e)}); will retry while running`);
        continue;
      }
      if (isNotReady(raw)) {
        checks.push(`guest ${kind}: not ready yet (size 0); it is assigned when the guest enables it`);
        continue;
      }
      const d = descOf(raw);
      const spec: GuestPlaneSpec = { kind, format: d.format, modifier: d.modifier, width: d.width, height: d.height, x: raw.xPos | 0, y: raw.yPos | 0 };
      if (o.placement && kind !== 'cursor') spec.placement = o.placement;
      const hw = o.hwPlanes?.[i];
      if (hw !== undefined) spec.hwPlaneId = hw;
      specs.push(spec);
      checks.push(`guest ${kind}: ${d.width}x${d.height} ${formatName(d.format, d.modifier)}`);
    }
    if (specs.length) {
      const plan = planLayouts(snap, { crtcIndex: o.crtc, crtcWidth: mode.hdisplay, crtcHeight: mode.vdisplay, guests: specs });
      if (plan.layouts.length === 0) throw new UsageError(`no hardware plane of CRTC ${o.crtc} can show the guest planes:\n${explainPlan(plan).join('\n')}`);
    }
    const planes: GuestPlaneRequest[] = o.planes.map((kind, i) => {
      const r: GuestPlaneRequest = { kind };
      if (o.placement && kind !== 'cursor') r.placement = o.placement;
      const hw = o.hwPlanes?.[i];
      if (hw !== undefined) r.hwPlaneId = hw;
      return r;
    });
    const engine = new FlipEngine({
      drm,
      ...(vfio ? { vfio } : { guest: () => gs! }),
      crtcIndex: o.crtc,
      planes,
      ...(modeReq ? { mode: modeReq } : modeGuest ? { mode: 'guest' as const } : {}),
      path,
      notReady: o.notReady ?? 'keep',
      ...(o.cursorOrigin ? { cursorOrigin: o.cursorOrigin } : {}),
    });
    const d = drm;
    const v = vfio;
    let closed = false;
    return {
      engine,
      drm: d,
      vfio: v ?? null,
      checks,
      async close(): Promise<void> {
        if (closed) return;
        closed = true;
        await engine.stop();
        if (ownDrm) d.close();
        if (ownVfio) v?.close();
      },
    };
  } catch (e) {
    if (ownDrm) drm?.close();
    if (ownVfio) vfio?.close();
    throw e;
  }
}

/**
 * Restore the display on SIGINT / SIGTERM / uncaught errors, then exit. Returns a function
 * that removes the handlers.
 */
export function installExitHandlers(close: () => Promise<void>, log: (s: string) => void): () => void {
  let exiting = false;
  const exitWith = (code: number, why: string): void => {
    if (exiting) return;
    exiting = true;
    log(why);
    close()
      .catch((e) => log(`vgpu-flip: cleanup failed: ${(e as Error).message}`))
      .finally(() => process.exit(code));
  };
  const onInt = (): void => exitWith(130, 'interrupted: restoring the display');
  const onTerm = (): void => exitWith(143, 'terminated: restoring the display');
  const onFatal = (e: unknown): void => exitWith(1, `vgpu-flip: fatal error: ${(e as Error)?.stack ?? e}; restoring the display`);
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  process.on('uncaughtException', onFatal);
  process.on('unhandledRejection', onFatal);
  return () => {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    process.off('uncaughtException', onFatal);
    process.off('unhandledRejection', onFatal);
  };
}
