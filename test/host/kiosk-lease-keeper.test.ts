// The kiosk's LeaseKeeper (src/kiosk/lease-keeper.ts), for a daemon left running for months:
// no compositor -> said once, tried again with backoff (2 s doubling to 30 s), one timer at a
// time; a connector not offered -> said once and no timer at all, the lease asked for as soon as
// the compositor's offer changes (its `done`); a granted lease ended by the compositor -> told
// to the daemon once, asked for again; stop() hands it back. JS timers are faked.
import { closeSync, openSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LeaseKeeper } from '../../src/kiosk/lease-keeper.js';
import { WaylandClient } from '../../src/wayland/client.js';
import type { HeldLease } from '../../src/wayland/leases.js';
import { resolveSocketPath } from '../../src/wayland/transport.js';
import { DEVICE_OFFER, DONE_3, DONE_4, FdTransport, GLOBAL_DEVICE, tick } from './wayland-fake.js';

type Logged = { level: string; msg: string; fields?: Record<string, unknown> };

afterEach(() => void vi.useRealTimers());

function keeperWith(connector: string | undefined, open: ConstructorParameters<typeof LeaseKeeper>[4], env: NodeJS.ProcessEnv = {}) {
  const logged: Logged[] = [];
  const granted: HeldLease[] = [];
  const ended: string[] = [];
  const k = new LeaseKeeper(
    { output: 'hmd', connector, wayland: null },
    { granted: (h) => void granted.push(h), ended: (w) => void ended.push(w) },
    (level, msg, fields) => void logged.push({ level, msg, ...(fields ? { fields } : {}) }),
    env,
    open,
  );
  return { k, logged, granted, ended };
}

/** play the compositor's start of a connection: registry, the lease device and its offer */
async function handshake(t: FdTransport): Promise<number> {
  for (let i = 0; i < 50 && t.sent.length === 0; i++) await tick();
  t.take(); // get_registry, sync
  t.deliver(`${GLOBAL_DEVICE} ${DONE_3}`);
  for (let i = 0; i < 50 && t.sent.length === 0; i++) await tick();
  t.take(); // bind, sync
  const drmFd = openSync('/dev/null', 'r');
  t.deliver(`${DEVICE_OFFER} ${DONE_4}`, [drmFd]);
  await tick();
  return drmFd;
}

describe('LeaseKeeper', () => {
  it('no compositor: said once, tried again at 2, 4, 8, 16, 30, 30 s, one timer at a time', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    let attempts = 0;
    const { k, logged } = keeperWith('DP-2', async (e) => {
      attempts++;
      resolveSocketPath(e); // throws: the socket does not exist
      throw new Error('unreachable');
    }, { WAYLAND_DISPLAY: '/nonexistent-run/wayland-9' });
    k.start();
    await tick();
    expect(attempts).toBe(1);
    expect(k.status).toMatchObject({ state: 'waiting' });
    expect(k.status.detail).toMatch(/^no Wayland compositor: \$WAYLAND_DISPLAY=\/nonexistent-run\/wayland-9 socket .* does not exist.*; trying again with backoff$/);
    const at: number[] = [];
    for (const step of [2000, 4000, 8000, 16000, 30000, 30000]) {
      expect(vi.getTimerCount()).toBe(1);
      await vi.advanceTimersByTimeAsync(step - 1);
      const before = attempts;
      await vi.advanceTimersByTimeAsync(1);
      await tick();
      at.push(attempts - before);
    }
    expect(at).toEqual([1, 1, 1, 1, 1, 1]);
    expect(logged.filter((l) => l.fields?.['event'] === 'lease-waiting').length).toBe(1);
    expect(logged[logged.length - 1]!.msg).toMatch(/^output hmd: no lease: no Wayland compositor: .*trying again with backoff \(every 2 s, up to 30 s\)$/);
    k.stop();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a compositor that never completes its offer is let go after 30 s and tried again with backoff', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    const transports: FdTransport[] = [];
    const { k, logged } = keeperWith('DP-2', async () => {
      const t = new FdTransport();
      transports.push(t);
      return { client: new WaylandClient(t), socket: '/run/user/1000/wayland-1' };
    });
    k.start();
    await tick();
    expect(vi.getTimerCount()).toBe(1); // the offer's deadline
    await vi.advanceTimersByTimeAsync(30_000);
    await tick();
    expect(transports[0]!.closed).toBe(true);
    expect(k.status.detail).toMatch(/^the compositor at \/run\/user\/1000\/wayland-1 sent no complete lease offer within 30 s; trying again with backoff$/);
    expect(logged.filter((l) => l.fields?.['event'] === 'lease-waiting').length).toBe(1);
    await vi.advanceTimersByTimeAsync(2000); // the retry: a new connection
    await tick();
    expect(transports.length).toBe(2);
    k.stop();
    expect(transports[1]!.closed).toBe(true);
    await tick(); // the pending connect ends (its deadline cleared), nothing said or scheduled
    expect(vi.getTimerCount()).toBe(0);
    expect(logged.filter((l) => l.fields?.['event'] === 'lease-waiting').length).toBe(1);
  });

  it('not offered: said once, no timer; leased when the compositor offers it; an end is told once and asked again; stop hands back', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    const t = new FdTransport();
    const client = new WaylandClient(t);
    const { k, logged, granted, ended } = keeperWith('DP-3', async () => ({ client, socket: '/run/user/1000/wayland-1' }));
    k.start();
    await handshake(t); // the keeper closes the drm_fd it was sent (only its node is kept)
    await tick();
    expect(k.status).toMatchObject({ state: 'waiting', socket: '/run/user/1000/wayland-1' });
    expect(k.status.detail).toMatch(/^the compositor does not offer DP-3 for lease: it offers: DP-2 \(Valve Index\); waiting for the compositor to offer it$/);
    expect(vi.getTimerCount()).toBe(0); // the offer says when to look again
    expect(t.take()).toEqual([]); // nothing requested
    // an offer change that still lacks DP-3: looked at, nothing said again
    t.deliver('03000000 02000800'); // device.done
    await tick();
    expect(t.take()).toEqual([]);
    expect(logged.filter((l) => l.fields?.['event'] === 'lease-waiting').length).toBe(1);
    // DP-3 offered: connector(new_id 0xff000001) name, description, connector_id(78), done; device.done
    t.deliver('03000000 01000c00 010000ff 010000ff 00001400 05000000 44502d33 00000000 010000ff 01001800 0c000000 56616c76 6520496e 64657800 010000ff 02000c00 4e000000 010000ff 03000800 03000000 02000800');
    await tick();
    // device@3.create_lease_request(new_id 4); request@4.request_connector(0xff000001); request@4.submit(new_id 5)
    expect(t.take()).toEqual(['03000000 00000c00 04000000 04000000 00000c00 010000ff 04000000 01000c00 05000000']);
    const leaseFd = openSync('/dev/null', 'r');
    t.deliver('05000000 00000800 01000000 01000c00 04000000', [leaseFd]); // lease@5.lease_fd; delete_id(4)
    await tick();
    await tick();
    expect(granted.map((g) => [g.fd, g.connector.name, g.socket])).toEqual([[leaseFd, 'DP-3', '/run/user/1000/wayland-1']]);
    expect(k.status).toMatchObject({ state: 'held', detail: 'DP-3 (/dev/null)' });
    // the compositor ends it (and withdraws the connector): told once, a lease asked for again later
    t.deliver('05000000 01000800 010000ff 04000800 03000000 02000800'); // lease.finished; connector.withdrawn; device.done
    await tick();
    await tick();
    expect(ended.length).toBe(1);
    expect(ended[0]).toMatch(/^the compositor ended the lease of DP-3/);
    expect(k.status.state).toBe('waiting');
    closeSync(leaseFd); // the daemon's (it owns the lease fd)
    t.take();
    await vi.advanceTimersByTimeAsync(2000); // the one look after an end: not offered, so it waits for the offer
    await tick();
    expect(t.take()).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
    expect(granted.length).toBe(1);
    k.stop();
    expect(t.closed).toBe(true);
  });
});
