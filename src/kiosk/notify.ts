// systemd's notify protocol for the kiosk daemon (issue 9; Type=notify in the unit): READY=1 once
// every output is up or waiting, STATUS= lines when the summary changes, WATCHDOG=1 (WatchdogSec=)
// only while the frame loops progress, RELOADING=1/READY=1 around a reload, STOPPING=1 at SIGTERM.
// Datagrams go to $NOTIFY_SOCKET through the addon (Node has no datagram UNIX sockets); without
// it nothing is sent. Message formatting and the environment are pure functions.
import { describeKernelError } from '../binding/errors.js';
import type { LogFn } from './daemon.js';

export interface NotifyFields {
  ready?: boolean;
  reloading?: boolean;
  stopping?: boolean;
  watchdog?: boolean;
  status?: string;
  /** CLOCK_MONOTONIC in microseconds (with RELOADING=1) */
  monotonicUsec?: bigint;
}

/** STATUS= is one line: newlines become "; ", other control characters spaces. */
export function statusValue(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\s*\n\s*/g, '; ').replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 1024);
}

/** The datagram: one VAR=VALUE per line, in the order systemd documents them. */
export function notifyMessage(f: NotifyFields): string {
  const lines: string[] = [];
  if (f.reloading) lines.push('RELOADING=1');
  if (f.monotonicUsec !== undefined) lines.push(`MONOTONIC_USEC=${f.monotonicUsec}`);
  if (f.ready) lines.push('READY=1');
  if (f.stopping) lines.push('STOPPING=1');
  if (f.watchdog) lines.push('WATCHDOG=1');
  if (f.status !== undefined) lines.push(`STATUS=${statusValue(f.status)}`);
  if (lines.length === 0) throw new Error('notifyMessage: nothing to send');
  return lines.join('\n');
}

/** $NOTIFY_SOCKET, checked: an absolute path or an abstract "@name"; null when unset or empty. */
export function notifySocket(env: NodeJS.ProcessEnv): string | null {
  const s = env['NOTIFY_SOCKET'];
  if (!s) return null;
  if (!s.startsWith('/') && !s.startsWith('@')) throw new Error(`NOTIFY_SOCKET=${JSON.stringify(s)} is neither an absolute path nor an abstract socket name (@...)`);
  return s;
}

/**
 * How often to ping the watchdog: half of $WATCHDOG_USEC (ms), or null when there is no
 * watchdog (unset, or $WATCHDOG_PID names another process). A malformed value is an error.
 */
export function watchdogPingMs(env: NodeJS.ProcessEnv, pid = process.pid): number | null {
  const usec = env['WATCHDOG_USEC'];
  if (usec === undefined || usec === '') return null;
  const wpid = env['WATCHDOG_PID'];
  if (wpid !== undefined && wpid !== '' && wpid !== String(pid)) return null;
  if (!/^[0-9]+$/.test(usec) || Number(usec) === 0) throw new Error(`WATCHDOG_USEC=${JSON.stringify(usec)} is not a positive number of microseconds`);
  return Math.max(1, Math.floor(Number(usec) / 2000));
}

export type NotifySend = (socket: string, message: string) => number;

/** Sends to $NOTIFY_SOCKET, deduplicating STATUS=; a failing send is logged once, never fatal. */
export class Notifier {
  private lastStatus: string | null = null;
  private failed = false;
  readonly socket: string | null;
  /** every message sent (tests) */
  readonly sent: string[] = [];

  constructor(
    env: NodeJS.ProcessEnv,
    private readonly sendFn: NotifySend,
    private readonly log: LogFn,
  ) {
    this.socket = notifySocket(env);
  }

  get enabled(): boolean {
    return this.socket !== null;
  }

  send(f: NotifyFields): void {
    if (!this.socket) return;
    if (f.status !== undefined) this.lastStatus = statusValue(f.status);
    const msg = notifyMessage(f);
    try {
      this.sendFn(this.socket, msg);
      this.sent.push(msg);
      this.failed = false;
    } catch (e) {
      if (!this.failed) this.log('warn', `sd_notify to ${this.socket} failed: ${describeKernelError(e)} (systemd will not see ${msg.split('\n')[0]})`, { event: 'notify-failed' });
      this.failed = true;
    }
  }

  /** STATUS= only when it changed */
  status(text: string): void {
    if (statusValue(text) !== this.lastStatus) this.send({ status: text });
  }
}
