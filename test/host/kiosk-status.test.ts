// `vgpu-flip status` on the host: StatusTracker over fake outputs (events and counters as the
// presentation core has them), the frame-loop progress the watchdog relies on, the table and
// STATUS= line, and the pino-backed log (JSON lines, pretty lines).
import { EventEmitter } from 'eventemitter3';
import { describe, expect, it } from 'vitest';
import type { Output } from '../../src/present/output.js';
import { newEngineStats, newPlaneStats } from '../../src/present/stats.js';
import { StatusTracker, type StatusReport } from '../../src/kiosk/status.js';
import { renderStatus, statusLine } from '../../src/kiosk/status-render.js';
import { createLogger, parseLogFormat, prettyLine } from '../../src/kiosk/logger.js';
import type { KioskConfig } from '../../src/kiosk/model.js';

function fakeOutput(): Output & { hold: boolean } {
  const e = new EventEmitter() as unknown as Output & { hold: boolean };
  const layer = {
    name: 'sign/primary', kind: 'primary', guest: { path: 'dmabuf' }, view: { copyMode: false }, readyNow: true, stats: newPlaneStats(),
  };
  Object.assign(e, {
    stats: newEngineStats(), layers: [layer], running: true, hold: false, connector: { name: 'Virtual-2' }, display: { dev: { path: '/dev/dri/card1' } },
    opts: { crtcIndex: 0 }, mode: { hdisplay: 1024, vdisplay: 768, vrefresh: 60 }, lastAssigned: null,
  });
  Object.defineProperty(e, 'isPaused', { get: () => e.hold });
  return e;
}

const config = {
  version: 1,
  outputs: [{ name: 'wall', device: '/dev/dri/card1' }, { name: 'lobby', device: null }],
  vms: [{ name: 'sign', source: { kind: 'mdev', uuid: 'u' }, layers: [] }, { name: 'spare', source: { kind: 'mdev', uuid: 'v' }, layers: [] }],
  control: { socket: '/run/vgpu-flip/kiosk.sock', group: null },
  log: { format: 'json', level: 'info' },
} as unknown as KioskConfig;

describe('StatusTracker', () => {
  it('reports outputs and layers with fps, frames, copies, latency and the last error', () => {
    let now = 1_000_000;
    const t = new StatusTracker(() => now);
    const out = fakeOutput();
    const presenting = new Map([['wall', out]]);
    t.sample(presenting.values());
    out.stats.frames += 60;
    out.stats.commits += 61;
    out.layers[0]!.stats.flips += 60;
    out.layers[0]!.stats.copies += 2;
    out.layers[0]!.stats.bytesCopied += 2 * 3145728;
    out.emit('frame', { plane: 'primary', layer: 'sign/primary', path: 'copy', sequence: 5, latencyUs: 16000 } as never);
    out.emit('frame', { plane: 'primary', layer: 'sign/primary', path: 'copy', sequence: 6, latencyUs: 18000 } as never);
    out.emit('error', { plane: 'primary', layer: 'sign/primary', stage: 'query', message: 'VFIO_DEVICE_QUERY_GFX_PLANE: EIO', kernel: null, count: 3, fatal: false });
    now += 2000;
    t.sample(presenting.values());
    const r = t.report(config, presenting);
    expect(r.outputs).toHaveLength(2);
    expect(r.outputs[0]).toMatchObject({ name: 'wall', state: 'presenting', connector: 'Virtual-2', device: '/dev/dri/card1', crtc: 0, mode: '1024x768@60', fps: 30, frames: 60, commits: 61 });
    expect(r.outputs[0]!.lastError).toMatchObject({ stage: 'query', message: 'VFIO_DEVICE_QUERY_GFX_PLANE: EIO' });
    expect(r.outputs[0]!.layers[0]).toMatchObject({
      name: 'sign/primary', vm: 'sign', plane: 'primary', path: 'dmabuf', presenting: 'copy', ready: true, fps: 30, frames: 60, copies: 2,
      latencyMs: { last: 18, mean: 17 }, lastError: { stage: 'query' },
    });
    expect(r.outputs[1]).toMatchObject({ name: 'lobby', state: 'no-monitor', layers: [] });
    expect(r.vms).toEqual([{ name: 'sign', source: 'mdev u (owned)', layersOnScreen: 1, waiting: null }, { name: 'spare', source: 'mdev v (owned)', layersOnScreen: 0, waiting: null }]);
    expect(t.report(config, presenting, new Map(), new Map([['spare', 'its vGPU v does not exist (yet)']])).vms[1]!.waiting).toBe('its vGPU v does not exist (yet)');
    out.hold = true;
    expect(t.report(config, presenting).outputs[0]!.state).toBe('paused');
  });

  it('counts a DRM_FB output\'s kernel flips as its frames (it commits nothing per frame)', () => {
    let now = 1_000_000;
    const t = new StatusTracker(() => now);
    const out = fakeOutput();
    const presenting = new Map([['wall', out]]);
    t.sample(presenting.values());
    out.stats.kernelFlips += 120; // the kernel flipped the guest's framebuffers, looks followed
    out.layers[0]!.stats.kernelFlips += 120;
    now += 2000;
    t.sample(presenting.values());
    const r = t.report(config, presenting);
    expect(r.outputs[0]).toMatchObject({ fps: 60, frames: 120, commits: 0 });
    expect(r.outputs[0]!.layers[0]).toMatchObject({ fps: 60, frames: 120 });
  });

  it('says the frame loop progressed only when ticks advanced (paused outputs excused)', () => {
    const t = new StatusTracker();
    const out = fakeOutput();
    const entries = (): [string, Output][] => [['wall', out]];
    t.follow(out);
    expect(t.progressed(entries())).toEqual({ ok: false, stuck: ['wall'] });
    out.stats.ticks += 3;
    expect(t.progressed(entries())).toEqual({ ok: true, stuck: [] });
    expect(t.progressed(entries()).ok).toBe(false); // wedged: no tick since
    out.hold = true;
    expect(t.progressed(entries()).ok).toBe(true);
    out.hold = false;
    out.running = false;
    expect(t.progressed(entries()).ok).toBe(true);
  });
});

describe('status rendering', () => {
  const report: StatusReport = {
    pid: 321,
    uptimeSeconds: 3725,
    outputs: [
      {
        name: 'wall', state: 'presenting', connector: 'HDMI-A-1', device: '/dev/dri/card0', crtc: 1, mode: '1920x1080@60', fps: 59.9, frames: 1000, commits: 1002, errors: 1,
        lastError: { message: 'commit: EBUSY', stage: 'commit', at: '2026-01-01T00:00:00.000Z' },
        layers: [
          { name: 'sign/primary', vm: 'sign', plane: 'primary', path: 'dmabuf', presenting: 'copy', ready: true, fps: 59.9, frames: 998, copies: 3, bytesCopied: 3 * 8294400, imports: 2, errors: 1, notReadyFrames: 0,
            lastError: { message: 'query: EIO', stage: 'query', at: '2026-01-01T00:00:01.000Z' }, latencyMs: { last: 16.7, mean: 16.9 } },
          { name: 'sign/cursor', vm: 'sign', plane: 'cursor', path: 'dmabuf', presenting: null, ready: false, fps: 0, frames: 0, copies: 0, bytesCopied: 0, imports: 0, errors: 0, notReadyFrames: 12, lastError: null, latencyMs: null },
        ],
      },
      { name: 'lobby', state: 'no-monitor', connector: null, device: null, crtc: null, mode: null, fps: 0, frames: 0, commits: 0, errors: 0, lastError: null, layers: [] },
    ],
    vms: [{ name: 'sign', source: 'mdev u (owned)', layersOnScreen: 2 }, { name: 'spare', source: 'libvirt domain spare', layersOnScreen: 0, waiting: 'libvirt domain spare: domain spare is not running' }],
  };

  it('renders a table per output and every last error in full', () => {
    expect(renderStatus(report)).toBe([
      'kiosk daemon pid 321, up 1h 2m',
      '',
      'output wall (HDMI-A-1 on /dev/dri/card0, CRTC 1, 1920x1080@60): presenting: 59.9 fps, 1000 frames, 1002 commits, 1 errors',
      '  VM    PLANE    PATH           READY   FPS  FRAMES  COPIES        ERRORS  LATENCY MS (MEAN)  LAST ERROR',
      '  sign  primary  dmabuf (copy)  yes    59.9     998  3 (23.7 MiB)       1  16.7 (16.9)        query: EIO',
      '  sign  cursor   dmabuf         no      0.0       0  0                  0  -                  -',
      '',
      'output lobby (no device): waiting: no matching monitor connected',
      '',
      'VMs not on screen:',
      '  spare (libvirt domain spare): libvirt domain spare: domain spare is not running',
      '',
      'last errors:',
      '  output wall: 2026-01-01T00:00:00.000Z commit: commit: EBUSY',
      '  sign/primary: 2026-01-01T00:00:01.000Z query: query: EIO',
      '',
    ].join('\n'));
  });

  it('gives systemd a STATUS= line without counters', () => {
    expect(statusLine(report)).toBe('wall: sign/primary copy, sign/cursor not ready; lobby: no-monitor');
  });
});

describe('kiosk log', () => {
  it('writes pino JSON lines with the level as a label, the fields, bigints as strings', () => {
    const lines: string[] = [];
    const { log } = createLogger('json', 'info', (s) => lines.push(s));
    log('info', 'output wall: assigned', { event: 'assigned', output: 'wall', modifier: 72057594037927937n });
    log('debug', 'not shown');
    log('error', 'reload refused', { event: 'reload-refused', line: 6, column: 11 });
    expect(lines).toHaveLength(2);
    const o = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(o).toMatchObject({ level: 'info', msg: 'output wall: assigned', event: 'assigned', output: 'wall', modifier: '72057594037927937', pid: process.pid });
    expect(String(o['time'])).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(JSON.parse(lines[1]!)).toMatchObject({ level: 'error', line: 6, column: 11 });
  });

  it('writes pretty lines for people', () => {
    const lines: string[] = [];
    const { log, setLevel } = createLogger('pretty', 'warn', (s) => lines.push(s));
    log('info', 'hidden');
    setLevel('info');
    log('warn', 'control socket /run/k.sock: refused pid 9 uid 1000', { event: 'control-refused', uid: 1000, pid: 9 });
    expect(lines).toEqual([expect.stringMatching(/^\d\d:\d\d:\d\d\.\d{3} WARN  control socket \/run\/k.sock: refused pid 9 uid 1000 {2}\(event=control-refused uid=1000 pid=9\)\n$/)]);
    expect(prettyLine('not json')).toBe('not json\n');
  });

  it('knows its formats', () => {
    expect(parseLogFormat('text')).toBe('text');
    expect(() => parseLogFormat('xml')).toThrow(/--log-format "xml": expected json .* or pretty/);
  });
});
