// The Wayland wire format (https://wayland.freedesktop.org/docs/html/ch04.html#sect-Protocol-Wire-Format),
// pure data: no sockets here.
//
// A message is a header of two 32-bit words in host byte order (little endian on every machine
// vgpu-flip runs on): the object id, then (size << 16) | opcode where size counts the header and
// is a multiple of 4. Arguments follow, each 32-bit aligned:
//   int, uint, object, new_id   one 32-bit word (object 0 = null, only where allow-null)
//   fixed                       signed 24.8 fixed point
//   string                      uint32 length including the NUL, the bytes, the NUL, padding to 4;
//                               length 0 is a null string (only where allow-null)
//   array                       uint32 length, the bytes, padding to 4
//   new_id without interface    (wl_registry.bind) string interface, uint version, new_id
//   fd                          nothing in the bytes: the descriptor travels out of band
//                               (SCM_RIGHTS), in message order
// Framing (WireDecoder) is separate from argument parsing (decodeArgs) because only the
// receiver's object table knows which interface, hence which signature, a message has.

export type ArgType = 'int' | 'uint' | 'fixed' | 'string' | 'object' | 'new_id' | 'array' | 'fd';

export interface ArgSpec {
  readonly name: string;
  readonly type: ArgType;
  /** interface of an object / new_id argument; absent on an untyped new_id (wl_registry.bind) */
  readonly interface?: string;
  /** allow-null="true" (string, object) */
  readonly nullable?: boolean;
  /** enum="..." (documentation only: the value stays a number) */
  readonly enum?: string;
}

export interface MessageSpec {
  readonly name: string;
  readonly opcode: number;
  /** the interface version that introduced the message */
  readonly since: number;
  readonly destructor: boolean;
  readonly args: readonly ArgSpec[];
}

export interface EnumSpec {
  readonly name: string;
  readonly bitfield: boolean;
  readonly entries: readonly { readonly name: string; readonly value: number; readonly summary: string }[];
}

export interface InterfaceSpec {
  readonly name: string;
  readonly version: number;
  readonly requests: readonly MessageSpec[];
  readonly events: readonly MessageSpec[];
  readonly enums: readonly EnumSpec[];
}

/** an untyped new_id: wl_registry.bind's `id` */
export interface UntypedNewId {
  readonly interface: string;
  readonly version: number;
  readonly id: number;
}

/** JS value of one argument: numbers for int/uint/object/new_id/fd (fd: the descriptor number) */
export type ArgValue = number | string | null | Uint8Array | UntypedNewId;

export const HEADER_SIZE = 8;
/** the 16-bit size field's limit, rounded down to a multiple of 4 */
export const MAX_MESSAGE_SIZE = 0xfffc;

export type WireErrorKind =
  | 'bad-header' // size < 8, not a multiple of 4, or larger than the limit
  | 'truncated' // an argument runs past the message's end
  | 'trailing-bytes' // bytes left after the last argument
  | 'bad-string' // missing NUL, NUL inside, invalid UTF-8
  | 'null-not-allowed' // null string / object 0 where the XML has no allow-null
  | 'missing-fd' // an fd argument without a received descriptor
  | 'bad-value'; // a JS value that does not fit the argument type (encoding)

/** malformed input, with where it was found */
export class WireError extends Error {
  override readonly name = 'WireError';
  constructor(
    readonly kind: WireErrorKind,
    detail: string,
    readonly where: { objectId?: number; opcode?: number; message?: string; arg?: string; offset?: number } = {},
  ) {
    const w = where;
    const at = [
      w.message !== undefined ? `${w.message}` : w.opcode !== undefined ? `opcode ${w.opcode}` : '',
      w.objectId !== undefined ? `on object ${w.objectId}` : '',
      w.arg !== undefined ? `argument ${w.arg}` : '',
      w.offset !== undefined ? `at byte ${w.offset}` : '',
    ]
      .filter(Boolean)
      .join(' ');
    super(`malformed Wayland message${at ? ` (${at})` : ''}: ${detail}`);
  }
}

export const pad4 = (n: number): number => (n + 3) & ~3;

/** 24.8 fixed point from a double (rounded to the nearest 1/256, as wl_fixed_from_double) */
export const fixedFromDouble = (d: number): number => Math.round(d * 256) | 0;
export const fixedToDouble = (f: number): number => (f | 0) / 256;

export interface EncodedMessage {
  readonly bytes: Uint8Array;
  /** descriptors to send with these bytes, in argument order */
  readonly fds: readonly number[];
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/** encode one message; values in the order of spec.args */
export function encodeMessage(objectId: number, spec: MessageSpec, values: readonly ArgValue[]): EncodedMessage {
  const where = { objectId, opcode: spec.opcode, message: spec.name };
  if (values.length !== spec.args.length) {
    throw new WireError('bad-value', `${values.length} values for ${spec.args.length} arguments`, where);
  }
  const parts: Uint8Array[] = [];
  const fds: number[] = [];
  let size = HEADER_SIZE;
  const word = (v: number): void => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    parts.push(b);
    size += 4;
  };
  const bytesPadded = (data: Uint8Array, nul: boolean): void => {
    const len = data.length + (nul ? 1 : 0);
    word(len);
    const b = new Uint8Array(pad4(len));
    b.set(data);
    parts.push(b);
    size += b.length;
  };
  const str = (s: string | null, a: ArgSpec): void => {
    if (s === null) {
      if (!a.nullable) throw new WireError('null-not-allowed', 'null string', { ...where, arg: a.name });
      word(0);
      return;
    }
    if (s.includes('\0')) throw new WireError('bad-string', 'a string cannot contain NUL', { ...where, arg: a.name });
    bytesPadded(utf8.encode(s), true);
  };
  const int = (v: ArgValue, a: ArgSpec, min: number, max: number): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new WireError('bad-value', `${String(v)} is not a ${a.type} (${min}..${max})`, { ...where, arg: a.name });
    }
    return v;
  };
  spec.args.forEach((a, i) => {
    const v = values[i] as ArgValue;
    switch (a.type) {
      case 'int':
        word(int(v, a, -0x80000000, 0x7fffffff));
        break;
      case 'uint':
        word(int(v, a, 0, 0xffffffff));
        break;
      case 'fixed':
        if (typeof v !== 'number' || !Number.isFinite(v) || Math.abs(v) >= 0x800000) {
          throw new WireError('bad-value', `${String(v)} is not a fixed (|x| < 2^23)`, { ...where, arg: a.name });
        }
        word(fixedFromDouble(v));
        break;
      case 'object': {
        const id = v === null ? 0 : int(v, a, 0, 0xffffffff);
        if (id === 0 && !a.nullable) throw new WireError('null-not-allowed', 'null object', { ...where, arg: a.name });
        word(id);
        break;
      }
      case 'new_id':
        if (a.interface === undefined) {
          if (typeof v !== 'object' || v === null || v instanceof Uint8Array) {
            throw new WireError('bad-value', 'an untyped new_id needs { interface, version, id }', { ...where, arg: a.name });
          }
          str(v.interface, { ...a, nullable: false });
          word(int(v.version, a, 1, 0xffffffff));
          word(int(v.id, a, 1, 0xffffffff));
        } else {
          word(int(v, a, 1, 0xffffffff));
        }
        break;
      case 'string':
        if (typeof v !== 'string' && v !== null) throw new WireError('bad-value', `${typeof v} is not a string`, { ...where, arg: a.name });
        str(v, a);
        break;
      case 'array':
        if (!(v instanceof Uint8Array)) throw new WireError('bad-value', 'an array needs a Uint8Array', { ...where, arg: a.name });
        bytesPadded(v, false);
        break;
      case 'fd':
        fds.push(int(v, a, 0, 0x7fffffff));
        break;
    }
  });
  if (size > MAX_MESSAGE_SIZE) throw new WireError('bad-value', `message of ${size} bytes exceeds ${MAX_MESSAGE_SIZE}`, where);
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, objectId >>> 0, true);
  dv.setUint32(4, ((size << 16) | spec.opcode) >>> 0, true);
  let off = HEADER_SIZE;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return { bytes: out, fds };
}

/** one framed message: header fields and its argument bytes (not yet parsed) */
export interface RawMessage {
  readonly objectId: number;
  readonly opcode: number;
  /** total size including the 8-byte header */
  readonly size: number;
  readonly body: Uint8Array;
}

/**
 * Parse a message body against its signature. fd arguments are taken from `fds` (shifted off);
 * with `fdsUnavailable` (a transport that cannot receive descriptors) each fd argument is -1.
 */
export function decodeArgs(spec: MessageSpec, msg: RawMessage, fds: number[], fdsUnavailable = false): ArgValue[] {
  const body = msg.body;
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const base = { objectId: msg.objectId, opcode: msg.opcode, message: spec.name };
  let off = 0;
  const need = (n: number, a: ArgSpec): void => {
    if (off + n > body.length) {
      throw new WireError('truncated', `needs ${n} bytes, ${body.length - off} left`, { ...base, arg: a.name, offset: HEADER_SIZE + off });
    }
  };
  const u32 = (a: ArgSpec): number => {
    need(4, a);
    const v = dv.getUint32(off, true);
    off += 4;
    return v;
  };
  const str = (a: ArgSpec): string | null => {
    const at = HEADER_SIZE + off;
    const len = u32(a);
    if (len === 0) {
      if (!a.nullable) throw new WireError('null-not-allowed', 'null string', { ...base, arg: a.name, offset: at });
      return null;
    }
    need(pad4(len), a);
    const bytes = body.subarray(off, off + len);
    if (bytes[len - 1] !== 0) throw new WireError('bad-string', 'string not NUL-terminated', { ...base, arg: a.name, offset: at });
    if (bytes.subarray(0, len - 1).includes(0)) throw new WireError('bad-string', 'NUL inside a string', { ...base, arg: a.name, offset: at });
    off += pad4(len);
    try {
      return utf8Strict.decode(bytes.subarray(0, len - 1));
    } catch {
      throw new WireError('bad-string', 'string is not UTF-8', { ...base, arg: a.name, offset: at });
    }
  };
  const out: ArgValue[] = [];
  for (const a of spec.args) {
    switch (a.type) {
      case 'int':
        need(4, a);
        out.push(dv.getInt32(off, true));
        off += 4;
        break;
      case 'uint':
        out.push(u32(a));
        break;
      case 'fixed':
        need(4, a);
        out.push(fixedToDouble(dv.getInt32(off, true)));
        off += 4;
        break;
      case 'object': {
        const at = HEADER_SIZE + off;
        const id = u32(a);
        if (id === 0 && !a.nullable) throw new WireError('null-not-allowed', 'null object', { ...base, arg: a.name, offset: at });
        out.push(id === 0 ? null : id);
        break;
      }
      case 'new_id':
        if (a.interface === undefined) {
          const iface = str({ ...a, nullable: false }) as string;
          out.push({ interface: iface, version: u32(a), id: u32(a) });
        } else {
          out.push(u32(a));
        }
        break;
      case 'string':
        out.push(str(a));
        break;
      case 'array': {
        const len = u32(a);
        need(pad4(len), a);
        out.push(body.slice(off, off + len));
        off += pad4(len);
        break;
      }
      case 'fd': {
        const fd = fdsUnavailable ? -1 : fds.shift();
        if (fd === undefined) throw new WireError('missing-fd', 'no file descriptor arrived with the message', { ...base, arg: a.name });
        out.push(fd);
        break;
      }
    }
  }
  if (off !== body.length) {
    throw new WireError('trailing-bytes', `${body.length - off} bytes after the last argument`, { ...base, offset: HEADER_SIZE + off });
  }
  return out;
}

/**
 * Streaming framer: push chunks as they are read (any split, several messages per chunk) and the
 * descriptors received with them; take whole messages with next(). After a WireError the stream
 * is unusable (Wayland has no resynchronisation): the caller closes the connection.
 */
export class WireDecoder {
  private buf: Uint8Array = new Uint8Array(0);
  private start = 0;
  /** received descriptors not yet claimed by a message's fd argument, in arrival order */
  readonly fds: number[] = [];
  private offset = 0;

  constructor(private readonly maxSize = MAX_MESSAGE_SIZE) {}

  push(chunk: Uint8Array, fds: readonly number[] = []): void {
    this.fds.push(...fds);
    if (chunk.length === 0) return;
    const rest = this.buf.subarray(this.start);
    const next = new Uint8Array(rest.length + chunk.length);
    next.set(rest);
    next.set(chunk, rest.length);
    this.buf = next;
    this.start = 0;
  }

  /** bytes received but not yet returned as a message */
  get pending(): number {
    return this.buf.length - this.start;
  }

  /** the next whole message, or undefined until more bytes arrive */
  next(): RawMessage | undefined {
    const avail = this.buf.length - this.start;
    if (avail < HEADER_SIZE) return undefined;
    const dv = new DataView(this.buf.buffer, this.buf.byteOffset + this.start, HEADER_SIZE);
    const objectId = dv.getUint32(0, true);
    const w = dv.getUint32(4, true);
    const size = w >>> 16;
    const opcode = w & 0xffff;
    if (size < HEADER_SIZE || size % 4 !== 0 || size > this.maxSize) {
      throw new WireError('bad-header', `size ${size} (needs 8..${this.maxSize}, a multiple of 4)`, { objectId, opcode, offset: this.offset });
    }
    if (avail < size) return undefined;
    const body = this.buf.slice(this.start + HEADER_SIZE, this.start + size);
    this.start += size;
    this.offset += size;
    return { objectId, opcode, size, body };
  }

  /** every whole message available now */
  *drain(): Generator<RawMessage> {
    for (let m = this.next(); m; m = this.next()) yield m;
  }
}

/** hex dump helper for fixtures and error messages: "01000000 0c000000 ..." */
export function hex(bytes: Uint8Array): string {
  const words: string[] = [];
  for (let i = 0; i < bytes.length; i += 4) words.push(Buffer.from(bytes.subarray(i, i + 4)).toString('hex'));
  return words.join(' ');
}
