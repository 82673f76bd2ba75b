// The display event IRQ of a vGPU: an IRQ index whose eventfd the vendor driver signals when the
// guest display changes (Intel's unmerged 2019 series "Deliver vGPU display refresh event to
// userspace", v6; constants and layouts in native/include/vfio_gfx_display_irq.h).
// Parsing of the capability chain is pure (host-tested on recorded bytes); DisplayIrq wraps the
// addon calls (SET_IRQS, eventfd) for one device.
import { native } from '../binding/index.js';
import { isKernelError } from '../binding/errors.js';
import type { VfioIrqCap, VfioIrqInfo } from '../binding/types.js';

// ---- constants (vfio_gfx_display_irq.h, linux/vfio.h) -----------------------------------
/** vfio-pci's fixed IRQ indexes; device specific ones (with a type capability) follow */
export const VFIO_PCI_NUM_IRQS = 5;
export const VFIO_IRQ_INFO_EVENTFD = 1 << 0;
export const VFIO_IRQ_INFO_MASKABLE = 1 << 1;
export const VFIO_IRQ_INFO_AUTOMASKED = 1 << 2;
export const VFIO_IRQ_INFO_NORESIZE = 1 << 3;
/** patch v6 1/6 (not in linux/vfio.h 6.1) */
export const VFIO_IRQ_INFO_FLAG_CAPS = 1 << 4;
/** capability ids of the series, v6 numbering (v5 used 3 and 4) */
export const VFIO_IRQ_INFO_CAP_TYPE = 1;
export const VFIO_IRQ_INFO_CAP_DISPLAY = 2;
export const VFIO_IRQ_TYPE_GFX = 1;
export const VFIO_IRQ_SUBTYPE_GFX_DISPLAY_IRQ = 1;
/** the values GVT-g (and vgpu-sim) put in the display capability */
export const VFIO_GFX_DISPLAY_PRI_EVENT_VAL = 1n << 56n;
export const VFIO_GFX_DISPLAY_CUR_EVENT_VAL = 1n << 48n;

export const VFIO_IRQ_SET_DATA_NONE = 1 << 0;
export const VFIO_IRQ_SET_DATA_BOOL = 1 << 1;
export const VFIO_IRQ_SET_DATA_EVENTFD = 1 << 2;
export const VFIO_IRQ_SET_ACTION_MASK = 1 << 3;
export const VFIO_IRQ_SET_ACTION_UNMASK = 1 << 4;
export const VFIO_IRQ_SET_ACTION_TRIGGER = 1 << 5;

// ---- parsing ----------------------------------------------------------------------------
/** struct vfio_irq_info_cap_type */
export interface IrqCapType { type: number; subtype: number }
/** struct vfio_irq_info_cap_display_plane_events */
export interface DisplayPlaneEvents { curEventVal: bigint; priEventVal: bigint }

export interface ParsedIrqCaps {
  type: IrqCapType | null;
  display: DisplayPlaneEvents | null;
  /** capabilities that were not understood (unknown id or version, or too short), as [id, version] */
  unknown: Array<[number, number]>;
}

/** Parse the bodies of an IRQ's capabilities (each `data` starts with its 8-byte header). */
export function parseIrqCaps(caps: readonly Pick<VfioIrqCap, 'id' | 'version' | 'data'>[]): ParsedIrqCaps {
  const out: ParsedIrqCaps = { type: null, display: null, unknown: [] };
  for (const c of caps) {
    const d = c.data;
    if (c.id === VFIO_IRQ_INFO_CAP_TYPE && c.version === 1 && d.length >= 16 && !out.type) {
      out.type = { type: d.readUInt32LE(8), subtype: d.readUInt32LE(12) };
    } else if (c.id === VFIO_IRQ_INFO_CAP_DISPLAY && c.version === 1 && d.length >= 24 && !out.display) {
      out.display = { curEventVal: d.readBigUInt64LE(8), priEventVal: d.readBigUInt64LE(16) };
    } else {
      out.unknown.push([c.id, c.version]);
    }
  }
  return out;
}

/**
 * Walk a capability chain in the raw bytes of a GET_IRQ_INFO answer (the struct, then the chain
 * at cap_offset; `next` offsets count from the start of the info). What the addon does, in
 * TypeScript, for recorded answers and for checking the addon. Stops at loops, at offsets inside
 * the 20-byte struct and at truncation.
 */
export function walkIrqInfo(raw: Buffer): Pick<VfioIrqInfo, 'argsz' | 'flags' | 'index' | 'count' | 'capOffset' | 'caps'> {
  if (raw.length < 16) throw new RangeError(`vfio_irq_info: ${raw.length} bytes, at least 16 needed`);
  const argsz = raw.readUInt32LE(0);
  const flags = raw.readUInt32LE(4);
  const index = raw.readUInt32LE(8);
  const count = raw.readUInt32LE(12);
  const withCaps = (flags & VFIO_IRQ_INFO_FLAG_CAPS) !== 0 && raw.length >= 20;
  const capOffset = withCaps ? raw.readUInt32LE(16) : 0;
  const caps: VfioIrqCap[] = [];
  const end = Math.min(argsz, raw.length);
  let off = capOffset;
  while (off !== 0 && caps.length < 64) {
    if (off < 20 || off + 8 > end) break;
    const id = raw.readUInt16LE(off);
    const version = raw.readUInt16LE(off + 2);
    const next = raw.readUInt32LE(off + 4);
    const capEnd = next > off && next <= end ? next : end;
    caps.push({ id, version, offset: off, data: Buffer.from(raw.subarray(off, capEnd)) });
    if (next <= off) break;
    off = next;
  }
  return { argsz, flags, index, count, capOffset, caps };
}

/** What a GET_IRQ_INFO answer says about the display event. */
export interface DisplayIrqDescription {
  index: number;
  flags: number;
  count: number;
  maskable: boolean;
  /** null: no display capability (refresh every plane on each signal, as the series says) */
  events: DisplayPlaneEvents | null;
}

/** Is this IRQ index the display event IRQ (type GFX, subtype GFX_DISPLAY_IRQ)? null if not. */
export function describeDisplayIrq(info: Pick<VfioIrqInfo, 'index' | 'flags' | 'count' | 'caps'>): DisplayIrqDescription | null {
  if (!(info.flags & VFIO_IRQ_INFO_FLAG_CAPS) || !(info.flags & VFIO_IRQ_INFO_EVENTFD)) return null;
  const p = parseIrqCaps(info.caps);
  if (!p.type || p.type.type !== VFIO_IRQ_TYPE_GFX || p.type.subtype !== VFIO_IRQ_SUBTYPE_GFX_DISPLAY_IRQ) return null;
  return {
    index: info.index,
    flags: info.flags,
    count: info.count,
    maskable: (info.flags & VFIO_IRQ_INFO_MASKABLE) !== 0,
    events: p.display,
  };
}

/** Which planes an eventfd counter value names (a read returns the sum of all signals since the last). */
export interface DisplayEventDecoded {
  /** raw counter */
  value: bigint;
  primary: boolean;
  cursor: boolean;
  /** signals per plane since the last read, when the value decomposes exactly; else null */
  primarySignals: number | null;
  cursorSignals: number | null;
  /** the value does not decompose into the two event values (no capability, overflowed, other bits): refresh everything */
  all: boolean;
}

/**
 * Decode a counter value with the display capability's values. Each signal adds pri_event_val
 * and/or cur_event_val; with single-bit values (GVT-g's 1<<56 and 1<<48) the counter holds one
 * 8-bit count per plane, exact while fewer than 256 of each accumulate unread.
 */
export function decodeDisplayEvent(value: bigint, events: DisplayPlaneEvents | null): DisplayEventDecoded {
  const all = (): DisplayEventDecoded => ({ value, primary: true, cursor: true, primarySignals: null, cursorSignals: null, all: true });
  if (value <= 0n || !events) return all();
  const { priEventVal: p, curEventVal: c } = events;
  const single = (v: bigint): boolean => v > 0n && (v & (v - 1n)) === 0n;
  if (!single(p) || !single(c) || p === c) {
    // not the partitioned layout: only the exact single values mean one plane
    if (value === p) return { value, primary: true, cursor: false, primarySignals: 1, cursorSignals: 0, all: false };
    if (value === c) return { value, primary: false, cursor: true, primarySignals: 0, cursorSignals: 1, all: false };
    return all();
  }
  const [lo, hi] = p < c ? [p, c] : [c, p];
  // the lower counter has the bits from lo up to hi; the upper one from hi up to 2^64
  const loField = hi / lo; // 2^(width of the lower field)
  if (value % lo !== 0n || value === (1n << 64n) - 1n) return all();
  const loCount = (value / lo) % loField;
  const hiCount = value / hi;
  const pri = Number(p === lo ? loCount : hiCount);
  const cur = Number(c === lo ? loCount : hiCount);
  return { value, primary: pri > 0, cursor: cur > 0, primarySignals: pri, cursorSignals: cur, all: false };
}

// ---- the device side --------------------------------------------------------------------
/** The minimal device surface DisplayIrq needs (VfioDevice has it). */
export interface IrqDevice {
  readonly fd: number;
  info(): { numIrqs: number };
}

/**
 * Find the display event IRQ: walk the indexes from VFIO_PCI_NUM_IRQS to num_irqs for the GFX /
 * GFX_DISPLAY_IRQ type capability. null when the device has none (a failing GET_IRQ_INFO of a
 * device specific index counts as none; other errors propagate).
 */
export function findDisplayIrq(dev: IrqDevice): DisplayIrqDescription | null {
  const n = dev.info().numIrqs;
  for (let i = VFIO_PCI_NUM_IRQS; i < n && i < VFIO_PCI_NUM_IRQS + 64; i++) {
    let info: VfioIrqInfo;
    try {
      info = native.vfioIrqInfo(dev.fd, i);
    } catch (e) {
      if (isKernelError(e) && e.code === 'EINVAL') continue;
      throw e;
    }
    const d = describeDisplayIrq(info);
    if (d) return d;
  }
  return null;
}

/**
 * One attached display event: an eventfd registered at the display IRQ. read() returns what
 * happened since the last read (null: nothing). close() detaches it (fd -1) and closes the fd.
 */
export class DisplayIrq {
  private efd: number;

  private constructor(
    private readonly dev: IrqDevice,
    readonly desc: DisplayIrqDescription,
    efd: number,
  ) {
    this.efd = efd;
  }

  /** Attach a new eventfd to the device's display IRQ; null when it has none. */
  static attach(dev: IrqDevice, desc: DisplayIrqDescription | null = findDisplayIrq(dev)): DisplayIrq | null {
    if (!desc) return null;
    const efd = native.eventfdCreate();
    try {
      native.setFdLabel(efd, `display event eventfd (irq ${desc.index})`);
      native.vfioSetIrqs(dev.fd, desc.index, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 1, [efd]);
    } catch (e) {
      native.close(efd);
      throw e;
    }
    return new DisplayIrq(dev, desc, efd);
  }

  /** the eventfd (poll it for readability) */
  get fd(): number {
    if (this.efd < 0) throw new Error('display event: closed');
    return this.efd;
  }

  /** the counter since the last read, decoded; null when nothing was signalled */
  read(): DisplayEventDecoded | null {
    const v = native.eventfdRead(this.fd);
    return v === null ? null : decodeDisplayEvent(v, this.desc.events);
  }

  mask(): void {
    native.vfioSetIrqs(this.dev.fd, this.desc.index, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, 0, 1);
  }

  unmask(): void {
    native.vfioSetIrqs(this.dev.fd, this.desc.index, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 0, 1);
  }

  /** loopback: the driver signals the eventfd now (for tests) */
  trigger(): void {
    native.vfioSetIrqs(this.dev.fd, this.desc.index, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 1);
  }

  /** Detach (fd -1) and close the eventfd. Idempotent; a closed device fd only closes the eventfd. */
  close(): void {
    if (this.efd < 0) return;
    const efd = this.efd;
    this.efd = -1;
    try {
      native.vfioSetIrqs(this.dev.fd, this.desc.index, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 1, [-1]);
    } catch {
      /* the device may be closed already: its eventfds went with it */
    } finally {
      native.close(efd);
    }
  }
}
