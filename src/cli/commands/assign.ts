import { Command, Option } from 'commander';
import { describeKernelError } from '../../binding/errors.js';
import { DrmDevice } from '../../kms/index.js';
import type { FlipEngine } from '../../flip/engine.js';
import type { GuestPlaneKind, Placement } from '../../flip/planner.js';
import { installExitHandlers, openSession, parsePosition, UsageError, type AssignOptions } from '../../flip/session.js';
import { publishAssignmentState } from '../../debugfs/assignment-state.js';

interface AssignCliOptions {
  vgpu?: string;
  pid?: string;
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
}

const collect = (v: string, prev: string[]): string[] => [...prev, v];

/** A status reporter: live line on a TTY, plain lines every few seconds otherwise, JSON lines with --json. */
export function attachStatus(engine: FlipEngine, o: { json: boolean; tty: boolean; out: (s: string) => void; intervalMs?: number }): () => void {
  const emitJson = (type: string, data: unknown): void =>
    o.out(JSON.stringify({ type, time: new Date().toISOString(), ...(data as object) }, (_k, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v)) + '\n');
  let lastFrames = 0;
  let lastT = Date.now();
  const line = (): string => {
    const now = Date.now();
    const fps = ((engine.stats.frames - lastFrames) * 1000) / Math.max(1, now - lastT);
    lastFrames = engine.stats.frames;
    lastT = now;
    let flips = 0;
    let copies = 0;
    let bytes = 0;
    for (const p of Object.values(engine.stats.planes)) {
      flips += p.flips + p.moves;
      copies += p.copies;
      bytes += p.bytesCopied;
    }
    if (engine.path === 'drm_fb') return engine.drmFbStatus();
    return `fps ${fps.toFixed(1)} | flips ${flips} | copies ${copies} (${(bytes / 1048576).toFixed(1)} MiB) | commits ${engine.stats.commits} | errors ${engine.stats.errors}`;
  };
  const offs: (() => void)[] = [];
  const on = <E extends 'assigned' | 'not-ready' | 'fallback' | 'error' | 'recovered' | 'stopped'>(ev: E, fn: (e: never) => void): void => {
    engine.on(ev, fn as never);
    offs.push(() => engine.off(ev, fn as never));
  };
  const clearLine = (): void => {
    if (o.tty && !o.json) o.out('\r\x1b[2K');
  };
  on('assigned', (e: Parameters<import('../../flip/events.js').EngineEvents['assigned']>[0]) => {
    if (o.json) return emitJson('assigned', { layout: e.layout, paths: e.paths, explanation: e.explanation, modeset: e.modeset, reason: e.reason });
    clearLine();
    o.out(`assigned (${e.reason}):\n${e.explanation.map((l) => `  ${l}`).join('\n')}\n`);
  });
  on('not-ready', (e: { plane: string; action: string }) => {
    if (o.json) return emitJson('not-ready', e);
    clearLine();
    o.out(`guest ${e.plane} plane not ready: ${e.action === 'wait' ? 'waiting for the guest' : e.action === 'blank' ? 'plane blanked' : 'keeping the last frame'}\n`);
  });
  on('fallback', (e: { plane: string; reason: string }) => {
    if (o.json) return emitJson('fallback', e);
    clearLine();
    o.out(`guest ${e.plane}: falling back to the copy path: ${e.reason}\n`);
  });
  on('error', (e: { plane?: string; stage: string; message: string; count: number; kernel: unknown }) => {
    if (o.json) return emitJson('error', e);
    clearLine();
    const msg = e.message.length > 600 ? `${e.message.slice(0, 600)}…` : e.message;
    o.out(`error${e.plane ? ` (${e.plane})` : ''} in ${e.stage}${e.count > 1 ? ` (${e.count} in a row)` : ''}: ${msg}${(e as { fatal?: boolean }).fatal ? '' : '; retrying'}\n`);
  });
  on('recovered', (e: { plane?: string; stage: string; afterFailures: number }) => {
    if (o.json) return emitJson('recovered', e);
    clearLine();
    o.out(`recovered${e.plane ? ` (${e.plane})` : ''}: ${e.stage} works again after ${e.afterFailures} failure(s)\n`);
  });
  on('stopped', (e: { message: string }) => {
    if (o.json) return emitJson('stopped', e);
    clearLine();
    o.out(`${e.message.length > 600 ? `${e.message.slice(0, 600)}…` : e.message}\n`);
  });
  const interval = o.intervalMs ?? (o.tty && !o.json ? 500 : 5000);
  const t = setInterval(() => {
    if (o.json) emitJson('status', { stats: engine.stats, calls: engine.counter.snapshot() });
    else if (o.tty) o.out(`\r\x1b[2K${line()}`);
    else o.out(`${line()}\n`);
  }, interval);
  t.unref();
  return () => {
    clearInterval(t);
    for (const f of offs) f();
  };
}

export function registerAssign(program: Command): void {
  program
    .command('assign')
    .description('put vGPU guest planes on hardware planes of a CRTC and keep them there (zero copy)')
    .option('--vgpu <uuid>', 'the mdev vGPU (see `vgpu-flip inspect`)')
    .option('--pid <pid>', 'take the VFIO device fd from this process (a VMM holding the group; root)')
    .option('--plane <type>', 'guest plane to assign: primary, cursor (repeat for several)', collect, [])
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
    .option('--json', 'machine-readable JSON lines')
    .addOption(new Option('--not-ready <policy>', 'when the guest plane goes away').choices(['keep', 'blank']).default('keep'))
    .option('--duration <seconds>', 'stop after this many seconds (default: until interrupted)')
    .addOption(new Option('--cursor-origin <o>', 'cursor x/y from the driver are').choices(['top-left', 'hotspot']).default('top-left'))
    // test hook: a guest of PRIME-exported dumb buffers on --device (WxH), animated, instead of --vgpu
    .addOption(new Option('--loopback-guest <WxH>').hideHelp())
    .action(async (opts: AssignCliOptions) => {
      const out = (s: string): void => {
        process.stdout.write(s);
      };
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
      const a: AssignOptions = {
        planes: planes.length ? planes : ['primary'],
        crtc: num(opts.crtc, '--crtc'),
        hwPlanes: opts.hwPlane.map((h) => num(h, '--hw-plane')),
        device: opts.device,
        notReady: opts.notReady as 'keep' | 'blank',
        cursorOrigin: opts.cursorOrigin as 'top-left' | 'hotspot',
      };
      if (opts.path) a.path = opts.path.replace('-', '_') as 'drm_fb' | 'dmabuf' | 'region';
      if (opts.via === 'debugfs') {
        a.via = 'debugfs';
        if (!opts.path) a.path = 'drm_fb';
      }
      if (opts.vgpu) a.vgpu = opts.vgpu;
      if (opts.pid) a.pid = num(opts.pid, '--pid');
      if (placement) a.placement = placement;
      if (opts.mode) a.mode = opts.mode;
      let stopGuest = (): void => undefined;
      let ownDrm: DrmDevice | null = null;
      if (opts.loopbackGuest) {
        const m = /^(\d+)x(\d+)$/.exec(opts.loopbackGuest);
        if (!m) throw new UsageError('--loopback-guest WxH');
        const { LoopbackGuest } = await import('../../bench/guest-driver.js');
        const { drawPattern, drawCursor } = await import('../../flip/pattern.js');
        // the display fd first (it becomes DRM master), then the guest's own fd
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
      const session = openSession(a);
      if (!opts.json) for (const c of session.checks) out(`check: ${c}\n`);
      // the engine stops by itself when the vGPU goes away (display restored, VFIO fd closed)
      let selfStopped: string | null = null;
      const engineDone = session.done.then((why) => {
        selfStopped = why;
      });
      const removeHandlers = installExitHandlers(() => session.close(), (s) => process.stderr.write(`\n${s}\n`));
      const detach = attachStatus(session.engine, { json: !!opts.json, tty: !!process.stdout.isTTY, out });
      const published = publishAssignmentState(session.engine, { vgpu: opts.vgpu ?? null, device: session.drm.path }); // for `vgpu-flip debugfs`
      try {
        session.engine.start();
        if (opts.once) {
          await session.engine.waitAssigned(5000);
          await new Promise((r) => setTimeout(r, 100));
        } else if (opts.duration) {
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([new Promise((r) => (timer = setTimeout(r, Number(opts.duration) * 1000))), engineDone]);
          clearTimeout(timer);
        } else {
          await engineDone; // until SIGINT/SIGTERM (handlers restore and exit) or the vGPU goes away
        }
      } catch (e) {
        throw new Error(describeKernelError(e, 'assign'), { cause: e });
      } finally {
        await session.close();
        stopGuest();
        ownDrm?.close();
        detach();
        published.close();
        removeHandlers();
      }
      const s = session.engine.stats;
      if (!session.engine.assignedLayout || selfStopped !== null) process.exitCode = 1;
      const drmFb = session.engine.path === 'drm_fb' ? session.engine.drmFbCounters() : null;
      if (opts.json) out(JSON.stringify({ type: 'summary', stats: s, ...(drmFb ? { drmFb } : {}), calls: session.engine.counter.snapshot(), ...(selfStopped !== null ? { stoppedBecause: selfStopped } : {}) }) + '\n');
      else {
        if (selfStopped !== null) out(`\nvgpu-flip: stopped: ${selfStopped}\n`);
        out(`\nsummary: ${s.frames} frames, ${s.commits} commits, ${s.errors} errors${drmFb ? `\n${session.engine.drmFbStatus()}` : ''}\n`);
      }
    });
}
