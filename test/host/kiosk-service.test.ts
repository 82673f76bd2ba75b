// KioskService on the host with a fake daemon and fake timers: READY=1 waits for the outputs,
// STATUS= follows changes, WATCHDOG=1 only while the frame loop ticks (a wedged one stops the
// pings and is logged), RELOADING=1/READY=1 around a reload, STOPPING=1 at stop.
import { EventEmitter } from 'eventemitter3';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Output } from '../../src/present/output.js';
import { newEngineStats, newPlaneStats } from '../../src/present/stats.js';
import { KioskService } from '../../src/kiosk/service.js';
import type { KioskDaemon } from '../../src/kiosk/daemon.js';
import { request } from '../../src/kiosk/control-client.js';

function fakeOutput(): Output {
  const e = new EventEmitter() as unknown as Output;
  const layer = { name: 'sign/primary', kind: 'primary', guest: { path: 'dmabuf' }, view: { copyMode: false }, readyNow: false, stats: newPlaneStats() };
  Object.assign(e, {
    stats: newEngineStats(), layers: [layer], running: true, connector: { name: 'Virtual-2' }, display: { dev: { path: '/dev/dri/card1' } },
    opts: { crtcIndex: 0 }, mode: { hdisplay: 1024, vdisplay: 768, vrefresh: 60 }, lastAssigned: null,
  });
  Object.defineProperty(e, 'isPaused', { get: () => false });
  return e;
}

describe('KioskService', () => {
  let dir = '';
  afterEach(() => {
    vi.useRealTimers();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('tells systemd READY, STATUS, WATCHDOG (only while frames go on), RELOADING and STOPPING', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    dir = mkdtempSync(path.join(os.tmpdir(), 'kiosk-svc-'));
    const out = fakeOutput();
    const daemon = {
      config: { outputs: [{ name: 'wall', device: '/dev/dri/card1' }], vms: [], control: { socket: '', group: null }, log: {} },
      presenting: new Map([['wall', out]]),
    } as unknown as KioskDaemon;
    const sent: string[] = [];
    const logs: { msg: string; event?: unknown }[] = [];
    const svc = new KioskService({
      daemon: () => daemon,
      reload: async () => ({ applied: false, message: 'refused', problems: [] }),
      log: (_l, msg, f) => logs.push({ msg, event: f?.['event'] }),
      socket: path.join(dir, 'k.sock'),
      env: { NOTIFY_SOCKET: '@test', WATCHDOG_USEC: '2000000' },
      notifySend: (_s, m) => sent.push(m),
    });
    await svc.start();
    // the output has not assigned its layer yet: no READY
    out.stats.ticks++;
    vi.advanceTimersByTime(1000);
    expect(sent.some((m) => m.startsWith('READY=1'))).toBe(false);
    out.lastAssigned = { layout: {}, paths: { 'sign/primary': 'dmabuf' }, explanation: [], modeset: false, reason: 'start' } as never;
    out.layers[0]!.readyNow = true;
    out.emit('assigned', out.lastAssigned!);
    out.stats.ticks++;
    vi.advanceTimersByTime(1000);
    expect(sent).toContain('READY=1\nSTATUS=wall: sign/primary dmabuf');
    expect(sent.filter((m) => m === 'WATCHDOG=1')).toHaveLength(2); // a ping per second while ticks advance
    // a change on screen: one STATUS=
    out.layers[0]!.readyNow = false;
    out.stats.ticks++;
    vi.advanceTimersByTime(1000);
    expect(sent.at(-1)).toBe('WATCHDOG=1');
    expect(sent).toContain('STATUS=wall: sign/primary not ready');
    // the frame loop wedges: no more pings, logged once
    const pings = sent.filter((m) => m === 'WATCHDOG=1').length;
    vi.advanceTimersByTime(5000);
    expect(sent.filter((m) => m === 'WATCHDOG=1')).toHaveLength(pings);
    expect(logs.filter((l) => l.event === 'watchdog-stuck')).toEqual([{ msg: expect.stringMatching(/frame loop of output wall made no progress: not pinging/), event: 'watchdog-stuck' }]);
    // it moves again: pings again
    out.stats.ticks++;
    vi.advanceTimersByTime(1000);
    expect(sent.filter((m) => m === 'WATCHDOG=1')).toHaveLength(pings + 1);
    // reload over the control socket: RELOADING=1 ... READY=1, and the verdict
    vi.useRealTimers();
    const r = await request(path.join(dir, 'k.sock'), { cmd: 'reload' });
    expect(r).toEqual({ ok: true, cmd: 'reload', applied: false, message: 'refused', problems: [] });
    expect(sent.find((m) => m.startsWith('RELOADING=1'))).toMatch(/^RELOADING=1\nMONOTONIC_USEC=\d+\nSTATUS=reloading the configuration$/);
    expect(sent.at(-1)).toMatch(/^READY=1\nSTATUS=/);
    await svc.stop();
    expect(sent.at(-1)).toBe('STOPPING=1\nSTATUS=restoring the displays and exiting');
  });
});
