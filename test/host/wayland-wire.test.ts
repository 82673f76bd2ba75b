// Host tests of the Wayland wire format (src/wayland/wire.ts): every argument type both ways on
// hand-assembled bytes, the streaming framer on split and joined chunks, typed errors.
import { describe, expect, it } from 'vitest';
import { decodeArgs, encodeMessage, fixedFromDouble, hex, WireDecoder, WireError, type MessageSpec, type RawMessage } from '../../src/wayland/wire.js';
import { wl_display, wl_registry } from '../../src/wayland/protocol.js';

export const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const msg = (name: string, args: MessageSpec['args']): MessageSpec => ({ name, opcode: 3, since: 1, destructor: false, args });
const frame = (b: Uint8Array): RawMessage => {
  const d = new WireDecoder();
  d.push(b);
  const m = d.next();
  if (!m) throw new Error('no message');
  return m;
};

const ALL = msg('all', [
  { name: 'i', type: 'int' },
  { name: 'u', type: 'uint' },
  { name: 'f', type: 'fixed' },
  { name: 's', type: 'string' },
  { name: 'o', type: 'object', interface: 'wl_callback' },
  { name: 'n', type: 'new_id', interface: 'wl_callback' },
  { name: 'a', type: 'array' },
  { name: 'fd', type: 'fd' },
]);
// object 7, opcode 3, size 0x30 = 48: int -2, uint 0xdeadbeef, fixed -1.5 (-384), "hi" (len 3,
// padded to 4), object 5, new_id 6, array of 5 bytes (padded to 8); the fd adds no bytes
const ALL_BYTES = bytes(`07000000 03003000 feffffff efbeadde 80feffff 03000000 68690000 05000000 06000000 05000000 01020304 05000000`);

describe('wayland wire: arguments', () => {
  it('encodes every type as hand-assembled, fds out of band', () => {
    const m = encodeMessage(7, ALL, [-2, 0xdeadbeef, -1.5, 'hi', 5, 6, new Uint8Array([1, 2, 3, 4, 5]), 42]);
    expect(hex(m.bytes)).toBe(hex(ALL_BYTES));
    expect(m.fds).toEqual([42]);
  });

  it('decodes every type, taking the fd from the received queue', () => {
    const fds = [42, 43];
    const v = decodeArgs(ALL, frame(ALL_BYTES), fds);
    expect(v).toEqual([-2, 0xdeadbeef, -1.5, 'hi', 5, 6, new Uint8Array([1, 2, 3, 4, 5]), 42]);
    expect(fds).toEqual([43]);
    expect(decodeArgs(ALL, frame(ALL_BYTES), [], true)[7]).toBe(-1); // a transport without fd passing
  });

  it('strings: length counts the NUL, padding to 4, exact multiples get a whole NUL word', () => {
    const s = msg('s', [{ name: 's', type: 'string' }]);
    expect(hex(encodeMessage(1, s, ['abc']).bytes)).toBe('01000000 03001000 04000000 61626300');
    expect(hex(encodeMessage(1, s, ['abcd']).bytes)).toBe('01000000 03001400 05000000 61626364 00000000');
    expect(hex(encodeMessage(1, s, ['é']).bytes)).toBe('01000000 03001000 03000000 c3a90000');
    expect(hex(encodeMessage(1, s, ['']).bytes)).toBe('01000000 03001000 01000000 00000000');
    expect(() => encodeMessage(1, s, [null])).toThrow(/null string/);
    expect(() => encodeMessage(1, s, ['a\0b'])).toThrow(WireError);
    const ns = msg('ns', [{ name: 's', type: 'string', nullable: true }]);
    expect(hex(encodeMessage(1, ns, [null]).bytes)).toBe('01000000 03000c00 00000000');
    expect(decodeArgs(ns, frame(bytes('01000000 03000c00 00000000')), [])).toEqual([null]);
  });

  it('fixed is signed 24.8, rounded like wl_fixed_from_double', () => {
    expect(fixedFromDouble(1)).toBe(256);
    expect(fixedFromDouble(-0.5)).toBe(-128);
    expect(fixedFromDouble(1 / 512 + 1 / 1024)).toBe(1);
    const f = msg('f', [{ name: 'f', type: 'fixed' }]);
    expect(decodeArgs(f, frame(bytes('01000000 03000c00 00010000')), [])).toEqual([1]);
    expect(() => encodeMessage(1, f, [8388608])).toThrow(/fixed/);
  });

  it('objects: 0 is null, refused without allow-null', () => {
    const o = msg('o', [{ name: 'o', type: 'object' }]);
    expect(() => decodeArgs(o, frame(bytes('01000000 03000c00 00000000')), [])).toThrow(/null object/);
    expect(() => encodeMessage(1, o, [null])).toThrow(/null object/);
    const no = msg('no', [{ name: 'o', type: 'object', nullable: true }]);
    expect(decodeArgs(no, frame(bytes('01000000 03000c00 00000000')), [])).toEqual([null]);
  });

  it('wl_registry.bind: an untyped new_id is interface, version, id', () => {
    const bind = wl_registry.requests[0];
    // object 2, opcode 0, size 0x24: name 0x27, "wl_output" (len 10, padded to 12), version 4, id 5
    const b = '02000000 00002400 27000000 0a000000 776c5f6f 75747075 74000000 04000000 05000000';
    expect(hex(encodeMessage(2, bind, [0x27, { interface: 'wl_output', version: 4, id: 5 }]).bytes)).toBe(b);
    expect(decodeArgs(bind, frame(bytes(b)), [])).toEqual([0x27, { interface: 'wl_output', version: 4, id: 5 }]);
    expect(() => encodeMessage(2, bind, [1, 5])).toThrow(/untyped new_id/);
  });

  it('bad values name the message and argument', () => {
    const u = msg('u', [{ name: 'count', type: 'uint' }]);
    expect(() => encodeMessage(9, u, [-1])).toThrow('malformed Wayland message (u on object 9 argument count): -1 is not a uint (0..4294967295)');
    expect(() => encodeMessage(9, u, [])).toThrow(/0 values for 1 arguments/);
    expect(() => encodeMessage(9, msg('i', [{ name: 'x', type: 'int' }]), [2 ** 31])).toThrow(/not a int/);
  });
});

describe('wayland wire: malformed input', () => {
  const s = msg('s', [{ name: 's', type: 'string' }]);
  const kind = (f: () => unknown): string => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(WireError);
      return (e as WireError).kind;
    }
    return 'no error';
  };
  it('typed errors with where', () => {
    expect(kind(() => decodeArgs(s, frame(bytes('01000000 03000c00 08000000')), []))).toBe('truncated');
    expect(kind(() => decodeArgs(s, frame(bytes('01000000 03001000 04000000 61626364')), []))).toBe('bad-string'); // no NUL
    expect(kind(() => decodeArgs(s, frame(bytes('01000000 03001000 04000000 61006300')), []))).toBe('bad-string'); // NUL inside
    expect(kind(() => decodeArgs(s, frame(bytes('01000000 03001000 03000000 ff fe 00 00')), []))).toBe('bad-string'); // not UTF-8
    expect(kind(() => decodeArgs(s, frame(bytes('01000000 03001400 02000000 61000000 00000000')), []))).toBe('trailing-bytes');
    expect(kind(() => decodeArgs(msg('fd', [{ name: 'fd', type: 'fd' }]), frame(bytes('01000000 03000800')), []))).toBe('missing-fd');
    expect(() => decodeArgs(s, frame(bytes('05000000 03000c00 08000000')), [])).toThrow('malformed Wayland message (s on object 5 argument s at byte 12): needs 8 bytes, 0 left');
  });

  it('the framer refuses sizes below 8, not multiples of 4, or above the limit', () => {
    for (const h of ['01000000 00000400', '01000000 00000a00', '01000000 0000fdff']) {
      const d = new WireDecoder();
      d.push(bytes(h));
      expect(() => d.next()).toThrow(WireError);
    }
    const small = new WireDecoder(64);
    small.push(bytes('01000000 00004400'));
    expect(() => small.next()).toThrow(/size 68 \(needs 8\.\.64/);
  });
});

describe('wayland wire: streaming', () => {
  // wl_display.delete_id(3) then wl_display.error(object 2, code 1, "bad")
  const two = bytes('01000000 01000c00 03000000 01000000 00001800 02000000 01000000 04000000 62616400');
  it('several messages in one chunk', () => {
    const d = new WireDecoder();
    d.push(two);
    const ms = [...d.drain()];
    expect(ms.map((m) => [m.objectId, m.opcode, m.size])).toEqual([
      [1, 1, 12],
      [1, 0, 24],
    ]);
    expect(decodeArgs(wl_display.events[1], ms[0] as RawMessage, [])).toEqual([3]);
    expect(decodeArgs(wl_display.events[0], ms[1] as RawMessage, [])).toEqual([2, 1, 'bad']);
    expect(d.pending).toBe(0);
  });

  it('any split, down to one byte at a time, gives the same messages', () => {
    for (const step of [1, 2, 3, 5, 7, 13, 35]) {
      const d = new WireDecoder();
      const out: string[] = [];
      for (let i = 0; i < two.length; i += step) {
        d.push(two.subarray(i, i + step));
        for (const m of d.drain()) out.push(`${m.objectId}/${m.opcode}/${hex(m.body)}`);
      }
      expect(out, `step ${step}`).toEqual(['1/1/03000000', '1/0/02000000 01000000 04000000 62616400']);
      expect(d.pending).toBe(0);
    }
  });

  it('a partial header or body waits for more bytes; descriptors queue in arrival order', () => {
    const d = new WireDecoder();
    d.push(bytes('01000000 01'), [7]);
    expect(d.next()).toBeUndefined();
    d.push(bytes('000c00 0300'), [8]);
    expect(d.next()).toBeUndefined();
    expect(d.pending).toBe(10);
    d.push(bytes('0000'));
    expect(d.next()?.size).toBe(12);
    expect(d.fds).toEqual([7, 8]);
  });
});
