// DrmEventQueue: the DRM events of one device fd (page flip, vblank, CRTC sequence). It polls
// the fd (uv_poll) only while someone listens or waits, dispatches every event to listeners and
// resolves the waiter whose user data the event carries (a commit with PAGE_FLIP_EVENT).
import { EventEmitter } from 'eventemitter3';
import { native } from '../binding/index.js';
import type { DrmEvent } from '../binding/types.js';
import { DRM_MODE_PAGE_FLIP_EVENT } from '../binding/constants.js';
import type { AtomicRequest } from './atomic.js';

export interface DrmDeviceEvents {
  /** every event read from the fd */
  event: (e: DrmEvent) => void;
  flip: (e: DrmEvent) => void;
  vblank: (e: DrmEvent) => void;
  sequence: (e: DrmEvent) => void;
  /** reading events failed (the poller is stopped) */
  error: (err: Error) => void;
}

interface Waiter {
  resolve: (e: DrmEvent) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

export class DrmEventQueue {
  readonly events = new EventEmitter<DrmDeviceEvents>();
  private poller: { stop(): void } | null = null;
  private eventUsers = 0;
  private readonly waiters = new Map<bigint, Waiter>();
  private nextUser = 1n;

  /** fd() returns the device fd, or a negative number once the device is closed. */
  constructor(
    private readonly path: string,
    private readonly fd: () => number,
  ) {}

  /** A fresh user-data value for correlating a commit with its event. */
  allocUserData(): bigint {
    return this.nextUser++;
  }

  /**
   * Listen to DRM events ('flip', 'vblank', 'sequence' or 'event' for all). Starts watching the fd
   * (uv_poll) while at least one listener or waiter exists. Returns an unsubscribe function.
   */
  onEvent(type: 'event' | 'flip' | 'vblank' | 'sequence', fn: (e: DrmEvent) => void): () => void {
    this.events.on(type, fn);
    this.retainPoller();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.events.off(type, fn);
      this.releasePoller();
    };
  }

  /**
   * Commit with PAGE_FLIP_EVENT and wait for the event carrying this commit's user data.
   * Resolves with the first matching event (one per CRTC in the commit; later ones only go to
   * listeners). Rejects if the commit fails, on timeout, or when the device closes.
   */
  commitAndWait(req: AtomicRequest, flags = 0, timeoutMs = 1000): Promise<DrmEvent> {
    const userData = this.allocUserData();
    const p = this.waitForUserData(userData, timeoutMs);
    try {
      const fences = req.commit(flags | DRM_MODE_PAGE_FLIP_EVENT, userData);
      for (const f of fences) if (f >= 0) native.close(f);
    } catch (e) {
      this.cancelWaiter(userData, e instanceof Error ? e : new Error(String(e)));
      p.catch(() => undefined);
      throw e;
    }
    return p;
  }

  /** Wait for an event with this user data (set up before committing). */
  waitForUserData(userData: bigint, timeoutMs = 1000): Promise<DrmEvent> {
    return new Promise<DrmEvent>((resolve, reject) => {
      const w: Waiter = { resolve, reject, timer: undefined };
      if (timeoutMs >= 0 && Number.isFinite(timeoutMs)) {
        w.timer = setTimeout(() => {
          this.cancelWaiter(
            userData,
            new Error(`${this.path}: no DRM event for user data ${userData} within ${timeoutMs} ms (is the CRTC active?)`),
          );
        }, timeoutMs);
      }
      this.waiters.set(userData, w);
      this.retainPoller();
    });
  }

  private cancelWaiter(userData: bigint, err: Error): void {
    const w = this.waiters.get(userData);
    if (!w) return;
    this.waiters.delete(userData);
    if (w.timer) clearTimeout(w.timer);
    this.releasePoller();
    w.reject(err);
  }

  /** Read and dispatch pending events now (non-blocking); returns them. */
  dispatchEvents(): DrmEvent[] {
    const evs = native.drmReadEvents(this.fd());
    for (const e of evs) {
      const w = this.waiters.get(e.userData);
      if (w) {
        this.waiters.delete(e.userData);
        if (w.timer) clearTimeout(w.timer);
        this.releasePoller();
        w.resolve(e);
      }
      this.events.emit('event', e);
      this.events.emit(e.type, e);
    }
    return evs;
  }

  private retainPoller(): void {
    this.eventUsers++;
    if (this.poller || this.fd() < 0) return;
    this.poller = native.pollReadable(this.fd(), () => {
      if (this.fd() < 0) return;
      try {
        this.dispatchEvents();
      } catch (e) {
        const err = e instanceof Error ? e : new Error(String(e));
        this.stopPoller();
        if (this.events.listenerCount('error') > 0) this.events.emit('error', err);
        for (const ud of [...this.waiters.keys()]) this.cancelWaiter(ud, err);
      }
    });
  }

  private releasePoller(): void {
    this.eventUsers = Math.max(0, this.eventUsers - 1);
    if (this.eventUsers === 0) this.stopPoller();
  }

  private stopPoller(): void {
    this.poller?.stop();
    this.poller = null;
  }

  /** Reject every wait, stop polling, drop listeners (the device is closing). */
  close(): void {
    for (const ud of [...this.waiters.keys()]) this.cancelWaiter(ud, new Error(`${this.path}: device closed`));
    this.stopPoller();
    this.events.removeAllListeners();
    this.eventUsers = 0;
  }
}
