// A reusable "VMM-like holder" for kernel tests against the kernel's sample vGPU drivers
// (mbochs, mdpy; the rig loads them with `vm.sh --sample-drivers`). SampleVmm.start() spawns
// test/kernel/sample-vmm-child.cjs, which opens the mdev's container + group + device as QEMU
// would (the project's addon, legacy group API), keeps them open, and plays the guest display
// driver on request: mode sets through mbochs' bochs DISPI registers, pixels through an mmap
// of the video memory. The test process then reaches the device only as `vgpu-flip assign
// --pid` does (pidfd_getfd of the child's device fd): the group is busy.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { addonPath } from '../../src/binding/index.js';
import { readVgpu } from '../../src/vfio/sysfs.js';
import { createMdev } from './vfio-helpers.js';

const CHILD = path.join(path.dirname(new URL(import.meta.url).pathname), 'sample-vmm-child.cjs');

export type SampleDriver = 'mbochs' | 'mdpy';

export interface SampleRegion {
  index: number;
  flags: number;
  offset: number;
  size: number;
}

/** The guest framebuffer the child draws into (what the vendor driver should report). */
export interface SampleFb {
  format: number;
  width: number;
  height: number;
  stride: number;
  /** byte offset in video memory */
  offset: number;
}

export interface SampleVmmReady {
  pid: number;
  handles: { container: number; group: number; device: number; groupId: number };
  driver: SampleDriver;
  regions: Record<string, SampleRegion>;
  fb: SampleFb | null;
}

export interface ModeRequest {
  width: number;
  height: number;
  bpp?: number;
  virtWidth?: number;
  virtHeight?: number;
  /** panning (DISPI X_OFFSET / Y_OFFSET) */
  x?: number;
  y?: number;
}

/** DISPI registers as the guest reads them back. */
export type DispiRegs = Record<'ID' | 'XRES' | 'YRES' | 'BPP' | 'ENABLE' | 'BANK' | 'VIRT_WIDTH' | 'VIRT_HEIGHT' | 'X_OFFSET' | 'Y_OFFSET' | 'VIDEO_MEMORY_64K', number>;

/** Create an mdev of a sample driver's type (e.g. mbochs-medium, mdpy-vga); fails with what the rig lacks. */
export function createSampleMdev(type: string): string {
  return createMdev(type, 'the rig loads the kernel sample drivers mbochs and mdpy with `test/rig/vm.sh --sample-drivers`');
}

export function removeSampleMdev(uuid: string): void {
  try {
    writeFileSync(`/sys/bus/mdev/devices/${uuid}/remove`, '1');
  } catch {
    /* already gone */
  }
}

export class SampleVmm {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  private buf = '';
  private stderr = '';
  private exited: Promise<number | null>;

  private constructor(
    readonly child: ChildProcessWithoutNullStreams,
    readonly uuid: string,
    readonly ready: SampleVmmReady,
    rest: string,
  ) {
    this.buf = rest;
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null) resolve(child.exitCode);
      else child.once('exit', (code) => resolve(code));
    });
    child.stdout.on('data', (d: Buffer) => this.onData(d.toString()));
    child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    child.once('exit', (code, signal) => {
      for (const w of this.waiting.values()) w.reject(new Error(`the sample VMM (pid ${child.pid}) exited (${code ?? signal}) before answering: ${this.stderr}`));
      this.waiting.clear();
    });
    this.onData('');
  }

  get pid(): number {
    return this.ready.pid;
  }

  /** Spawn the holder for the mdev `uuid` of `driver`; resolves once it holds the device. */
  static start(uuid: string, driver: SampleDriver, timeoutMs = 30_000): Promise<SampleVmm> {
    const group = readVgpu(uuid).iommuGroup;
    if (group === null) return Promise.reject(new Error(`mdev ${uuid} has no IOMMU group`));
    const child = spawn(process.execPath, [CHILD, addonPath, String(group), uuid, driver], { stdio: 'pipe' });
    return new Promise((resolve, reject) => {
      let out = '';
      let err = '';
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`the sample VMM did not report ready within ${timeoutMs} ms: ${err}`));
      }, timeoutMs);
      const onErr = (d: Buffer): void => {
        err += d.toString();
      };
      const onOut = (d: Buffer): void => {
        out += d.toString();
        const nl = out.indexOf('\n');
        if (nl < 0) return;
        clearTimeout(timer);
        child.stdout.off('data', onOut);
        child.stderr.off('data', onErr);
        child.off('exit', onExit);
        try {
          const r = JSON.parse(out.slice(0, nl)) as SampleVmmReady & { ready: boolean };
          if (!r.ready) throw new Error(`unexpected first line ${out.slice(0, nl)}`);
          const v = new SampleVmm(child, uuid, r, out.slice(nl + 1));
          v.stderr = err;
          resolve(v);
        } catch (e) {
          child.kill('SIGKILL');
          reject(e as Error);
        }
      };
      const onExit = (code: number | null): void => {
        clearTimeout(timer);
        reject(new Error(`the sample VMM exited with ${code} before it was ready: ${err}`));
      };
      child.stdout.on('data', onOut);
      child.stderr.on('data', onErr);
      child.on('exit', onExit);
    });
  }

  private onData(s: string): void {
    this.buf += s;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      if (!line.trim()) continue;
      const r = JSON.parse(line) as Record<string, unknown> & { id: number; ok: boolean; error?: string };
      const w = this.waiting.get(r.id);
      if (!w) continue;
      this.waiting.delete(r.id);
      if (r.ok) w.resolve(r);
      else w.reject(Object.assign(new Error(`sample VMM: ${r.error}`), { code: r['code'], op: r['op'] }));
    }
  }

  request<T = Record<string, unknown>>(op: string, args: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<T> {
    if (this.child.exitCode !== null) return Promise.reject(new Error(`the sample VMM exited (${this.child.exitCode}): ${this.stderr}`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`the sample VMM did not answer ${op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.stdin.write(JSON.stringify({ id, op, ...args }) + '\n');
    });
  }

  /** mbochs: the guest programs a mode (DISPI registers); returns the framebuffer and the registers read back. */
  setMode(m: ModeRequest): Promise<{ fb: SampleFb; size: number; regs: DispiRegs }> {
    return this.request('mode', { ...m });
  }

  /** mbochs: the guest turns its display off (DISPI ENABLE = 0). */
  disable(): Promise<{ regs: DispiRegs }> {
    return this.request('disable');
  }

  regs(): Promise<DispiRegs> {
    return this.request<{ regs: DispiRegs }>('regs').then((r) => r.regs);
  }

  /**
   * The guest draws a whole frame (XRGB8888, width*4 per row, the current mode's size) through
   * its mmap: into the buffer shown, or into the one at byte `at` of video memory (a back buffer).
   */
  async draw(pixels: Buffer, at?: number): Promise<void> {
    const f = path.join(tmpdir(), `sample-vmm-${process.pid}-${this.nextId}.raw`);
    writeFileSync(f, pixels);
    try {
      await this.request('draw', at === undefined ? { file: f } : { file: f, at });
    } finally {
      rmSync(f, { force: true });
    }
  }

  /** mbochs: a page flip as bochs-drm does it (only DISPI X_OFFSET / Y_OFFSET change). */
  pan(x: number, y: number): Promise<{ fb: SampleFb; regs: DispiRegs }> {
    return this.request('pan', { x, y });
  }

  fill(color: number): Promise<unknown> {
    return this.request('fill', { color });
  }

  /** Bytes of video memory as the guest's mapping sees them. */
  async peek(offset: number, length: number): Promise<Buffer> {
    const r = await this.request<{ data: string }>('peek', { offset, length });
    return Buffer.from(r.data, 'base64');
  }

  /** Close the VMM's fds (stdin EOF) and wait for it to exit. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode === null) this.child.stdin.end();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    try {
      return await this.exited;
    } finally {
      clearTimeout(t);
    }
  }
}
