// What makes the kiosk daemon a service (issue 9): its control socket (status, screenshot,
// reload), systemd notifications (READY, STATUS, WATCHDOG, RELOADING, STOPPING) and the status
// counters sampled once a second. It follows whichever KioskDaemon is current (a reload may
// replace it) through accessors only: the presentation itself stays in daemon.ts.
import { frameToPng } from '../capture/writeback.js';
import { screenshotOutput } from '../present/capture.js';
import { sockNative } from '../binding/sockcred.js';
import { ControlServer } from './control-server.js';
import type { ReloadProblem, Request, Response } from './control-protocol.js';
import type { KioskDaemon, LogFn } from './daemon.js';
import { lookupGroup } from './peer-policy.js';
import { Notifier, watchdogPingMs, type NotifySend } from './notify.js';
import { StatusTracker } from './status.js';
import { statusLine } from './status-render.js';

export interface ReloadVerdict {
  applied: boolean;
  message: string;
  problems: ReloadProblem[];
}

export interface KioskServiceOptions {
  daemon: () => KioskDaemon;
  reload: () => Promise<ReloadVerdict>;
  log: LogFn;
  /** the control socket's path (the configuration's control.socket, or --control-socket) */
  socket: string;
  env?: NodeJS.ProcessEnv;
  notifySend?: NotifySend;
  /** READY=1 at the latest this long after start even when an output is not up yet (ms, default 30 s) */
  readyTimeoutMs?: number;
}

export class KioskService {
  readonly tracker = new StatusTracker();
  readonly notifier: Notifier;
  private server: ControlServer | null = null;
  private sampler: NodeJS.Timeout | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private readySent = false;
  private readonly startedAt = Date.now();
  private stuckLogged = '';

  constructor(private readonly o: KioskServiceOptions) {
    this.notifier = new Notifier(o.env ?? process.env, o.notifySend ?? ((s, m) => sockNative.sdNotify(s, m)), o.log);
  }

  /** Open the control socket, start sampling and (with $WATCHDOG_USEC) the watchdog. Throws on a bad socket or group. */
  async start(): Promise<void> {
    const cfg = this.o.daemon().config;
    const gid = cfg.control.group === null ? null : lookupGroup(cfg.control.group);
    const server = new ControlServer({ socket: this.o.socket, gid, log: this.o.log, handle: (r) => this.handle(r) });
    await server.listen();
    this.server = server;
    this.o.log('info', `control socket ${this.o.socket} (${gid === null ? 'root only, mode 0600' : `root and group ${cfg.control.group}, mode 0660`})`, { event: 'control', socket: this.o.socket });
    this.sampler = setInterval(() => this.onSample(), 1000);
    this.onSample();
    const ping = watchdogPingMs(this.o.env ?? process.env);
    if (ping !== null && this.notifier.enabled) {
      this.o.log('info', `watchdog: pinging every ${ping} ms while the frame loops progress`, { event: 'watchdog', intervalMs: ping });
      this.watchdog = setInterval(() => this.onWatchdog(), ping);
    }
  }

  private onSample(): void {
    const d = this.o.daemon();
    this.tracker.sample(d.presenting.values());
    const report = this.tracker.report(d.config, d.presenting, d.leaseStatus, d.vmWaiting);
    if (!this.readySent) {
      const up = this.allUp(d);
      const late = Date.now() - this.startedAt > (this.o.readyTimeoutMs ?? 30_000);
      if (!up && !late) return;
      this.readySent = true;
      this.o.log(up ? 'info' : 'warn', up ? 'every output is up or waiting: READY' : 'READY although not every output is up yet', { event: 'notify-ready' });
      this.notifier.send({ ready: true, status: statusLine(report) });
      return;
    }
    this.notifier.status(statusLine(report));
  }

  /** Every presenting output assigned its layers, or is waiting (no VM layer, guest not ready, paused). */
  private allUp(d: KioskDaemon): boolean {
    for (const out of d.presenting.values()) {
      if (out.layers.length === 0 || !out.running || out.isPaused) continue;
      if (out.lastAssigned !== null) continue;
      if (out.layers.every((l) => !l.readyNow && l.stats.notReadyFrames > 0)) continue;
      return false;
    }
    return true;
  }

  private onWatchdog(): void {
    const p = this.tracker.progressed(this.o.daemon().presenting.entries());
    if (p.ok) {
      this.stuckLogged = '';
      this.notifier.send({ watchdog: true });
      return;
    }
    const key = p.stuck.join(',');
    if (key !== this.stuckLogged) this.o.log('error', `watchdog: the frame loop of output ${p.stuck.join(', ')} made no progress: not pinging (systemd restarts the daemon after WatchdogSec)`, { event: 'watchdog-stuck', outputs: p.stuck });
    this.stuckLogged = key;
  }

  private async handle(r: Request): Promise<Response> {
    const d = this.o.daemon();
    if (r.cmd === 'status') return { ok: true, cmd: 'status', status: this.tracker.report(d.config, d.presenting, d.leaseStatus, d.vmWaiting) };
    if (r.cmd === 'reload') {
      this.o.log('info', 'reload asked on the control socket', { event: 'reload-asked' });
      const v = await this.reload();
      return { ok: true, cmd: 'reload', ...v };
    }
    const names = [...d.presenting.keys()];
    const name = r.output ?? (names.length === 1 ? names[0] : undefined);
    if (name === undefined) {
      return { ok: false, error: names.length === 0 ? 'no output is presenting: nothing to take a picture of' : `say which output: --output ${names.join(' or --output ')}` };
    }
    const out = d.presenting.get(name);
    if (!out) {
      const known = d.config.outputs.some((o) => o.name === name);
      return { ok: false, error: known ? `output ${name} is not presenting (no matching monitor connected)` : `no output ${name} in the configuration (outputs: ${d.config.outputs.map((o) => o.name).join(', ')})` };
    }
    if (!out.running) return { ok: false, error: `output ${name} is not presenting (${out.layers.length ? 'stopped' : 'no VM layer'})` };
    const shot = await screenshotOutput(out, r.method ?? 'auto');
    this.o.log('info', `screenshot of output ${name}: ${shot.width}x${shot.height} by ${shot.method}`, { event: 'screenshot', output: name, method: shot.method });
    return { ok: true, cmd: 'screenshot', output: name, method: shot.method, notes: shot.notes, width: shot.width, height: shot.height, png: frameToPng(shot).toString('base64') };
  }

  /** A reload (SIGHUP or the control socket), told to systemd as RELOADING=1 ... READY=1. */
  async reload(): Promise<ReloadVerdict> {
    this.notifier.send({ reloading: true, monotonicUsec: process.hrtime.bigint() / 1000n, status: 'reloading the configuration' });
    try {
      return await this.o.reload();
    } finally {
      this.notifier.send({ ready: true, status: statusLine(this.tracker.report(this.o.daemon().config, this.o.daemon().presenting, this.o.daemon().leaseStatus, this.o.daemon().vmWaiting)) });
    }
  }

  /** STOPPING=1 (first: systemd then waits for the exit), then close the socket and timers. */
  async stop(): Promise<void> {
    this.notifier.send({ stopping: true, status: 'restoring the displays and exiting' });
    if (this.sampler) clearInterval(this.sampler);
    if (this.watchdog) clearInterval(this.watchdog);
    this.sampler = this.watchdog = null;
    await this.server?.close();
    this.server = null;
  }
}
