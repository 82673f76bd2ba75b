import { Command, Option } from 'commander';
import { describeKernelError } from '../../binding/errors.js';
import { DrmDevice } from '../../kms/index.js';
import type { GuestPlaneKind, Placement } from '../../flip/planner.js';
import { installExitHandlers, openSession, parsePosition, UsageError, type AssignOptions, type Session } from '../../flip/session.js';
import { checkDrmNode } from '../../flip/session-checks.js';
import { publishAssignmentState } from '../../debugfs/assignment-state.js';
import { describeLocator, waitForVmm } from '../../vfio/vmm.js';
import { parseDuration, resolveVmmTarget } from './assign-target.js';
import { checkScreenshotFile, parseScreenshotMethod, setupScreenshots } from './assign-screenshot.js';
import { attachStatus } from './assign-status.js';
import { checkLeaseOptions, openAssignLease, type AssignLease } from './assign-lease.js';

export { attachStatus } from './assign-status.js';

interface AssignCliOptions {
  vgpu: string[];
  pid?: string;
  pidFd?: string;
  pidFile?: string;
  domain?: string;
  libvirtRunDir?: string;
  wait?: boolean;
  plane: string[];
  crtc: string;
  hwPlane: string[];
  position?: string;
  center?: boolean;
  fill?: boolean;
  mode?: string;
  once?: boolean;
  path?: string;
  via: string;
  device: string;
  json?: boolean;
  notReady: string;
  duration?: string;
  cursorOrigin: string;
  loopbackGuest?: string;
  lease?: string | boolean;
  screenshot?: string;
  screenshotMethod?: string;
  displayEvents?: boolean;
}

const collect = (v: string, prev: string[]): string[] => [...prev, v];

export function registerAssign(program: Command): void {
  program
    .command('assign')
    .description('put vGPU guest planes on hardware planes of a CRTC and keep them there (zero copy)')
    .option('--vgpu <uuid[@place]>', 'the mdev vGPU (see `vgpu-flip inspect`); with --pid/--domain: which of the VMM\'s vGPUs (checked). Repeat for several guests on the CRTC, stacked in order, each placed by @X,Y, @center or @fill (e.g. --vgpu A --vgpu B@512,0)', collect, [])
    .option('--pid <pid>', 'use the VFIO device fd of this process (a VMM holding the group; root): its vGPU with a display, or the --vgpu one')
    .option('--pid-fd <fd>', 'with --pid/--domain: use this fd number of the VMM (checked: a VFIO device with a display)')
    .option('--pid-file <path>', 'like --pid, the pid read from this file (found again with --wait)')
    .option('--domain <name>', 'a libvirt domain: its QEMU pid and mdev vGPUs from /run/libvirt/qemu/<name>.{pid,xml}')
    .option('--wait', 'when the VMM exits, keep the display restored and wait for it to come back, then re-attach (until interrupted)')
    .option('--plane <type>', 'guest plane to assign: primary, cursor, overlay (repeat for several)', collect, [])
    .option('--crtc <index>', 'CRTC index', '0')
    .option('--hw-plane <id>', 'force this hardware plane (pairs with --plane in order)', collect, [])
    .addOption(new Option('--position <x,y>', 'place the guest primary at x,y (native size)').conflicts(['center', 'fill']))
    .addOption(new Option('--center', 'centre the guest primary (native size)').conflicts(['fill']))
    .option('--fill', 'scale the guest primary to the whole CRTC (if the hardware scales)')
    .option('--mode <WxH@Hz|guest>', 'set this mode (modeset), or "guest": the mode of the guest\'s size; default: keep the current one')
    .option('--once', 'assign, show one frame, report, restore and exit (a check)')
    .addOption(new Option('--path <path>', 'display path (default: the first the vGPU supports of drm-fb, dmabuf, region)').choices(['drm-fb', 'dmabuf', 'region']))
    .addOption(
      new Option('--via <source>', 'DRM_FB framebuffer ids from the VFIO fd, or from the vendor driver\'s debugfs attribute (no VFIO fd: when a VMM owns the group)')
        .choices(['vfio', 'debugfs'])
        .default('vfio'),
    )
    .option('--device <path>', 'DRM card node', '/dev/dri/card0')
    .option('--lease [connector]', 'present on a connector leased from the running Wayland compositor (wp_drm_lease_v1; see `inspect --leases`), handed back on exit; the only one offered when none is named')
    .option('--json', 'machine-readable JSON lines')
    .addOption(new Option('--not-ready <policy>', 'when the guest plane goes away').choices(['keep', 'blank']).default('keep'))
    .option('--duration <seconds>', 'stop after this many seconds (default: until interrupted)')
    .option('--screenshot <file.png>', 'once assigned, write what is on the CRTC to this PNG (and another on every SIGUSR1: FILE-1.png, ...)')
    .option('--screenshot-method <m>', 'auto (writeback beside the display when it can, else composed from the guest layers), writeback (may blank the monitor for a frame), compose', 'auto')
    .option('--display-events', 'look at a guest only when its vGPU signals a display change (the display event IRQ; see `inspect` EVENT): the default wherever the vendor driver offers it')
    .option('--no-display-events', 'look at the guest every frame (DRM_FB: every watch period) even when its vGPU offers the display event')
    .addOption(new Option('--cursor-origin <o>', 'cursor x/y from the driver are').choices(['top-left', 'hotspot']).default('top-left'))
    // test hooks: a guest of PRIME-exported dumb buffers on --device (WxH), animated, instead of --vgpu;
    // libvirt's runtime folder
    .addOption(new Option('--loopback-guest <WxH>').hideHelp())
    .addOption(new Option('--libvirt-run-dir <dir>').hideHelp())
    .action(async (opts: AssignCliOptions, cmd: Command) => {
      const out = (s: string): void => {
        process.stdout.write(s);
      };
      const emitJson = (type: string, data: object): void => out(JSON.stringify({ type, time: new Date().toISOString(), ...data }) + '\n');
      let placement: Placement | undefined;
      if (opts.position) placement = parsePosition(opts.position);
      else if (opts.center) placement = { kind: 'center' };
      else if (opts.fill) placement = { kind: 'fill' };
      const planes = opts.plane.map((p) => {
        if (p !== 'primary' && p !== 'cursor' && p !== 'overlay') throw new UsageError(`--plane ${p}: expected primary, cursor or overlay`);
        return p as GuestPlaneKind;
      });
      const num = (s: string, what: string): number => {
        if (!/^\d+$/.test(s)) throw new UsageError(`${what} ${JSON.stringify(s)}: expected a non-negative integer`);
        return Number(s);
      };
      const durationS = opts.duration !== undefined ? parseDuration(opts.duration) : undefined;
      parseScreenshotMethod(opts.screenshotMethod);
      if (opts.screenshot !== undefined) checkScreenshotFile(opts.screenshot);
      const a: AssignOptions = {
        planes: planes.length ? planes : ['primary'],
        crtc: num(opts.crtc, '--crtc'),
        hwPlanes: opts.hwPlane.map((h) => num(h, '--hw-plane')),
        device: opts.device,
        notReady: opts.notReady as 'keep' | 'blank',
        // writeback connectors visible (screenshots: --screenshot, SIGUSR1); never routed unless asked
        writeback: true,
        cursorOrigin: opts.cursorOrigin as 'top-left' | 'hotspot',
        ...(opts.displayEvents === false ? { displayEvents: false } : {}),
      };
      if (opts.path) a.path = opts.path.replace('-', '_') as 'drm_fb' | 'dmabuf' | 'region';
      if (opts.via === 'debugfs') {
        a.via = 'debugfs';
        if (!opts.path) a.path = 'drm_fb';
      }
      if (placement) a.placement = placement;
      if (opts.mode) a.mode = opts.mode;
      const vgpus = opts.vgpu.map(parseVgpuArg);
      if (vgpus[0]?.placement) {
        if (placement) throw new UsageError(`--vgpu ${opts.vgpu[0]}: a placement after @ and --position/--center/--fill say the same thing: give one`);
        placement = vgpus[0].placement;
        a.placement = placement;
      }
      if (vgpus.length > 1) {
        if (opts.pid !== undefined || opts.pidFile !== undefined || opts.domain !== undefined || opts.via === 'debugfs' || opts.loopbackGuest) {
          throw new UsageError('several --vgpu work with the vGPUs\' own VFIO devices only (not with --pid, --pid-file, --domain, --via debugfs)');
        }
        if (opts.hwPlane.length) throw new UsageError('--hw-plane pairs with the --plane list of one guest: not with several --vgpu');
        a.moreVgpus = vgpus.slice(1).map((v) => (v.placement ? { vgpu: v.uuid, placement: v.placement } : { vgpu: v.uuid }));
      }
      const target = resolveVmmTarget({
        ...(vgpus[0] !== undefined ? { vgpu: vgpus[0].uuid } : {}),
        ...(opts.pid !== undefined ? { pid: num(opts.pid, '--pid') } : {}),
        ...(opts.pidFd !== undefined ? { pidFd: num(opts.pidFd, '--pid-fd') } : {}),
        ...(opts.pidFile !== undefined ? { pidFile: opts.pidFile } : {}),
        ...(opts.domain !== undefined ? { domain: opts.domain } : {}),
        ...(opts.libvirtRunDir !== undefined ? { libvirtRunDir: opts.libvirtRunDir } : {}),
        wait: !!opts.wait,
        via: a.via ?? 'vfio',
      });
      if (target.vgpu !== undefined) a.vgpu = target.vgpu;
      if (target.pid !== undefined) a.pid = target.pid;
      if (target.pidFd !== undefined) a.pidFd = target.pidFd;
      if (!opts.json) for (const c of target.checks) out(`check: ${c}\n`);
      let lease: AssignLease | null = null;
      if (opts.lease !== undefined) {
        const cli = (k: string): boolean => cmd.getOptionValueSource(k) === 'cli';
        checkLeaseOptions({ device: opts.device, deviceFromCli: cli('device'), crtc: opts.crtc, crtcFromCli: cli('crtc'), ...(opts.loopbackGuest ? { loopbackGuest: opts.loopbackGuest } : {}) });
        lease = await openAssignLease(typeof opts.lease === 'string' ? opts.lease : undefined);
        a.drmDevice = lease.drm;
        a.device = lease.drm.path;
        if (opts.json) emitJson('lease', { connector: lease.held.connector, device: lease.held.drmNode, driver: lease.held.driver, socket: lease.held.socket, checks: lease.checks });
        else for (const c of lease.checks) out(`check: ${c}\n`);
      }
      let stopGuest = (): void => undefined;
      let ownDrm: DrmDevice | null = null;
      if (opts.loopbackGuest) {
        const m = /^(\d+)x(\d+)$/.exec(opts.loopbackGuest);
        if (!m) throw new UsageError('--loopback-guest WxH');
        const { LoopbackGuest } = await import('../../bench/guest-driver.js');
        const { drawPattern, drawCursor } = await import('../../flip/pattern.js');
        // the display fd first (it becomes DRM master), then the guest's own fd
        checkDrmNode(opts.device);
        a.drmDevice = DrmDevice.open(opts.device, { writeback: false });
        ownDrm = a.drmDevice;
        const g = new LoopbackGuest(opts.device);
        const w = Number(m[1]);
        const h = Number(m[2]);
        g.setPrimary(w, h);
        const frames = [0, 1, 2].map((t) => drawPattern(w, h, t * 20));
        let t = 0;
        g.presentPrimary(frames[0]!);
        g.setCursor(drawCursor(64), 64, 0, 0);
        g.moveCursor(10, 10);
        const timer = setInterval(() => {
          t++;
          g.presentPrimary(frames[t % 3]!);
          g.moveCursor(10 + (t % 50) * 4, 10 + (t % 30) * 3);
        }, 50);
        timer.unref();
        a.guestSource = g.source();
        stopGuest = () => {
          clearInterval(timer);
          g.close();
        };
      }
      const deadline = durationS !== undefined ? Date.now() + durationS * 1000 : null;
      let session: Session | null;
      try {
        session = openSession(a); // bad arguments are explained here, before anything on screen changes
      } catch (e) {
        stopGuest();
        ownDrm?.close();
        lease?.close();
        throw e;
      }
      const abort = new AbortController();
      const removeHandlers = installExitHandlers(
        async () => {
          abort.abort();
          await session?.close();
          lease?.close();
        },
        (s) => process.stderr.write(`\n${s}\n`),
      );
      let everAssigned = false;
      let selfStopped: string | null = null;
      let reattached = 0;
      let leaseEnded = false;
      void lease?.ended.then(() => abort.abort());
      try {
        for (;;) {
          const s: Session = session!;
          const r = await runOne(s, opts, a, deadline, out, emitJson, lease ?? undefined);
          leaseEnded = r.leaseEnded;
          everAssigned ||= r.assigned;
          selfStopped = r.stoppedBecause;
          if (!opts.wait || !s.vmm || r.stoppedBecause === null || !/the VMM .* exited/.test(r.stoppedBecause)) break;
          if (deadline !== null && Date.now() >= deadline) break;
          // the VMM went away: the display is restored; wait for it to come back
          const gone = s.vmm.pid;
          const locator = target.locator ?? (s.uuid ? { kind: 'holder' as const, uuid: s.uuid } : null);
          if (!locator) {
            out('vgpu-flip: --wait: cannot tell a returning VMM: the vGPU was not identified (add --vgpu <uuid>, --pid-file or --domain)\n');
            break;
          }
          if (opts.json) emitJson('vmm-exit', { pid: gone, message: r.stoppedBecause, waiting: describeLocator(locator) });
          else out(`vgpu-flip: ${r.stoppedBecause}; waiting for ${describeLocator(locator)} to come back (Ctrl-C to stop)\n`);
          const timeout = deadline !== null ? setTimeout(() => abort.abort(), Math.max(0, deadline - Date.now())) : null;
          session = null;
          try {
            await waitForVmm(locator, {
              exclude: gone,
              signal: abort.signal,
              attach: (pid) => {
                // the same vGPU as before (fd numbers of a new process may differ)
                const uuid = s.uuid ?? a.vgpu;
                const again: AssignOptions = { ...a, pid };
                if (uuid) {
                  again.vgpu = uuid;
                  delete again.pidFd;
                }
                session = openSession(again);
              },
              log: (m) => (opts.json ? emitJson('vmm-wait', { message: m }) : out(`vgpu-flip: ${m}\n`)),
            });
          } catch (e) {
            if (abort.signal.aborted) break;
            throw e;
          } finally {
            if (timeout) clearTimeout(timeout);
          }
          reattached++;
          const back = session as Session | null;
          if (opts.json) emitJson('vmm-back', { pid: back?.vmm?.pid ?? null });
          else out(`vgpu-flip: the VMM is back (pid ${back?.vmm?.pid}): re-attaching\n`);
        }
      } catch (e) {
        throw new Error(describeKernelError(e, 'assign'), { cause: e });
      } finally {
        await (session as Session | null)?.close();
        stopGuest();
        ownDrm?.close();
        lease?.close();
        removeHandlers();
      }
      const vmmExit = selfStopped !== null && /the VMM .* exited/.test(selfStopped);
      // the VMM exiting and the compositor ending the lease are ends, not failures
      if (!everAssigned || (selfStopped !== null && !vmmExit && !leaseEnded)) process.exitCode = 1;
      if (reattached && opts.json) emitJson('reattached', { count: reattached });
    });
}

/** `--vgpu UUID[@X,Y|@center|@fill]` */
export function parseVgpuArg(s: string): { uuid: string; placement?: Placement } {
  const at = s.indexOf('@');
  if (at < 0) return { uuid: s.trim() };
  const uuid = s.slice(0, at).trim();
  const p = s.slice(at + 1).trim();
  if (p === 'center') return { uuid, placement: { kind: 'center' } };
  if (p === 'fill') return { uuid, placement: { kind: 'fill' } };
  const m = /^(-?\d+),(-?\d+)$/.exec(p);
  if (!m) throw new UsageError(`--vgpu ${JSON.stringify(s)}: the placement after @ must be X,Y, center or fill (e.g. ${uuid || 'UUID'}@512,0)`);
  return { uuid, placement: { kind: 'position', x: Number(m[1]), y: Number(m[2]) } };
}

/** One session from start to end: the session line, status, publishing, summary. */
async function runOne(
  session: Session,
  opts: AssignCliOptions,
  a: AssignOptions,
  deadline: number | null,
  out: (s: string) => void,
  emitJson: (type: string, data: object) => void,
  lease?: Pick<AssignLease, 'ended' | 'drop'>,
): Promise<{ assigned: boolean; stoppedBecause: string | null; leaseEnded: boolean }> {
  // the session line: which path and why, what was checked (before any `assigned` event)
  if (opts.json) {
    emitJson('session', {
      path: session.path,
      reason: session.pathReason,
      vgpu: session.uuid,
      vmm: session.vmm,
      device: session.drm.path,
      checks: session.checks,
    });
  } else for (const c of session.checks) out(`check: ${c}\n`);
  let selfStopped: string | null = null;
  let leaseEnded = false;
  const engineDone = Promise.race([
    session.done.then((why) => {
      selfStopped = why;
    }),
    ...(lease
      ? [
          lease.ended.then((why) => {
            // the objects are no longer ours: nothing to restore, no errors of trying to report
            selfStopped = why;
            leaseEnded = true;
          }),
        ]
      : []),
  ]);
  const detach = attachStatus(session.engine, { json: !!opts.json, tty: !!process.stdout.isTTY, out });
  const published = publishAssignmentState(session.engine, { vgpu: session.uuid ?? a.vgpu ?? null, device: session.drm.path }); // for `vgpu-flip debugfs`
  const shots = setupScreenshots(session.engine, { ...(opts.screenshot !== undefined ? { file: opts.screenshot } : {}), method: parseScreenshotMethod(opts.screenshotMethod) }, (r) => {
    if (opts.json) emitJson('screenshot', r);
    else if ('error' in r) out(`vgpu-flip: ${r.error}\n`);
    else out(`screenshot: ${r.file} (${r.width}x${r.height}, ${r.method}${r.notes.length ? `; ${r.notes.join('; ')}` : ''})\n`);
  });
  try {
    session.engine.start();
    if (opts.once) {
      await Promise.race([session.engine.waitAssigned(5000), engineDone]);
      await new Promise((r) => setTimeout(r, 100));
      await Promise.race([shots.first, engineDone]);
    } else if (deadline !== null) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([new Promise((r) => (timer = setTimeout(r, Math.max(0, deadline - Date.now())))), engineDone]);
      clearTimeout(timer);
    } else {
      await engineDone; // until a signal (handlers restore and exit), the vGPU going away or the VMM exiting
    }
  } finally {
    shots.dispose();
    if (leaseEnded) {
      // the compositor took the objects back: close the lease fd before stopping, so that
      // stopping restores nothing (it only lets go of the guest)
      detach();
      lease?.drop();
    }
    await session.close();
    detach();
    published.close();
  }
  const s = session.engine.stats;
  const drmFb = session.engine.path === 'drm_fb' ? session.engine.drmFbCounters() : null;
  const stopped = selfStopped as string | null;
  if (opts.json) out(JSON.stringify({ type: 'summary', stats: s, ...(drmFb ? { drmFb } : {}), calls: session.engine.counter.snapshot(), ...(stopped !== null ? { stoppedBecause: stopped } : {}) }) + '\n');
  else {
    if (stopped !== null) out(`\nvgpu-flip: stopped: ${stopped}\n`);
    out(`\nsummary: ${s.frames} frames, ${s.commits} commits, ${s.errors} errors${drmFb ? `\n${session.engine.drmFbStatus()}` : ''}\n`);
  }
  return { assigned: !!session.engine.assignedLayout, stoppedBecause: stopped, leaseEnded };
}
