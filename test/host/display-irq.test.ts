// Host tests of the display event IRQ parsing (src/vfio/display-irq.ts) on recorded
// VFIO_DEVICE_GET_IRQ_INFO answers. VSIM_INFO is what vgpu-sim answered for index 5 in the rig
// VM (test/kernel/display-irq.test.ts checks the kernel still answers exactly these bytes);
// GVT_STYLE is the layout of Intel's v6 series (chain at sizeof(info) = 20, unaligned).
import { describe, expect, it } from 'vitest';
import {
  VFIO_GFX_DISPLAY_CUR_EVENT_VAL,
  VFIO_GFX_DISPLAY_PRI_EVENT_VAL,
  decodeDisplayEvent,
  describeDisplayIrq,
  parseIrqCaps,
  walkIrqInfo,
} from '../../src/vfio/display-irq.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** vgpu-sim, index 5, argsz 64: struct (20) + pad (4) + cap TYPE (16) + cap DISPLAY (24) */
export const VSIM_INFO = hex(`
  40000000 13000000 05000000 01000000 18000000 00000000
  0100 0100 28000000 01000000 01000000
  0200 0100 00000000 0000000000000100 0000000000000001
`);

/** the v6 GVT-g layout: chain right after the 20-byte struct; display cap first, then the type */
const GVT_STYLE = hex(`
  3c000000 13000000 05000000 01000000 14000000
  0200 0100 2c000000 0000000000000100 0000000000000001
  0100 0100 00000000 01000000 01000000
`);

/** a 6.1 driver's INTx answer: 16 bytes, no caps */
const INTX_61 = hex('10000000 07000000 00000000 01000000');

describe('walkIrqInfo: the capability chain in raw bytes', () => {
  it('reads vgpu-sim\'s answer: flags EVENTFD|MASKABLE|CAPS, count 1, chain at 24', () => {
    expect(VSIM_INFO.length).toBe(64);
    const w = walkIrqInfo(VSIM_INFO);
    expect(w).toMatchObject({ argsz: 64, flags: 0x13, index: 5, count: 1, capOffset: 24 });
    expect(w.caps.map((c) => [c.id, c.version, c.offset, c.data.length])).toEqual([
      [1, 1, 24, 16],
      [2, 1, 40, 24],
    ]);
  });

  it('reads the GVT-g layout (unaligned chain at 20, display capability first)', () => {
    const w = walkIrqInfo(GVT_STYLE);
    expect(w.capOffset).toBe(20);
    expect(w.caps.map((c) => [c.id, c.offset])).toEqual([[2, 20], [1, 44]]);
  });

  it('has no chain without FLAG_CAPS, and stops at loops, short buffers and offsets inside the struct', () => {
    expect(walkIrqInfo(INTX_61)).toMatchObject({ flags: 7, capOffset: 0, caps: [] });
    const loop = Buffer.from(VSIM_INFO);
    loop.writeUInt32LE(24, 28); // the first capability's next points at itself
    expect(walkIrqInfo(loop).caps).toHaveLength(1);
    const inside = Buffer.from(VSIM_INFO);
    inside.writeUInt32LE(8, 16); // cap_offset inside the struct
    expect(walkIrqInfo(inside).caps).toEqual([]);
    // the kernel said it needs 64 bytes, but only 20 arrived: no chain to read
    expect(walkIrqInfo(VSIM_INFO.subarray(0, 20)).caps).toEqual([]);
    expect(() => walkIrqInfo(Buffer.alloc(12))).toThrow(RangeError);
  });
});

describe('parseIrqCaps / describeDisplayIrq', () => {
  it('finds type GFX / GFX_DISPLAY_IRQ and the primary/cursor event values', () => {
    const w = walkIrqInfo(VSIM_INFO);
    expect(parseIrqCaps(w.caps)).toEqual({
      type: { type: 1, subtype: 1 },
      display: { curEventVal: 1n << 48n, priEventVal: 1n << 56n },
      unknown: [],
    });
    expect(describeDisplayIrq(w)).toEqual({
      index: 5,
      flags: 0x13,
      count: 1,
      maskable: true,
      events: { curEventVal: VFIO_GFX_DISPLAY_CUR_EVENT_VAL, priEventVal: VFIO_GFX_DISPLAY_PRI_EVENT_VAL },
    });
    expect(describeDisplayIrq(walkIrqInfo(GVT_STYLE))?.events).toEqual({ curEventVal: 1n << 48n, priEventVal: 1n << 56n });
  });

  it('is not a display IRQ without the type capability, with another type, or without FLAG_CAPS', () => {
    expect(describeDisplayIrq(walkIrqInfo(INTX_61))).toBeNull();
    const other = Buffer.from(VSIM_INFO);
    other.writeUInt32LE(2, 36); // subtype 2
    expect(describeDisplayIrq(walkIrqInfo(other))).toBeNull();
    const noCapsFlag = Buffer.from(VSIM_INFO);
    noCapsFlag.writeUInt32LE(0x03, 4);
    expect(describeDisplayIrq(walkIrqInfo(noCapsFlag))).toBeNull();
  });

  it('keeps a display IRQ without the (optional) display capability: events null', () => {
    const onlyType = Buffer.from(VSIM_INFO.subarray(0, 40));
    onlyType.writeUInt32LE(40, 0); // argsz
    onlyType.writeUInt32LE(0, 28); // next = 0
    const d = describeDisplayIrq(walkIrqInfo(onlyType));
    expect(d).toMatchObject({ index: 5, events: null });
  });

  it('reports the v5 numbering (type 3, display 4) as unknown capabilities', () => {
    const v5 = Buffer.from(VSIM_INFO);
    v5.writeUInt16LE(3, 24);
    v5.writeUInt16LE(4, 40);
    const p = parseIrqCaps(walkIrqInfo(v5).caps);
    expect(p).toEqual({ type: null, display: null, unknown: [[3, 1], [4, 1]] });
  });

  it('ignores a too-short capability body and a newer version', () => {
    expect(parseIrqCaps([{ id: 2, version: 1, data: Buffer.alloc(16) }]).display).toBeNull();
    expect(parseIrqCaps([{ id: 1, version: 2, data: Buffer.alloc(16) }]).unknown).toEqual([[1, 2]]);
  });
});

describe('decodeDisplayEvent: the partitioned eventfd counter', () => {
  const ev = { curEventVal: 1n << 48n, priEventVal: 1n << 56n };
  it('names the plane of one signal, and counts several unread ones', () => {
    expect(decodeDisplayEvent(1n << 56n, ev)).toEqual({ value: 1n << 56n, primary: true, cursor: false, primarySignals: 1, cursorSignals: 0, all: false });
    expect(decodeDisplayEvent(1n << 48n, ev)).toMatchObject({ primary: false, cursor: true, primarySignals: 0, cursorSignals: 1 });
    expect(decodeDisplayEvent((1n << 56n) + (1n << 48n), ev)).toMatchObject({ primary: true, cursor: true, all: false });
    expect(decodeDisplayEvent(3n * (1n << 56n) + 5n * (1n << 48n), ev)).toMatchObject({ primarySignals: 3, cursorSignals: 5 });
  });

  it('means "refresh everything" for values that do not decompose, a saturated counter, or no capability', () => {
    expect(decodeDisplayEvent(1n, ev)).toMatchObject({ all: true, primary: true, cursor: true });
    expect(decodeDisplayEvent((1n << 64n) - 1n, ev)).toMatchObject({ all: true });
    expect(decodeDisplayEvent(1n << 56n, null)).toMatchObject({ all: true });
    expect(decodeDisplayEvent(0n, ev)).toMatchObject({ all: true });
  });

  it('handles non-partitioned values by exact match only', () => {
    const odd = { curEventVal: 3n, priEventVal: 5n };
    expect(decodeDisplayEvent(5n, odd)).toMatchObject({ primary: true, cursor: false });
    expect(decodeDisplayEvent(3n, odd)).toMatchObject({ primary: false, cursor: true });
    expect(decodeDisplayEvent(8n, odd)).toMatchObject({ all: true });
  });
});
