// An assignment session: open the devices, validate everything that can be validated before
// the screen changes, run the engine, report, restore on exit / SIGINT / SIGTERM / fatal error.
// Used by `vgpu-flip assign`, `vgpu-flip demo` and the benchmark.
import { existsSync } from 'node:fs';
import { native } from '../binding/index.js';
import { describeKernelError } from '../binding/errors.js';
import { DrmDevice } from '../kms/index.js';
import { VfioDevice, isUuid, readVgpu, PLANE_PATH_FLAGS, DRM_PLANE_TYPES } from '../vfio/index.js';
import { findVmmDevice, type VmmPick } from '../vfio/vmm-pick.js';
import { watchVmmExit, type VmmWatch } from '../vfio/vmm.js';
import { checkDrmNode, choosePath, displayEventCheck, drmFbBoundElsewhere, simFlipCounter, simHostCard, UsageError, vendorDriverOf } from './session-checks.js';
import { findDisplayIrq } from '../vfio/display-irq.js';
import { FlipEngine, parseModeRequest, chooseMode, connectorFor, type GuestPlaneRequest, type GuestSource, type ModeRequest } from './engine.js';
import type { NotReadyPolicy } from './decide.js';
import { descOf, isNotReady } from './decide.js';
import { openFbIdResolver, ResolverGuestSource, type FbIdResolver } from './drmfb.js';
import { addMoreVgpus, type MoreVgpu } from './session-vgpus.js';
import { explainPlan, formatName, planLayouts, type GuestPlaneKind, type GuestPlaneSpec, type Placement } from './planner.js';

export { choosePath, checkDrmNode, UsageError, type DisplayPath, type ProbeFn } from './session-checks.js';
export { installExitHandlers } from '../util/exit-handlers.js';
export type { MoreVgpu } from './session-vgpus.js';

export interface AssignOptions {
  vgpu?: string;
  /** more vGPUs on the same CRTC, each with the same --plane list and its own placement */
  moreVgpus?: MoreVgpu[];
  /**
   * use a VFIO device fd of this process (a VMM holding the group): the one of `vgpu`, of
   * `pidFd`, or its only display device (src/vfio/vmm-pick.ts); its exit stops the session
   */
  pid?: number;
  /** the fd number in `pid` to use (checked: a VFIO device with a display) */
  pidFd?: number;
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
  /** forced display path; default: the first the vGPU supports of DRM_FB, DMABUF, REGION (PROBE) */
  path?: 'drm_fb' | 'dmabuf' | 'region';
  /**
   * where DRM_FB framebuffer ids come from: the VFIO fd (default) or the vendor driver's debug
   * attribute ('debugfs': no VFIO fd at all, for when a VMM owns the VFIO group; DRM_FB only)
   */
  via?: 'vfio' | 'debugfs';
  /** DRM_FB: how often the engine looks at the guest planes (ms, default 100) */
  watchIntervalMs?: number;
  device?: string;
  notReady?: NotReadyPolicy;
  /** open the DRM device with the writeback cap (for capture) */
  writeback?: boolean;
  cursorOrigin?: 'top-left' | 'hotspot';
  /** look at a guest only when its vGPU signals a display change (display event IRQ): default where it can; false: poll */
  displayEvents?: boolean;
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
  /** the display path chosen (PROBE order DRM_FB, DMABUF, REGION, or forced) */
  path: 'drm_fb' | 'dmabuf' | 'region';
  /** the DRM_FB id resolver (--via debugfs), else null */
  resolver: FbIdResolver | null;
  /**
   * resolves when the engine stopped by itself (the vGPU was removed, a fatal error): the
   * display is restored and the session's VFIO fd closed by then; the value says why.
   * Stays pending when the session is closed by close().
   */
  done: Promise<string>;
  /** what was checked before starting */
  checks: string[];
  /** the vGPU's mdev UUID when known */
  uuid: string | null;
  /** why this display path (the PROBE answer or "as asked") */
  pathReason: string;
  /** the VMM whose device fd the session uses (--pid), and how its exit is noticed */
  vmm: { pid: number; fd: number; watch: VmmWatch['how'] } | null;
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
  let pick: VmmPick | undefined;
  let ownVfio = false;
  let resolver: FbIdResolver | null = null;
  let gs = o.guestSource;
  const via = o.via ?? 'vfio';
  if (via === 'debugfs') {
    if (o.path && o.path !== 'drm_fb') throw new UsageError(`--via debugfs works with the DRM_FB path only (asked for --path ${o.path.replace('_', '-')}): DMABUF and REGION need the VFIO fd (or --pid <VMM pid>)`);
    if (o.pid !== undefined) throw new UsageError('--via debugfs and --pid exclude each other: --pid takes the VMM\'s VFIO fd, --via debugfs needs none');
    if (vfio || gs) throw new UsageError('--via debugfs resolves framebuffer ids of a --vgpu; it cannot be combined with another guest source');
    if (!o.vgpu) throw new UsageError('--vgpu <uuid> is required (list vGPUs with `vgpu-flip inspect`)');
    if (!isUuid(o.vgpu)) throw new UsageError(`--vgpu ${JSON.stringify(o.vgpu)} is not a UUID (list vGPUs with \`vgpu-flip inspect\`)`);
    const info = readVgpu(o.vgpu, {}, []);
    if (info.devicePath === null) {
      throw new UsageError(`unknown vGPU ${o.vgpu}: ${info.sysfsPath} does not exist (list vGPUs with \`vgpu-flip inspect\`)`);
    }
    try {
      resolver = openFbIdResolver(o.vgpu);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    gs = new ResolverGuestSource(resolver);
    checks.push(`vGPU ${o.vgpu} (${info.type ?? 'unknown type'}): framebuffer ids from ${resolver.name} (${resolver.source}), no VFIO fd`);
  } else if (!vfio && !gs) {
    if (o.pidFd !== undefined && o.pid === undefined) throw new UsageError('--pid-fd <fd> names an fd of the VMM: give the VMM too (--pid <pid> or --domain <name>)');
    if (o.vgpu !== undefined) {
      if (!isUuid(o.vgpu)) throw new UsageError(`--vgpu ${JSON.stringify(o.vgpu)} is not a UUID (list vGPUs with \`vgpu-flip inspect\`)`);
      const info = readVgpu(o.vgpu, {}, []);
      if (info.devicePath === null) {
        throw new UsageError(`unknown vGPU ${o.vgpu}: ${info.sysfsPath} does not exist (list vGPUs with \`vgpu-flip inspect\`)`);
      }
    } else if (o.pid === undefined) {
      throw new UsageError('--vgpu <uuid> is required, or name the VMM holding it: --pid <pid>, --pid-file <path> or --domain <name> (list vGPUs with `vgpu-flip inspect`)');
    }
    if (o.pid !== undefined) {
      try {
        pick = findVmmDevice(o.pid, { ...(o.vgpu ? { vgpu: o.vgpu } : {}), ...(o.pidFd !== undefined ? { pidFd: o.pidFd } : {}) });
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      checks.push(...pick.checks);
      vfio = VfioDevice.fromPid(o.pid, { targetFd: pick.fd, ...(pick.uuid ? { uuid: pick.uuid } : {}) });
    } else {
      vfio = VfioDevice.open(o.vgpu!);
    }
    ownVfio = true;
    const u = o.vgpu ?? pick?.uuid ?? null;
    const type = u ? readVgpu(u, {}, []).type : null;
    checks.push(`vGPU ${u ?? '(not identified)'} (${type ?? 'unknown type'}) opened${o.pid !== undefined ? ` from pid ${o.pid} fd ${pick!.fd}` : ''}`);
  }
  let drm = o.drmDevice;
  let ownDrm = false;
  // what the checks below need from the guest, whether it is a VFIO device or not
  const probeOk = (p: 'drm_fb' | 'dmabuf' | 'region'): { supported: boolean | null; error?: { message: string } } => {
    if (vfio) return vfio.probePath(p);
    if (resolver) {
      if (p !== 'drm_fb') return { supported: false };
      try {
        return { supported: resolver.supported() };
      } catch (e) {
        return { supported: null, error: { message: (e as Error).message } };
      }
    }
    return { supported: p !== 'drm_fb' };
  };
  const queryNow = (kind: GuestPlaneKind, p: 'drm_fb' | 'dmabuf' | 'region') =>
    vfio ? native.vfioQueryGfxPlane(vfio.fd, PLANE_PATH_FLAGS[p], DRM_PLANE_TYPES[kind]) : gs!.query(kind, p);
  try {
    // the display path: probe (DRM_FB, DMABUF, REGION) or the forced one
    const knownUuid = o.vgpu ?? pick?.uuid ?? vfio?.uuid ?? null;
    const vendor = knownUuid ? vendorDriverOf(readVgpu(knownUuid, {}, []).type) : null;
    const chosen = choosePath(probeOk, o.path, resolver ? `${resolver.name} says DRM_FB is off (drm_fb=0 in info)` : undefined, vendor);
    const path = chosen.path;
    checks.push(chosen.check);
    if (vfio) checks.push(displayEventCheck(() => findDisplayIrq(vfio!), o.displayEvents));
    if (!drm) {
      checkDrmNode(o.device ?? '/dev/dri/card0');
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
    if (path === 'drm_fb') {
      // the framebuffer ids are objects of the card the vendor driver is bound to
      const elsewhere = drmFbBoundElsewhere(knownUuid, drm.path);
      if (elsewhere) throw new UsageError(`DRM_FB: ${elsewhere} (--device): use --device /dev/dri/${simHostCard()}, or another --path`);
    }
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
    const many = (o.moreVgpus?.length ?? 0) > 0;
    const layerName = (uuid: string | null, i: number, kind: GuestPlaneKind): string => `${uuid ? uuid.slice(0, 8) : `guest${i + 1}`}/${kind}`;
    const Z: Record<GuestPlaneKind, number> = { primary: 0, overlay: 1, cursor: 2 };
    const planes: GuestPlaneRequest[] = o.planes.map((kind, i) => {
      const r: GuestPlaneRequest = many ? { kind, name: layerName(knownUuid, 0, kind), z: Z[kind] } : { kind };
      if (o.placement && kind !== 'cursor') r.placement = o.placement;
      const hw = o.hwPlanes?.[i];
      if (hw !== undefined) r.hwPlaneId = hw;
      return r;
    });
    const uuid = knownUuid;
    const flipCount = uuid ? simFlipCounter(uuid) : null;
    const vgpuGone = uuid && !gs ? (): string | null => (existsSync(`/sys/bus/mdev/devices/${uuid}`) ? null : `vGPU ${uuid} was removed (/sys/bus/mdev/devices/${uuid} is gone)`) : undefined;
    const engine = new FlipEngine({
      drm,
      ...(vfio ? { vfio } : { guest: () => gs! }),
      ...(flipCount ? { guestFlipCount: flipCount } : {}),
      ...(vgpuGone && ownVfio ? { guestGone: vgpuGone } : {}),
      ...(o.watchIntervalMs !== undefined ? { watchIntervalMs: o.watchIntervalMs } : {}),
      crtcIndex: o.crtc,
      planes,
      ...(modeReq ? { mode: modeReq } : modeGuest ? { mode: 'guest' as const } : {}),
      path,
      notReady: o.notReady ?? 'keep',
      ...(o.cursorOrigin ? { cursorOrigin: o.cursorOrigin } : {}),
      ...(o.displayEvents !== undefined ? { displayEvents: o.displayEvents } : {}),
    });
    const extra = many ? addMoreVgpus(engine, o, Z, layerName, checks) : [];
    const d = drm;
    const v = vfio;
    let closed = false;
    let fatal = '';
    let vmmGone = '';
    // the VMM exiting ends the session: stop (restores the display), let go of its device
    let watch: VmmWatch | null = null;
    if (pick) {
      const p = pick;
      try {
        watch = watchVmmExit(p.pid, () => {
          vmmGone = `the VMM (pid ${p.pid}) exited: display restored, its VFIO device fd ${p.fd} let go`;
          void engine.stop();
        });
      } catch (e) {
        throw new UsageError(`pid ${p.pid}: cannot watch the VMM (${describeKernelError(e)}): did it just exit?`);
      }
      checks.push(`watching the VMM (pid ${p.pid}) for its exit (${watch.how === 'pidfd' ? 'pidfd' : 'checked every 500 ms'})`);
    }
    engine.on('error', (e) => {
      if (e.fatal && !fatal) fatal = e.message;
    });
    // the engine stops by itself when the vGPU goes away: let go of the VFIO fd at once, so
    // the instance removal (which waits for every fd to close) can finish
    const done = new Promise<string>((resolve) => {
      engine.once('stopped', (e) => {
        watch?.stop();
        if (closed && !vmmGone) return; // stopped by close(): not by itself, `done` stays pending
        if (ownVfio) {
          try {
            v?.close();
          } catch {
            /* reported by close() later if it matters */
          }
        }
        resolve(vmmGone || fatal || e.message);
      });
    });
    // losing DRM master pauses, getting it back resumes; a connector unplugged pauses, plugged re-plans
    const displayWatch = engine.display.watchDevice();
    try {
      displayWatch.watchHotplug();
      checks.push(`watching ${drm.path} for DRM master and connector changes (kernel uevents)`);
    } catch (e) {
      checks.push(`not watching connector changes: ${describeKernelError(e)}`);
    }
    return {
      engine,
      drm: d,
      vfio: v ?? null,
      path,
      resolver,
      done,
      checks,
      uuid,
      pathReason: chosen.check,
      vmm: pick && watch ? { pid: pick.pid, fd: pick.fd, watch: watch.how } : null,
      async close(): Promise<void> {
        if (closed) return;
        closed = true;
        watch?.stop();
        await engine.stop();
        if (ownDrm) d.close();
        if (ownVfio && v && !v.closed) v.close();
        for (const x of extra) if (!x.closed) x.close();
      },
    };
  } catch (e) {
    if (ownDrm) drm?.close();
    if (ownVfio) vfio?.close();
    throw e;
  }
}
