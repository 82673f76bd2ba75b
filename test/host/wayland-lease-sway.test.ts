// drm-lease-v1 against bytes captured from a real compositor with a lease device: Debian's sway
// 1.7 on virtio-gpu in the rig (test/kernel/wayland-lease.test.ts with
// VGPU_FLIP_WAYLAND_CAPTURE; test/fixtures/wayland-README.md). The compositor's reads are replayed
// in their chunks with as many descriptors as arrived with each (here /dev/null fds); the client
// must write exactly the captured requests, in the captured chunks, and reach the same state.
import { closeSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { WaylandClient } from '../../src/wayland/client.js';
import { chooseConnector, openLeaseDevices } from '../../src/wayland/drm-lease.js';
import type { WaylandTransport } from '../../src/wayland/transport.js';
import { hex } from '../../src/wayland/wire.js';

const fixtures = path.join(import.meta.dirname, '..', 'fixtures');
const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

interface Step {
  dir: '>' | '<';
  hex: string;
  fds: number;
}

/** "> hex" / "< hex" lines, each optionally followed by "# fds N" */
function load(name: string): Step[] {
  const steps: Step[] = [];
  for (const l of readFileSync(path.join(fixtures, name), 'utf8').split('\n')) {
    if (l.startsWith('> ') || l.startsWith('< ')) steps.push({ dir: l[0] as '>' | '<', hex: l.slice(2).trim(), fds: 0 });
    const m = /^# fds (\d+)$/.exec(l);
    if (m && steps.length) steps[steps.length - 1]!.fds = Number(m[1]);
  }
  return steps;
}

class ReplayTransport implements WaylandTransport {
  readonly passesFds = true;
  readonly sent: string[] = [];
  readonly opened: number[] = [];
  private data: ((b: Uint8Array, fds: number[]) => void) | undefined;
  send(b: Uint8Array, fds: readonly number[]): void {
    this.sent.push(hex(b));
    expect(fds).toEqual([]); // no request of drm-lease-v1 carries a descriptor
  }
  onData(h: (b: Uint8Array, fds: number[]) => void): void {
    this.data = h;
  }
  onClose(): void {}
  close(): void {}
  deliver(s: Step): number[] {
    const fds = Array.from({ length: s.fds }, () => openSync('/dev/null', 'r'));
    this.opened.push(...fds);
    this.data?.(bytes(s.hex), fds);
    return fds;
  }
}

/** replay up to (not including) the first step for which stop() is true; returns its index */
async function replay(t: ReplayTransport, steps: Step[], from: number, stop: (s: Step, i: number) => boolean): Promise<number> {
  let i = from;
  for (; i < steps.length && !stop(steps[i]!, i); i++) {
    const s = steps[i]!;
    await tick();
    if (s.dir === '<') t.deliver(s);
    else expect(t.sent.shift(), `request ${i}`).toBe(s.hex);
  }
  await tick();
  return i;
}

describe('wayland drm-lease-v1 against sway 1.7 (captured in the rig)', () => {
  it('inspect: the offer with drm_fd as a descriptor', async () => {
    const steps = load('wayland-lease-sway-inspect.txt');
    expect(steps.filter((s) => s.dir === '<').reduce((n, s) => n + s.fds, 0)).toBe(1); // drm_fd
    const t = new ReplayTransport();
    const client = new WaylandClient(t);
    const p = openLeaseDevices(client);
    await replay(t, steps, 0, () => false);
    const devices = await p;
    expect(devices.length).toBe(1);
    expect(t.opened).toContain(devices[0]!.drmFd);
    const offer = devices[0]!.offered().map((c) => c.toJSON());
    expect(offer.length).toBe(1);
    // wlroots: "make model serial (name)"; it has no make for the PNP id HVR
    expect(offer[0]).toMatchObject({ name: 'Virtual-3', description: 'Unknown HTC-VIVE 0x00000001 (Virtual-3)', withdrawn: false });
    expect(offer[0]!.connectorId).toBeGreaterThan(0);
    expect(t.sent).toEqual([]);
    for (const fd of t.opened) closeSync(fd);
  });

  it('assign: the lease request, lease_fd as a descriptor, withdrawn while leased, destroy on exit', async () => {
    const steps = load('wayland-lease-sway-assign.txt');
    const t = new ReplayTransport();
    const client = new WaylandClient(t);
    const p = openLeaseDevices(client);
    // the offer: up to the lease request (the first request after the device's offer)
    const submitAt = steps.findIndex((s, i) => s.dir === '>' && i > 2 && s.hex.startsWith('03000000 00000c00'));
    expect(submitAt).toBeGreaterThan(0);
    let i = await replay(t, steps, 0, (_s, k) => k === submitAt);
    const devices = await p;
    const c = chooseConnector(devices);
    const lp = devices[0]!.requestLease([c]);
    i = await replay(t, steps, i, (s) => s.dir === '>' && s.hex === '05000000 00000800'); // up to lease@5.destroy
    const lease = await lp;
    expect(t.opened).toContain(lease.fd);
    expect(c.withdrawn).toBe(false); // sway 1.7 withdraws a leased connector from other clients only (a new client is not offered it)
    lease.destroy();
    client.close();
    await tick();
    expect(t.sent.shift()).toBe(steps[i]!.hex);
    for (const fd of t.opened) closeSync(fd);
  });
});
