// A kiosk output leased from the Wayland compositor (`lease:` in the configuration, issue 12):
// the keeper gets the lease of its connector and keeps getting it back, for a daemon left
// running for months. While it has no lease it holds one connection to the compositor with
// its lease devices bound and waits for their offer to change (`done` events): no polling
// while the compositor runs. When the compositor is not there (no socket, refused, it exited),
// offers no lease manager, or refuses the lease, it tries again with backoff (2 s doubling to
// 30 s). Each state is said once. The daemon is told when a lease is granted (it presents on
// the lease fd, which it owns) and when the compositor ends it; stop() hands it back.
import { ConnectorNotOfferedError, WaylandError } from '../wayland/errors.js';
import { WaylandClient } from '../wayland/client.js';
import { chooseConnector, openLeaseDevices, type DrmLeaseDevice } from '../wayland/drm-lease.js';
import { closeQuietly, describeDrmFd, holdLease, type HeldLease } from '../wayland/leases.js';
import { resolveSocketPath } from '../wayland/transport.js';
import type { LogFn } from './daemon.js';

export interface LeaseWant {
  /** the configured output */
  output: string;
  /** the connector to lease; undefined: the only one offered */
  connector: string | undefined;
  /** the compositor's socket (a name in $XDG_RUNTIME_DIR or a path); null: $WAYLAND_DISPLAY */
  wayland: string | null;
}

export interface LeaseStatus {
  state: 'held' | 'waiting';
  /** the leased connector, or what the keeper waits for */
  detail: string;
  socket: string | null;
}

export interface LeaseKeeperHooks {
  /** a lease was granted: the daemon presents on held.fd (and closes it) */
  granted(held: HeldLease): void;
  /** the compositor ended the granted lease (the fd's objects are no longer ours) */
  ended(reason: string): void;
}

const MIN_DELAY_MS = 2000;
const MAX_DELAY_MS = 30_000;
/** how long a new connection may take to deliver the lease devices' offer */
const OFFER_TIMEOUT_MS = 30_000;

export class LeaseKeeper {
  private client: WaylandClient | null = null;
  /** a connection whose offer has not arrived yet */
  private connecting: WaylandClient | null = null;
  private devices: DrmLeaseDevice[] = [];
  /** each lease device's DRM node and driver, read from its drm_fd at connect */
  private nodes = new Map<DrmLeaseDevice, { drmNode: string | null; driver: string | null }>();
  private socket: string | null = null;
  private held: HeldLease | null = null;
  private timer: NodeJS.Timeout | null = null;
  private delayMs = MIN_DELAY_MS;
  private said = '';
  private busy = false;
  /** an offer changed while an attempt was under way: look again after it */
  private again = false;
  private stopped = false;
  private grantedAt = 0;
  status: LeaseStatus = { state: 'waiting', detail: 'starting', socket: null };

  constructor(
    readonly want: LeaseWant,
    private readonly hooks: LeaseKeeperHooks,
    private readonly log: LogFn,
    private readonly env: NodeJS.ProcessEnv = process.env,
    /** the connection (tests pass a fake compositor) */
    private readonly open: (env: NodeJS.ProcessEnv) => Promise<{ client: WaylandClient; socket: string }> = async (e) => {
      const socket = resolveSocketPath(e);
      return { client: await WaylandClient.connect(e), socket };
    },
  ) {}

  /** the environment libwayland would see, with the configured socket */
  private clientEnv(): NodeJS.ProcessEnv {
    return this.want.wayland === null ? this.env : { ...this.env, WAYLAND_DISPLAY: this.want.wayland };
  }

  start(): void {
    void this.attempt();
  }

  /** connect when not connected, then lease the connector when it is offered */
  private async attempt(): Promise<void> {
    if (this.stopped || this.held) return;
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    try {
      if (!this.client) await this.connect();
      if (this.stopped) return;
      const c = chooseConnector(this.devices, this.want.connector);
      const info = this.nodes.get(c.device) ?? { drmNode: null, driver: null };
      const held = await holdLease(c, info, this.socket!, false);
      if (this.stopped) {
        closeQuietly(held.fd);
        held.release();
        return;
      }
      this.held = held;
      this.grantedAt = Date.now();
      this.said = '';
      this.status = { state: 'held', detail: `${held.connector.name} (${held.drmNode ?? '?'})`, socket: held.socket };
      void held.ended.then((e) => this.leaseEnded(held, e));
      this.hooks.granted(held);
    } catch (e) {
      this.failed(e);
    } finally {
      this.busy = false;
    }
    if (this.again && !this.held && !this.stopped) {
      this.again = false;
      void this.attempt();
    }
  }

  private async connect(): Promise<void> {
    const { client, socket } = await this.open(this.clientEnv());
    this.socket = socket;
    this.connecting = client;
    let timer: NodeJS.Timeout | undefined;
    try {
      // a compositor that never finishes its offer (e.g. it cannot open its own DRM node again
      // for the drm_fd) must not stall the keeper: closed and tried again with backoff
      const silent = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new WaylandError('no-offer', `the compositor at ${socket} sent no complete lease offer within ${OFFER_TIMEOUT_MS / 1000} s`)), OFFER_TIMEOUT_MS);
      });
      this.devices = await Promise.race([openLeaseDevices(client), silent]);
    } catch (e) {
      client.close();
      throw e;
    } finally {
      clearTimeout(timer);
      this.connecting = null;
    }
    this.client = client;
    // the compositor's own DRM fds: only their node and driver are kept (we present on the lease fd)
    this.nodes = new Map(this.devices.map((d) => [d, describeDrmFd(d.drmFd)]));
    for (const d of this.devices) {
      closeQuietly(d.drmFd);
      d.drmFd = undefined;
      d.onChange(() => {
        if (!this.held) void this.attempt();
      });
    }
    client.onFail((e) => this.disconnected(client, e));
  }

  /** not leased this time: say why once; wait for the offer to change, or try again later */
  private failed(e: unknown): void {
    if (this.stopped) return;
    const msg = e instanceof Error ? e.message : String(e);
    const offerWait = e instanceof ConnectorNotOfferedError || (e instanceof WaylandError && e.code === 'connector-ambiguous');
    if (offerWait && this.client && !this.client.error) {
      // the compositor runs: its next offer tells us when to look again (no timer)
      this.status = { state: 'waiting', detail: `${msg.split('. ')[0]}; waiting for the compositor to offer it`, socket: this.socket };
      this.say('warn', `output ${this.want.output}: ${msg}; the lease is requested when the compositor offers ${this.want.connector ?? 'a connector'}`);
      return;
    }
    this.closeClient();
    const again = Math.round(this.delayMs / 1000);
    this.status = { state: 'waiting', detail: `${msg}; trying again with backoff`, socket: this.socket };
    this.say('warn', `output ${this.want.output}: no lease: ${msg}; trying again with backoff (every ${again} s, up to ${MAX_DELAY_MS / 1000} s)`);
    this.retryLater();
  }

  private say(level: 'warn' | 'info', msg: string): void {
    // said once per state (the backoff interval is not part of the state)
    const key = msg.replace(/ \(every \d+ s, up to \d+ s\)$/, '');
    if (key === this.said) return;
    this.said = key;
    this.log(level, msg, { output: this.want.output, event: 'lease-waiting' });
  }

  private retryLater(): void {
    if (this.stopped || this.timer) return;
    const d = this.delayMs;
    this.delayMs = Math.min(MAX_DELAY_MS, this.delayMs * 2);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.attempt();
    }, d);
  }

  private leaseEnded(held: HeldLease, e: WaylandError): void {
    if (this.held !== held) return;
    this.held = null;
    this.status = { state: 'waiting', detail: `${e.message}; waiting for the compositor to offer it again`, socket: this.socket };
    this.said = '';
    held.lease.destroy();
    this.hooks.ended(e.message);
    // a lease that lasted is asked for again soon; one ended at once (a compositor granting and
    // revoking) backs off further each time. Connected, the offer changing asks again earlier.
    if (Date.now() - this.grantedAt > 60_000) this.delayMs = MIN_DELAY_MS;
    this.retryLater();
  }

  /** The daemon cannot use the granted lease (closed its fd): hand it back, try again with backoff. */
  refuse(held: HeldLease, why: string): void {
    if (this.held !== held) return;
    this.held = null;
    held.release();
    this.status = { state: 'waiting', detail: `${why}; trying again with backoff`, socket: this.socket };
    this.retryLater();
  }

  private disconnected(client: WaylandClient, e: Error): void {
    if (this.client !== client) return;
    this.client = null;
    this.devices = [];
    if (this.stopped || this.held) return; // a held lease ends through its `ended` (disconnected)
    this.status = { state: 'waiting', detail: `${e.message}; trying again with backoff`, socket: this.socket };
    this.say('warn', `output ${this.want.output}: the connection to the compositor closed (${e.message}); trying again with backoff`);
    this.retryLater();
  }

  private closeClient(): void {
    const c = this.client;
    this.client = null;
    this.devices = [];
    c?.close();
  }

  /** hand the lease back (close its fd first: the daemon does) and disconnect. Idempotent. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const held = this.held;
    this.held = null;
    held?.release();
    this.connecting?.close();
    this.closeClient();
  }
}
