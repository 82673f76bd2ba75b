// What happens to a display from outside: DRM master lost and regained (a VT switch, logind,
// another process), and connectors coming and going (kernel uevents, read by the addon from
// the netlink socket: the event loop wakes only on a change).
//
// Rules:
//  - a commit refused with EACCES/EPERM pauses EVERY output of the display (one 'master' event),
//    then SET_MASTER is retried with backoff (100 ms .. 5 s; src/kms/master.ts). Regained: the
//    device is read again, every output is planned again with a modeset (the other master may
//    have changed anything) and resumes.
//  - a uevent of the card: the device is read again and compared (src/kms/topology.ts); only the
//    outputs whose connector changed are touched: disconnected/removed -> paused (layers kept);
//    connected again, new modes or link-status BAD -> the mode chosen again, planned again with a
//    modeset, resumed. An overrun (events lost) compares everything.
import { EventEmitter } from 'eventemitter3';
import { MasterRetrier, MasterWatch, type MasterEvent } from '../kms/master.js';
import { diffTopology, describeConnectorChange, type ConnectorChange, type TopologyDiff } from '../kms/topology.js';
import { UeventMonitor, type DrmUeventNotice } from '../kms/uevents.js';
import type { Display } from './display.js';
import type { Output } from './output.js';

/** how often master is checked while no commit proves it */
const MASTER_PROBE_MS = 1000;

export interface OutputChangeEvent {
  crtcIndex: number;
  connector: string;
  /** what the output does about it */
  action: 'paused' | 'replanned';
  why: string;
}

export interface DisplayWatchEvents {
  master: (e: MasterEvent) => void;
  topology: (d: TopologyDiff) => void;
  output: (e: OutputChangeEvent) => void;
  error: (e: Error) => void;
}

export class DisplayWatch extends EventEmitter<DisplayWatchEvents> {
  private readonly master: MasterRetrier;
  private uevents: UeventMonitor | null = null;
  /** outputs paused because master was lost (resumed when it is back) */
  private pausedForMaster = new Set<Output>();
  /** outputs paused because their connector went away */
  private readonly unplugged = new Set<Output>();

  constructor(private readonly display: Display) {
    super();
    // a lessee cannot SET_MASTER: it is master again when its lessor (the compositor) is (setMaster() checks)
    const regain = display.dev.lessee ? { drmSetMaster: () => display.dev.setMaster() } : display.api;
    this.master = new MasterRetrier(display.dev.fd, new MasterWatch(), (e) => this.onMaster(e), regain);
    this.master.probeEvery(MASTER_PROBE_MS, () => display.api.drmIsMaster(display.dev.fd));
  }

  /** Start reading the card's uevents (hotplug). */
  watchHotplug(): void {
    if (this.uevents) return;
    this.uevents = UeventMonitor.open(this.display.dev.path, { onEvent: (n) => this.onUevent(n), onError: (e) => this.emit('error', e) }, this.display.api);
  }

  get masterState(): 'master' | 'lost' {
    return this.master.watch.state;
  }

  /** A commit failed: true when it was the loss of master (every output is now paused). */
  commitFailed(err: unknown): boolean {
    return this.master.commitFailed(err);
  }

  commitSucceeded(): void {
    this.master.commitSucceeded();
  }

  private onMaster(e: MasterEvent): void {
    this.emit('master', e);
    if (e.type === 'lost') {
      for (const o of this.display.outputs) {
        if (!o.running) continue;
        this.pausedForMaster.add(o);
        void o.pause();
      }
      return;
    }
    // regained: read the device again, plan every output again with a modeset
    this.display.refresh();
    for (const o of this.pausedForMaster) {
      if (!this.unplugged.has(o)) o.replanSoon('DRM master regained', true);
      o.resume();
    }
    this.pausedForMaster.clear();
  }

  private onUevent(n: DrmUeventNotice): void {
    // any event of the card (HOTPLUG=1 from a driver, a bare 'change', an overrun) means: read
    // the device again and compare; nothing changed -> nothing done
    const old = this.display.snapshot;
    let diff: TopologyDiff;
    try {
      diff = diffTopology(old, this.display.refresh());
    } catch (e) {
      this.emit('error', e instanceof Error ? e : new Error(String(e)));
      return;
    }
    if (!diff.changed) return;
    this.emit('topology', diff);
    for (const o of this.display.outputs) {
      const c = diff.connectors.find((x) => (o.connector && x.connectorId === o.connector.id) || (x.crtcId !== null && x.crtcId === o.crtcId));
      if (c) this.applyToOutput(o, c);
    }
  }

  private applyToOutput(o: Output, c: ConnectorChange): void {
    const why = describeConnectorChange(c);
    if (c.kinds.includes('disconnected') || c.kinds.includes('removed')) {
      if (this.unplugged.has(o)) return;
      this.unplugged.add(o);
      void o.pause();
      this.emit('output', { crtcIndex: o.opts.crtcIndex, connector: c.name, action: 'paused', why });
      return;
    }
    if (c.kinds.includes('connected') || c.kinds.includes('modes') || c.kinds.includes('link-status-bad')) {
      const wasUnplugged = this.unplugged.delete(o);
      o.replanSoon(`${c.name}: ${why}`, true);
      if (wasUnplugged && !this.pausedForMaster.has(o)) o.resume();
      this.emit('output', { crtcIndex: o.opts.crtcIndex, connector: c.name, action: 'replanned', why });
    }
  }

  close(): void {
    this.master.close();
    this.uevents?.close();
    this.uevents = null;
  }
}
