// Host tests of the DRM master policy (src/kms/master.ts): MasterWatch on a fake clock, and
// MasterRetrier with fake timers and a fake drmSetMaster. The real ioctls are tested in the VM
// (test/kernel/hotplug.test.ts).
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MasterRetrier, MasterWatch, isMaster, isNotMasterError, type MasterEvent } from '../../src/kms/master.js';

function kerr(code: string, op = 'DRM_IOCTL_MODE_ATOMIC'): Error {
  return Object.assign(new Error(`${op} on /dev/dri/card0: ${code}`), { op, path: '/dev/dri/card0', errno: 13, code });
}

describe('isMaster / isNotMasterError', () => {
  it('asks the addon; EACCES and EPERM are the not-master errors', () => {
    expect(isMaster(7, { drmIsMaster: (fd) => fd === 7 })).toBe(true);
    expect(isMaster(8, { drmIsMaster: (fd) => fd === 7 })).toBe(false);
    expect(isNotMasterError(kerr('EACCES'))).toBe(true);
    expect(isNotMasterError(kerr('EPERM'))).toBe(true);
    expect(isNotMasterError(kerr('EINVAL'))).toBe(false);
    expect(isNotMasterError(new Error('EACCES'))).toBe(false);
  });
});

describe('MasterWatch', () => {
  it('lost once on EACCES, then retries at 100, 200, 400 ... 5000 ms apart, regained on success', () => {
    const w = new MasterWatch();
    expect(w.state).toBe('master');
    expect(w.retryDelay(0)).toBeNull();
    expect(w.commitFailed(kerr('EINVAL'), 0)).toBeNull(); // other errors are not the watch's business
    const lost = w.commitFailed(kerr('EACCES'), 1000);
    expect(lost).toMatchObject({ type: 'lost', at: 1000, code: 'EACCES' });
    expect(w.state).toBe('lost');
    expect(w.commitFailed(kerr('EACCES'), 1001)).toBeNull(); // reported once
    expect(w.commitFailed(kerr('EPERM'), 1002)).toBeNull();

    // the schedule: never due before its time, whatever the caller does
    const tries: number[] = [];
    let now = 1000;
    for (let i = 0; i < 12; i++) {
      expect(w.dueForRetry(now)).toBe(false);
      expect(w.tryRegain(now, () => { throw new Error('not due'); })).toBeNull();
      now += w.retryDelay(now)!;
      tries.push(now);
      expect(w.tryRegain(now, () => { throw kerr('EBUSY', 'DRM_IOCTL_SET_MASTER'); })).toBeNull();
    }
    const gaps = tries.map((t, i) => t - (i === 0 ? 1000 : tries[i - 1]!));
    expect(gaps).toEqual([100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000, 5000, 5000]);
    expect(w.attempts).toBe(12);
    expect(w.lastSetMasterError).toBe('EBUSY');

    now += w.retryDelay(now)!;
    const back = w.tryRegain(now, () => {});
    expect(back).toEqual({ type: 'regained', at: now, lostForMs: now - 1000, attempts: 13 });
    expect(w.state).toBe('master');
    expect(w.tryRegain(now + 10_000, () => { throw new Error('not while master'); })).toBeNull();
  });

  it('a new loss starts the backoff again from the minimum; confirmedMaster ends a loss', () => {
    const w = new MasterWatch({ minDelayMs: 50, maxDelayMs: 120, factor: 3 });
    w.commitFailed(kerr('EACCES'), 0);
    expect(w.setMasterResult(kerr('EBUSY'), 50)).toBeNull();
    expect(w.retryDelay(50)).toBe(120); // 150 capped
    expect(w.confirmedMaster(60)).toMatchObject({ type: 'regained', lostForMs: 60, attempts: 1 });
    expect(w.confirmedMaster(61)).toBeNull();
    w.commitFailed(kerr('EPERM'), 100);
    expect(w.retryDelay(100)).toBe(50);
    expect(w.attempts).toBe(0);
  });

  it('rejects a schedule that could spin', () => {
    expect(() => new MasterWatch({ minDelayMs: 0 })).toThrow(RangeError);
    expect(() => new MasterWatch({ minDelayMs: 10, maxDelayMs: 5 })).toThrow(RangeError);
    expect(() => new MasterWatch({ factor: 0.5 })).toThrow(RangeError);
  });
});

describe('MasterRetrier', () => {
  afterEach(() => { vi.useRealTimers(); });

  it('retries drmSetMaster on the backoff schedule with a timer and reports lost / regained once each', () => {
    vi.useFakeTimers();
    const events: MasterEvent[] = [];
    const calls: number[] = [];
    let free = false;
    const r = new MasterRetrier(5, new MasterWatch(), (e) => events.push(e), {
      drmSetMaster: (fd) => {
        expect(fd).toBe(5);
        calls.push(Date.now());
        if (!free) throw kerr('EBUSY', 'DRM_IOCTL_SET_MASTER');
      },
    }, () => Date.now());
    const t0 = Date.now();
    expect(r.commitFailed(kerr('EINVAL'))).toBe(false);
    expect(r.commitFailed(kerr('EACCES'))).toBe(true);
    expect(r.commitFailed(kerr('EACCES'))).toBe(false);
    vi.advanceTimersByTime(99);
    expect(calls).toEqual([]);
    vi.advanceTimersByTime(1 + 200 + 400); // attempts at 100, 300, 700
    expect(calls.map((t) => t - t0)).toEqual([100, 300, 700]);
    free = true;
    vi.advanceTimersByTime(800);
    expect(calls.map((t) => t - t0)).toEqual([100, 300, 700, 1500]);
    expect(events.map((e) => e.type)).toEqual(['lost', 'regained']);
    vi.advanceTimersByTime(60_000);
    expect(calls).toHaveLength(4); // no timer while master
    r.close();
  });

  it('close() stops the retries; a commit that works ends the loss without SET_MASTER', () => {
    vi.useFakeTimers();
    const events: string[] = [];
    let calls = 0;
    const api = { drmSetMaster: () => { calls++; throw kerr('EBUSY', 'DRM_IOCTL_SET_MASTER'); } };
    const r = new MasterRetrier(5, new MasterWatch(), (e) => events.push(e.type), api, () => Date.now());
    r.commitFailed(kerr('EACCES'));
    r.close();
    vi.advanceTimersByTime(60_000);
    expect(calls).toBe(0);
    const r2 = new MasterRetrier(5, new MasterWatch(), (e) => events.push(e.type), api, () => Date.now());
    r2.commitFailed(kerr('EACCES'));
    r2.commitSucceeded();
    vi.advanceTimersByTime(60_000);
    expect(calls).toBe(0);
    expect(events).toEqual(['lost', 'lost', 'regained']);
  });
});

describe('MasterRetrier.probeEvery (a loss where no commit is made)', () => {
  afterEach(() => { vi.useRealTimers(); });

  it('asks isMaster once per quiet interval, never while commits succeed; "not master" is one loss, then SET_MASTER retries', () => {
    vi.useFakeTimers();
    const events: MasterEvent[] = [];
    let probes = 0;
    let master = true;
    let sets = 0;
    const r = new MasterRetrier(5, new MasterWatch(), (e) => events.push(e), {
      drmSetMaster: () => { sets++; if (!master) throw kerr('EBUSY', 'DRM_IOCTL_SET_MASTER'); },
    }, () => Date.now());
    r.probeEvery(1000, () => { probes++; return master; });
    vi.advanceTimersByTime(3000);
    expect(probes).toBe(3); // quiet: once a second
    for (let i = 0; i < 10; i++) {
      vi.advanceTimersByTime(250);
      r.commitSucceeded(); // frames keep proving master
    }
    expect(probes).toBe(3);
    master = false;
    vi.advanceTimersByTime(2000); // the first interval after the commits still saw a commit
    expect(probes).toBe(4);
    expect(events.map((e) => e.type)).toEqual(['lost']);
    expect(events[0]).toMatchObject({ code: 'EACCES' });
    expect((events[0] as { message: string }).message).toMatch(/no longer DRM master.*probe/);
    vi.advanceTimersByTime(5000);
    expect(probes).toBe(4); // no probing while lost: SET_MASTER is tried instead
    expect(sets).toBeGreaterThan(2);
    master = true;
    vi.advanceTimersByTime(5000);
    expect(events.map((e) => e.type)).toEqual(['lost', 'regained']);
    const p0 = probes;
    vi.advanceTimersByTime(1000);
    expect(probes).toBe(p0 + 1); // probing again
    r.close();
    vi.advanceTimersByTime(10_000);
    expect(probes).toBe(p0 + 1);
  });

  it('a probe that throws (fd gone) ends probing without an event; a bad interval is refused', () => {
    vi.useFakeTimers();
    const events: string[] = [];
    let probes = 0;
    const r = new MasterRetrier(5, new MasterWatch(), (e) => events.push(e.type), { drmSetMaster: () => {} }, () => Date.now());
    expect(() => r.probeEvery(0, () => true)).toThrow(/interval must be > 0/);
    r.probeEvery(1000, () => { probes++; throw kerr('EBADF', 'DRM_IOCTL_AUTH_MAGIC'); });
    vi.advanceTimersByTime(10_000);
    expect(probes).toBe(1);
    expect(events).toEqual([]);
    r.close();
  });
});
