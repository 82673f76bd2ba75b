// Kernel uevents of one DRM card: hotplug, connector property changes, lease changes.
// The addon's netlink socket (ueventOpen/ueventRead) is watched with the same uv_poll poller
// as DRM events, so the event loop wakes only when the kernel sends something; the monitor
// keeps the card's own events (SUBSYSTEM=drm, DEVNAME=dri/cardN) and reports a queue overrun
// (ENOBUFS: the kernel dropped messages) as one 'overrun' notice: the caller must rescan.
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { native } from '../binding/index.js';
import type { NativeAddon, Uevent } from '../binding/types.js';

/** One uevent of the watched card. */
export interface DrmUevent {
  kind: 'event';
  /** 'change' for hotplug and property events; 'add' / 'remove' when the card comes and goes */
  action: string;
  /** e.g. '/devices/platform/vkms/drm/card0' */
  devpath: string;
  /** 'card0' */
  card: string;
  /** the kernel's SEQNUM (null when missing) */
  seqnum: number | null;
  /** HOTPLUG=1: connectors may have changed (re-probe / snapshot) */
  hotplug: boolean;
  /** CONNECTOR=<id>: the one connector concerned (null: any) */
  connectorId: number | null;
  /** PROPERTY=<id>: the connector property that changed (e.g. link-status, content protection) */
  propertyId: number | null;
  /** LEASE=1: a DRM lease was created or revoked */
  lease: boolean;
  /** the whole environment as the kernel sent it */
  props: Record<string, string>;
}

/** The socket queue overflowed: events were lost. State derived from events must be rebuilt. */
export interface UeventOverrun {
  kind: 'overrun';
  card: string;
  message: 'missed events, rescan';
}

export type DrmUeventNotice = DrmUevent | UeventOverrun;

export type UeventApi = Pick<NativeAddon, 'ueventOpen' | 'ueventRead' | 'pollReadable' | 'close'>;

export interface UeventMonitorHandlers {
  /** each event of the card, and each overrun (at most one per wakeup), in kernel order */
  onEvent: (e: DrmUeventNotice) => void;
  /**
   * reading the socket failed (the monitor is closed). Without a handler the error is thrown
   * from the poller callback (process 'uncaughtException').
   */
  onError?: (err: Error) => void;
}

/** 'card0' for '/dev/dri/card0', 'card0' itself, or a symlink to it (/dev/dri/by-path/...). */
export function cardNameOf(card: string): string {
  let p = card;
  if (p.includes('/')) {
    try {
      p = realpathSync(p);
    } catch {
      /* a path that does not exist (yet): take its name as given */
    }
  }
  const name = path.basename(p);
  if (!/^card\d+$/.test(name)) throw new Error(`uevent monitor: ${card} is not a DRM card node (/dev/dri/cardN)`);
  return name;
}

function intOrNull(v: string | undefined): number | null {
  if (v === undefined || !/^\d+$/.test(v)) return null;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : null;
}

/** The card's events among raw uevents (pure): SUBSYSTEM=drm and DEVNAME=dri/<card>. */
export function filterDrmUevents(events: readonly Uevent[], card: string): DrmUeventNotice[] {
  const out: DrmUeventNotice[] = [];
  let overrun = false;
  for (const e of events) {
    if (e.action === 'overrun') {
      if (!overrun) out.push({ kind: 'overrun', card, message: 'missed events, rescan' });
      overrun = true;
      continue;
    }
    const p = e.props;
    if (p['SUBSYSTEM'] !== 'drm' || p['DEVNAME'] !== `dri/${card}`) continue;
    out.push({
      kind: 'event',
      action: e.action,
      devpath: e.devpath,
      card,
      seqnum: intOrNull(p['SEQNUM']),
      hotplug: p['HOTPLUG'] === '1',
      connectorId: intOrNull(p['CONNECTOR']),
      propertyId: intOrNull(p['PROPERTY']),
      lease: p['LEASE'] === '1',
      props: { ...p },
    });
  }
  return out;
}

/**
 * Watches the kernel uevents of one DRM card. open() creates the socket and starts watching
 * at once: events sent before open() are not seen, so take the first snapshot after it.
 */
export class UeventMonitor {
  private fdValue: number;
  private poller: { stop(): void } | null = null;
  private wakeupCount = 0;
  private eventCount = 0;

  private constructor(
    /** 'card0' */
    readonly card: string,
    fd: number,
    private readonly handlers: UeventMonitorHandlers,
    private readonly api: UeventApi,
  ) {
    this.fdValue = fd;
  }

  static open(card: string, handlers: UeventMonitorHandlers, api: UeventApi = native): UeventMonitor {
    const name = cardNameOf(card);
    const fd = api.ueventOpen();
    const m = new UeventMonitor(name, fd, handlers, api);
    try {
      m.poller = api.pollReadable(fd, () => m.onReadable());
    } catch (e) {
      api.close(fd);
      throw e;
    }
    return m;
  }

  get closed(): boolean {
    return this.fdValue < 0;
  }

  /** how many times the event loop woke for the socket (for diagnostics and tests) */
  get wakeups(): number {
    return this.wakeupCount;
  }

  /** how many notices were delivered */
  get delivered(): number {
    return this.eventCount;
  }

  /** Read what is pending now (without the callback); [] when closed. The poller does the same. */
  drain(): DrmUeventNotice[] {
    if (this.fdValue < 0) return [];
    return filterDrmUevents(this.api.ueventRead(this.fdValue), this.card);
  }

  private onReadable(): void {
    if (this.fdValue < 0) return;
    this.wakeupCount++;
    let notices: DrmUeventNotice[];
    try {
      notices = this.drain();
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      this.close();
      if (this.handlers.onError) {
        this.handlers.onError(err);
        return;
      }
      throw err;
    }
    for (const n of notices) {
      if (this.fdValue < 0) return; // closed from a callback
      this.eventCount++;
      this.handlers.onEvent(n);
    }
  }

  /** Stop watching and close the socket. Idempotent. */
  close(): void {
    if (this.fdValue < 0) return;
    const fd = this.fdValue;
    this.fdValue = -1;
    this.poller?.stop();
    this.poller = null;
    this.api.close(fd);
  }
}
