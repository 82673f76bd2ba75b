// What the CLI does with the compositor's lease devices: list their offers (`inspect --leases`)
// and take one connector's lease (`assign --lease`), with descriptors over the addon's socket.
import { readlinkSync } from 'node:fs';
import { native } from '../binding/index.js';
import { renderTable } from '../util/table.js';
import { WaylandClient } from './client.js';
import { chooseConnector, openLeaseDevices, type DrmLease, type DrmLeaseDevice, type LeaseConnector } from './drm-lease.js';
import { NON_DESKTOP_HINT, WaylandError } from './errors.js';
import { resolveSocketPath } from './transport.js';

export interface LeaseDeviceInfo {
  /** the registry name of the wp_drm_lease_device_v1 global */
  global: number;
  /** the DRM node the compositor's drm_fd is open on (/proc/self/fd), null if unknown */
  drmNode: string | null;
  /** its kernel driver (DRM_IOCTL_VERSION), null if unknown */
  driver: string | null;
  connectors: { name: string; description: string; connectorId: number }[];
}

export interface LeaseListing {
  socket: string;
  devices: LeaseDeviceInfo[];
}

/** the node and driver of a DRM fd from the compositor; never throws */
export function describeDrmFd(fd: number | undefined): { drmNode: string | null; driver: string | null } {
  if (fd === undefined || fd < 0) return { drmNode: null, driver: null };
  let drmNode: string | null = null;
  let driver: string | null = null;
  try {
    drmNode = readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    /* no /proc */
  }
  try {
    driver = native.drmGetVersion(fd).name;
  } catch {
    /* not a DRM fd after all */
  }
  return { drmNode, driver };
}

export const closeQuietly = (fd: number | undefined): void => {
  if (fd === undefined || fd < 0) return;
  try {
    native.close(fd);
  } catch {
    /* closed */
  }
};

/** connect, bind every lease device, read the offers, disconnect */
export async function listLeases(env: NodeJS.ProcessEnv = process.env): Promise<LeaseListing> {
  const socket = resolveSocketPath(env);
  const client = await WaylandClient.connect(env);
  try {
    const devices = await openLeaseDevices(client);
    return {
      socket,
      devices: devices.map((d) => {
        const info = describeDrmFd(d.drmFd);
        closeQuietly(d.drmFd);
        return { global: d.global.name, ...info, connectors: d.offered().map((c) => ({ name: c.name, description: c.description, connectorId: c.connectorId })) };
      }),
    };
  } finally {
    client.close();
  }
}

export function renderLeaseListing(l: LeaseListing): string {
  const rows = l.devices.flatMap((d) => d.connectors.map((c) => [c.name, c.description, c.connectorId, d.drmNode ?? '?', d.driver ?? '?']));
  let s = `Wayland compositor at ${l.socket}: ${l.devices.length} DRM lease device(s)\n`;
  if (rows.length) s += renderTable(['CONNECTOR', 'DESCRIPTION', 'ID', 'DEVICE', 'DRIVER'], rows, { indent: 2 });
  else {
    const nodes = l.devices.map((d) => d.drmNode ?? '?').join(', ');
    s += `  no connector offered for lease (lease device${l.devices.length > 1 ? 's' : ''} on ${nodes}).\n  ${NON_DESKTOP_HINT}\n`;
  }
  return s;
}

export function leaseListingJson(l: LeaseListing): string {
  return JSON.stringify(l, null, 2) + '\n';
}

/** a granted lease and what it came from; end() hands it back */
export interface HeldLease {
  client: WaylandClient;
  device: DrmLeaseDevice;
  connector: { name: string; description: string; connectorId: number };
  lease: DrmLease;
  /** the leased DRM fd (a master fd limited to the lease's objects); whoever uses it closes it */
  fd: number;
  /** the lease device's DRM node (/dev/dri/cardN) and driver */
  drmNode: string | null;
  driver: string | null;
  socket: string;
  /** the compositor ended it (finished, or the connection closed): resolves with the reason */
  ended: Promise<WaylandError>;
  /** give it back: wp_drm_lease_v1.destroy and (acquireLease) disconnect; close the lease fd first */
  release(): void;
}

/** request the lease of one connector (named, or the only one offered) */
export async function acquireLease(name: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<HeldLease> {
  const socket = resolveSocketPath(env);
  const client = await WaylandClient.connect(env);
  try {
    const devices = await openLeaseDevices(client);
    const c: LeaseConnector = chooseConnector(devices, name);
    const info = describeDrmFd(c.device.drmFd);
    for (const d of devices) closeQuietly(d.drmFd);
    return await holdLease(c, info, socket, true);
  } catch (e) {
    client.close();
    throw e;
  }
}

/**
 * Request the lease of an offered connector on its client's connection. `info`: its device's
 * node and driver (describeDrmFd of the device's drm_fd). With `closeClient`, release() also
 * closes the connection; without, the connection stays for the caller (who watches the offer).
 */
export async function holdLease(c: LeaseConnector, info: { drmNode: string | null; driver: string | null }, socket: string, closeClient: boolean): Promise<HeldLease> {
  const client = c.device.client;
  const lease = await c.device.requestLease([c]);
  if (lease.fd === undefined || lease.fd < 0) {
    lease.destroy();
    throw new WaylandError('no-fd', `the compositor granted the lease of ${c.name} but no descriptor arrived`);
  }
  const fd = lease.fd;
  const ended = new Promise<WaylandError>((resolve) => lease.onEnd(resolve));
  return {
    client,
    device: c.device,
    connector: { name: c.name, description: c.description, connectorId: c.connectorId },
    lease,
    fd,
    ...info,
    socket,
    ended,
    release(): void {
      lease.destroy();
      if (closeClient) client.close();
      else client.flush();
    },
  };
}
