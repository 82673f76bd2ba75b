// `vgpu-flip status | screenshot | reload` against a ControlServer with canned answers: what they
// print, what they write, their exit statuses.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlServer } from '../../src/kiosk/control-server.js';
import type { Response } from '../../src/kiosk/control-protocol.js';
import { CONTROL_EXIT, runReload, runScreenshot, runStatus } from '../../src/cli/commands/control.js';
import { encodePng } from '../../src/capture/png.js';
import type { StatusReport } from '../../src/kiosk/status.js';

const report: StatusReport = {
  pid: 7, uptimeSeconds: 5,
  outputs: [{ name: 'wall', state: 'presenting', connector: 'Virtual-2', device: '/dev/dri/card1', crtc: 0, mode: '1024x768@60', fps: 60, frames: 300, commits: 301, errors: 0, lastError: null,
    layers: [{ name: 'sign/primary', vm: 'sign', plane: 'primary', path: 'dmabuf', presenting: 'dmabuf', ready: true, fps: 60, frames: 300, copies: 0, bytesCopied: 0, imports: 2, errors: 0, notReadyFrames: 0, lastError: null, latencyMs: { last: 16.6, mean: 16.7 } }] }],
  vms: [{ name: 'sign', source: 'mdev u (owned)', layersOnScreen: 1, waiting: null }],
};
const png = encodePng(2, 1, Buffer.from([255, 0, 0, 0, 255, 0]));

describe('control CLI commands', () => {
  let dir = '';
  let socket = '';
  let srv: ControlServer;
  let reloadAnswer: Response;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'kiosk-cli-'));
    socket = path.join(dir, 'k.sock');
    srv = new ControlServer({
      socket, gid: null, log: () => {},
      handle: async (r) => {
        if (r.cmd === 'status') return { ok: true, cmd: 'status', status: report };
        if (r.cmd === 'reload') return reloadAnswer;
        if (r.output === 'lobby') return { ok: false, error: 'output lobby is not presenting (no matching monitor connected)' };
        if (r.method === 'writeback') return { ok: true, cmd: 'screenshot', output: 'wall', method: 'writeback-alone', notes: [], width: 2, height: 1, png: png.toString('base64') };
        return { ok: true, cmd: 'screenshot', output: 'wall', method: 'compose', notes: ['composed from the layers in memory'], width: 2, height: 1, png: png.toString('base64') };
      },
    });
    await srv.listen();
  });
  afterAll(async () => {
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const io = (): { out: string[]; err: string[]; io: { stdout: (s: string) => void; stderr: (s: string) => void } } => {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, io: { stdout: (s) => void out.push(s), stderr: (s) => void err.push(s) } };
  };

  it('status: a table, or the report as JSON', async () => {
    const a = io();
    expect(await runStatus({ socket }, a.io)).toBe(CONTROL_EXIT.ok);
    expect(a.out.join('')).toMatch(/^output wall \(Virtual-2 on \/dev\/dri\/card1, CRTC 0, 1024x768@60\): presenting: 60 fps, 300 frames/m);
    const b = io();
    expect(await runStatus({ socket, json: true }, b.io)).toBe(0);
    expect(JSON.parse(b.out.join(''))).toEqual(report);
  });

  it('screenshot: writes the PNG and says how it was taken; the daemon\'s refusal is exit 1', async () => {
    const file = path.join(dir, 'shot.png');
    const a = io();
    expect(await runScreenshot(file, { socket }, a.io)).toBe(0);
    expect(readFileSync(file)).toEqual(png);
    expect(a.out.join('')).toBe(`${file}: output wall, 2x1, composed from the layers' buffers\n  note: composed from the layers in memory\n`);
    const b = io();
    expect(await runScreenshot(file, { socket, output: 'lobby' }, b.io)).toBe(CONTROL_EXIT.refused);
    expect(b.err.join('')).toBe('vgpu-flip screenshot: the daemon says: output lobby is not presenting (no matching monitor connected)\n');
    const c = io();
    expect(await runScreenshot(path.join(dir, 'shot.jpg'), { socket }, c.io)).toBe(CONTROL_EXIT.usage);
    expect(c.err.join('')).toMatch(/the file name must end in .png/);
    // --method writeback is passed on; an unknown method is a usage error before any request
    const d = io();
    expect(await runScreenshot(file, { socket, method: 'writeback' }, d.io)).toBe(0);
    expect(d.out.join('')).toBe(`${file}: output wall, 2x1, read back by the writeback connector alone (the monitor blanked for a frame)\n`);
    const e = io();
    expect(await runScreenshot(file, { socket, method: 'crtc' }, e.io)).toBe(CONTROL_EXIT.usage);
    expect(e.err.join('')).toBe('vgpu-flip screenshot: --method "crtc": expected auto, writeback, compose\n');
  });

  it('reload: the verdict, every problem of a broken file, exit 1 when refused', async () => {
    reloadAnswer = { ok: true, cmd: 'reload', applied: false, message: 'reload refused: /etc/k.yaml has 1 problem; the running configuration stays',
      problems: [{ line: 6, column: 11, path: 'outputs.0.mode', message: 'bad mode', text: '/etc/k.yaml:6:11: outputs[0].mode: bad mode' }] };
    const a = io();
    expect(await runReload({ socket }, a.io)).toBe(CONTROL_EXIT.refused);
    expect(a.err.join('')).toBe('reload refused: /etc/k.yaml has 1 problem; the running configuration stays\n  /etc/k.yaml:6:11: outputs[0].mode: bad mode\n');
    reloadAnswer = { ok: true, cmd: 'reload', applied: true, message: 'reloaded /etc/k.yaml', problems: [] };
    const b = io();
    expect(await runReload({ socket }, b.io)).toBe(0);
    expect(b.out.join('')).toBe('reloaded /etc/k.yaml\n');
  });

  it('no daemon: exit 3 with what to do; a bad --timeout is a usage error', async () => {
    const a = io();
    expect(await runStatus({ socket: path.join(dir, 'none.sock') }, a.io)).toBe(CONTROL_EXIT.unreachable);
    expect(a.err.join('')).toMatch(/^vgpu-flip status: cannot connect to .*none.sock: ENOENT \(no such socket\): is the kiosk daemon running/);
    const b = io();
    expect(await runStatus({ socket, timeout: 'soon' }, b.io)).toBe(CONTROL_EXIT.usage);
    expect(b.err.join('')).toMatch(/--timeout "soon": expected a positive number of seconds/);
  });
});
