// Counting the VFIO display ioctls as the kernel sees them, for the sample-driver tests: the
// syscalls:sys_enter_ioctl tracepoint (ioctl-trace.ts) filtered on VFIO_DEVICE_QUERY_GFX_PLANE
// = _IO(';', 100 + 14) = 0x3b72 and VFIO_DEVICE_GET_GFX_DMABUF = _IO(';', 100 + 15) = 0x3b73.
// Which dmabuf_id each export asked for is not in the syscall's arguments (a pointer): tests
// pair the kernel's count with SingleExportGuard's per-id count of this process' calls. (A
// kprobe reading the id used to do it: adding and enabling kprobes patches kernel text at run
// time, which froze the rig, issue 11.)
import { loadNative, type NativeAddon } from '../../src/binding/index.js';
import { IoctlTrace } from './ioctl-trace.js';

export const VFIO_DEVICE_QUERY_GFX_PLANE = 0x3b72;
export const VFIO_DEVICE_GET_GFX_DMABUF = 0x3b73;

export class VfioIoctlTrace extends IoctlTrace {
  constructor() {
    super({ [VFIO_DEVICE_QUERY_GFX_PLANE]: 'QUERY_GFX_PLANE', [VFIO_DEVICE_GET_GFX_DMABUF]: 'GET_GFX_DMABUF' });
  }

  override count(name: 'QUERY_GFX_PLANE' | 'GET_GFX_DMABUF'): number {
    return super.count(name);
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
 * It turns a crashed VM into a failed test, and gives the per-id count the kernel's total
 * (VfioIoctlTrace) is checked against.
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
