// The client against bytes captured from a real compositor (Debian's sway 1.7, headless;
// test/fixtures/wayland-README.md): the captured compositor bytes are replayed through a fake
// transport in the chunks they were read in (and byte by byte); the client must write exactly
// the captured requests and reach the same state (globals, sync serials, the protocol error).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { WaylandClient } from '../../src/wayland/client.js';
import { CompositorProtocolError, NoLeaseManagerError } from '../../src/wayland/errors.js';
import { openLeaseDevices } from '../../src/wayland/drm-lease.js';
import { wl_callback } from '../../src/wayland/protocol.js';
import type { WaylandTransport } from '../../src/wayland/transport.js';
import { decodeArgs, hex, WireDecoder } from '../../src/wayland/wire.js';
import { INTERFACES, wl_display, wl_registry } from '../../src/wayland/protocol.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures');
const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

interface Capture {
  sent: string[];
  received: Uint8Array[];
  /** the exchange in order */
  steps: { dir: '>' | '<'; data: Uint8Array }[];
}
function load(name: string): Capture {
  const steps = readFileSync(path.join(fixtures, `wayland-${name}.txt`), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('> ') || l.startsWith('< '))
    .map((l) => ({ dir: l[0] as '>' | '<', data: bytes(l.slice(2)) }));
  return { steps, sent: steps.filter((s) => s.dir === '>').map((s) => hex(s.data)), received: steps.filter((s) => s.dir === '<').map((s) => s.data) };
}

/** a transport that records writes; deliver() plays the compositor */
class FakeTransport implements WaylandTransport {
  readonly passesFds = false;
  sent: string[] = [];
  closed = false;
  private data: ((b: Uint8Array, fds: number[]) => void) | undefined;
  private closeH: ((e?: Error) => void) | undefined;
  send(b: Uint8Array): void {
    this.sent.push(hex(b));
  }
  onData(h: (b: Uint8Array, fds: number[]) => void): void {
    this.data = h;
  }
  onClose(h: (e?: Error) => void): void {
    this.closeH = h;
  }
  close(): void {
    this.closed = true;
  }
  deliver(b: Uint8Array, step = b.length): void {
    for (let i = 0; i < b.length; i += step) this.data?.(b.subarray(i, i + step), []);
  }
  hangUp(): void {
    this.closeH?.();
  }
}
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** run a capture: the client's requests must match each '>' line before the next '<' is fed */
async function replay(c: Capture, drive: (client: WaylandClient) => Promise<void>, step?: number) {
  const t = new FakeTransport();
  const client = new WaylandClient(t);
  const done = drive(client);
  let seen = 0;
  for (const s of c.steps) {
    await tick();
    if (s.dir === '>') {
      expect(t.sent[seen], `request write ${seen}`).toBe(hex(s.data));
      seen++;
    } else t.deliver(s.data, step);
  }
  await done;
  expect(t.sent.length).toBe(seen);
  return { client, t };
}

describe('wayland capture: sway 1.7 headless', () => {
  it('every captured compositor message decodes against the generated signatures', () => {
    const known = new Map<number, string>([[1, 'wl_display'], [2, 'wl_registry'], [3, 'wl_callback'], [4, 'wl_callback']]);
    const counts: Record<string, number> = {};
    for (const name of ['registry', 'global-added', 'error']) {
      const d = new WireDecoder();
      for (const chunk of load(name).received) d.push(chunk);
      for (const m of d.drain()) {
        const iface = INTERFACES[known.get(m.objectId) ?? ''];
        expect(iface, `object ${m.objectId}`).toBeDefined();
        const spec = iface!.events[m.opcode]!;
        decodeArgs(spec, m, []);
        counts[`${iface!.name}.${spec.name}`] = (counts[`${iface!.name}.${spec.name}`] ?? 0) + 1;
      }
      expect(d.pending).toBe(0);
    }
    expect(Object.keys(counts).sort()).toEqual(['wl_callback.done', 'wl_display.delete_id', 'wl_display.error', 'wl_registry.global']);
  });

  for (const step of [undefined, 1, 5]) {
    it(`registry + two syncs${step ? `, compositor bytes fed ${step} at a time` : ''}`, async () => {
      let serials: number[] = [];
      const { client } = await replay(
        load('registry'),
        async (client) => {
          const reg = client.registry();
          serials.push(await client.sync());
          serials.push(await client.sync());
          expect(reg.globals.size).toBe(38);
          expect(reg.find('wl_compositor')).toEqual([{ name: 2, interface: 'wl_compositor', version: 4 }]);
          expect(reg.find('wl_seat').length).toBe(1);
        },
        step,
      );
      expect(serials).toEqual([1, 1]);
      // the callback id 3 was freed by delete_id and reused by the second sync (in the capture too)
      expect(client.object(3)).toBeUndefined();
      serials = [];
    });
  }

  it('headless sway offers no DRM lease device: NoLeaseManagerError lists what it does offer', async () => {
    const c = load('registry');
    const t = new FakeTransport();
    const client = new WaylandClient(t);
    const p = openLeaseDevices(client);
    await tick();
    expect(t.sent[0]).toBe(c.sent[0]);
    t.deliver(c.received[0]!);
    const e = await p.catch((x: unknown) => x);
    expect(e).toBeInstanceOf(NoLeaseManagerError);
    expect((e as NoLeaseManagerError).globals).toContain('wl_output');
    expect((e as Error).message).toMatch(/^the running compositor offers no DRM leases \(no wp_drm_lease_device_v1 global; it advertises 38 other interfaces\)/);
  });

  it('a global added while connected (swaymsg create_output)', async () => {
    const added: string[] = [];
    await replay(load('global-added'), async (client) => {
      const reg = await client.globals();
      reg.watch(
        (g) => added.push(`${g.name}:${g.interface}:${g.version}`),
        () => added.push('removed?'),
      );
      await client.sync();
    });
    expect(added).toEqual(['39:wl_output:4']);
  });

  it('wl_display.error on wl_registry.bind of a name never advertised -> CompositorProtocolError', async () => {
    let err: unknown;
    const { client, t } = await replay(load('error'), async (client) => {
      const reg = await client.globals();
      const fake = { name: 4000, interface: 'wl_callback', version: 1 };
      reg.globals.set(fake.name, fake);
      reg.bind(fake, wl_callback, 1);
      err = await client.sync().catch((e: unknown) => e);
    });
    expect(err).toBeInstanceOf(CompositorProtocolError);
    const e = err as CompositorProtocolError;
    expect([e.interfaceName, e.objectId, e.errorCode, e.errorName, e.compositorMessage]).toEqual(['wl_registry', 2, 0, undefined, 'invalid global wl_callback (4000)']);
    expect(e.message).toBe('the compositor closed the connection with a protocol error on wl_registry@2: code 0: invalid global wl_callback (4000)');
    expect(t.closed).toBe(true);
    expect(client.error).toBe(e);
    await expect(client.sync()).rejects.toBe(e);
  });
});

describe('wayland client: connection handling', () => {
  it('an error on wl_display itself names the code from the XML enum', async () => {
    const t = new FakeTransport();
    const client = new WaylandClient(t);
    const p = client.sync();
    await tick();
    // wl_display.error(object 1, code 1 invalid_method, "bad") — hand-assembled
    t.deliver(bytes('01000000 00001800 01000000 01000000 04000000 62616400'));
    const e = (await p.catch((x: unknown) => x)) as CompositorProtocolError;
    expect(e.message).toBe('the compositor closed the connection with a protocol error on wl_display@1: code 1 (invalid_method): bad');
  });

  it('the compositor hanging up rejects pending roundtrips', async () => {
    const t = new FakeTransport();
    const client = new WaylandClient(t);
    const p = client.sync();
    t.hangUp();
    await expect(p).rejects.toThrow('the connection to the Wayland compositor closed: the compositor closed it');
  });

  it('an event for an unknown object or opcode ends the connection with a WireError', async () => {
    for (const b of ['09000000 00000800', '01000000 07000800']) {
      const client = new WaylandClient(new FakeTransport());
      const p = client.sync();
      (client.transport as FakeTransport).deliver(bytes(b));
      await expect(p).rejects.toThrow(/malformed Wayland message/);
    }
  });

  it('global_remove (hand-assembled: sway 1.7 cannot remove an output global) and bind of a withdrawn global', async () => {
    const t = new FakeTransport();
    const client = new WaylandClient(t);
    const reg = client.registry();
    const removed: string[] = [];
    reg.watch(() => {}, (g) => removed.push(g.interface));
    // global(7, "wl_seat", 7); global_remove(7)
    t.deliver(bytes('02000000 00001c00 07000000 08000000 776c5f73 65617400 07000000 02000000 01000c00 07000000'));
    expect(removed).toEqual(['wl_seat']);
    expect(reg.globals.size).toBe(0);
    expect(() => reg.bind({ name: 7, interface: 'wl_seat', version: 7 }, wl_display)).toThrow('the compositor withdrew wl_seat (global 7)');
    expect(wl_registry.events[1]?.name).toBe('global_remove');
  });
});
