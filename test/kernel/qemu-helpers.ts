// A real QEMU as the VMM in kernel tests: start Debian's qemu-system-x86_64 (from the shared
// host root) paused (-S) with VFIO devices, talk QMP over a unix socket, stop it. Every wait is
// bounded; stop() always ends the process (SIGKILL after a grace period).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, unlinkSync } from 'node:fs';
import net from 'node:net';

export const QEMU_BIN = '/usr/bin/qemu-system-x86_64';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface QemuOptions {
  /** -device arguments, e.g. vfio-pci,sysfsdev=/sys/bus/mdev/devices/<uuid>,display=off,id=vgpu0 */
  devices: string[];
  /** -trace patterns (Debian's QEMU logs trace events to stderr) */
  trace?: string[];
  memMb?: number;
  /** more arguments, e.g. libvirt's -name guest=NAME,debug-threads=on -uuid UUID */
  args?: string[];
  /** how long QEMU may take until QMP answers (TCG inside TCG is slow) */
  startTimeoutMs?: number;
}

type QmpReply = { return?: unknown; error?: { class: string; desc: string } };

/** A QEMU process with a QMP connection. */
export class Qemu {
  readonly child: ChildProcessWithoutNullStreams;
  readonly sock: string;
  stdout = '';
  stderr = '';
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;
  readonly exited: Promise<void>;
  private conn: net.Socket | null = null;
  private buf = '';
  private waiting: ((r: QmpReply) => void)[] = [];
  readonly events: { event: string; data?: unknown }[] = [];

  private constructor(args: string[], sock: string) {
    this.sock = sock;
    this.child = spawn(QEMU_BIN, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdout.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code, sig) => {
        this.exitCode = code;
        this.exitSignal = sig;
        resolve();
      }),
    );
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.exitCode === null && this.exitSignal === null;
  }

  /** Start QEMU paused, wait for QMP and negotiate capabilities. Throws (after killing it) on failure. */
  static async start(o: QemuOptions): Promise<Qemu> {
    if (!existsSync(QEMU_BIN)) throw new Error(`${QEMU_BIN} is missing: install qemu-system-x86 on the host (setup.sh does)`);
    const sock = `/tmp/vgpu-flip-qmp-${process.pid}-${Date.now()}.sock`;
    const args = [
      '-accel', 'tcg', '-S', '-nodefaults', '-no-user-config', '-display', 'none', '-machine', 'pc',
      '-m', String(o.memMb ?? 64), '-qmp', `unix:${sock},server=on,wait=off`,
    ];
    for (const t of o.trace ?? []) args.push('-trace', t);
    for (const d of o.devices) args.push('-device', d);
    args.push(...(o.args ?? []));
    const q = new Qemu(args, sock);
    const deadline = Date.now() + (o.startTimeoutMs ?? 120_000);
    try {
      while (!q.conn) {
        if (!q.running) throw new Error(`QEMU exited (${q.exitCode ?? q.exitSignal}) before QMP answered:\n${q.stderr}`);
        if (Date.now() > deadline) throw new Error(`QEMU did not open its QMP socket within ${o.startTimeoutMs ?? 120_000} ms:\n${q.stderr}`);
        if (existsSync(sock)) q.conn = await q.connect().catch(() => null);
        if (!q.conn) await sleep(200);
      }
      const greeting = await q.reply(Math.max(1000, deadline - Date.now()));
      if (!('QMP' in (greeting as object))) throw new Error(`unexpected QMP greeting ${JSON.stringify(greeting)}`);
      await q.cmd('qmp_capabilities');
      return q;
    } catch (e) {
      await q.stop();
      throw e;
    }
  }

  private connect(): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const c = net.connect(this.sock);
      c.once('connect', () => {
        c.on('data', (d: Buffer) => this.onData(d.toString()));
        resolve(c);
      });
      c.once('error', reject);
    });
  }

  private onData(s: string): void {
    this.buf += s;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      const msg = JSON.parse(line) as QmpReply & { event?: string; data?: unknown };
      if (msg.event) {
        this.events.push({ event: msg.event, data: msg.data });
        continue;
      }
      this.waiting.shift()?.(msg);
    }
  }

  private reply(timeoutMs: number): Promise<QmpReply> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`QMP: no answer within ${timeoutMs} ms`)), timeoutMs);
      this.waiting.push((r) => {
        clearTimeout(t);
        resolve(r);
      });
    });
  }

  /** One QMP command; its "return" value, or throws with QEMU's error. */
  async cmd(execute: string, args?: Record<string, unknown>, timeoutMs = 30_000): Promise<unknown> {
    if (!this.conn) throw new Error('QMP not connected');
    const p = this.reply(timeoutMs);
    this.conn.write(JSON.stringify(args ? { execute, arguments: args } : { execute }) + '\n');
    const r = await p;
    if (r.error) throw new Error(`QMP ${execute}: ${r.error.class}: ${r.error.desc}`);
    return r.return;
  }

  /** Human monitor command through QMP. */
  async hmp(command: string): Promise<string> {
    return (await this.cmd('human-monitor-command', { 'command-line': command })) as string;
  }

  /** Kill QEMU (SIGKILL unless said otherwise) and wait for it; idempotent. */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    this.conn?.destroy();
    this.conn = null;
    if (this.running) {
      this.child.kill(signal);
      const t = await Promise.race([this.exited.then(() => 'exited'), sleep(10_000).then(() => 'timeout')]);
      if (t === 'timeout' && this.running) {
        this.child.kill('SIGKILL');
        await this.exited;
      }
    }
    try {
      unlinkSync(this.sock);
    } catch {
      /* QEMU removed it, or never made it */
    }
  }

  /** stderr without trace lines (what QEMU itself reported: warnings, errors). */
  messages(): string[] {
    return this.stderr
      .split('\n')
      .filter((l) => l.trim() !== '' && !/^(\d+@[\d.]+:)?vfio_\w+ /.test(l));
  }

  /** the trace events logged so far, e.g. ['vfio_pci_reset 5b8...', ...] (pid@time prefix dropped) */
  traces(): string[] {
    return this.stderr
      .split('\n')
      .map((l) => l.replace(/^\d+@[\d.]+:/, ''))
      .filter((l) => /^vfio_\w+ /.test(l));
  }
}
