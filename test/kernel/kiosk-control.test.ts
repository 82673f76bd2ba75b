// The kiosk daemon as a service (issue 9): its control socket, systemd notifications and logs,
// used the way an operator and systemd use them. The daemon (`vgpu-flip kiosk --run`, a child
// process) shows a vgpu-sim guest that keeps flipping on head 0 of the rig's second display;
// a python3 datagram socket plays systemd's NOTIFY_SOCKET (WATCHDOG_USEC set).
//  - READY=1 arrives with a STATUS= saying the layer is on screen; the socket is 0660, group 4242
//  - `status --json`: the output and its layer (VM, path), frames increasing between two calls
//  - `screenshot`: a PNG (decoded with pngjs) whose pixels are the guest's, and the method
//  - `reload` with a broken file: the problem with its line; the daemon keeps presenting
//  - uid 65534: without the group connect() is refused by the socket's mode; with the group it
//    is served; with CAP_DAC_OVERRIDE past the mode it is refused by SO_PEERCRED and logged
//  - WATCHDOG=1 keeps coming; SIGTERM sends STOPPING=1 and exits 0
// Fails in CI without the second display.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drawPattern, patternPixel } from '../../src/flip/pattern.js';
import { SimGuest, createSimInstance, type SimInstance } from '../../src/vgpu-sim/index.js';
import { display2Card, display2CardOrUndefined, display2Head0 } from './display2-helpers.js';
import { waitFor } from './flip-helpers.js';
import { request } from '../../src/kiosk/control-client.js';
import { BIN, cli, oneDifferentPixel } from './kiosk-helpers.js';

const ci = /^(1|true|yes)$/i.test(process.env['CI'] ?? '');
const W = 1024;
const H = 768;
const GID = 4242;
const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

// systemd's side: print every datagram on the socket as one JSON string per line
const RECEIVER = [
  'import json, socket, sys',
  's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
  's.bind(sys.argv[1])',
  'print(json.dumps("bound"), flush=True)',
  'while True:',
  '    print(json.dumps(s.recv(65536).decode()), flush=True)',
].join('\n');

const step = (s: string): void => console.error(`[kiosk-control] ${new Date().toISOString()} ${s}`);

describe.skipIf(display2CardOrUndefined() === undefined && !ci)('kiosk control socket, sd_notify and logs', () => {
  let inst: SimInstance | null = null;
  let dir = '';
  let head0 = '';
  let flipper: NodeJS.Timeout | null = null;
  const kids: ChildProcess[] = [];

  beforeAll(() => {
    head0 = display2Head0();
    inst = createSimInstance('vgpu_sim-small');
    dir = mkdtempSync(path.join(os.tmpdir(), 'kiosk-ctl-'));
    chmodSync(dir, 0o755); // uid 65534 must reach the socket inside
  });

  afterAll(() => {
    if (flipper) clearInterval(flipper);
    for (const k of kids) if (k.exitCode === null) k.kill('SIGKILL');
    inst?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answers status, screenshot and reload to root and its group, refuses others, and talks to systemd', async () => {
    const g = new SimGuest(inst!.uuid);
    g.setMode('primary', { fourcc: 'XR24', width: W, height: H });
    const B = W * H * 4;
    g.writePixels(0, drawPattern(W, H, 61));
    // buffer B differs from A in its last pixel (no check samples it): every flip is a changed
    // frame, which the copy fallback (virtio-gpu cannot import vgpu-sim's dma-bufs) copies and
    // commits; a frame equal to the screen it would neither copy nor commit (issue 10)
    g.writePixels(B, oneDifferentPixel(drawPattern(W, H, 61)));
    g.flip('primary', 0);
    // the guest keeps flipping between its two buffers: frames keep coming
    let n = 0;
    flipper = setInterval(() => g.flip('primary', (++n % 2) * B), 50);

    const sock = path.join(dir, 'ctl', 'kiosk.sock');
    const cfg = path.join(dir, 'kiosk.yaml');
    const text = [
      'version: 1',
      'outputs:',
      '  - name: wall',
      `    device: ${display2Card()}`,
      `    match: ${head0}`,
      `    mode: ${W}x${H}`,
      'vms:',
      '  - name: sign',
      `    mdev: ${inst!.uuid}`,
      '    planes:',
      '      primary: { output: wall, paths: [dmabuf] }',
      'control:',
      `  socket: ${sock}`,
      `  group: "${GID}"`,
      '',
    ].join('\n');
    writeFileSync(cfg, text);

    const notifyPath = path.join(dir, 'notify.sock');
    const rx = spawn(python, ['-c', RECEIVER, notifyPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    kids.push(rx);
    let rxOut = '';
    let rxErr = '';
    rx.stdout!.on('data', (d: Buffer) => (rxOut += d.toString()));
    rx.stderr!.on('data', (d: Buffer) => (rxErr += d.toString()));
    const notes = (): string[] => rxOut.split('\n').filter((l) => l.startsWith('"')).map((l) => JSON.parse(l) as string);
    await waitFor(() => notes().includes('bound'), 20_000, `the notify receiver (${rxErr})`);

    const p = spawn(process.execPath, [BIN, 'kiosk', '--run', cfg, '--log-format', 'json'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NOTIFY_SOCKET: notifyPath, WATCHDOG_USEC: '2000000' },
    });
    kids.push(p);
    let err = '';
    p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => p.on('exit', r));
    const events = (): { event?: string; msg: string; level: string; line?: number; uid?: number; pid?: number }[] =>
      err.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { event?: string; msg: string; level: string });
    try {
      step('daemon started');
      // READY=1 once the output is up: the STATUS= sent with it says the layer is on screen
      await waitFor(() => notes().some((m) => m.includes('READY=1')), 60_000, `READY=1 (notify: ${JSON.stringify(notes())}; log: ${err})`);
      const ready = notes().find((m) => m.includes('READY=1'))!;
      expect(ready).toMatch(/^STATUS=wall: sign\/primary (dmabuf|copy)$/m);
      expect(events().some((e) => e.event === 'assigned'), err).toBe(true);
      // pino's JSON lines: level as a label, ISO time, the daemon's pid
      const first = JSON.parse(err.split('\n').find((l) => l.startsWith('{'))!) as Record<string, unknown>;
      expect(first).toMatchObject({ level: 'info', pid: p.pid });
      expect(String(first['time'])).toMatch(/^\d{4}-\d\d-\d\dT/);

      const st = statSync(sock);
      expect(st.isSocket()).toBe(true);
      expect(st.mode & 0o777).toBe(0o660);
      expect(st.gid).toBe(GID);

      // status --json: the output and its layer, frames increasing
      type Status = { outputs: { name: string; state: string; connector: string; frames: number; layers: { name: string; vm: string; plane: string; path: string; frames: number; fps: number; latencyMs: unknown }[] }[] };
      // the CLI once; polling through the same client in-process (a CLI start takes seconds under TCG)
      step('status --json');
      const j = await cli(['status', '--json', '--socket', sock]);
      expect(j.status, j.stderr).toBe(0);
      const s1 = JSON.parse(j.stdout) as Status;
      let polled: Status = s1;
      const poll = async (): Promise<Status> => {
        const r = await request(sock, { cmd: 'status' });
        if (!r.ok || r.cmd !== 'status') throw new Error(`status: ${JSON.stringify(r)}`);
        return (polled = r.status as Status);
      };
      const until = async (cond: (s: Status) => boolean, ms: number, what: string): Promise<void> => {
        const end = Date.now() + ms;
        while (!cond(await poll())) {
          if (Date.now() > end) throw new Error(`${what}: last status ${JSON.stringify(polled)}`);
          await new Promise((r) => setTimeout(r, 250));
        }
      };
      expect(s1.outputs).toHaveLength(1);
      expect(s1.outputs[0]).toMatchObject({ name: 'wall', state: 'presenting', connector: head0 });
      expect(s1.outputs[0]!.layers[0]).toMatchObject({ name: 'sign/primary', vm: 'sign', plane: 'primary', path: 'dmabuf' });
      await until((s) => s.outputs[0]!.layers[0]!.frames > s1.outputs[0]!.layers[0]!.frames + 5, 30_000, 'layer frames increasing');
      expect(polled.outputs[0]!.frames).toBeGreaterThan(s1.outputs[0]!.frames);
      await until((s) => s.outputs[0]!.layers[0]!.fps > 0, 10_000, 'a frame rate');
      step('status (table)');
      const table = await cli(['status', '--socket', sock]);
      expect(table.status, table.stderr).toBe(0);
      expect(table.stdout).toMatch(/output wall \(.*CRTC \d+, 1024x768@\d+\): presenting/);
      expect(table.stdout).toMatch(/^\s+sign\s+primary\s+dmabuf/m);

      // screenshot: the PNG shows the guest's picture
      const png = path.join(dir, 'shot.png');
      step('screenshot');
      const shot = await cli(['screenshot', '--socket', sock, '--output', 'wall', png]);
      expect(shot.status, shot.stderr).toBe(0);
      expect(shot.stdout).toMatch(/1024x768, composed from the layers' buffers/); // virtio-gpu has no writeback
      const img = PNG.sync.read(readFileSync(png));
      expect([img.width, img.height]).toEqual([W, H]);
      let bad = 0;
      for (let y = 0; y < H; y += 9) {
        for (let x = 0; x < W; x += 7) {
          const i = (y * W + x) * 4;
          const rgb = (img.data[i]! << 16) | (img.data[i + 1]! << 8) | img.data[i + 2]!;
          if (rgb !== (patternPixel(x, y, W, H, 61) & 0xffffff)) bad++;
        }
      }
      expect(bad, 'sampled pixels of the screenshot that differ from the guest').toBe(0);
      const noOut = await cli(['screenshot', '--socket', sock, '--output', 'lobby', png]);
      expect(noOut.status).toBe(1);
      expect(noOut.stderr).toMatch(/no output lobby in the configuration \(outputs: wall\)/);

      // reload with a broken file: the problem with its line; still presenting
      writeFileSync(cfg, text.replace(`mode: ${W}x${H}`, 'mode: 1024by768'));
      step('reload');
      const rl = await cli(['reload', '--socket', sock]);
      expect(rl.status).toBe(1);
      expect(rl.stderr).toMatch(/reload refused: .* 1 problem; the running configuration stays/);
      expect(rl.stderr).toContain(`${cfg}:6:`);
      const rlJson = await cli(['reload', '--socket', sock, '--json']);
      expect((JSON.parse(rlJson.stdout) as { problems: { line: number }[] }).problems[0]!.line).toBe(6);
      const s3 = await poll();
      await until((s) => s.outputs[0]!.frames > s3.outputs[0]!.frames, 20_000, 'frames after the refused reload');
      expect(p.exitCode).toBe(null);

      // uid 65534: the socket's mode keeps it out; in the group it is served; past the mode
      // (CAP_DAC_OVERRIDE) SO_PEERCRED refuses it and the daemon logs uid and pid
      const nobody = ['--reuid=65534', '--regid=65534', '--clear-groups'];
      step('uid 65534');
      const out1 = await cli(['status', '--socket', sock], nobody);
      expect(out1.status, out1.stderr).toBe(3);
      expect(out1.stderr).toMatch(/EACCES \(permission denied\)/);
      const member = await cli(['status', '--json', '--socket', sock], ['--reuid=65534', '--regid=65534', `--groups=${GID}`]);
      expect(member.status, member.stderr).toBe(0);
      const capable = await cli(['status', '--socket', sock], [...nobody, '--inh-caps=+dac_override', '--ambient-caps=+dac_override']);
      expect(capable.status, capable.stderr).toBe(1);
      expect(capable.stderr).toMatch(/permission denied: uid 65534 .* is neither root nor in group 4242/);
      await waitFor(() => events().some((e) => e.event === 'control-refused' && e.uid === 65534), 10_000, `the logged refusal (${err})`);
      expect(events().find((e) => e.event === 'control-refused')!.msg).toMatch(/refused pid \d+ uid 65534/);

      // the watchdog keeps being pinged (WATCHDOG_USEC 2 s: every second while frames go on)
      const pings = notes().filter((m) => m === 'WATCHDOG=1').length;
      await waitFor(() => notes().filter((m) => m === 'WATCHDOG=1').length >= pings + 2, 20_000, 'WATCHDOG=1 pings');

      step('SIGTERM');
      p.kill('SIGTERM');
      expect(await exited, err).toBe(0);
      await waitFor(() => notes().some((m) => m.startsWith('STOPPING=1')), 10_000, 'STOPPING=1');
      expect(existsSync(sock)).toBe(false);
      step('done');
    } finally {
      if (p.exitCode === null) p.kill('SIGKILL');
      rx.kill('SIGKILL');
    }
  }, 600_000);
});
