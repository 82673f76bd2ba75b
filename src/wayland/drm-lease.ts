// drm-lease-v1 (staging): the compositor's lease devices, the connectors they offer, and leases.
//
//   device (bind)  -> drm_fd(fd), connector(new_id)*, done        (again later as offers change)
//   connector      -> name, description, connector_id, done; withdrawn when no longer offered
//   create_lease_request -> request_connector(connector)* -> submit(new_id lease)
//   lease          -> lease_fd(fd): granted; finished: refused (before lease_fd) or ended (after)
//   lease.destroy  hands the objects back; device.release -> released
// The drm_fd is a non-master DRM fd of the device (for matching it against our own view); the
// lease fd is a DRM master fd holding only the leased connector and the CRTC/planes the
// compositor added. Over a transport without descriptor passing both are -1.
import { WaylandClient, type Global, type Registry, type WlProxy } from './client.js';
import { ConnectorNotOfferedError, LeaseRefusedError, LeaseRevokedError, NoLeaseManagerError, WaylandError, type OfferedConnector } from './errors.js';
import { wp_drm_lease_connector_v1, wp_drm_lease_device_v1, wp_drm_lease_request_v1, wp_drm_lease_v1 } from './protocol.js';

export class LeaseConnector implements OfferedConnector {
  name = '';
  description = '';
  connectorId = 0;
  /** all of name/description/connector_id have arrived */
  complete = false;
  withdrawn = false;

  constructor(
    readonly device: DrmLeaseDevice,
    readonly proxy: WlProxy<typeof wp_drm_lease_connector_v1>,
  ) {
    proxy.handlers = {
      name: ([n]) => void (this.name = n as string),
      description: ([d]) => void (this.description = d as string),
      connector_id: ([id]) => void (this.connectorId = id as number),
      done: () => void (this.complete = true),
      withdrawn: () => {
        this.withdrawn = true;
        device.connectorWithdrawn(this);
      },
    };
  }

  toJSON(): OfferedConnector & { withdrawn: boolean } {
    return { name: this.name, description: this.description, connectorId: this.connectorId, withdrawn: this.withdrawn };
  }
}

export class DrmLease {
  /** the leased DRM fd (-1 without descriptor passing); undefined until granted */
  fd: number | undefined;
  /** set when the compositor ended the lease */
  ended: LeaseRevokedError | undefined;
  private endListeners: ((e: LeaseRevokedError) => void)[] = [];

  constructor(
    readonly proxy: WlProxy<typeof wp_drm_lease_v1>,
    readonly connectors: readonly LeaseConnector[],
  ) {}

  /** be told when the compositor ends the lease (`finished` after lease_fd) */
  onEnd(handler: (e: LeaseRevokedError) => void): void {
    if (this.ended) handler(this.ended);
    else this.endListeners.push(handler);
  }

  /** we handed it back (destroy()): its end is not news */
  released = false;

  /** @internal the compositor ended it (`finished`), or the connection closed */
  finish(how: 'finished' | 'disconnected' = 'finished', detail?: string): void {
    if (this.ended || this.released) return;
    this.ended = new LeaseRevokedError(this.connectors.map((c) => c.name), how, detail);
    for (const l of this.endListeners.splice(0)) l(this.ended);
  }

  /** hand the leased objects back (the compositor may drive them again); close fd yourself first */
  destroy(): void {
    this.released = true;
    if (!this.proxy.zombie && !this.proxy.client.error) this.proxy.request('destroy');
  }
}

export class DrmLeaseDevice {
  /** the device's DRM fd (non-master; -1 without descriptor passing), from drm_fd */
  drmFd: number | undefined;
  /** offered connectors, by object id (withdrawn ones removed) */
  readonly connectors = new Map<number, LeaseConnector>();
  /** the first `done` arrived: the offer is complete */
  ready = false;
  released = false;
  private doneWaiters: (() => void)[] = [];
  /** told at every `done` (the offer changed: a connector offered or withdrawn) */
  private readonly changeListeners = new Set<() => void>();
  private releasedWaiters: (() => void)[] = [];

  constructor(
    readonly client: WaylandClient,
    readonly global: Global,
    readonly proxy: WlProxy<typeof wp_drm_lease_device_v1>,
  ) {
    proxy.handlers = {
      drm_fd: ([fd]) => void (this.drmFd = fd as number),
      connector: ([id]) => {
        const p = client.object(id as number) as WlProxy<typeof wp_drm_lease_connector_v1> | undefined;
        if (p) this.connectors.set(p.id, new LeaseConnector(this, p));
      },
      done: () => {
        this.ready = true;
        for (const w of this.doneWaiters.splice(0)) w();
        for (const l of [...this.changeListeners]) l();
      },
      released: () => {
        this.released = true;
        for (const w of this.releasedWaiters.splice(0)) w();
      },
    };
  }

  static bind(client: WaylandClient, registry: Registry, global: Global): DrmLeaseDevice {
    return new DrmLeaseDevice(client, global, registry.bind(global, wp_drm_lease_device_v1, 1));
  }

  /** @internal a connector's `withdrawn`: forget it and destroy our object for it */
  connectorWithdrawn(c: LeaseConnector): void {
    this.connectors.delete(c.proxy.id);
    if (!c.proxy.zombie) c.proxy.request('destroy');
  }

  offered(): LeaseConnector[] {
    return [...this.connectors.values()].filter((c) => !c.withdrawn);
  }

  /** be told whenever the compositor has sent a new state of its offer (`done`); returns the unsubscribe */
  onChange(listener: () => void): () => void {
    this.changeListeners.add(listener);
    return () => void this.changeListeners.delete(listener);
  }

  /** resolves at the first `done` (at once when it has arrived) */
  whenReady(): Promise<void> {
    if (this.ready) return Promise.resolve();
    return this.waitFor(this.doneWaiters);
  }

  private waitFor(list: (() => void)[]): Promise<void> {
    return new Promise((resolve, reject) => {
      const off = this.client.onFail(reject);
      list.push(() => {
        off();
        resolve();
      });
    });
  }

  /** ask for a lease of these connectors (of this device): resolves with the granted lease */
  requestLease(connectors: readonly LeaseConnector[]): Promise<DrmLease> {
    const names = connectors.map((c) => c.name);
    if (connectors.length === 0) return Promise.reject(new WaylandError('empty-lease', 'a lease needs at least one connector'));
    for (const c of connectors) {
      if (c.device !== this) return Promise.reject(new WaylandError('wrong-device', `${c.name} is offered by another lease device`));
      if (c.withdrawn) return Promise.reject(new ConnectorNotOfferedError(c.name, this.offered()));
    }
    if (new Set(connectors).size !== connectors.length) return Promise.reject(new WaylandError('duplicate-connector', `a connector is named twice: ${names.join(', ')}`));
    const req = this.client.newProxy(wp_drm_lease_request_v1, 1);
    this.proxy.request('create_lease_request', req.id);
    for (const c of connectors) req.request('request_connector', c.proxy.id);
    const leaseProxy = this.client.newProxy(wp_drm_lease_v1, 1);
    const lease = new DrmLease(leaseProxy, connectors);
    return new Promise((resolve, reject) => {
      const off = this.client.onFail(reject);
      leaseProxy.handlers = {
        lease_fd: ([fd]) => {
          off();
          lease.fd = fd as number;
          // a compositor that exits ends its leases (the kernel revokes them with its DRM master)
          this.client.onFail((e) => lease.finish('disconnected', e.message.replace(/^the connection to the Wayland compositor closed: /, '')));
          resolve(lease);
        },
        finished: () => {
          off();
          if (lease.fd === undefined) {
            reject(new LeaseRefusedError(names));
            if (!leaseProxy.zombie) leaseProxy.request('destroy');
          } else {
            lease.finish();
            if (!leaseProxy.zombie) leaseProxy.request('destroy');
          }
        },
      };
      req.request('submit', leaseProxy.id);
    });
  }

  /** stop receiving offers; resolves at `released` */
  release(): Promise<void> {
    if (this.released) return Promise.resolve();
    const p = this.waitFor(this.releasedWaiters);
    if (!this.proxy.zombie) this.proxy.request('release');
    return p;
  }
}

/** bind every lease device the compositor offers and wait until each has sent its offer */
export async function openLeaseDevices(client: WaylandClient): Promise<DrmLeaseDevice[]> {
  const registry = await client.globals();
  const globals = registry.find(wp_drm_lease_device_v1.name);
  if (globals.length === 0) throw new NoLeaseManagerError([...new Set([...registry.globals.values()].map((g) => g.interface))]);
  const devices = globals.map((g) => DrmLeaseDevice.bind(client, registry, g));
  await client.sync();
  await Promise.all(devices.map((d) => d.whenReady()));
  return devices;
}

/** the connector to lease: the one named, or the only one offered */
export function chooseConnector(devices: readonly DrmLeaseDevice[], name?: string): LeaseConnector {
  const offered = devices.flatMap((d) => d.offered());
  if (name === undefined) {
    if (offered.length === 1) return offered[0] as LeaseConnector;
    if (offered.length === 0) throw new ConnectorNotOfferedError(undefined, offered);
    throw new WaylandError('connector-ambiguous', `the compositor offers ${offered.length} connectors: name one (${offered.map((c) => c.name).join(', ')})`);
  }
  const c = offered.find((x) => x.name === name);
  if (!c) throw new ConnectorNotOfferedError(name, offered);
  return c;
}
