// What `inspect --leases` prints, and the option checks of `assign --lease` (pure parts; the
// real compositor is in test/kernel/wayland-lease.test.ts).
import { describe, expect, it } from 'vitest';
import { checkLeaseOptions } from '../../src/cli/commands/assign-lease.js';
import { leaseListingJson, renderLeaseListing, type LeaseListing } from '../../src/wayland/leases.js';

const listing: LeaseListing = {
  socket: '/run/user/1000/wayland-1',
  devices: [{ global: 31, drmNode: '/dev/dri/card1', driver: 'amdgpu', connectors: [{ name: 'DP-2', description: 'Valve Corporation Index HMD', connectorId: 97 }] }],
};

describe('inspect --leases output', () => {
  it('a table of the offered connectors with the device node and driver', () => {
    expect(renderLeaseListing(listing)).toBe(
      [
        'Wayland compositor at /run/user/1000/wayland-1: 1 DRM lease device(s)',
        '  CONNECTOR  DESCRIPTION                  ID  DEVICE          DRIVER',
        '  DP-2       Valve Corporation Index HMD  97  /dev/dri/card1  amdgpu',
        '',
      ].join('\n'),
    );
    expect(JSON.parse(leaseListingJson(listing))).toEqual(listing);
  });

  it('nothing offered: says why compositors offer only non-desktop connectors', () => {
    const text = renderLeaseListing({ ...listing, devices: [{ ...listing.devices[0]!, connectors: [] }] });
    expect(text).toMatch(/^Wayland compositor at \/run\/user\/1000\/wayland-1: 1 DRM lease device\(s\)\n  no connector offered for lease \(lease device on \/dev\/dri\/card1\)\.\n  Compositors offer for lease only connectors whose kernel "non-desktop" property is 1/);
  });
});

describe('assign --lease option checks', () => {
  const base = { device: '/dev/dri/card0', deviceFromCli: false, crtc: '0', crtcFromCli: false };
  it('the lease is the display: --device, --crtc other than 0 and the loopback guest are refused', () => {
    expect(() => checkLeaseOptions(base)).not.toThrow();
    expect(() => checkLeaseOptions({ ...base, crtcFromCli: true })).not.toThrow();
    expect(() => checkLeaseOptions({ ...base, deviceFromCli: true })).toThrow(/^--lease and --device exclude each other/);
    expect(() => checkLeaseOptions({ ...base, crtc: '1', crtcFromCli: true })).toThrow(/^--crtc 1 with --lease: a lease holds one CRTC, index 0/);
    expect(() => checkLeaseOptions({ ...base, loopbackGuest: '64x64' })).toThrow(/^--lease and --loopback-guest exclude each other/);
  });
});
