// DRM master of a device fd: the test (isMaster, as libdrm's drmIsMaster), and MasterWatch, the
// policy for losing and regaining it. Only the master may commit: when a VT switch, a logind
// session change or another process takes master, our commits fail with EACCES (or EPERM).
// MasterWatch turns that into one 'lost' (pause output), retries SET_MASTER with exponential
// backoff (100 ms .. 5 s by default, never a tight loop) and says 'regained' once (resume).
// MasterWatch is pure (the caller passes the time); MasterRetrier drives it with a timer.
// The kernel sends no event when master is taken, and a path that makes no commits (DRM_FB: the
// kernel flips; a still guest: nothing is due) would never see a refusal, so MasterRetrier can
// also probe (probeEvery): once per interval in which no commit succeeded, isMaster() (one
// AUTH_MAGIC ioctl); 'not master' is a loss like a refused commit.
import { native } from '../binding/index.js';
import { hasCode, isKernelError } from '../binding/errors.js';
import type { NativeAddon } from '../binding/types.js';

/** True when fd is the DRM master of its device (DRM_IOCTL_AUTH_MAGIC with magic 0). */
export function isMaster(fd: number, api: Pick<NativeAddon, 'drmIsMaster'> = native): boolean {
  return api.drmIsMaster(fd);
}

/** Is this (commit) error the kernel refusing a non-master? */
export function isNotMasterError(e: unknown): boolean {
  return hasCode(e, 'EACCES', 'EPERM');
}

export type MasterState = 'master' | 'lost';

export type MasterEvent =
  | { type: 'lost'; at: number; code: string; message: string }
  | { type: 'regained'; at: number; lostForMs: number; attempts: number };

export interface MasterWatchOptions {
  /** first SET_MASTER retry this long after the loss (default 100 ms) */
  minDelayMs?: number;
  /** the delay doubles up to this (default 5000 ms) */
  maxDelayMs?: number;
  /** multiplier per failed attempt (default 2) */
  factor?: number;
}

export class MasterWatch {
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  readonly factor: number;
  private stateValue: MasterState = 'master';
  private lostAt = 0;
  private nextAt = 0;
  private delay = 0;
  private attemptCount = 0;
  private lastErrorCode: string | null = null;

  constructor(opts: MasterWatchOptions = {}) {
    this.minDelayMs = opts.minDelayMs ?? 100;
    this.maxDelayMs = opts.maxDelayMs ?? 5000;
    this.factor = opts.factor ?? 2;
    if (!(this.minDelayMs > 0) || !(this.maxDelayMs >= this.minDelayMs) || !(this.factor >= 1)) {
      throw new RangeError(`MasterWatch: need 0 < minDelayMs <= maxDelayMs and factor >= 1 (got ${this.minDelayMs}, ${this.maxDelayMs}, ${this.factor})`);
    }
  }

  get state(): MasterState {
    return this.stateValue;
  }

  /** SET_MASTER attempts since the loss */
  get attempts(): number {
    return this.attemptCount;
  }

  /** errno name of the last failed SET_MASTER (null before any) */
  get lastSetMasterError(): string | null {
    return this.lastErrorCode;
  }

  /**
   * A commit (or any master-only call) failed. Returns the 'lost' event the first time a
   * not-master error (EACCES / EPERM) is seen; null for other errors and while already lost.
   */
  commitFailed(err: unknown, now: number): MasterEvent | null {
    if (!isNotMasterError(err)) return null;
    return this.lose(now, isKernelError(err) ? err.code : 'EACCES', err instanceof Error ? err.message : String(err));
  }

  /** A probe (isMaster()) said this fd is not master: the 'lost' event, as commitFailed. */
  probeFailed(now: number, message: string): MasterEvent | null {
    return this.lose(now, 'EACCES', message);
  }

  private lose(now: number, code: string, message: string): MasterEvent | null {
    if (this.stateValue === 'lost') return null;
    this.stateValue = 'lost';
    this.lostAt = now;
    this.delay = this.minDelayMs;
    this.nextAt = now + this.delay;
    this.attemptCount = 0;
    this.lastErrorCode = null;
    return { type: 'lost', at: now, code, message };
  }

  /** Something proved we are master again (a commit passed, isMaster() said so). */
  confirmedMaster(now: number): MasterEvent | null {
    if (this.stateValue === 'master') return null;
    this.stateValue = 'master';
    return { type: 'regained', at: now, lostForMs: now - this.lostAt, attempts: this.attemptCount };
  }

  /** ms from now until SET_MASTER should be tried (0: now); null while master. */
  retryDelay(now: number): number | null {
    if (this.stateValue === 'master') return null;
    return Math.max(0, this.nextAt - now);
  }

  /** true when a SET_MASTER attempt is due (never true twice without a backoff in between) */
  dueForRetry(now: number): boolean {
    return this.stateValue === 'lost' && now >= this.nextAt;
  }

  /**
   * The outcome of a SET_MASTER attempt: err null/undefined for success ('regained'), else the
   * error (the next attempt backs off: delay * factor, capped at maxDelayMs).
   */
  setMasterResult(err: unknown, now: number): MasterEvent | null {
    if (this.stateValue === 'master') return null;
    this.attemptCount++;
    if (err === null || err === undefined) return this.confirmedMaster(now);
    this.lastErrorCode = isKernelError(err) ? err.code : String(err);
    this.delay = Math.min(this.maxDelayMs, this.delay * this.factor);
    this.nextAt = now + this.delay;
    return null;
  }

  /**
   * Try SET_MASTER through `setMaster` when due (it throws on failure); returns 'regained' on
   * success, null otherwise (not due, or failed and backed off).
   */
  tryRegain(now: number, setMaster: () => void): MasterEvent | null {
    if (!this.dueForRetry(now)) return null;
    try {
      setMaster();
    } catch (e) {
      return this.setMasterResult(e, now);
    }
    return this.setMasterResult(null, now);
  }
}

/**
 * Drives a MasterWatch for one fd with a timer: call commitFailed() from the commit path; while
 * lost it retries drmSetMaster on the watch's schedule and calls onEvent once per transition.
 * The timer is unref'd (it never keeps the process alive by itself).
 */
export class MasterRetrier {
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private probeTimer: NodeJS.Timeout | null = null;
  /** commits that worked (counted, not timed: no clock read per frame) */
  private commits = 0;
  private commitsAtProbe = 0;

  constructor(
    readonly fd: number,
    readonly watch: MasterWatch,
    private readonly onEvent: (e: MasterEvent) => void,
    private readonly api: Pick<NativeAddon, 'drmSetMaster'> = native,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  /** Report a failed commit; returns true when it was the loss of master (now paused). */
  commitFailed(err: unknown): boolean {
    const ev = this.watch.commitFailed(err, this.clock());
    if (!ev) return false;
    this.onEvent(ev);
    this.schedule();
    return true;
  }

  /** Report a commit that worked (ends a loss if someone handed master back to us). */
  commitSucceeded(): void {
    this.commits++;
    const ev = this.watch.confirmedMaster(this.clock());
    if (!ev) return;
    this.stopTimer();
    this.onEvent(ev);
  }

  /**
   * Every intervalMs in which no commit succeeded (and while master), ask `test` (isMaster() of
   * the fd); false is a loss (onEvent 'lost', then SET_MASTER retries as after a refused commit).
   * A test that throws (the fd is gone) ends the probing. The timer is unref'd.
   */
  probeEvery(intervalMs: number, test: () => boolean): void {
    if (!(intervalMs > 0)) throw new RangeError(`MasterRetrier.probeEvery: interval must be > 0 ms (got ${intervalMs})`);
    this.stopProbe();
    if (this.closed) return;
    this.commitsAtProbe = this.commits;
    this.probeTimer = setInterval(() => this.probe(test, intervalMs), intervalMs);
    this.probeTimer.unref?.();
  }

  private probe(test: () => boolean, intervalMs: number): void {
    const quiet = this.commits === this.commitsAtProbe;
    this.commitsAtProbe = this.commits;
    if (!quiet || this.watch.state !== 'master') return;
    let master: boolean;
    try {
      master = test();
    } catch {
      this.stopProbe();
      return;
    }
    if (master) return;
    const ev = this.watch.probeFailed(this.clock(), `fd ${this.fd} is no longer DRM master (seen by the ${intervalMs} ms probe, DRM_IOCTL_AUTH_MAGIC: EACCES)`);
    if (!ev) return;
    this.onEvent(ev);
    this.schedule();
  }

  private stopProbe(): void {
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.probeTimer = null;
  }

  private schedule(): void {
    this.stopTimer();
    if (this.closed) return;
    const d = this.watch.retryDelay(this.clock());
    if (d === null) return;
    this.timer = setTimeout(() => this.tick(), Math.max(1, Math.ceil(d)));
    this.timer.unref?.();
  }

  private tick(): void {
    this.timer = null;
    if (this.closed) return;
    const ev = this.watch.tryRegain(this.clock(), () => this.api.drmSetMaster(this.fd));
    if (ev) this.onEvent(ev);
    else this.schedule();
  }

  private stopTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Stop retrying. Idempotent. */
  close(): void {
    this.closed = true;
    this.stopTimer();
    this.stopProbe();
  }
}
