// Counting ioctls as the kernel sees them (every caller: the tool, a VMM, a vendor driver's
// client), through the syscalls:sys_enter_ioctl tracepoint filtered on the ioctl numbers.
//
// The event is enabled once, at boot, by the rig (vm.sh: trace_event=syscalls:sys_enter_ioctl,
// which the kernel applies before the second CPU starts; init.sh turns recording off). A test
// never enables or disables an event (nor adds a kprobe): that patches kernel text on every CPU
// (text_poke_bp, int3 on the live scheduler and syscall paths), and under TCG with two vCPUs one
// such patch in a few hundred froze the whole VM: one CPU spinning on the int3 site, the other
// in smp_call_function_many_cond waiting for it (issue 11, the CI freeze). Filters, clearing the
// buffer and tracing_on patch nothing. One instance at a time (it owns the trace buffer).
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = existsSync('/sys/kernel/tracing/events') ? '/sys/kernel/tracing' : '/sys/kernel/debug/tracing';
const EVENT = path.join(ROOT, 'events/syscalls/sys_enter_ioctl');

export interface TracedIoctl {
  /** comm-pid as ftrace prints it */
  task: string;
  /** the name given for its number, else the number in hex */
  name: string;
}

export class IoctlTrace {
  readonly root = ROOT;

  /** `names`: ioctl number -> name; only these are recorded */
  constructor(private readonly names: Record<number, string>) {
    if (!existsSync(EVENT)) throw new Error(`no syscall tracepoint at ${EVENT} (CONFIG_FTRACE_SYSCALLS, tracefs)`);
    if (readFileSync(path.join(EVENT, 'enable'), 'utf8').trim() !== '1') {
      throw new Error(
        `${EVENT} is not enabled: the rig enables it at boot (vm.sh: trace_event=syscalls:sys_enter_ioctl); tests never enable events at run time (that patches kernel text and froze the VM under TCG, issue 11)`,
      );
    }
    this.pause();
    writeFileSync(path.join(EVENT, 'filter'), Object.keys(names).map((c) => `cmd == 0x${Number(c).toString(16)}`).join(' || '));
    this.clear();
    this.resume();
  }

  clear(): void {
    writeFileSync(path.join(ROOT, 'trace'), '');
  }

  pause(): void {
    writeFileSync(path.join(ROOT, 'tracing_on'), '0');
  }

  resume(): void {
    writeFileSync(path.join(ROOT, 'tracing_on'), '1');
  }

  /** the traced calls so far */
  ioctls(): TracedIoctl[] {
    const out: TracedIoctl[] = [];
    for (const line of readFileSync(path.join(ROOT, 'trace'), 'utf8').split('\n')) {
      if (!line.trim() || line.startsWith('#')) continue;
      const m = /^\s*(\S+).*sys_ioctl\(fd: [0-9a-f]+, cmd: ([0-9a-f]+)/.exec(line);
      if (m) out.push({ task: m[1]!, name: this.names[Number.parseInt(m[2]!, 16)] ?? m[2]! });
    }
    return out;
  }

  count(name: string): number {
    return this.ioctls().filter((c) => c.name === name).length;
  }

  /** events the trace buffer lost (then the counts are not exact) */
  overrun(): number {
    let n = 0;
    for (const cpu of readdirSync(path.join(ROOT, 'per_cpu')).filter((f) => /^cpu\d+$/.test(f))) {
      n += Number(/overrun: (\d+)/.exec(readFileSync(path.join(ROOT, 'per_cpu', cpu, 'stats'), 'utf8'))?.[1] ?? 0);
    }
    return n;
  }

  /** recording off, buffer empty; the event stays enabled (see the header) */
  close(): void {
    try {
      this.pause();
      this.clear();
    } catch {
      /* best effort */
    }
  }
}
