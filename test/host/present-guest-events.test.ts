// Which planes of a guest an output must look at after its display event signalled
// (src/present/guest.ts: listen / changedFor / lookedBy), per output: pure logic with a fake
// event source; the counter values decode as the display capability says (decodeDisplayEvent).
import { describe, expect, it } from 'vitest';
import { Guest, type GuestSource } from '../../src/present/guest.js';
import { decodeDisplayEvent, type DisplayIrq } from '../../src/vfio/display-irq.js';

const PRI = 1n << 56n;
const CUR = 1n << 48n;
const caps = { priEventVal: PRI, curEventVal: CUR };

type Poll = (fd: number, cb: () => void) => { stop(): void };

function fakeGuest(withEvents = true): { guest: Guest; poll: Poll; signal: (v: bigint) => void; attaches: () => number } {
  let pending: bigint | null = null;
  let onReadable: (() => void) | null = null;
  let attaches = 0;
  const irq = { fd: 99, read: () => { const v = pending; pending = null; return v === null ? null : decodeDisplayEvent(v, caps); }, close: () => undefined } as unknown as DisplayIrq;
  const source = {
    label: 'fake',
    query: () => { throw new Error('not used'); },
    getDmabuf: () => -1,
    openRegion: () => { throw new Error('not used'); },
    attachDisplayEvents: () => { attaches++; return withEvents ? irq : null; },
  } as GuestSource;
  const guest = new Guest(source, { path: 'dmabuf' });
  const poll: Poll = (_fd, cb) => { onReadable = cb; return { stop: () => undefined }; };
  return { guest, poll, signal: (v) => { pending = (pending ?? 0n) + v; onReadable?.(); }, attaches: () => attaches };
}

describe('display event bookkeeping per output', () => {
  it('a primary-only signal names the primary; the cursor is not looked at', () => {
    const { guest, poll, signal } = fakeGuest();
    const out = {};
    let woken = 0;
    expect(guest.listen(out, () => woken++, poll)).toBe(true);
    expect(guest.changedFor(out, 'cursor')).toBe(true); // the first look looks at everything
    guest.lookedBy(out);
    expect([guest.changedFor(out, 'primary'), guest.changedFor(out, 'cursor')]).toEqual([false, false]);
    signal(PRI);
    expect(woken).toBe(1);
    expect([guest.changedFor(out, 'primary'), guest.changedFor(out, 'cursor'), guest.changedFor(out, 'overlay')]).toEqual([true, false, true]);
    guest.lookedBy(out);
    signal(CUR + CUR); // two cursor moves read at once
    expect([guest.changedFor(out, 'primary'), guest.changedFor(out, 'cursor')]).toEqual([false, true]);
  });

  it('two outputs keep their own record: one looking does not hide the change from the other', () => {
    const { guest, poll, signal, attaches } = fakeGuest();
    const a = {};
    const b = {};
    const woke: string[] = [];
    guest.listen(a, () => woke.push('a'), poll);
    guest.listen(b, () => woke.push('b'), poll);
    expect(attaches()).toBe(1); // one eventfd for the guest
    guest.lookedBy(a);
    guest.lookedBy(b);
    signal(PRI);
    expect(woke).toEqual(['a', 'b']);
    guest.lookedBy(a);
    expect(guest.changedFor(a, 'primary')).toBe(false);
    expect(guest.changedFor(b, 'primary')).toBe(true);
    expect(guest.changedFor({}, 'cursor')).toBe(true); // an output not listening: always look
  });

  it('a value that does not decompose means everything; no event at all means always look', () => {
    const { guest, poll, signal } = fakeGuest();
    const out = {};
    guest.listen(out, () => undefined, poll);
    guest.lookedBy(out);
    signal(PRI + 3n); // bits outside the two counters
    expect([guest.changedFor(out, 'primary'), guest.changedFor(out, 'cursor')]).toEqual([true, true]);
    const none = fakeGuest(false);
    expect(none.guest.listen(out, () => undefined, none.poll)).toBe(false);
    none.guest.lookedBy(out);
    expect(none.guest.changedFor(out, 'primary')).toBe(true);
  });
});
