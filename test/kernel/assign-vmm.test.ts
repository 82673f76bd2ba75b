// Kernel tests of `vgpu-flip assign --pid` (issue 8): a holder process stands in for the VMM
// (it opens container + group + device per vGPU with the legacy group API, as QEMU 7.2 does,
// and keeps them). The CLI (dist build) must find the vGPU from the pid alone, refuse to guess
// between two display vGPUs, take --vgpu / --pid-fd, and restore the display when the VMM exits
// (and, with --wait, re-attach when it comes back).
import { spawn, spawnSync, type ChildProcess, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addonPath } from '../../src/binding/index.js';
import { readVgpu } from '../../src/vfio/sysfs.js';
import { findVmmDevice } from '../../src/vfio/vmm-pick.js';
import { SimGuest, createSimInstance, type SimInstance } from '../../src/vgpu-sim/index.js';
import { findVkmsCard } from './kms-helpers.js';
import { displayState } from './flip-helpers.js';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const cliPath = path.join(root, 'bin/vgpu-flip.js');

/** The "VMM": opens each uuid:group with the raw addon, prints the handles, waits for stdin EOF. */
const HOLDER = `
const a = require(process.argv[1]);
const hs = process.argv.slice(2).map((x) => { const [u, g] = x.split(':'); return { uuid: u, ...a.vfioOpenMdev(Number(g), u) }; });
process.stdout.write(JSON.stringify(hs) + '\\n');
process.stdin.on('data', () => {});
process.stdin.on('end', () => process.exit(0));
`;

interface Holder {
  child: ChildProcessWithoutNullStreams;
  handles: { uuid: string; container: number; group: number; device: number; groupId: number }[];
}

function startHolder(sims: SimInstance[]): Promise<Holder> {
  const args = sims.map((s) => `${s.uuid}:${readVgpu(s.uuid).iommuGroup}`);
  const child = spawn(process.execPath, ['-e', HOLDER, addonPath, ...args], { stdio: 'pipe' });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ child, handles: JSON.parse(out.slice(0, nl)) });
    });
    child.on('exit', (code) => reject(new Error(`holder exited with ${code}: ${err}`)));
  });
}

function stopHolder(h: Holder | null): Promise<void> {
  if (!h || h.child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    h.child.once('exit', () => resolve());
    h.child.stdin.end();
  });
}

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cliPath, ...args], { encoding: 'utf8', timeout: 90_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const lines = (s: string): Json[] => s.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Json);

/** A background CLI whose JSON lines are collected as they come. */
function startCli(args: string[]): { child: ChildProcess; events: Json[]; stderr: () => string; exit: Promise<number | null>; waitFor: (type: string, n?: number, ms?: number) => Promise<Json> } {
  const child = spawn(process.execPath, [cliPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const events: Json[] = [];
  let buf = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (l.startsWith('{')) events.push(JSON.parse(l) as Json);
    }
  });
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const waitFor = async (type: string, n = 1, ms = 30_000): Promise<Json> => {
    const t0 = Date.now();
    for (;;) {
      const hits = events.filter((e) => e.type === type);
      if (hits.length >= n) return hits[n - 1]!;
      if (Date.now() - t0 > ms) throw new Error(`no ${n}x "${type}" within ${ms} ms; got ${events.map((e) => e.type).join(',')}; stderr: ${err}`);
      if (child.exitCode !== null) throw new Error(`CLI exited (${child.exitCode}) before ${n}x "${type}"; got ${events.map((e) => e.type).join(',')}; stderr: ${err}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  return { child, events, stderr: () => err, exit, waitFor };
}

let card = '';
let simA: SimInstance | null = null;
let simB: SimInstance | null = null;
let holder: Holder | null = null;

beforeAll(() => {
  card = findVkmsCard();
  simA = createSimInstance('vgpu_sim-small');
  simB = createSimInstance('vgpu_sim-small');
  // different guest sizes tell the two vGPUs apart in the session's checks
  const ga = new SimGuest(simA.uuid);
  ga.setMode('primary', { fourcc: 'XR24', width: 320, height: 200 });
  ga.writePixels(0, Buffer.alloc(320 * 200 * 4, 0x40));
  const gb = new SimGuest(simB.uuid);
  gb.setMode('primary', { fourcc: 'XR24', width: 256, height: 128 });
  gb.writePixels(0, Buffer.alloc(256 * 128 * 4, 0x80));
});

afterAll(async () => {
  await stopHolder(holder);
  simA?.remove();
  simB?.remove();
});

describe('assign --pid: one display vGPU held by the VMM', () => {
  it('--pid alone finds it (no fdinfo syspath on 6.1), --json says which path and why first', async () => {
    holder = await startHolder([simA!]);
    const pid = holder.child.pid!;
    const h = holder.handles[0]!;
    const pick = findVmmDevice(pid);
    expect(pick).toMatchObject({ pid, fd: h.device, uuid: simA!.uuid });
    expect(pick.checks[0]).toMatch(new RegExp(`VFIO device fd ${h.device} is ${simA!.uuid} \\(opened right after its IOMMU group\\)`));
    const r = cli('assign', '--pid', String(pid), '--plane', 'primary', '--device', card, '--once', '--json');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const ev = lines(r.stdout);
    expect(ev[0]).toMatchObject({ type: 'session', vgpu: simA!.uuid, vmm: { pid, fd: h.device, watch: 'pidfd' }, path: expect.stringMatching(/^(drm_fb|dmabuf)$/), reason: expect.stringMatching(/path chosen \(PROBE/) });
    expect(ev[0]!.checks.join('\n')).toMatch(/guest primary: 320x200/);
    expect(ev.map((e) => e.type)).toContain('assigned');
  });

  it('--screenshot FILE.png: the assigning process writes what is on the CRTC (composed on vkms 6.1), SIGUSR1 another', async () => {
    const pid = holder!.child.pid!;
    const dir = mkdtempSync(path.join(tmpdir(), 'vgpu-flip-shot-'));
    const file = path.join(dir, 'screen.png');
    const bad = cli('assign', '--pid', String(pid), '--device', card, '--once', '--screenshot', path.join(dir, 'screen.jpg'));
    expect(bad.stderr).toContain('--screenshot');
    expect(bad.stderr).toContain('must end in .png');
    const c = startCli(['assign', '--pid', String(pid), '--path', 'dmabuf', '--device', card, '--json', '--duration', '30', '--screenshot', file]);
    try {
      const shot = await c.waitFor('screenshot', 1, 60_000);
      expect(shot).toMatchObject({ file, method: 'compose', width: expect.any(Number), height: expect.any(Number) });
      expect(shot['notes'].join('\n')).toMatch(/cannot clone the display/);
      const png = readFileSync(file);
      expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
      expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([shot['width'], shot['height']]); // IHDR
      c.child.kill('SIGUSR1');
      const second = await c.waitFor('screenshot', 2, 60_000);
      expect(second['file']).toBe(path.join(dir, 'screen-1.png'));
      expect(readFileSync(second['file']).subarray(1, 4).toString('latin1')).toBe('PNG');
    } finally {
      c.child.kill('SIGTERM');
      await c.exit;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--pid-fd: the VMM\'s device fd works, its group fd is refused', () => {
    const pid = holder!.child.pid!;
    const h = holder!.handles[0]!;
    const ok = cli('assign', '--pid', String(pid), '--pid-fd', String(h.device), '--device', card, '--once', '--json');
    expect(ok.stderr).toBe('');
    expect(lines(ok.stdout)[0]).toMatchObject({ type: 'session', vmm: { fd: h.device } });
    const bad = cli('assign', '--pid', String(pid), '--pid-fd', String(h.group), '--device', card, '--once');
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain(`--pid-fd ${h.group}: fd ${h.group} of process ${pid} (node) is not a VFIO device fd; its VFIO device fds:\n  fd ${h.device}: ${simA!.uuid} (opened right after its IOMMU group), display`);
    const notDrm = cli('assign', '--pid', String(pid), '--device', '/dev/null', '--once');
    expect(notDrm.stderr).toContain('--device /dev/null is a character device of major 1, not a DRM node');
  });

  it('inspect shows the holder and the PROBE through its fd, without an EBUSY row; an idle vGPU is not opened', () => {
    const pid = holder!.child.pid!;
    const j = JSON.parse(cli('inspect', '--json', '--device', card).stdout);
    const a = j.vgpus.devices.find((x: Json) => x.uuid === simA!.uuid);
    expect(a.holders.map((x: Json) => x.pid)).toEqual([pid]);
    expect(a.error).toBeUndefined();
    expect(a.probe).toMatchObject({ dmabuf: { supported: true } });
    expect(a.probe_via).toBe(`pidfd pid ${pid} fd ${holder!.handles[0]!.device} (${simA!.uuid})`);
    const b = j.vgpus.devices.find((x: Json) => x.uuid === simB!.uuid);
    expect(b).toMatchObject({ holders: [], probe: null, probe_skipped: expect.stringMatching(/^idle: not opened/) });
    const t = cli('inspect', '--device', card);
    expect(t.stdout).not.toMatch(/EBUSY/);
    const withProbe = JSON.parse(cli('inspect', '--json', '--device', card, '--probe').stdout).vgpus.devices.find((x: Json) => x.uuid === simB!.uuid);
    expect(withProbe).toMatchObject({ probe_via: 'open', probe: { dmabuf: { supported: true } } });
  });

  it('the VMM exiting stops the tool and restores the display', async () => {
    const pid = holder!.child.pid!;
    const before = displayState(card);
    const c = startCli(['assign', '--pid', String(pid), '--device', card, '--json']);
    await c.waitFor('assigned');
    expect(displayState(card)).not.toBe(before);
    const t0 = Date.now();
    await stopHolder(holder);
    const code = await c.exit;
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(code).toBe(0);
    const summary = c.events.find((e) => e.type === 'summary')!;
    expect(summary.stoppedBecause).toBe(`the VMM (pid ${pid}) exited: display restored, its VFIO device fd ${holder!.handles[0]!.device} let go`);
    expect(displayState(card)).toBe(before);
    // our duplicate is closed: the group is free again
    expect(readVgpu(simA!.uuid).holders).toEqual([]);
  });
});

describe('assign --pid with two display vGPUs', () => {
  it('--pid alone is a clear error naming both; --vgpu picks the right one', async () => {
    holder = await startHolder([simA!, simB!]);
    const pid = holder.child.pid!;
    const [ha, hb] = holder.handles;
    const r = cli('assign', '--pid', String(pid), '--device', card, '--once');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      `process ${pid} (node) holds 2 display vGPUs: ${simA!.uuid} (fd ${ha!.device}), ${simB!.uuid} (fd ${hb!.device}); say which: add --vgpu <uuid> (e.g. --vgpu ${simA!.uuid}) or --pid-fd <fd>`,
    );
    const b = cli('assign', '--pid', String(pid), '--vgpu', simB!.uuid, '--device', card, '--once', '--json');
    expect(b.stderr).toBe('');
    const s = lines(b.stdout)[0]!;
    expect(s).toMatchObject({ type: 'session', vgpu: simB!.uuid, vmm: { pid, fd: hb!.device } });
    expect(s.checks.join('\n')).toMatch(/guest primary: 256x128/);
    const a = lines(cli('assign', '--pid', String(pid), '--pid-fd', String(ha!.device), '--device', card, '--once', '--json').stdout)[0]!;
    expect(a).toMatchObject({ vgpu: simA!.uuid, vmm: { fd: ha!.device } });
    expect(a.checks.join('\n')).toMatch(/guest primary: 320x200/);
    await stopHolder(holder);
  });

  it('--wait: the display stays restored while the VMM is gone, then the tool re-attaches; SIGHUP restores', async () => {
    holder = await startHolder([simA!]);
    const before = displayState(card);
    const c = startCli(['assign', '--pid', String(holder.child.pid), '--vgpu', simA!.uuid, '--wait', '--device', card, '--json']);
    await c.waitFor('assigned');
    await stopHolder(holder);
    await c.waitFor('vmm-exit');
    expect(displayState(card)).toBe(before);
    holder = await startHolder([simA!]);
    const back = await c.waitFor('vmm-back', 1, 15_000);
    expect(back.pid).toBe(holder.child.pid);
    await c.waitFor('assigned', 2);
    expect(c.events.filter((e) => e.type === 'session')[1]).toMatchObject({ vgpu: simA!.uuid, vmm: { pid: holder.child.pid } });
    c.child.kill('SIGHUP');
    expect(await c.exit).toBe(129);
    expect(c.stderr()).toMatch(/hangup \(SIGHUP\): restoring the display/);
    expect(displayState(card)).toBe(before);
    await stopHolder(holder);
  });
});
