// drm-lease-v1 against hand-assembled bytes (headless sway offers no lease device), each message
// assembled from the XML signature (drm-lease-v1.xml: opcodes in declaration order; server
// objects from 0xff000000, little endian "000000ff"). Descriptors are real /dev/null fds.
import { closeSync, openSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { WaylandClient } from '../../src/wayland/client.js';
import { chooseConnector, openLeaseDevices, type DrmLeaseDevice } from '../../src/wayland/drm-lease.js';
import { ConnectorNotOfferedError, LeaseRefusedError, LeaseRevokedError, NoCompositorError } from '../../src/wayland/errors.js';
import { resolveSocketPath } from '../../src/wayland/transport.js';
import { DEVICE_OFFER, DONE_3, DONE_4, FdTransport, GLOBAL_DEVICE, tick } from './wayland-fake.js';

async function openDevice(): Promise<{ t: FdTransport; client: WaylandClient; devices: DrmLeaseDevice[]; drmFd: number }> {
  const t = new FdTransport();
  const client = new WaylandClient(t);
  const p = openLeaseDevices(client);
  await tick();
  expect(t.take()).toEqual(['01000000 01000c00 02000000 01000000 00000c00 03000000']); // get_registry(2), sync(3)
  t.deliver(`${GLOBAL_DEVICE} ${DONE_3}`);
  await tick();
  // bind(9, "wp_drm_lease_device_v1", version 1, id 3), sync(4)
  expect(t.take()).toEqual([
    '02000000 00003000 09000000 17000000 77705f64 726d5f6c 65617365 5f646576 6963655f 76310000 01000000 03000000 01000000 00000c00 04000000',
  ]);
  const drmFd = openSync('/dev/null', 'r');
  t.deliver(`${DEVICE_OFFER} ${DONE_4}`, [drmFd]);
  return { t, client, devices: await p, drmFd };
}

describe('wayland drm-lease-v1', () => {
  it('binds the device; drm_fd, connector (name, description, connector_id, done), done', async () => {
    const { devices, drmFd } = await openDevice();
    expect(devices.length).toBe(1);
    const d = devices[0]!;
    expect(d.drmFd).toBe(drmFd);
    expect(d.ready).toBe(true);
    expect(d.offered().map((c) => c.toJSON())).toEqual([{ name: 'DP-2', description: 'Valve Index', connectorId: 77, withdrawn: false }]);
    expect(chooseConnector(devices).name).toBe('DP-2');
    expect(chooseConnector(devices, 'DP-2').connectorId).toBe(77);
    closeSync(drmFd);
  });

  it('a connector not offered: the error lists the offer and says how compositors choose', async () => {
    const { devices, drmFd } = await openDevice();
    closeSync(drmFd);
    const e = (() => {
      try {
        chooseConnector(devices, 'HDMI-A-1');
      } catch (x) {
        return x as ConnectorNotOfferedError;
      }
    })();
    expect(e).toBeInstanceOf(ConnectorNotOfferedError);
    expect(e!.message).toMatch(/^the compositor does not offer HDMI-A-1 for lease: it offers: DP-2 \(Valve Index\)\. Compositors offer for lease only connectors whose kernel "non-desktop" property is 1/);
    expect(() => chooseConnector([], undefined)).toThrow(/^no connector to lease: it offers no connector\./);
  });

  it('request_connector + submit -> lease_fd; destroy hands it back; finished after that is an end, not a refusal', async () => {
    const { t, devices, drmFd } = await openDevice();
    closeSync(drmFd);
    const d = devices[0]!;
    const p = d.requestLease([chooseConnector(devices, 'DP-2')]);
    await tick();
    // device@3.create_lease_request(new_id 4); request@4.request_connector(0xff000000); request@4.submit(new_id 5)
    expect(t.take()).toEqual(['03000000 00000c00 04000000 04000000 00000c00 000000ff 04000000 01000c00 05000000']);
    const leaseFd = openSync('/dev/null', 'r');
    t.deliver('05000000 00000800 01000000 01000c00 04000000', [leaseFd]); // lease@5.lease_fd; delete_id(4)
    const lease = await p;
    expect(lease.fd).toBe(leaseFd);
    const ended: LeaseRevokedError[] = [];
    lease.onEnd((e) => ended.push(e));
    t.deliver('05000000 01000800'); // lease@5.finished: the compositor ended it
    expect(ended.length).toBe(1);
    expect(ended[0]!.message).toMatch(/^the compositor ended the lease of DP-2/);
    await tick();
    expect(t.take()).toEqual(['05000000 00000800']); // lease@5.destroy
    closeSync(leaseFd);
  });

  it('finished before lease_fd is a refusal', async () => {
    const { t, devices, drmFd } = await openDevice();
    closeSync(drmFd);
    const p = devices[0]!.requestLease(devices[0]!.offered());
    await tick();
    t.take();
    t.deliver('05000000 01000800'); // lease@5.finished before any lease_fd
    await expect(p).rejects.toBeInstanceOf(LeaseRefusedError);
    await expect(p).rejects.toThrow(/^the compositor refused to lease DP-2/);
  });

  it('withdrawn: the connector leaves the offer and its object is destroyed; release -> released', async () => {
    const { t, devices, drmFd } = await openDevice();
    closeSync(drmFd);
    const d = devices[0]!;
    const c = d.offered()[0]!;
    t.deliver('000000ff 04000800 03000000 02000800'); // connector.withdrawn; device.done
    expect(c.withdrawn).toBe(true);
    expect(d.offered()).toEqual([]);
    await expect(d.requestLease([c])).rejects.toBeInstanceOf(ConnectorNotOfferedError);
    const r = d.release();
    await tick();
    expect(t.take()).toEqual(['000000ff 00000800', '03000000 01000800']); // connector.destroy (at withdrawn); device.release
    t.deliver('03000000 03000800'); // device.released
    await r;
    expect(d.released).toBe(true);
  });
});

describe('wayland: finding the compositor', () => {
  it('errors a desktop user understands', () => {
    const e = (env: NodeJS.ProcessEnv): NoCompositorError => {
      try {
        resolveSocketPath(env);
      } catch (x) {
        return x as NoCompositorError;
      }
      throw new Error('resolved');
    };
    expect(e({}).message).toBe('no Wayland compositor: $XDG_RUNTIME_DIR is not set and neither is $WAYLAND_DISPLAY: run vgpu-flip from a terminal of the Wayland desktop');
    expect(e({ SUDO_USER: 'me' }).message).toMatch(/sudo --preserve-env=WAYLAND_DISPLAY,XDG_RUNTIME_DIR/);
    const missing = e({ XDG_RUNTIME_DIR: '/nonexistent-run', WAYLAND_DISPLAY: 'wayland-1' });
    expect([missing.reason, missing.socketPath]).toEqual(['socket-missing', '/nonexistent-run/wayland-1']);
    expect(missing.message).toMatch(/^no Wayland compositor: \$WAYLAND_DISPLAY=wayland-1 socket \/nonexistent-run\/wayland-1 does not exist/);
    expect(e({ XDG_RUNTIME_DIR: '/nonexistent-run' }).reason).toBe('no-display');
    expect(e({ WAYLAND_DISPLAY: '/etc/hostname' }).message).toBe('no Wayland compositor: /etc/hostname is not a socket');
    expect(e({ WAYLAND_SOCKET: '3' }).reason).toBe('wayland-socket-fd');
  });
});
