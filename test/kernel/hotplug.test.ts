// Kernel tests of the hotplug / master building blocks (issue 13) against vkms:
// - UeventMonitor on the real netlink socket: forcing Virtual-1 off (sysfs status) and making the
//   kernel send the card's change uevent (vkms sends none itself) wakes the event loop once,
//   with no wakeup while idle; snapshot + diffTopology then name Virtual-1 and its CRTC;
//   forcing it on (then back to detect) reads as connected again.
// - DRM master: a second process cannot commit while we are master; after we drop master it can
//   take it; MasterRetrier sees our commit fail (lost), retries SET_MASTER with backoff while
//   the child holds master, and regains it once the child exits; a commit works again.
// The connector's status is restored at the end whatever happens (other tests need it).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addonPath, native } from '../../src/binding/index.js';
import { DRM_MODE_ATOMIC_ALLOW_MODESET, DRM_MODE_ATOMIC_TEST_ONLY } from '../../src/binding/constants.js';
import { isKernelError } from '../../src/binding/errors.js';
import { DrmDevice, type DumbFramebuffer } from '../../src/kms/device.js';
import { preferredMode } from '../../src/kms/mode.js';
import { captureState, restoreState } from '../../src/kms/state.js';
import { MasterRetrier, MasterWatch, isMaster, type MasterEvent } from '../../src/kms/master.js';
import { snapshotToJsonText } from '../../src/kms/snapshot-json.js';
import { connectorChange, diffTopology, readConnectorEdids } from '../../src/kms/topology.js';
import type { KmsSnapshot } from '../../src/kms/types.js';
import { UeventMonitor, type DrmUeventNotice } from '../../src/kms/uevents.js';
import { findVkmsCard } from './kms-helpers.js';

let card = '';
let cardName = '';
let dev: DrmDevice;
let statusFile = '';
let lit: { fb: DumbFramebuffer; saved: ReturnType<typeof captureState> } | null = null;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** VGPU_FLIP_RECORD_FIXTURES=<writable dir>: write the snapshots there (for test/fixtures/). */
function record(name: string, s: KmsSnapshot): void {
  const dir = process.env['VGPU_FLIP_RECORD_FIXTURES'];
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, name), snapshotToJsonText(s));
}

/** Force the connector, then have the kernel send the card's change uevent. */
function forceConnector(how: 'on' | 'off' | 'detect'): void {
  writeFileSync(statusFile, how);
  writeFileSync(`/sys/class/drm/${cardName}/uevent`, 'change');
}

beforeAll(() => {
  card = findVkmsCard();
  cardName = path.basename(card);
  statusFile = `/sys/class/drm/${cardName}-Virtual-1/status`;
  dev = DrmDevice.open(card); // the first opener: DRM master
  // the rig's fbdev emulation lights the CRTC through Virtual-1; without it (--no-fbdev) light it
  const s = dev.snapshot();
  const conn = s.connectors.find((c) => c.name === 'Virtual-1')!;
  if (conn.crtcId === 0 && conn.status === 'connected') {
    const crtc = s.crtcs[0]!;
    const primary = s.planes.find((p) => p.type === 'primary')!;
    const mode = preferredMode(conn.modes)!;
    const fb = dev.createDumbFramebuffer(mode.hdisplay, mode.vdisplay);
    lit = { fb, saved: captureState(s) };
    const blob = dev.createModeBlob(mode);
    dev.atomic()
      .set(conn.id, 'CRTC_ID', crtc.id).set(crtc.id, 'ACTIVE', 1).set(crtc.id, 'MODE_ID', blob.id)
      .set(primary.id, 'FB_ID', fb.fbId).set(primary.id, 'CRTC_ID', crtc.id)
      .set(primary.id, 'SRC_X', 0).set(primary.id, 'SRC_Y', 0)
      .set(primary.id, 'SRC_W', mode.hdisplay << 16).set(primary.id, 'SRC_H', mode.vdisplay << 16)
      .set(primary.id, 'CRTC_X', 0).set(primary.id, 'CRTC_Y', 0)
      .set(primary.id, 'CRTC_W', mode.hdisplay).set(primary.id, 'CRTC_H', mode.vdisplay)
      .commit(DRM_MODE_ATOMIC_ALLOW_MODESET);
  }
});

afterAll(() => {
  try {
    writeFileSync(statusFile, 'detect'); // vkms' connector has no detect: "detect" is connected
    writeFileSync(`/sys/class/drm/${cardName}/uevent`, 'change');
  } finally {
    try {
      if (lit && dev && !dev.closed) {
        dev.snapshot();
        restoreState(dev, lit.saved);
        lit.fb.destroy();
      }
    } finally {
      dev?.close();
    }
  }
});

describe('UeventMonitor on the netlink socket', () => {
  it('wakes only on the card\'s uevent; the diff names Virtual-1 disconnected, then connected, with its CRTC', async () => {
    const got: DrmUeventNotice[] = [];
    let waiter: (() => void) | null = null;
    const mon = UeventMonitor.open(card, {
      onEvent: (e) => {
        got.push(e);
        waiter?.();
      },
    });
    const nextEvent = (ms = 20_000) =>
      new Promise<number>((resolve, reject) => {
        const t0 = performance.now();
        const timer = setTimeout(() => reject(new Error(`no uevent of ${cardName} within ${ms} ms`)), ms);
        waiter = () => {
          clearTimeout(timer);
          waiter = null;
          resolve(performance.now() - t0);
        };
      });
    try {
      const before = dev.snapshot();
      const virtBefore = before.connectors.find((c) => c.name === 'Virtual-1')!;
      expect(virtBefore.status).toBe('connected');
      expect(virtBefore.crtcId).not.toBe(0); // routed (by fbdev emulation, or in beforeAll)
      record('vkms-hotplug-connected.json', before);

      // idle: the socket is watched by uv_poll, nothing wakes the loop
      await sleep(1000);
      expect(mon.wakeups).toBe(0);
      expect(got).toEqual([]);

      const off = nextEvent();
      forceConnector('off');
      const latency = await off;
      console.log(`uevent: callback ${latency.toFixed(1)} ms after the write, ${mon.wakeups} wakeup(s)`);
      expect(got).toHaveLength(1);
      expect(got[0]).toMatchObject({ kind: 'event', action: 'change', card: cardName, hotplug: false, lease: false });
      const ev = got[0]!;
      if (ev.kind !== 'event') throw new Error('expected an event');
      expect(ev.props).toMatchObject({ SUBSYSTEM: 'drm', DEVNAME: `dri/${cardName}`, DEVTYPE: 'drm_minor' });
      expect(ev.seqnum).toBeGreaterThan(0);
      expect(mon.wakeups).toBe(1); // one wakeup for one datagram: woken by it, not by a timer

      const after = dev.snapshot();
      record('vkms-hotplug-disconnected.json', after);
      const d = diffTopology(before, after, { oldEdids: readConnectorEdids(dev.fd, before), newEdids: readConnectorEdids(dev.fd, after) });
      expect(d.connectors.map((c) => c.name)).toEqual(['Virtual-1']);
      const c = connectorChange(d, 'Virtual-1')!;
      expect(c.kinds).toEqual(['disconnected', 'modes']);
      expect(c.crtcId).toBe(virtBefore.crtcId);
      expect(d.crtcIds).toEqual([virtBefore.crtcId]);
      expect(c.modesRemoved).toHaveLength(virtBefore.modes.length);

      const on = nextEvent();
      forceConnector('on');
      await on;
      expect(got).toHaveLength(2);
      const again = dev.snapshot();
      const d2 = diffTopology(after, again);
      expect(connectorChange(d2, 'Virtual-1')).toMatchObject({ kinds: ['connected', 'modes'], crtcId: virtBefore.crtcId });
      expect(diffTopology(before, again).changed).toBe(false);

      const detect = nextEvent();
      forceConnector('detect');
      await detect;
      expect(diffTopology(before, dev.snapshot()).changed).toBe(false);
      expect(mon.wakeups).toBe(3);
    } finally {
      mon.close();
    }
    expect(mon.closed).toBe(true);
  });

  it('the native read returns [] when nothing is pending and skips nothing the kernel sent for the card', () => {
    const fd = native.ueventOpen();
    try {
      expect(native.ueventRead(fd)).toEqual([]);
      writeFileSync(`/sys/class/drm/${cardName}/uevent`, 'change');
      const evs = native.ueventRead(fd).filter((e) => e.props['DEVNAME'] === `dri/${cardName}`);
      expect(evs).toHaveLength(1);
      expect(evs[0]!.devpath).toMatch(new RegExp(`/drm/${cardName}$`));
      expect(evs[0]!.props['ACTION']).toBe('change');
    } finally {
      native.close(fd);
    }
  });
});

/** A second process on the card: answers 'state' / 'take' / 'commit' lines with JSON lines. */
const CHILD = `
const a = require(process.argv[1]);
const fd = a.drmOpen(process.argv[2]);
a.drmSetClientCap(fd, 3, 1); // DRM_CLIENT_CAP_ATOMIC
const tryIt = (f) => { try { f(); return 'ok'; } catch (e) { return e.code || String(e); } };
let buf = '';
process.stdin.on('data', (d) => {
  buf += d;
  let nl;
  while ((nl = buf.indexOf('\\n')) >= 0) {
    const cmd = buf.slice(0, nl); buf = buf.slice(nl + 1);
    const r = { cmd, isMaster: a.drmIsMaster(fd) };
    if (cmd === 'take') r.setMaster = tryIt(() => a.drmSetMaster(fd));
    r.commit = tryIt(() => a.drmAtomicCommit(fd, [], ${DRM_MODE_ATOMIC_TEST_ONLY}));
    r.isMasterAfter = a.drmIsMaster(fd);
    process.stdout.write(JSON.stringify(r) + '\\n');
  }
});
process.stdin.on('end', () => process.exit(0));
process.stdout.write(JSON.stringify({ cmd: 'ready', isMaster: a.drmIsMaster(fd) }) + '\\n');
`;

interface ChildReply { cmd: string; isMaster: boolean; setMaster?: string; commit?: string; isMasterAfter?: boolean }

class Child {
  readonly proc: ChildProcessWithoutNullStreams;
  private lines: string[] = [];
  private wake: (() => void) | null = null;
  private err = '';
  constructor() {
    this.proc = spawn(process.execPath, ['-e', CHILD, addonPath, card], { stdio: 'pipe' });
    let out = '';
    this.proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      let nl;
      while ((nl = out.indexOf('\n')) >= 0) {
        this.lines.push(out.slice(0, nl));
        out = out.slice(nl + 1);
      }
      this.wake?.();
    });
    this.proc.stderr.on('data', (d: Buffer) => (this.err += d.toString()));
    this.proc.on('exit', () => this.wake?.());
  }
  async reply(): Promise<ChildReply> {
    const deadline = Date.now() + 30_000;
    while (this.lines.length === 0) {
      if (this.proc.exitCode !== null || Date.now() > deadline) throw new Error(`child gave no answer (exit ${this.proc.exitCode}): ${this.err}`);
      await new Promise<void>((r) => { this.wake = r; setTimeout(r, 500); });
    }
    return JSON.parse(this.lines.shift()!) as ChildReply;
  }
  async send(cmd: 'state' | 'take'): Promise<ChildReply> {
    this.proc.stdin.write(`${cmd}\n`);
    return this.reply();
  }
  exit(): Promise<void> {
    if (this.proc.exitCode !== null) return Promise.resolve();
    return new Promise((r) => { this.proc.once('exit', () => r()); this.proc.stdin.end(); });
  }
}

function ourCommit(): string {
  try {
    native.drmAtomicCommit(dev.fd, [], DRM_MODE_ATOMIC_TEST_ONLY);
    return 'ok';
  } catch (e) {
    return isKernelError(e) ? e.code : String(e);
  }
}

describe('DRM master between two processes', () => {
  it('isMaster, refused commits, drop/take, and MasterRetrier regaining master after the holder exits', async () => {
    expect(isMaster(dev.fd)).toBe(true);
    const second = DrmDevice.open(card);
    try {
      expect(isMaster(second.fd)).toBe(false);
    } finally {
      second.close();
    }
    const events: MasterEvent[] = [];
    let regained: (() => void) | null = null;
    const retrier = new MasterRetrier(dev.fd, new MasterWatch({ minDelayMs: 100, maxDelayMs: 5000 }), (e) => {
      events.push(e);
      if (e.type === 'regained') regained?.();
    });
    const child = new Child();
    try {
      expect(await child.reply()).toMatchObject({ cmd: 'ready', isMaster: false });
      // we are master: the child can neither commit nor take master
      expect(await child.send('take')).toMatchObject({ isMaster: false, setMaster: 'EBUSY', commit: 'EACCES', isMasterAfter: false });
      expect(ourCommit()).toBe('ok');

      dev.dropMaster();
      expect(isMaster(dev.fd)).toBe(false);
      expect(await child.send('take')).toMatchObject({ isMaster: false, setMaster: 'ok', commit: 'ok', isMasterAfter: true });

      // our commit fails: lost (once), SET_MASTER retried with backoff while the child holds it
      let failure: unknown = null;
      try {
        dev.atomic().set(dev.snapshot().crtcs[0]!.id, 'ACTIVE', dev.currentSnapshot().crtcs[0]!.active ? 1 : 0).commit();
      } catch (e) {
        failure = e;
      }
      expect(failure).toMatchObject({ op: 'DRM_IOCTL_MODE_ATOMIC', code: 'EACCES' });
      const lostAt = Date.now();
      expect(retrier.commitFailed(failure)).toBe(true);
      expect(retrier.commitFailed(failure)).toBe(false);
      // attempts at about 100, 300, 700 ms: waited for, not slept for (TCG may run timers late);
      // timers never run early, so the third attempt cannot come before 100 + 200 + 400 ms
      for (const end = Date.now() + 20_000; retrier.watch.attempts < 3; await sleep(10)) {
        if (Date.now() > end) throw new Error(`3 SET_MASTER attempts within 20 s (got ${retrier.watch.attempts})`);
      }
      expect(Date.now() - lostAt).toBeGreaterThanOrEqual(690); // backoff, not a tight loop
      expect(retrier.watch.state).toBe('lost');
      expect(retrier.watch.lastSetMasterError).toBe('EBUSY');
      expect(events.map((e) => e.type)).toEqual(['lost']);
      expect((await child.send('state')).isMaster).toBe(true);

      // the holder exits: its master goes with its fd; the retrier takes it on its next attempt
      const back = new Promise<void>((resolve, reject) => {
        regained = resolve;
        setTimeout(() => reject(new Error('master not regained within 15 s')), 15_000);
      });
      await child.exit();
      await back;
      expect(events.map((e) => e.type)).toEqual(['lost', 'regained']);
      expect(isMaster(dev.fd)).toBe(true);
      const crtc = dev.snapshot().crtcs[0]!;
      dev.atomic().set(crtc.id, 'ACTIVE', crtc.active ? 1 : 0).commit(); // a real commit again
      expect(ourCommit()).toBe('ok');
    } finally {
      retrier.close();
      await child.exit();
      if (!isMaster(dev.fd)) {
        try { dev.setMaster(); } catch { /* reported by the expectations above */ }
      }
    }
  });
});
