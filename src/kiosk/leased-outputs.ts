// The kiosk's leased outputs (`lease:`, issue 12): per configured output a LeaseKeeper
// (lease-keeper.ts) and, while the compositor grants the lease, a Display on the lease fd. The
// lease fd is a DRM master fd that sees only the leased connector, its CRTC and the planes the
// compositor added (wlroots: primary and cursor): the daemon plans on those alone, on CRTC
// index 0, and never opens the card itself. When the compositor ends the lease the fd is closed
// before the output stops, so nothing is restored on objects that are no longer ours.
import { DrmDevice } from '../kms/index.js';
import type { ConnectorSnapshot, CrtcSnapshot } from '../kms/types.js';
import { Display } from '../present/display.js';
import type { HeldLease } from '../wayland/leases.js';
import type { LogFn } from './daemon.js';
import { LeaseKeeper, type LeaseStatus } from './lease-keeper.js';
import type { OutputConfig } from './model.js';
import { sameValue } from './diff.js';

export interface LeasedDisplay {
  display: Display;
  connector: ConnectorSnapshot;
  crtc: CrtcSnapshot;
  held: HeldLease;
}

interface Entry {
  keeper: LeaseKeeper;
  /** what the keeper was made for (a reload that changes it makes a new keeper) */
  spec: { lease: OutputConfig['lease']; match: OutputConfig['match'] };
  shown: LeasedDisplay | null;
}

export class LeasedOutputs {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly log: LogFn,
    /** a lease was granted (`display()` has it now) or ended (its fd is closed already) */
    private readonly changed: (output: string, what: 'granted' | 'ended') => void,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  /** The lease's display when it is granted, else null (the keeper is started on the first ask). */
  display(o: OutputConfig): LeasedDisplay | null {
    const spec = { lease: o.lease, match: o.match };
    let e = this.entries.get(o.name);
    if (e && !sameValue(e.spec, spec)) {
      this.release(o.name);
      e = undefined;
    }
    if (!e) {
      const connector = o.match.kind === 'connector' ? o.match.name : undefined;
      const entry: Entry = { spec, shown: null, keeper: null as unknown as LeaseKeeper };
      entry.keeper = new LeaseKeeper(
        { output: o.name, connector, wayland: o.lease?.wayland ?? null },
        { granted: (h) => this.granted(o.name, entry, h), ended: (why) => this.ended(o.name, entry, why) },
        this.log,
        this.env,
      );
      this.entries.set(o.name, entry);
      this.log('info', `output ${o.name}: asking the Wayland compositor for the lease of ${connector ?? 'the connector it offers'}`, { output: o.name, event: 'lease-request' });
      entry.keeper.start();
      return null;
    }
    return e.shown;
  }

  private granted(name: string, e: Entry, held: HeldLease): void {
    let dev: DrmDevice;
    try {
      dev = DrmDevice.fromFd(held.fd, held.drmNode ?? `lease of ${held.connector.name}`, { writeback: false, lessee: true });
    } catch (err) {
      const why = `the lease of ${held.connector.name} is not a usable DRM device: ${(err as Error).message}`;
      this.log('error', `output ${name}: ${why}; handed back, asked for again with backoff`, { output: name, event: 'lease-error' });
      e.keeper.refuse(held, why); // fromFd closed the fd
      return;
    }
    const display = new Display(dev);
    const s = display.snapshot;
    const connector = s.connectors.find((c) => c.id === held.connector.connectorId) ?? s.connectors[0];
    const crtc = s.crtcs[0];
    if (!connector || !crtc) {
      const why = `the lease of ${held.connector.name} holds ${connector ? 'no CRTC' : 'no connector'}: nothing can be shown on it`;
      this.log('error', `output ${name}: ${why}; handed back, asked for again with backoff`, { output: name, event: 'lease-error' });
      dev.close();
      e.keeper.refuse(held, why);
      return;
    }
    display.watchDevice(); // the compositor switching away (its master dropped) pauses the output
    e.shown = { display, connector, crtc, held };
    this.log(
      'info',
      `output ${name}: leased ${connector.name} from the compositor at ${held.socket}: ${held.drmNode ?? '?'} (${held.driver ?? dev.version.name}), ` +
        `CRTC ${crtc.id}, planes ${s.planes.map((p) => `${p.id} ${p.type}`).join(', ') || 'none'}`,
      { output: name, event: 'lease-granted', connector: connector.name, device: held.drmNode },
    );
    this.changed(name, 'granted');
  }

  private ended(name: string, e: Entry, why: string): void {
    const s = e.shown;
    e.shown = null;
    if (s) this.closeDisplay(s);
    this.log('warn', `output ${name}: ${why}: the output stops (nothing restored: the objects are the compositor's again); the lease is requested again when it is offered`, { output: name, event: 'lease-ended' });
    this.changed(name, 'ended');
  }

  private closeDisplay(s: LeasedDisplay): void {
    s.display.watch?.close();
    s.display.watch = null;
    if (!s.display.dev.closed) s.display.dev.close();
  }

  /** what each leased output's keeper is doing (status) */
  statuses(): Map<string, LeaseStatus> {
    return new Map([...this.entries].map(([n, e]) => [n, e.keeper.status]));
  }

  /** the displays on granted leases (to stop their outputs, which restores the leased CRTC) */
  displays(): Display[] {
    return [...this.entries.values()].flatMap((e) => (e.shown ? [e.shown.display] : []));
  }

  /** Hand one output's lease back (its output stopped first) and forget it. */
  release(name: string): void {
    const e = this.entries.get(name);
    if (!e) return;
    this.entries.delete(name);
    if (e.shown) this.closeDisplay(e.shown);
    e.shown = null;
    e.keeper.stop();
  }

  /** Hand every lease back (outputs stopped first). */
  releaseAll(): void {
    for (const n of [...this.entries.keys()]) this.release(n);
  }

  /** outputs whose configuration no longer asks for their lease */
  prune(outputs: readonly OutputConfig[]): void {
    for (const n of [...this.entries.keys()]) if (!outputs.some((o) => o.name === n && o.lease)) this.release(n);
  }
}
