// systemd notifications of the kiosk daemon: the datagrams' text, $NOTIFY_SOCKET and
// $WATCHDOG_USEC, the Notifier (STATUS= deduplicated, failures logged once), and one real
// datagram through the addon to an abstract socket read by python3.
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { Notifier, notifyMessage, notifySocket, statusValue, watchdogPingMs } from '../../src/kiosk/notify.js';
import { sockNative } from '../../src/binding/sockcred.js';

describe('notify messages', () => {
  it('formats the variables in systemd\'s order', () => {
    expect(notifyMessage({ ready: true, status: 'wall: sign/primary dmabuf' })).toBe('READY=1\nSTATUS=wall: sign/primary dmabuf');
    expect(notifyMessage({ watchdog: true })).toBe('WATCHDOG=1');
    expect(notifyMessage({ stopping: true, status: 'bye' })).toBe('STOPPING=1\nSTATUS=bye');
    expect(notifyMessage({ reloading: true, monotonicUsec: 123n })).toBe('RELOADING=1\nMONOTONIC_USEC=123');
    expect(() => notifyMessage({})).toThrow(/nothing to send/);
  });
  it('keeps STATUS= on one line', () => {
    expect(statusValue('a\nb\n  c\tX')).toBe('a; b; c X');
    expect(notifyMessage({ status: 'one\nREADY=1' })).toBe('STATUS=one; READY=1');
  });
  it('reads NOTIFY_SOCKET: a path, an abstract name, or nothing', () => {
    expect(notifySocket({})).toBe(null);
    expect(notifySocket({ NOTIFY_SOCKET: '' })).toBe(null);
    expect(notifySocket({ NOTIFY_SOCKET: '/run/systemd/notify' })).toBe('/run/systemd/notify');
    expect(notifySocket({ NOTIFY_SOCKET: '@/org/freedesktop/systemd1/notify/123' })).toBe('@/org/freedesktop/systemd1/notify/123');
    expect(() => notifySocket({ NOTIFY_SOCKET: 'relative' })).toThrow(/NOTIFY_SOCKET="relative" is neither an absolute path nor an abstract socket name/);
  });
  it('pings the watchdog at half of WATCHDOG_USEC, only for this pid', () => {
    expect(watchdogPingMs({})).toBe(null);
    expect(watchdogPingMs({ WATCHDOG_USEC: '10000000' })).toBe(5000);
    expect(watchdogPingMs({ WATCHDOG_USEC: '10000000', WATCHDOG_PID: '7' }, 7)).toBe(5000);
    expect(watchdogPingMs({ WATCHDOG_USEC: '10000000', WATCHDOG_PID: '8' }, 7)).toBe(null);
    expect(() => watchdogPingMs({ WATCHDOG_USEC: '10s' })).toThrow(/WATCHDOG_USEC="10s" is not a positive number of microseconds/);
    expect(() => watchdogPingMs({ WATCHDOG_USEC: '0' })).toThrow(/not a positive/);
  });
});

describe('Notifier', () => {
  it('sends nothing without NOTIFY_SOCKET', () => {
    const sent: string[] = [];
    const n = new Notifier({}, (_s, m) => sent.push(m), () => {});
    n.send({ ready: true });
    n.status('x');
    expect(n.enabled).toBe(false);
    expect(sent).toEqual([]);
  });
  it('sends STATUS= only on a change, and logs a failing socket once', () => {
    const sent: [string, string][] = [];
    const logs: string[] = [];
    let fail = false;
    const n = new Notifier({ NOTIFY_SOCKET: '@n' }, (s, m) => {
      if (fail) throw Object.assign(new Error('sendto on notify socket @n: ECONNREFUSED (Connection refused)'), { code: 'ECONNREFUSED' });
      sent.push([s, m]);
      return m.length;
    }, (_l, msg) => logs.push(msg));
    n.send({ ready: true, status: 'a' });
    n.status('a');
    n.status('b');
    n.status('b');
    expect(sent).toEqual([['@n', 'READY=1\nSTATUS=a'], ['@n', 'STATUS=b']]);
    fail = true;
    n.send({ watchdog: true });
    n.send({ watchdog: true });
    expect(logs).toEqual(['sd_notify to @n failed: sendto on notify socket @n: ECONNREFUSED (Connection refused) (systemd will not see WATCHDOG=1)']);
  });
});

describe('sdNotify through the addon', () => {
  it('delivers a datagram to an abstract socket, and names a missing one', async () => {
    const name = `vgpu-flip-test-${process.pid}`;
    const py = spawn('python3', ['-c', [
      'import socket, sys',
      's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
      `s.bind("\\0${name}")`,
      'print("bound", flush=True)',
      'print(s.recv(1000).decode().replace("\\n", "|"), flush=True)',
    ].join('\n')], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    const done = new Promise<void>((r) => py.on('exit', () => r()));
    await new Promise<void>((r) => py.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('bound')) r();
    }));
    expect(sockNative.sdNotify(`@${name}`, 'READY=1\nSTATUS=up')).toBe(17);
    await done;
    expect(out).toContain('READY=1|STATUS=up');
    expect(() => sockNative.sdNotify(`@${name}-none`, 'READY=1')).toThrow(/^sendto on notify socket @vgpu-flip-test-\d+-none: ECONNREFUSED/);
    expect(() => sockNative.sdNotify('/nonexistent/notify', 'READY=1')).toThrow(/ENOENT/);
    expect(() => sockNative.sdNotify('relative', 'READY=1')).toThrow(/path must be absolute or an abstract name/);
  }, 20_000);
});
