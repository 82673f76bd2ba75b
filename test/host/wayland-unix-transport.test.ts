// The addon's UNIX socket transport (native/addon/unixsock.cc + src/wayland/unix-transport.ts)
// on a real socketpair: the test plays the compositor on the other end, with the same
// hand-assembled drm-lease-v1 bytes as wayland-lease.test.ts, but the descriptors really travel
// as SCM_RIGHTS (they arrive as other fd numbers of the same open file).
import { execFileSync } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { native } from '../../src/binding/index.js';
import { unixNative } from '../../src/binding/unixsock.js';
import { WaylandClient } from '../../src/wayland/client.js';
import { openLeaseDevices } from '../../src/wayland/drm-lease.js';
import { ConnectionClosedError, LeaseRevokedError, NoCompositorError } from '../../src/wayland/errors.js';
import { UnixTransport } from '../../src/wayland/unix-transport.js';
import { hex } from '../../src/wayland/wire.js';
import { DEVICE_OFFER, DONE_3, DONE_4, GLOBAL_DEVICE } from './wayland-fake.js';

const bytes = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const sameFile = (a: number, b: number): boolean => {
  const x = fstatSync(a);
  const y = fstatSync(b);
  return x.dev === y.dev && x.ino === y.ino;
};

/** wait for a condition, polling the event loop (generous: no timing is asserted) */
async function until<T>(f: () => T | undefined, what: string, ms = 10000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** the compositor's end of the socketpair: what the client wrote, and sending events with fds */
class Peer {
  private got = Buffer.alloc(0);
  readonly fds: number[] = [];
  constructor(readonly fd: number) {}
  read(): void {
    for (let r = unixNative.unixRecv(this.fd, 65536); r && !r.eof; r = unixNative.unixRecv(this.fd, 65536)) {
      this.got = Buffer.concat([this.got, r.data]);
      this.fds.push(...r.fds);
    }
  }
  /** wait for n bytes of requests; returns them as hex words */
  async take(n: number): Promise<string> {
    await until(() => (this.read(), this.got.length >= n ? true : undefined), `${n} bytes of requests`);
    const out = this.got.subarray(0, n);
    this.got = this.got.subarray(n);
    return hex(out);
  }
  send(s: string, fds: number[] = []): void {
    expect(unixNative.unixSend(this.fd, bytes(s), fds)).toBe(bytes(s).length);
  }
}

const open: number[] = [];
const track = (fd: number): number => (open.push(fd), fd);
afterEach(() => {
  for (const fd of open.splice(0)) {
    try {
      native.close(fd);
    } catch {
      /* closed by the test */
    }
  }
});

function pair(): { client: WaylandClient; transport: UnixTransport; peer: Peer } {
  const [a, b] = unixNative.unixSocketpair();
  track(b);
  const transport = new UnixTransport(a, 'socketpair');
  return { client: new WaylandClient(transport), transport, peer: new Peer(b) };
}

// the drm-lease bytes of wayland-fake.ts (there the device's drm_fd travels as SCM_RIGHTS)

async function leaseDevice(): Promise<{ client: WaylandClient; peer: Peer; devices: Awaited<ReturnType<typeof openLeaseDevices>>; sentDrmFd: number }> {
  const { client, peer } = pair();
  const p = openLeaseDevices(client);
  expect(await peer.take(24)).toBe('01000000 01000c00 02000000 01000000 00000c00 03000000'); // get_registry(2), sync(3)
  peer.send(`${GLOBAL_DEVICE} ${DONE_3}`);
  expect(await peer.take(60)).toBe(
    '02000000 00003000 09000000 17000000 77705f64 726d5f6c 65617365 5f646576 6963655f 76310000 01000000 03000000 01000000 00000c00 04000000',
  );
  const sentDrmFd = track(openSync('/dev/null', 'r'));
  peer.send(`${DEVICE_OFFER} ${DONE_4}`, [sentDrmFd]);
  return { client, peer, devices: await p, sentDrmFd };
}

describe('wayland: the UNIX socket transport with SCM_RIGHTS', () => {
  it('drm_fd arrives as a descriptor of the same file; the offer is complete', async () => {
    const { client, devices, sentDrmFd } = await leaseDevice();
    const d = devices[0]!;
    expect(d.drmFd).toBeGreaterThanOrEqual(0);
    expect(d.drmFd).not.toBe(sentDrmFd);
    expect(sameFile(d.drmFd!, sentDrmFd)).toBe(true);
    track(d.drmFd!);
    expect(d.offered().map((c) => [c.name, c.description, c.connectorId])).toEqual([['DP-2', 'Valve Index', 77]]);
    client.close();
  });

  it('lease_fd arrives as a descriptor; the connection closing ends the granted lease (disconnected)', async () => {
    const { client, peer, devices } = await leaseDevice();
    track(devices[0]!.drmFd!);
    const p = devices[0]!.requestLease(devices[0]!.offered());
    expect(await peer.take(36)).toBe('03000000 00000c00 04000000 04000000 00000c00 000000ff 04000000 01000c00 05000000');
    const dir = mkdtempSync(path.join(tmpdir(), 'vgpu-wl-'));
    try {
      writeFileSync(path.join(dir, 'lease'), 'x');
      const sent = track(openSync(path.join(dir, 'lease'), 'r'));
      peer.send('05000000 00000800 01000000 01000c00 04000000', [sent]); // lease@5.lease_fd; delete_id(4)
      const lease = await p;
      expect(sameFile(track(lease.fd!), sent)).toBe(true);
      const ended: LeaseRevokedError[] = [];
      lease.onEnd((e) => ended.push(e));
      native.close(peer.fd); // the compositor goes away
      await until(() => (ended.length ? true : undefined), 'the lease to end');
      expect(ended[0]).toBeInstanceOf(LeaseRevokedError);
      expect(ended[0]!.how).toBe('disconnected');
      expect(ended[0]!.message).toMatch(/^the lease of DP-2 ended with the connection to the compositor \(the compositor closed it: the compositor exited/);
      expect(client.error).toBeInstanceOf(ConnectionClosedError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a lease we hand back is not reported as ended when the connection closes', async () => {
    const { client, peer, devices } = await leaseDevice();
    track(devices[0]!.drmFd!);
    const p = devices[0]!.requestLease(devices[0]!.offered());
    await peer.take(36);
    peer.send('05000000 00000800', [track(openSync('/dev/null', 'r'))]);
    const lease = await p;
    track(lease.fd!);
    const ended: unknown[] = [];
    lease.onEnd((e) => ended.push(e));
    lease.destroy();
    client.close();
    expect(await peer.take(8)).toBe('05000000 00000800'); // lease@5.destroy, written before the close
    expect(ended).toEqual([]);
  });

  it('sends descriptors with the first byte of a message; partial reads keep them', async () => {
    const [a, b] = unixNative.unixSocketpair();
    track(a);
    track(b);
    const f = track(openSync('/dev/null', 'r'));
    expect(unixNative.unixSend(a, bytes('01000000 00000800'), [f, f])).toBe(8);
    const r = await until(() => unixNative.unixRecv(b, 4) ?? undefined, 'a read');
    expect([hex(r.data), r.fds.length, r.eof, r.fdsTruncated]).toEqual(['01000000', 2, false, false]);
    for (const x of r.fds) expect(sameFile(track(x), f)).toBe(true);
    const rest = unixNative.unixRecv(b, 64)!;
    expect([hex(rest.data), rest.fds]).toEqual(['00000800', []]);
    expect(unixNative.unixRecv(b, 64)).toBeNull(); // EAGAIN
    native.close(a);
    open.splice(open.indexOf(a), 1);
    expect(unixNative.unixRecv(b, 64)!.eof).toBe(true);
    expect(() => unixNative.unixSend(b, bytes('00'), [])).toThrow(/^sendmsg on socketpair end 1: EPIPE \(Broken pipe\): the peer closed the connection/);
  });

  it('connect errors say what is wrong', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vgpu-wl-'));
    try {
      const e = (p: string): NoCompositorError => {
        try {
          UnixTransport.connect(p);
        } catch (x) {
          return x as NoCompositorError;
        }
        throw new Error('connected');
      };
      const missing = e(path.join(dir, 'wayland-9'));
      expect(missing).toBeInstanceOf(NoCompositorError);
      expect([missing.reason, missing.message]).toEqual(['socket-missing', `no Wayland compositor: cannot connect to ${dir}/wayland-9: ENOENT`]);
      // a socket nobody listens on (what a compositor that was killed leaves behind)
      const stale = path.join(dir, 'wayland-stale');
      execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', stale]);
      const refused = e(stale);
      expect(refused.reason).toBe('refused');
      expect(refused.message).toMatch(/: ECONNREFUSED \(nobody listens: a compositor that exited leaves its socket behind\)$/);
      expect(e(`/${'x'.repeat(120)}`).message).toMatch(/ENAMETOOLONG/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
