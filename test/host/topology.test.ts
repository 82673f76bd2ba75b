// Host tests of the topology diff (src/kms/topology.ts) on snapshots recorded from vkms in the
// VM: test/fixtures/vkms-snapshot-active.json (Virtual-1 connected, routed to the CRTC) and the
// pair recorded by test/kernel/hotplug.test.ts around `echo off > .../card0-Virtual-1/status`
// (vkms-hotplug-{connected,disconnected}.json). Other changes are edits of the recorded data.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadSnapshotFile } from '../../src/kms/snapshot-json.js';
import {
  connectorChange,
  describeConnectorChange,
  diffTopology,
  readConnectorEdids,
} from '../../src/kms/topology.js';
import type { ConnectorSnapshot, KmsSnapshot } from '../../src/kms/types.js';

const dir = path.resolve('test/fixtures');
const active = loadSnapshotFile(path.join(dir, 'vkms-snapshot-active.json'));
const recordedOn = path.join(dir, 'vkms-hotplug-connected.json');
const recordedOff = path.join(dir, 'vkms-hotplug-disconnected.json');

function edit(s: KmsSnapshot, name: string, f: (c: ConnectorSnapshot) => void): KmsSnapshot {
  const copy = structuredClone(s);
  const c = copy.connectors.find((x) => x.name === name);
  if (!c) throw new Error(`no connector ${name}`);
  f(c);
  return copy;
}

const unplug = (c: ConnectorSnapshot): void => {
  c.status = 'disconnected';
  c.modes = [];
};

describe('diffTopology', () => {
  const crtcId = active.crtcs[0]!.id;
  const virt = active.connectors.find((c) => c.name === 'Virtual-1')!;

  it('no change between a snapshot and itself (or a copy)', () => {
    expect(diffTopology(active, structuredClone(active))).toEqual({ changed: false, connectors: [], crtcIds: [] });
  });

  it('disconnect: names the connector, the CRTC it drove, and the modes that went away', () => {
    const off = edit(active, 'Virtual-1', unplug);
    const d = diffTopology(active, off);
    expect(d.changed).toBe(true);
    expect(d.crtcIds).toEqual([crtcId]);
    expect(d.connectors).toHaveLength(1);
    const c = d.connectors[0]!;
    expect(c).toMatchObject({ connectorId: virt.id, name: 'Virtual-1', kinds: ['disconnected', 'modes'], crtcId, oldStatus: 'connected', newStatus: 'disconnected' });
    expect(c.modesRemoved).toHaveLength(virt.modes.length);
    expect(c.modesAdded).toEqual([]);
    expect(describeConnectorChange(c)).toBe(`Virtual-1 (CRTC ${crtcId}): disconnected, modes -${virt.modes.length}`);
  });

  it('reconnect: connected, modes back; the CRTC is the old routing (kept while disconnected)', () => {
    const off = edit(active, 'Virtual-1', unplug);
    const d = diffTopology(off, active);
    expect(connectorChange(d, 'Virtual-1')).toMatchObject({ kinds: ['connected', 'modes'], crtcId });
    expect(connectorChange(d, virt.id)!.modesAdded).toHaveLength(virt.modes.length);
    // a connector that drove nothing: crtcId null, nothing to re-plan
    const unrouted = edit(off, 'Virtual-1', (c) => { c.crtcId = 0; });
    const d2 = diffTopology(unrouted, active);
    expect(d2.connectors[0]!.crtcId).toBeNull();
    expect(d2.crtcIds).toEqual([]);
  });

  it('unknown -> connected is a connect; connected -> unknown a disconnect', () => {
    const unknown = edit(active, 'Virtual-1', (c) => { c.status = 'unknown'; });
    expect(connectorChange(diffTopology(unknown, active), 'Virtual-1')!.kinds).toEqual(['connected']);
    expect(connectorChange(diffTopology(active, unknown), 'Virtual-1')!.kinds).toEqual(['disconnected']);
  });

  it('modes changed (one added, one removed) without a status change', () => {
    const next = edit(active, 'Virtual-1', (c) => {
      const gone = c.modes.shift()!;
      c.modes.push({ ...gone, name: '3840x2160', hdisplay: 3840, vdisplay: 2160, clock: 533250 });
    });
    const c = diffTopology(active, next).connectors[0]!;
    expect(c.kinds).toEqual(['modes']);
    expect(c.modesAdded.map((m) => m.name)).toEqual(['3840x2160']);
    expect(c.modesRemoved.map((m) => m.name)).toEqual([virt.modes[0]!.name]);
    // the same modes in another order are no change
    const shuffled = edit(active, 'Virtual-1', (c2) => c2.modes.reverse());
    expect(diffTopology(active, shuffled).changed).toBe(false);
    // a preferred flag moving is a change (the mode to pick changed)
    const pref = edit(active, 'Virtual-1', (c2) => { c2.modes[0]!.type ^= 8; });
    expect(diffTopology(active, pref).connectors[0]!.kinds).toEqual(['modes']);
  });

  it('link-status BAD (1) is reported on the transition only', () => {
    expect(virt.properties['link-status']?.value).toBe(0n);
    const bad = edit(active, 'Virtual-1', (c) => { c.properties['link-status']!.value = 1n; });
    const d = diffTopology(active, bad);
    expect(d.connectors[0]).toMatchObject({ kinds: ['link-status-bad'], crtcId });
    expect(d.crtcIds).toEqual([crtcId]);
    expect(diffTopology(bad, bad).changed).toBe(false);
    expect(diffTopology(bad, active).changed).toBe(false); // back to GOOD: nothing to do
  });

  it('EDID: by bytes when both maps are given, else by blob id (which every probe renews)', () => {
    const withEdid = (blob: number) => edit(active, 'Virtual-1', (c) => {
      c.properties['EDID'] = { id: 1, name: 'EDID', kind: 'blob', flags: 0x14, immutable: true, atomic: false, value: BigInt(blob) };
    });
    const a = withEdid(70);
    const b = withEdid(71); // re-probed: new blob, maybe the same bytes
    const bytes = Uint8Array.from([0, 255, 255, 255, 255, 255, 255, 0, 1]);
    const other = Uint8Array.from([0, 255, 255, 255, 255, 255, 255, 0, 2]);
    const same = diffTopology(a, b, { oldEdids: new Map([[virt.id, bytes]]), newEdids: new Map([[virt.id, Uint8Array.from(bytes)]]) });
    expect(same.changed).toBe(false);
    const swapped = diffTopology(a, b, { oldEdids: new Map([[virt.id, bytes]]), newEdids: new Map([[virt.id, other]]) });
    expect(swapped.connectors[0]).toMatchObject({ kinds: ['edid'], edidBasis: 'bytes', crtcId });
    const gone = diffTopology(a, b, { oldEdids: new Map([[virt.id, bytes]]), newEdids: new Map([[virt.id, null]]) });
    expect(gone.connectors[0]!.kinds).toEqual(['edid']);
    expect(diffTopology(a, b).connectors[0]).toMatchObject({ kinds: ['edid'], edidBasis: 'blob-id' });
    expect(diffTopology(a, withEdid(70)).changed).toBe(false);
    expect(diffTopology(active, a).connectors[0]!.kinds).toEqual(['edid']); // EDID appeared
  });

  it('readConnectorEdids reads each output connector\'s EDID blob (none for vkms), skipping writeback', () => {
    const calls: number[] = [];
    const m = readConnectorEdids(3, edit(active, 'Virtual-1', (c) => {
      c.properties['EDID'] = { id: 1, name: 'EDID', kind: 'blob', flags: 0x14, immutable: true, atomic: false, value: 70n };
    }), { drmGetPropertyBlob: (_fd, id) => (calls.push(id), Buffer.from([1, 2])) });
    expect(calls).toEqual([70]);
    expect([...m.keys()]).toEqual([virt.id]);
    expect(readConnectorEdids(3, active, { drmGetPropertyBlob: () => { throw new Error('not called'); } }).get(virt.id)).toBeNull();
  });

  it('writeback connectors are not outputs: ignored, even when only one snapshot lists them', () => {
    const noWb = structuredClone(active);
    noWb.connectors = noWb.connectors.filter((c) => !c.writeback);
    expect(diffTopology(active, noWb).changed).toBe(false);
    expect(diffTopology(noWb, active).changed).toBe(false);
  });

  it('connectors that appear or vanish (DP MST) are added / removed', () => {
    const mst = edit(active, 'Virtual-1', () => {});
    mst.connectors.push({ ...structuredClone(virt), id: 900, name: 'DP-3', crtcId: 0 });
    const d = diffTopology(active, mst);
    expect(d.connectors).toMatchObject([{ connectorId: 900, kinds: ['added', 'connected'], crtcId: null, oldStatus: null }]);
    const back = diffTopology(mst, active);
    expect(back.connectors).toMatchObject([{ connectorId: 900, kinds: ['removed', 'disconnected'], newStatus: null }]);
  });

  it('recorded in the VM: echo off/on on Virtual-1', () => {
    const on = loadSnapshotFile(recordedOn);
    const off = loadSnapshotFile(recordedOff);
    const c = connectorChange(diffTopology(on, off), 'Virtual-1')!;
    expect(c.kinds).toEqual(['disconnected', 'modes']);
    expect(c.crtcId).toBe(on.crtcs[0]!.id);
    expect(diffTopology(on, off).connectors).toHaveLength(1);
    expect(connectorChange(diffTopology(off, on), 'Virtual-1')!.kinds).toEqual(['connected', 'modes']);
  });
});
