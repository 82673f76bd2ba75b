// Host tests of the uevent filter and UeventMonitor (src/kms/uevents.ts) on uevents as the
// kernel sends them (the environments of drm_sysfs.c's events and of a write to the card's
// uevent file), with a fake socket + poller. The real socket is tested in the VM
// (test/kernel/hotplug.test.ts).
import { describe, expect, it } from 'vitest';
import { native } from '../../src/binding/index.js';
import type { FdPoller, Uevent } from '../../src/binding/types.js';
import { UeventMonitor, cardNameOf, filterDrmUevents, type DrmUeventNotice, type UeventApi } from '../../src/kms/uevents.js';

const card0 = '/devices/platform/vkms/drm/card0';
function ev(action: string, devpath: string, props: Record<string, string>): Uevent {
  return { action, devpath, props: { ACTION: action, DEVPATH: devpath, ...props } };
}
const hotplug = ev('change', card0, { SUBSYSTEM: 'drm', HOTPLUG: '1', DEVNAME: 'dri/card0', DEVTYPE: 'drm_minor', MAJOR: '226', MINOR: '0', SEQNUM: '2100' });
const connectorProp = ev('change', card0, { SUBSYSTEM: 'drm', HOTPLUG: '1', CONNECTOR: '52', PROPERTY: '5', DEVNAME: 'dri/card0', SEQNUM: '2101' });
const lease = ev('change', card0, { SUBSYSTEM: 'drm', LEASE: '1', DEVNAME: 'dri/card0', SEQNUM: '2102' });
const synthetic = ev('change', card0, { SUBSYSTEM: 'drm', DEVNAME: 'dri/card0', DEVTYPE: 'drm_minor', SYNTH_UUID: '0', SEQNUM: '2103' });
const otherCard = ev('change', '/devices/pci0000:00/0000:00:02.0/drm/card1', { SUBSYSTEM: 'drm', HOTPLUG: '1', DEVNAME: 'dri/card1', SEQNUM: '2104' });
const renderNode = ev('add', '/devices/platform/vkms/drm/renderD128', { SUBSYSTEM: 'drm', DEVNAME: 'dri/renderD128', SEQNUM: '2105' });
const connectorDev = ev('change', `${card0}/card0-Virtual-1`, { SUBSYSTEM: 'drm', SEQNUM: '2106' });
const notDrm = ev('change', '/devices/virtual/mem/null', { SUBSYSTEM: 'mem', DEVNAME: 'null', SEQNUM: '2107' });
const overrun: Uevent = { action: 'overrun', devpath: '', props: {} };

describe('filterDrmUevents', () => {
  it('keeps the card\'s events and decodes HOTPLUG / CONNECTOR / PROPERTY / LEASE', () => {
    const out = filterDrmUevents([notDrm, hotplug, otherCard, connectorProp, renderNode, connectorDev, lease, synthetic], 'card0');
    expect(out).toEqual([
      { kind: 'event', action: 'change', devpath: card0, card: 'card0', seqnum: 2100, hotplug: true, connectorId: null, propertyId: null, lease: false, props: hotplug.props },
      { kind: 'event', action: 'change', devpath: card0, card: 'card0', seqnum: 2101, hotplug: true, connectorId: 52, propertyId: 5, lease: false, props: connectorProp.props },
      { kind: 'event', action: 'change', devpath: card0, card: 'card0', seqnum: 2102, hotplug: false, connectorId: null, propertyId: null, lease: true, props: lease.props },
      { kind: 'event', action: 'change', devpath: card0, card: 'card0', seqnum: 2103, hotplug: false, connectorId: null, propertyId: null, lease: false, props: synthetic.props },
    ]);
    expect(filterDrmUevents([otherCard], 'card1')).toHaveLength(1);
  });

  it('an overrun (one or several in a drain) is one "missed events, rescan" notice, in order', () => {
    const out = filterDrmUevents([hotplug, overrun, notDrm, overrun, lease], 'card0');
    expect(out.map((n) => n.kind)).toEqual(['event', 'overrun', 'event']);
    expect(out[1]).toEqual({ kind: 'overrun', card: 'card0', message: 'missed events, rescan' });
  });

  it('ignores junk numbers', () => {
    const junk = ev('change', card0, { SUBSYSTEM: 'drm', DEVNAME: 'dri/card0', CONNECTOR: '5x', SEQNUM: '' });
    expect(filterDrmUevents([junk], 'card0')[0]).toMatchObject({ connectorId: null, seqnum: null });
  });
});

describe('cardNameOf', () => {
  it('takes a card node path or name', () => {
    expect(cardNameOf('/dev/dri/card0')).toBe('card0');
    expect(cardNameOf('card12')).toBe('card12');
    expect(() => cardNameOf('/dev/dri/renderD128')).toThrow(/not a DRM card node/);
  });
});

function fakeApi(batches: Array<Uevent[] | Error>) {
  let onReadable: (() => void) | null = null;
  const closed: number[] = [];
  let stopped = 0;
  const api: UeventApi = {
    ueventOpen: () => 42,
    ueventRead: (fd) => {
      expect(fd).toBe(42);
      const b = batches.shift() ?? [];
      if (b instanceof Error) throw b;
      return b;
    },
    pollReadable: (fd, cb): FdPoller => {
      expect(fd).toBe(42);
      onReadable = cb;
      return { stop: () => { stopped++; } };
    },
    close: (fd) => { closed.push(fd); },
  };
  return { api, fire: () => onReadable?.(), closed, stopped: () => stopped };
}

describe('UeventMonitor', () => {
  it('calls back per card event on each wakeup and counts wakeups; close stops the poller and closes', () => {
    const f = fakeApi([[notDrm, hotplug], [], [overrun, connectorProp]]);
    const got: DrmUeventNotice[] = [];
    const m = UeventMonitor.open('/dev/dri/card0', { onEvent: (e) => got.push(e) }, f.api);
    expect(m.card).toBe('card0');
    f.fire();
    f.fire();
    f.fire();
    expect(m.wakeups).toBe(3);
    expect(got.map((n) => (n.kind === 'event' ? n.seqnum : n.kind))).toEqual([2100, 'overrun', 2101]);
    expect(m.delivered).toBe(3);
    m.close();
    m.close();
    expect(f.stopped()).toBe(1);
    expect(f.closed).toEqual([42]);
    expect(m.closed).toBe(true);
    f.fire(); // a late callback after close does nothing
    expect(m.wakeups).toBe(3);
  });

  it('a read error closes the monitor and goes to onError (or is thrown without one)', () => {
    const err = Object.assign(new Error('recvmsg (uevents) on uevent socket: EBADF'), { code: 'EBADF' });
    const f = fakeApi([err]);
    const errors: Error[] = [];
    const m = UeventMonitor.open('card0', { onEvent: () => {}, onError: (e) => errors.push(e) }, f.api);
    f.fire();
    expect(errors).toEqual([err]);
    expect(m.closed).toBe(true);
    const g = fakeApi([err]);
    UeventMonitor.open('card0', { onEvent: () => {} }, g.api);
    expect(() => g.fire()).toThrow(/EBADF/);
    expect(g.closed).toEqual([42]);
  });

  it('closing from inside the callback stops delivery of the rest of the batch', () => {
    const f = fakeApi([[hotplug, lease]]);
    let n = 0;
    const m: UeventMonitor = UeventMonitor.open('card0', { onEvent: () => { n++; m.close(); } }, f.api);
    f.fire();
    expect(n).toBe(1);
  });

  it('closes the socket when the poller cannot start', () => {
    const f = fakeApi([]);
    f.api.pollReadable = () => { throw new Error('uv_poll_init: EBADF'); };
    expect(() => UeventMonitor.open('card0', { onEvent: () => {} }, f.api)).toThrow(/uv_poll_init/);
    expect(f.closed).toEqual([42]);
  });
});

describe('the addon (real syscalls, no DRM device needed)', () => {
  it('ueventOpen gives a labelled non-blocking socket; ueventRead returns at once', () => {
    const fd = native.ueventOpen();
    try {
      const t0 = performance.now();
      const evs = native.ueventRead(fd); // whatever the host's kernel sent meanwhile, never blocks
      expect(Array.isArray(evs)).toBe(true);
      expect(performance.now() - t0).toBeLessThan(1000);
      for (const e of evs) expect(e).toEqual({ action: expect.any(String), devpath: expect.any(String), props: expect.any(Object) });
    } finally {
      native.close(fd);
    }
  });

  it('drmIsMaster throws for a non-DRM fd instead of answering "master" (libdrm would)', () => {
    const fd = native.openPath('/dev/null');
    try {
      expect(() => native.drmIsMaster(fd)).toThrow(expect.objectContaining({ op: 'DRM_IOCTL_AUTH_MAGIC', path: '/dev/null', code: 'ENOTTY' }));
    } finally {
      native.close(fd);
    }
  });
});
