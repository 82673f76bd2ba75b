// EDID identity (src/kiosk/edid.ts) on EDID blobs built byte by byte in the VESA E-EDID 1.4
// layout (test/fixtures/edid-*.hex, each checked with edid-decode), and output matching
// (src/kiosk/match.ts) on connectors carrying them.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { EdidError, edidFromHex, parseEdid } from '../../src/kiosk/edid.js';
import { connectorCandidates, describeCandidates, matchOutputs } from '../../src/kiosk/match.js';
import { loadConfigText } from '../../src/kiosk/load.js';
import type { ConnectorSnapshot, KmsSnapshot, PropertySnapshot } from '../../src/kms/types.js';

const fixture = (name: string): Uint8Array =>
  edidFromHex(readFileSync(path.resolve(import.meta.dirname, '../fixtures', name), 'utf8'));

describe('EDID identity', () => {
  it('a desktop monitor: PNP id, product code, serial number, name and serial descriptors', () => {
    const id = parseEdid(fixture('edid-dell-u2415.hex'));
    expect(id).toEqual({
      manufacturer: 'DEL',
      productCode: 0xa0ba,
      serialNumber: 0x4c4c5332,
      name: 'DELL U2415',
      serial: '7MT0186L0LSU',
      version: '1.4',
      year: 2016,
      week: 12,
      modelYear: false,
      widthCm: 52,
      heightCm: 32,
      extensions: 0,
      nonDesktop: false,
      description: 'DEL DELL U2415 7MT0186L0LSU',
    });
  });

  it('the HTC Vive (HVR 0xaa01) is a non-desktop display; no serial string: the serial number stands in', () => {
    const id = parseEdid(fixture('edid-htc-vive.hex'));
    expect(id.manufacturer).toBe('HVR');
    expect(id.productCode).toBe(0xaa01);
    expect(id.name).toBe('HTC-VIVE');
    expect(id.serial).toBeNull();
    expect(id.nonDesktop).toBe(true);
    expect([id.widthCm, id.heightCm]).toEqual([0, 0]);
    expect(id.description).toBe('HVR HTC-VIVE 0x00000001');
  });

  it('QEMU\'s monitor: an extension block after the base block is ignored; no serial at all is "Unknown"', () => {
    const bytes = fixture('edid-qemu-monitor.hex');
    expect(bytes.length).toBe(256);
    const id = parseEdid(bytes);
    expect([id.manufacturer, id.productCode, id.serialNumber, id.name, id.serial, id.extensions]).toEqual(['RHT', 0x1234, 0, 'QEMU Monitor', null, 1]);
    expect(id.description).toBe('RHT QEMU Monitor Unknown');
    expect(id.nonDesktop).toBe(false);
  });

  it('no name descriptor: the product code stands in for the model', () => {
    const b = Uint8Array.from(fixture('edid-dell-u2415.hex'));
    // descriptor 3 (offset 90) is the name: make it a dummy descriptor (tag 0x10), fix the checksum
    b[93] = 0x10;
    b[127] = (b[127]! + 0xfc - 0x10) & 0xff;
    expect(parseEdid(b).description).toBe('DEL 0xA0BA 7MT0186L0LSU');
  });

  it('checksum, header, length, version and manufacturer errors say what is wrong', () => {
    const good = fixture('edid-dell-u2415.hex');
    const bad = Uint8Array.from(good);
    bad[127] = (bad[127]! + 1) & 0xff;
    expect(() => parseEdid(bad)).toThrow(new EdidError('EDID checksum error: the 128 bytes add up to 0x01 mod 256, not 0 (byte 127 is 0xf2; it would need to be 0xf1): a corrupted EDID'));
    const header = Uint8Array.from(good);
    header[7] = 0xff;
    expect(() => parseEdid(header)).toThrow('not an EDID: the header must be 00 ff ff ff ff ff ff 00, got 00 ff ff ff ff ff ff ff (byte 7 differs)');
    expect(() => parseEdid(good.subarray(0, 127))).toThrow('EDID too short: 127 bytes, the base block alone is 128 (a truncated read of the EDID blob?)');
    const v2 = Uint8Array.from(good);
    v2[18] = 2;
    v2[127] = (v2[127]! - 1) & 0xff;
    expect(() => parseEdid(v2)).toThrow('EDID version 2.4: only version 1 base blocks are understood');
    const pnp = Uint8Array.from(good);
    pnp[9] = 0xa0; // DEL -> 'D', 'E', 0 (no letter)
    pnp[127] = (pnp[127]! + 0xac - 0xa0) & 0xff;
    expect(() => parseEdid(pnp)).toThrow('manufacturer id 0x10a0 is not three letters A-Z (5-bit codes 4, 5, 0)');
    expect(() => edidFromHex('00 f')).toThrow(EdidError);
  });
});

function prop(name: string, value: bigint): PropertySnapshot {
  return { id: 1, name, kind: 'blob', flags: 0, immutable: true, atomic: false, value };
}

function connector(id: number, name: string, edidBlob: number, extra: Partial<ConnectorSnapshot> = {}): ConnectorSnapshot {
  return {
    id, name, type: 0, typeName: name.replace(/-\d+$/, ''), typeId: 1, status: 'connected', writeback: false, mmWidth: 0, mmHeight: 0,
    subpixel: 0, encoderId: 0, encoders: [], crtcId: 0, modes: [], properties: edidBlob ? { EDID: prop('EDID', BigInt(edidBlob)) } : {}, ...extra,
  };
}

function snapshot(p: string, connectors: ConnectorSnapshot[]): KmsSnapshot {
  return { path: p, connectors } as unknown as KmsSnapshot;
}

describe('matching outputs to connectors', () => {
  const blobs: Record<number, Uint8Array> = { 10: fixture('edid-dell-u2415.hex'), 11: fixture('edid-htc-vive.hex'), 12: new Uint8Array(128) };
  const snap = snapshot('/dev/dri/card0', [
    connector(1, 'DP-1', 11), // the headset comes first
    connector(2, 'HDMI-A-1', 12), // an EDID that does not parse
    connector(3, 'DP-2', 10),
    connector(4, 'Writeback-1', 0, { writeback: true }),
    connector(5, 'HDMI-A-2', 0, { status: 'disconnected' }),
  ]);
  const candidates = connectorCandidates(snap, (id) => blobs[id] ?? null);

  it('lists connected, non-writeback connectors with their EDID identity', () => {
    expect(candidates.map((c) => [c.connector.name, c.edid?.description ?? null, c.nonDesktop, c.edidError ?? null])).toEqual([
      ['DP-1', 'HVR HTC-VIVE 0x00000001', true, null],
      ['HDMI-A-1', null, false, expect.stringMatching(/^not an EDID: the header/)],
      ['DP-2', 'DEL DELL U2415 7MT0186L0LSU', false, null],
    ]);
  });

  it('by EDID identity and by connector name first, then `*` skips the VR headset', () => {
    const cfg = loadConfigText('k.yaml', [
      'version: 1',
      'outputs:',
      '  - { name: any, match: "*" }',
      '  - { name: dell, match: "DEL DELL U2415 7MT0186L0LSU" }',
      '  - { name: hdmi, match: HDMI-A-1 }',
      '  - { name: other, match: "*" }',
      '  - { name: gone, match: HDMI-A-2 }',
    ].join('\n')).config!;
    const r = matchOutputs(cfg.outputs, candidates, '/dev/dri/card0');
    expect(Object.fromEntries([...r.matched].map(([k, v]) => [k, v.connector.name]))).toEqual({ dell: 'DP-2', hdmi: 'HDMI-A-1' });
    expect(r.unmatched).toEqual(['any', 'other', 'gone']);
    // without a default device, outputs without `device` match nothing
    expect(matchOutputs(cfg.outputs, candidates, null).matched.size).toBe(0);
    // what an unmatched output is told: the connected connectors, their identities, who took them
    expect(describeCandidates(candidates, '/dev/dri/card0', r.matched)).toBe(
      'connected on /dev/dri/card0: DP-1 "HVR HTC-VIVE 0x00000001", HDMI-A-1 (EDID unreadable: ' + candidates[1]!.edidError + ') taken by output hdmi, DP-2 "DEL DELL U2415 7MT0186L0LSU" taken by output dell',
    );
    expect(describeCandidates(candidates, '/dev/dri/card1', r.matched)).toBe('no connected connector on /dev/dri/card1');
  });

  it('the connector\'s "non-desktop" property wins over the quirk list', () => {
    const s = snapshot('/dev/dri/card1', [connector(1, 'DP-1', 11, { properties: { EDID: prop('EDID', 11n), 'non-desktop': prop('non-desktop', 0n) } })]);
    const [c] = connectorCandidates(s, (id) => blobs[id] ?? null);
    expect(c!.nonDesktop).toBe(false);
  });
});
