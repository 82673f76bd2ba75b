// Counting the VFIO display ioctls as the kernel sees them, for the sample-driver tests:
//  - the syscalls:sys_enter_ioctl tracepoint filtered on the ioctl numbers (every caller, any
//    vendor driver): VFIO_DEVICE_QUERY_GFX_PLANE = _IO(';', 100 + 14) = 0x3b72,
//    VFIO_DEVICE_GET_GFX_DMABUF = _IO(';', 100 + 15) = 0x3b73
//  - a kprobe on vfio.ko's vfio_device_fops_unl_ioctl (the device fd's unlocked_ioctl, not
//    inlined: it is an fops pointer) that reads the dmabuf_id GET_GFX_DMABUF asks for from
//    user memory (+u0(%dx): x86-64 arg 3 is the ioctl argument, a __u32 *), so exports can be
//    counted per dmabuf_id.
// One instance at a time (it owns the global trace buffer while alive).
import { appendFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadNative, type NativeAddon } from '../../src/binding/index.js';

export const VFIO_DEVICE_QUERY_GFX_PLANE = 0x3b72;
export const VFIO_DEVICE_GET_GFX_DMABUF = 0x3b73;
const NAMES: Record<number, string> = { [VFIO_DEVICE_QUERY_GFX_PLANE]: 'QUERY_GFX_PLANE', [VFIO_DEVICE_GET_GFX_DMABUF]: 'GET_GFX_DMABUF' };
const KPROBE = 'vgpuflip_test/get_gfx_dmabuf';

export interface TracedIoctl {
  /** comm-pid as ftrace prints it */
  task: string;
  name: string;
}

export class VfioIoctlTrace {
  readonly root: string;
  private readonly sys: string;
  private readonly kp: string;

  constructor() {
    this.root = existsSync('/sys/kernel/tracing/events') ? '/sys/kernel/tracing' : '/sys/kernel/debug/tracing';
    this.sys = path.join(this.root, 'events/syscalls/sys_enter_ioctl');
    if (!existsSync(this.sys)) throw new Error(`no syscall tracepoint at ${this.sys} (CONFIG_FTRACE_SYSCALLS, tracefs mounted?)`);
    writeFileSync(path.join(this.root, 'tracing_on'), '0');
    writeFileSync(path.join(this.sys, 'enable'), '0');
    writeFileSync(path.join(this.sys, 'filter'), Object.keys(NAMES).map((c) => `cmd == 0x${Number(c).toString(16)}`).join(' || '));
    this.removeKprobe();
    try {
      appendFileSync(path.join(this.root, 'kprobe_events'), `p:${KPROBE} vfio:vfio_device_fops_unl_ioctl cmd=%si:x32 id=+u0(%dx):u32\n`);
    } catch (e) {
      throw new Error(`cannot add the kprobe on vfio:vfio_device_fops_unl_ioctl (CONFIG_KPROBE_EVENTS, vfio loaded?): ${(e as Error).message}`);
    }
    this.kp = path.join(this.root, 'events', KPROBE);
    writeFileSync(path.join(this.kp, 'filter'), `cmd == 0x${VFIO_DEVICE_GET_GFX_DMABUF.toString(16)}`);
    writeFileSync(path.join(this.root, 'buffer_size_kb'), '4096');
    this.clear();
    writeFileSync(path.join(this.sys, 'enable'), '1');
    writeFileSync(path.join(this.kp, 'enable'), '1');
    writeFileSync(path.join(this.root, 'tracing_on'), '1');
  }

  clear(): void {
    writeFileSync(path.join(this.root, 'trace'), '');
  }

  private lines(): string[] {
    return readFileSync(path.join(this.root, 'trace'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('#'));
  }

  /** the traced syscalls so far */
  ioctls(): TracedIoctl[] {
    const out: TracedIoctl[] = [];
    for (const line of this.lines()) {
      const m = /^\s*(\S+).*sys_ioctl\(fd: [0-9a-f]+, cmd: ([0-9a-f]+)/.exec(line);
      if (m) out.push({ task: m[1]!, name: NAMES[Number.parseInt(m[2]!, 16)] ?? m[2]! });
    }
    return out;
  }

  count(name: 'QUERY_GFX_PLANE' | 'GET_GFX_DMABUF'): number {
    return this.ioctls().filter((c) => c.name === name).length;
  }

  /** GET_GFX_DMABUF calls per dmabuf_id asked for (kprobe) */
  exportsPerId(): Map<number, number> {
    const m = new Map<number, number>();
    for (const line of this.lines()) {
      const r = new RegExp(`${KPROBE.split('/')[1]}:.* cmd=0x3b73 id=(\\d+)`).exec(line);
      if (r) m.set(Number(r[1]), (m.get(Number(r[1])) ?? 0) + 1);
    }
    return m;
  }

  /** events the trace buffer lost (then the counts are not exact) */
  overrun(): number {
    let n = 0;
    for (const cpu of readdirSync(path.join(this.root, 'per_cpu')).filter((f) => /^cpu\d+$/.test(f))) {
      n += Number(/overrun: (\d+)/.exec(readFileSync(path.join(this.root, 'per_cpu', cpu, 'stats'), 'utf8'))?.[1] ?? 0);
    }
    return n;
  }

  private removeKprobe(): void {
    try {
      if (existsSync(path.join(this.root, 'events', KPROBE, 'enable'))) writeFileSync(path.join(this.root, 'events', KPROBE, 'enable'), '0');
      if (readFileSync(path.join(this.root, 'kprobe_events'), 'utf8').includes(KPROBE)) appendFileSync(path.join(this.root, 'kprobe_events'), `-:${KPROBE}\n`);
    } catch {
      /* none */
    }
  }

  close(): void {
    try {
      writeFileSync(path.join(this.sys, 'enable'), '0');
      writeFileSync(path.join(this.sys, 'filter'), '0');
      this.removeKprobe();
      this.clear();
    } catch {
      /* best effort */
    }
  }
}

/**
 * A safety net for drivers that cannot export a dmabuf_id twice (mbochs 6.1: a second
 * VFIO_DEVICE_GET_GFX_DMABUF of a live id returns another fd of the same dma_buf without a
 * reference, and closing it frees the buffer under the importer: use after free, an Oops in
 * drm_prime_gem_destroy, a wedged kernel for every test after it; a re-export after the first
 * dma-buf was released puts the buffer's page references a second time: Bad page state).
 * While installed, every
 * GET_GFX_DMABUF this process makes through the addon is counted per dmabuf_id, and a repeat
 * is refused with an error instead of reaching the kernel (and recorded in `refused`).
 * It only turns a crashed VM into a failed test: the kernel's own count (VfioIoctlTrace)
 * stays the measurement.
 */
export class SingleExportGuard {
  readonly attempts = new Map<number, number>();
  readonly refused: string[] = [];
  private readonly addon: NativeAddon;
  private readonly original: NativeAddon['vfioGetGfxDmabuf'];

  constructor() {
    this.addon = loadNative();
    this.original = this.addon.vfioGetGfxDmabuf;
    const original = this.original;
    this.addon.vfioGetGfxDmabuf = (fd: number, id: number): number => {
      const n = (this.attempts.get(id) ?? 0) + 1;
      this.attempts.set(id, n);
      if (n > 1) {
        const why = `VFIO_DEVICE_GET_GFX_DMABUF of dmabuf_id ${id} asked for ${n} times (fd ${fd}); refused by the test: a second export of an id corrupts kernel memory in mbochs`;
        this.refused.push(why);
        throw Object.assign(new Error(why), { op: 'VFIO_DEVICE_GET_GFX_DMABUF', path: `fd ${fd}`, errno: 114, code: 'EALREADY' });
      }
      return original.call(this.addon, fd, id);
    };
  }

  restore(): void {
    this.addon.vfioGetGfxDmabuf = this.original;
  }
}
