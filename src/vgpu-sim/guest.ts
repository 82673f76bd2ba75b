// "The guest" of a vgpu-sim instance (debugfs): its modes, planes, pixels, flips, faults and
// display-IRQ state, as a test or a demo drives it. The files are documented in
// native/vgpu-sim/README.md.
import { closeSync, existsSync, openSync, readSync, writeSync } from 'node:fs';
import path from 'node:path';
import { parseKeyValues as kv } from '../util/kv.js';
import { SIM_PLANES, SimError, errCode, readText, roots, writeText, type SimPlane, type SimRoots } from './sysfs.js';

// ------------------------------------------------------------------ the guest

export interface SimMode {
  /** 'XR24', 'AR24', 'XB24', 'AB24', 'RG16' or a numeric DRM fourcc (others are accepted and reported unusable) */
  fourcc: string | number;
  width: number;
  height: number;
  /** bytes per line; default width * bytes per pixel */
  stride?: number;
  /** byte offset of the buffer in video memory (page aligned to be usable) */
  offset?: number | bigint;
  x?: number;
  y?: number;
  xhot?: number;
  yhot?: number;
  modifier?: bigint;
}

export type SimErrno = 'ENOMEM' | 'EBUSY' | 'EINVAL' | 'EIO' | 'EAGAIN' | 'ENODEV' | 'ENOSPC' | 'EFAULT' | 'ENOENT' | 'EPERM';
export type SimFaultKind = 'query' | 'dmabuf';

export interface SimPlaneStatus {
  plane: SimPlane;
  /** the plane can be shown: a query answers a non-zero size */
  ready: boolean;
  size: number;
  enabled: boolean;
  fourcc: string;
  width: number;
  height: number;
  stride: number;
  offset: bigint;
  x: number;
  y: number;
  /** a REGION query can show it (offset 0) */
  regionOk: boolean;
  /** DRM_FB: in-kernel commits that moved host planes, and the last such error (negative errno) */
  kflips: number;
  kflipErr: number;
  /**
   * DRM_FB: guest changes taken by an in-kernel flip not made yet (the flip runs in a worker;
   * a guest flipping faster than the host's commits is coalesced), and worker runs that had
   * nothing to move. kflips + kflipCoalesced + kflipIdle = the guest's changes of the plane.
   */
  kflipCoalesced: number;
  kflipIdle: number;
  /** an in-kernel flip is queued or running */
  kflipPending: boolean;
  /** 'ok', or why the plane reports size 0 */
  reason: string;
}

export interface SimInfo {
  type: string;
  vramSize: number;
  maxWidth: number;
  maxHeight: number;
  open: boolean;
  cachedBuffers: number;
  drmFb: boolean;
}

/** vgpu-sim's PCI state (see SimGuest.pciState). */
export interface SimPciState {
  resets: number;
  command: number;
  bar0: number;
  /** an eventfd is set for the index (VFIO_DEVICE_SET_IRQS ACTION_TRIGGER) */
  intx: boolean;
  intxMasked: boolean;
  err: boolean;
  req: boolean;
  intxFired: number;
  reqFired: number;
}

/** vgpu-sim's display event IRQ (debugfs "display_irq", see SimGuest.displayIrq). */
export interface SimDisplayIrqState {
  /** the IRQ index, null for a type without a display (headless) */
  index: number | null;
  /** the guest's vblank rate and current vblank sequence number (time based, from instance creation) */
  hz: number;
  vblank: number;
  /** an eventfd is attached (SET_IRQS ACTION_TRIGGER) */
  eventfd: boolean;
  masked: boolean;
  /** event values waiting for the next vblank */
  pending: bigint;
  /** vblank signals delivered (each at a distinct vblank) */
  signals: number;
  /** guest changes noted (flips, modes, moves, disables, resets) */
  events: number;
  /** the vblank of the last signal, -1 before the first */
  lastSignalVblank: number;
  /** SET_IRQS loopback triggers delivered */
  loopbacks: number;
  armed: boolean;
}

function num(m: Map<string, string>, k: string): number {
  const v = m.get(k);
  if (v === undefined) throw new Error(`vgpu-sim: field ${k} missing`);
  return Number(v);
}

export function parseStatus(text: string): SimPlaneStatus {
  const [first = '', ...rest] = text.split('\n');
  const m = kv(first);
  const reasonLine = rest.find((l) => l.startsWith('reason='));
  return {
    plane: (m.get('plane') ?? 'primary') as SimPlane,
    ready: m.get('ready') === '1',
    size: num(m, 'size'),
    enabled: m.get('enabled') === '1',
    fourcc: m.get('fourcc') ?? '',
    width: num(m, 'width'),
    height: num(m, 'height'),
    stride: num(m, 'stride'),
    offset: BigInt(m.get('offset') ?? '0'),
    x: num(m, 'x'),
    y: num(m, 'y'),
    regionOk: m.get('region_ok') === '1',
    kflips: num(m, 'kflips'),
    kflipErr: num(m, 'kflip_err'),
    kflipCoalesced: m.has('kflip_coalesced') ? num(m, 'kflip_coalesced') : 0, // older modules: no worker
    kflipIdle: m.has('kflip_idle') ? num(m, 'kflip_idle') : 0,
    kflipPending: m.get('kflip_pending') === '1',
    reason: reasonLine ? reasonLine.slice('reason='.length) : '',
  };
}

/** Acts as the guest OS of one vgpu-sim instance through its debugfs folder. */
export class SimGuest {
  readonly dir: string;

  constructor(
    readonly uuid: string,
    r: SimRoots = {},
  ) {
    this.dir = path.join(roots(r).debugfs, uuid);
    if (!existsSync(this.dir)) {
      throw new SimError(
        `vgpu-sim: no debugfs folder for instance ${uuid} at ${this.dir} (instance removed? debugfs not mounted? not root?)`,
        this.dir,
        'ENOENT',
      );
    }
  }

  private file(...parts: string[]): string {
    return path.join(this.dir, ...parts);
  }

  info(): SimInfo {
    const m = kv(readText(this.file('info')));
    return {
      type: m.get('type') ?? '',
      vramSize: num(m, 'vram_size'),
      maxWidth: num(m, 'max_width'),
      maxHeight: num(m, 'max_height'),
      open: m.get('open') === '1',
      cachedBuffers: num(m, 'cached_buffers'),
      drmFb: m.get('drm_fb') === '1',
    };
  }

  /**
   * The PCI side of the instance as a VMM's vfio-pci left it (debugfs "info"): how often it was
   * reset (VFIO_DEVICE_RESET), config space command register and BAR0, which IRQ indexes have
   * an eventfd (SET_IRQS), INTx mask state, and how often INTx / REQ fired.
   */
  pciState(): SimPciState {
    const m = kv(readText(this.file('info')));
    return {
      resets: num(m, 'resets'),
      command: num(m, 'pci_command'),
      bar0: num(m, 'bar0'),
      intx: m.get('intx') === 'eventfd',
      intxMasked: m.get('intx_masked') === '1',
      err: m.get('err') === 'eventfd',
      req: m.get('req') === 'eventfd',
      intxFired: num(m, 'intx_fired'),
      reqFired: num(m, 'req_fired'),
    };
  }

  /** The display event IRQ's state and counters (debugfs "display_irq"). */
  displayIrq(): SimDisplayIrqState {
    const m = kv(readText(this.file('display_irq')));
    const index = m.get('index');
    const has = index !== undefined && index !== 'none';
    const n = (k: string): number => (has ? num(m, k) : 0);
    return {
      index: has ? Number(index) : null,
      hz: num(m, 'hz'),
      vblank: num(m, 'vblank'),
      eventfd: m.get('eventfd') === '1',
      masked: m.get('masked') === '1',
      pending: BigInt(m.get('pending') ?? '0'),
      signals: n('signals'),
      events: n('events'),
      lastSignalVblank: has ? num(m, 'last_signal_vblank') : -1,
      loopbacks: n('loopbacks'),
      armed: m.get('armed') === '1',
    };
  }

  /** Program a plane and enable it (values are stored as given; status() says if usable). */
  setMode(plane: SimPlane, mode: SimMode): void {
    const parts = [
      `fourcc=${typeof mode.fourcc === 'number' ? `0x${mode.fourcc.toString(16)}` : mode.fourcc}`,
      `width=${mode.width}`,
      `height=${mode.height}`,
    ];
    if (mode.stride !== undefined) parts.push(`stride=${mode.stride}`);
    parts.push(`offset=${mode.offset ?? 0}`);
    if (mode.x !== undefined) parts.push(`x=${mode.x}`);
    if (mode.y !== undefined) parts.push(`y=${mode.y}`);
    if (mode.xhot !== undefined) parts.push(`xhot=${mode.xhot}`);
    if (mode.yhot !== undefined) parts.push(`yhot=${mode.yhot}`);
    parts.push(`modifier=0x${(mode.modifier ?? 0n).toString(16)}`);
    writeText(this.file(plane, 'mode'), parts.join(' '));
    this.settle([plane]);
  }

  /** Move a plane (e.g. the cursor) without changing its buffer. */
  move(plane: SimPlane, x: number, y: number): void {
    writeText(this.file(plane, 'mode'), `x=${x} y=${y}`);
    this.settle([plane]);
  }

  /**
   * Wait until the in-kernel flip (DRM_FB) of every change so far is made, so that the host
   * plane shows what the guest shows when a call returns. The guest's own write never waits
   * (vgpu-sim flips in a worker, coalescing fast flips); the calls of this class settle after
   * it unless told not to (`wait: false`), as a test or demo wants.
   */
  settle(planes: readonly SimPlane[] = SIM_PLANES): void {
    for (const p of planes) {
      const f = this.file(p, 'kflip_wait');
      if (existsSync(f)) writeText(f, '1');
    }
  }

  /** Write bytes into video memory at `offset`. */
  writePixels(offset: number | bigint, data: Buffer): void {
    const f = this.file('vram');
    let fd = -1;
    try {
      fd = openSync(f, 'r+');
      let done = 0;
      while (done < data.length) {
        const n = writeSync(fd, data, done, data.length - done, Number(offset) + done);
        if (n <= 0) throw new Error(`short write at ${Number(offset) + done}`);
        done += n;
      }
    } catch (e) {
      if (e instanceof SimError) throw e;
      const code = errCode(e);
      throw new SimError(
        `vgpu-sim: writing ${data.length} bytes of video memory at ${offset} (${f}) failed: ${code ?? String(e)}` +
          (code === 'ENOSPC' ? ' (past the end of video memory)' : ''),
        f,
        code,
      );
    } finally {
      if (fd >= 0) closeSync(fd);
    }
  }

  /** Read bytes of video memory (what the guest sees). */
  readPixels(offset: number | bigint, length: number): Buffer {
    const f = this.file('vram');
    const out = Buffer.alloc(length);
    let fd = -1;
    try {
      fd = openSync(f, 'r');
      let done = 0;
      while (done < length) {
        const n = readSync(fd, out, done, length - done, Number(offset) + done);
        if (n <= 0) break;
        done += n;
      }
      return out.subarray(0, done);
    } catch (e) {
      const code = errCode(e);
      throw new SimError(`vgpu-sim: reading video memory at ${offset} (${f}) failed: ${code ?? String(e)}`, f, code);
    } finally {
      if (fd >= 0) closeSync(fd);
    }
  }

  /**
   * Page flip: the plane shows the buffer at `offset` from now on (atomic, counted). `wait:
   * false`: return as a guest's flip does, before the host plane follows (settle()).
   */
  flip(plane: SimPlane, offset: number | bigint, opts: { wait?: boolean } = {}): void {
    writeText(this.file(plane, 'flip'), String(offset));
    if (opts.wait !== false) this.settle([plane]);
  }

  disable(plane: SimPlane): void {
    writeText(this.file(plane, 'disable'), '1');
    this.settle([plane]);
  }

  /** Guest reboot: every plane off. */
  reset(): void {
    writeText(this.file('reset'), '1');
    this.settle();
  }

  flipCount(): number {
    return Number.parseInt(readText(this.file('flip_count')).trim(), 10);
  }

  status(plane: SimPlane): SimPlaneStatus {
    return parseStatus(readText(this.file(plane, 'status')));
  }

  /** DRM_FB: the framebuffer id of the plane's current buffer on the host card (0: none). */
  fbId(plane: SimPlane): number {
    return Number.parseInt(readText(this.file(plane, 'fb_id')).trim(), 10);
  }

  /** Make the next `count` queries ('query') or GET_GFX_DMABUF calls ('dmabuf') fail with errno. */
  injectFault(kind: SimFaultKind, errno: SimErrno, count = 1): void {
    writeText(this.file('fault', kind), `${errno} ${count}`);
  }

  /** Remaining injected failures: null when none. */
  pendingFault(kind: SimFaultKind): { errno: string; count: number } | null {
    const t = readText(this.file('fault', kind)).trim();
    if (t === 'none') return null;
    const [errno = '', count = '0'] = t.split(/\s+/);
    return { errno, count: Number(count) };
  }

  /** Every DMABUF query answers a new dmabuf_id (on) or the normal stable ids (off). */
  setNewIdsEveryQuery(on: boolean): void {
    writeText(this.file('fault', 'new_ids'), on ? '1' : '0');
  }

  /** Report the plane as not ready (size 0) although it is enabled. */
  setNotReady(plane: SimPlane, on: boolean): void {
    writeText(this.file(plane, 'not_ready'), on ? '1' : '0');
  }

  /** Clear every injected fault. */
  clearFaults(): void {
    this.injectFaultNone('query');
    this.injectFaultNone('dmabuf');
    this.setNewIdsEveryQuery(false);
    for (const p of SIM_PLANES) this.setNotReady(p, false);
  }

  private injectFaultNone(kind: SimFaultKind): void {
    writeText(this.file('fault', kind), 'none');
  }
}
