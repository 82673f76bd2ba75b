// The Wayland transport when the socket buffer is full (src/wayland/unix-transport.ts): what
// sendmsg could not take waits until libuv says the socket is writable (the poller's
// onWritable, native/addon/memio.cc), never on a timer. On a real socketpair: the client writes
// more than the kernel buffers, the peer reads it in slices from setImmediate; JS timers are
// faked and never advanced, so a timer-based retry would never finish.
import { closeSync, fstatSync, openSync, statSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { native } from '../../src/binding/index.js';
import { pollSocket, unixNative } from '../../src/binding/unixsock.js';
import { UnixTransport } from '../../src/wayland/unix-transport.js';

const open: number[] = [];
afterEach(() => {
  vi.useRealTimers();
  for (const fd of open.splice(0)) {
    try {
      native.close(fd);
    } catch {
      /* closed by the test */
    }
  }
});

const immediate = (): Promise<void> => new Promise((r) => setImmediate(r));

/** read what is there on fd (non-blocking), at most `max` bytes */
function drain(fd: number, max: number): { data: Buffer; fds: number[]; fdsAt: [number, number][] } {
  const parts: Buffer[] = [];
  const fds: number[] = [];
  /** [first, end) offsets (in this drain) of each recvmsg that brought descriptors */
  const fdsAt: [number, number][] = [];
  let n = 0;
  while (n < max) {
    const r = unixNative.unixRecv(fd, Math.min(65536, max - n));
    if (!r || r.eof) break;
    parts.push(r.data);
    if (r.fds.length) fdsAt.push([n, n + r.data.length]);
    fds.push(...r.fds);
    n += r.data.length;
  }
  return { data: Buffer.concat(parts), fds, fdsAt };
}

describe('UnixTransport: a full socket buffer', () => {
  it('waits for the socket to be writable (no timer), keeps byte order, sends each message\'s fds with its first byte', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'setInterval', 'clearTimeout', 'clearInterval'] });
    const [a, b] = unixNative.unixSocketpair();
    open.push(b);
    const t = new UnixTransport(a, 'socketpair');
    // 8 MiB is far more than a UNIX socket buffers (a few hundred KiB): sendmsg takes part, then EAGAIN
    const big = Buffer.alloc(8 << 20);
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE(i >>> 2, i);
    const file = openSync('/dev/null', 'r');
    t.send(big, []);
    const tail = Buffer.from('0102030405060708', 'hex');
    t.send(tail, [file]); // queued behind the rest: its descriptor goes with its first byte
    expect(vi.getTimerCount()).toBe(0);
    const got: Buffer[] = [];
    const fds: number[] = [];
    const fdsAt: [number, number][] = [];
    let total = 0;
    const want = big.length + tail.length;
    let slices = 0;
    // the peer reads 256 KiB per turn of the event loop, so the writer blocks many times
    for (let turns = 0; total < want && turns < 100_000; turns++) {
      await immediate();
      const r = drain(b, 256 << 10);
      if (r.data.length) slices++;
      got.push(r.data);
      fds.push(...r.fds);
      fdsAt.push(...r.fdsAt.map(([x, y]): [number, number] => [x + total, y + total]));
      total += r.data.length;
      expect(vi.getTimerCount()).toBe(0);
    }
    open.push(...fds);
    const all = Buffer.concat(got);
    expect(all.length).toBe(want);
    expect(all.subarray(0, big.length).equals(big)).toBe(true);
    expect(all.subarray(big.length).equals(tail)).toBe(true);
    expect(slices).toBeGreaterThan(4); // it really waited several times
    expect(fds.length).toBe(1);
    // with the tail's first byte (the kernel ends a read at bytes with descriptors: that read may begin earlier)
    expect(fdsAt.length).toBe(1);
    expect(fdsAt[0]![0]).toBeLessThanOrEqual(big.length);
    expect(fdsAt[0]![1]).toBeGreaterThan(big.length);
    expect(fstatSync(fds[0]!).rdev).toBe(statSync('/dev/null').rdev);
    t.close();
    closeSync(file); // the caller's: it must stay open until sendmsg took it
  });

  it('onWritable fires once per request on the poller that watches reads; null cancels; a stopped poller refuses', async () => {
    const [a, b] = unixNative.unixSocketpair();
    open.push(a, b);
    let reads = 0;
    const p = pollSocket(a, () => void reads++);
    let writable = 0;
    p.onWritable(() => void writable++);
    for (let i = 0; i < 20 && writable === 0; i++) await immediate();
    expect(writable).toBe(1); // an empty buffer is writable at once
    for (let i = 0; i < 10; i++) await immediate();
    expect(writable).toBe(1); // one shot
    p.onWritable(() => void writable++);
    p.onWritable(null);
    for (let i = 0; i < 10; i++) await immediate();
    expect(writable).toBe(1);
    // reads still reported on the same handle
    expect(unixNative.unixSend(b, Buffer.from('x'), [])).toBe(1);
    for (let i = 0; i < 20 && reads === 0; i++) await immediate();
    expect(reads).toBeGreaterThan(0);
    p.stop();
    expect(() => p.onWritable(() => undefined)).toThrow(/stopped/);
  });
});
