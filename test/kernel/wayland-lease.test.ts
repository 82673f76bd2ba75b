// `vgpu-flip inspect --leases` and `assign --lease` beside a real Wayland compositor (issue 12):
// Debian's sway 1.7 on the rig's second display (virtio-gpu, 2 heads). Head 1 gets the HTC Vive
// EDID as debugfs edid_override, so the kernel marks it non-desktop and sway offers it for lease
// (wp_drm_lease_v1) while it drives head 0 as its desktop. vgpu-flip leases head 1 and shows a
// vgpu-sim guest there (read back by QEMU screendump); SIGTERM hands the connector back (sway
// offers it again); the connector unplugged (sysfs status off, and the udev event the rig's
// missing udevd would send) makes sway withdraw the output and end the lease (`finished`), and
// sway exiting ends it too: both times vgpu-flip stops by itself with exit status 0 and says why.
// Fails in CI without the second display or without sway.
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drawPattern } from '../../src/flip/pattern.js';
import { SimGuest, createSimInstance, type SimInstance } from '../../src/vgpu-sim/index.js';
import type { ModeInfo } from '../../src/binding/types.js';
import { display2Card, display2CardOrUndefined } from './display2-helpers.js';
import { sleep, waitFor } from './flip-helpers.js';
import { fakeUdevChange, isOfferedNow, offeredConnectors, prepareLeaseHeads, setConnectorStatus, showsPattern, startSway, type Sway } from './wayland-helpers.js';

const ci = /^(1|true|yes)$/i.test(process.env['CI'] ?? '');
const bin = path.join(import.meta.dirname, '..', '..', 'bin', 'vgpu-flip.js');
/** the Wayland bytes of the first inspect and assign (for test/fixtures/wayland-lease-sway*.txt) */
const capture = (name: string): string => path.join(import.meta.dirname, '..', '..', '.vm-out', `wayland-capture-${name}.txt`);

interface Listing {
  socket: string;
  devices: { drmNode: string | null; driver: string | null; connectors: { name: string; description: string; connectorId: number }[] }[];
}

describe.skipIf(display2CardOrUndefined() === undefined && !ci)('assign --lease beside sway on the second display', () => {
  let card = '';
  let desktop = '';
  let leased = '';
  let leasedId = 0;
  let mode: ModeInfo | undefined;
  let sway: Sway | null = null;
  let inst: SimInstance | null = null;
  let undo = (): void => undefined;

  const listLeases = (captureTo?: string): Listing => {
    if (captureTo) rmSync(captureTo, { force: true });
    const env = captureTo ? { ...sway!.env, VGPU_FLIP_WAYLAND_CAPTURE: captureTo } : sway!.env;
    const r = spawnSync(process.execPath, [bin, 'inspect', '--leases', '--json'], { env, encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) throw new Error(`inspect --leases failed (${r.status}): ${r.stderr}${r.stdout}`);
    return JSON.parse(r.stdout) as Listing;
  };
  const offered = (): string[] => offeredConnectors(sway!.env);
  const isOffered = (): boolean => isOfferedNow(sway!.env, leased);

  beforeAll(async () => {
    card = display2Card();
    ({ desktop, leased, leasedId, mode, undo } = prepareLeaseHeads(card));
    sway = await startSway(card);
    // under TCG sway takes about a minute to start on virtio-gpu (its first modeset)
    await waitFor(isOffered, 300_000, `sway to offer ${leased} for lease (sway log: ${sway.log().slice(-2000)})`);
    // a guest as large as the mode (vgpu_sim-small goes up to 1920x1080)
    inst = createSimInstance(mode!.hdisplay <= 1920 && mode!.vdisplay <= 1080 ? 'vgpu_sim-small' : 'vgpu_sim-large');
  }, 420_000);

  afterAll(async () => {
    await sway?.stop();
    inst?.remove();
    undo();
  });

  it('inspect --leases lists the non-desktop head with its DRM node, not the desktop head', () => {
    const l = listLeases(capture('inspect'));
    expect(readFileSync(capture('inspect'), 'utf8')).toMatch(/^# fds 1$/m); // drm_fd came as a descriptor
    expect(l.socket).toBe(path.join(sway!.runtimeDir, sway!.display));
    expect(l.devices.length).toBe(1);
    expect(l.devices[0]!.drmNode).toBe(card);
    expect(l.devices[0]!.driver).toBe('virtio_gpu');
    expect(l.devices[0]!.connectors).toEqual([{ name: leased, description: expect.any(String), connectorId: leasedId }]);
    const text = spawnSync(process.execPath, [bin, 'inspect', '--leases'], { env: sway!.env, encoding: 'utf8' });
    expect(text.status).toBe(0);
    expect(text.stdout).toContain(`Wayland compositor at ${l.socket}: 1 DRM lease device(s)`);
    expect(text.stdout).toMatch(new RegExp(`^  ${leased}\\s+.+\\s+${leasedId}\\s+${card}\\s+virtio_gpu$`, 'm'));
    expect(text.stdout).not.toContain(desktop);
    // the desktop head is not offered: the error names what is, and why
    const r = spawnSync(process.execPath, [bin, 'assign', '--lease', desktop, '--vgpu', inst!.uuid, '--plane', 'primary'], { env: sway!.env, encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^vgpu-flip: the compositor does not offer ${desktop} for lease: it offers: ${leased} \\(.*\\)\\. Compositors offer for lease only connectors whose kernel "non-desktop" property is 1`, 'm'));
  });

  /** start `assign --lease`, wait for its assignment; `as`: setpriv arguments (another user) */
  const assign = async (t: number, captureTo?: string, as?: string[]) => {
    if (captureTo) rmSync(captureTo, { force: true });
    const W = mode!.hdisplay;
    const H = mode!.vdisplay;
    const g = new SimGuest(inst!.uuid);
    g.setMode('primary', { fourcc: 'XR24', width: W, height: H });
    g.writePixels(0, drawPattern(W, H, t));
    g.flip('primary', 0);
    const args = [bin, 'assign', '--lease', leased, '--vgpu', inst!.uuid, '--plane', 'primary', '--path', 'dmabuf', '--mode', `${W}x${H}`, '--json'];
    const p = spawn(as ? 'setpriv' : process.execPath, as ? [...as, process.execPath, ...args] : args, {
      env: captureTo ? { ...sway!.env, VGPU_FLIP_WAYLAND_CAPTURE: captureTo } : sway!.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
    const events = (): { type: string; [k: string]: unknown }[] =>
      out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { type: string });
    await waitFor(() => events().some((e) => e.type === 'assigned') || p.exitCode !== null, 60_000, `the assignment on the lease (output: ${out})`);
    if (p.exitCode !== null) throw new Error(`assign --lease exited ${p.exitCode}:\n${out}`);
    return { p, exited, out: () => out, events, W, H };
  };

  const shows = showsPattern;

  it('assign --lease shows the guest on the leased head while sway keeps its desktop; SIGTERM hands it back', async () => {
    const a = await assign(61, capture('assign'));
    try {
      const lease = a.events().find((e) => e.type === 'lease') as { connector: { name: string; connectorId: number }; device: string } | undefined;
      expect(lease?.connector).toMatchObject({ name: leased, connectorId: leasedId });
      expect(lease?.device).toBe(card);
      await shows(1, a.W, a.H, 61);
      // sway still runs and drives its own head
      expect(sway!.proc.exitCode).toBeNull();
      const outputs = sway!.ipc('get_outputs') as { name: string; active: boolean }[];
      expect(outputs.map((o) => [o.name, o.active])).toEqual([[desktop, true]]);
      // leased: no longer offered to anyone else; a second vgpu-flip is told so
      await waitFor(() => !offered().includes(leased), 30_000, `${leased} to leave the offer while leased`);
      const second = spawnSync(process.execPath, [bin, 'assign', '--lease', leased, '--vgpu', inst!.uuid, '--plane', 'primary'], { env: sway!.env, encoding: 'utf8' });
      expect(second.status).toBe(1);
      expect(second.stderr).toMatch(new RegExp(`^vgpu-flip: the compositor does not offer ${leased} for lease: it offers no connector\\.`, 'm'));
      a.p.kill('SIGTERM');
      expect(await a.exited, a.out()).toBe(143);
      expect(a.out()).toContain('terminated: restoring the display');
    } finally {
      if (a.p.exitCode === null) a.p.kill('SIGKILL');
    }
    // handed back: offered again
    await waitFor(isOffered, 60_000, `${leased} to be offered again after vgpu-flip exited`);
    expect(sway!.proc.exitCode).toBeNull();
  }, 180_000);

  it('sway withdrawing the output (connector unplugged) ends the lease: vgpu-flip stops by itself, exit status 0, and says why', async () => {
    const a = await assign(63);
    try {
      await shows(1, a.W, a.H, 63);
      // the monitor goes away: the kernel says so, udev would tell sway, sway withdraws the output
      // and ends its lease (wp_drm_lease_v1.finished)
      setConnectorStatus(card, leased, 'off');
      fakeUdevChange(card, { HOTPLUG: '1' });
      const code = await Promise.race([a.exited, sleep(60_000).then(() => 'still running')]);
      expect(code, a.out()).toBe(0);
      const summary = a.events().find((e) => e.type === 'summary') as { stoppedBecause?: string } | undefined;
      expect(summary?.stoppedBecause).toMatch(new RegExp(`^the compositor ended the lease of ${leased} \\(the monitor was unplugged or the compositor revoked the lease\\)`));
      expect(a.out()).not.toMatch(/"type":"error"/);
      expect(sway!.proc.exitCode).toBeNull();
    } finally {
      if (a.p.exitCode === null) a.p.kill('SIGKILL');
    }
    // plugged back: sway offers it again
    setConnectorStatus(card, leased, 'on');
    fakeUdevChange(card, { HOTPLUG: '1' });
    await waitFor(isOffered, 60_000, `${leased} to be offered again after it came back`);
  }, 180_000);

  it('assign --lease as an unprivileged user (uid 65534, no groups, no capabilities) presents through the lease fd alone', async () => {
    // what it is given: the Wayland socket (sway runs as the same user) and the vGPU's VFIO group node
    const group = path.basename(readlinkSync(`/sys/bus/mdev/devices/${inst!.uuid}/iommu_group`));
    const node = `/dev/vfio/${group}`;
    const st = statSync(node);
    const nobody = ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all'];
    // without the group node: a clear error (exit 1), and the lease is handed back
    const refused = spawnSync('setpriv', [...nobody, process.execPath, bin, 'assign', '--lease', leased, '--vgpu', inst!.uuid, '--plane', 'primary'], { env: sway!.env, encoding: 'utf8', timeout: 120_000 });
    expect(refused.status, refused.stderr + refused.stdout).toBe(1);
    expect(refused.stderr).toMatch(new RegExp(`cannot open its VFIO group ${node} or /dev/vfio/vfio as uid 65534 .*: give this user the group node`));
    await waitFor(isOffered, 60_000, `${leased} to be offered again after the refused vgpu-flip exited`);
    chownSync(node, 65534, 65534);
    try {
      const a = await assign(64, undefined, nobody);
      try {
        await shows(1, a.W, a.H, 64);
        const status = readFileSync(`/proc/${a.p.pid}/status`, 'utf8');
        expect(status).toMatch(/^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
        expect(status).toMatch(/^CapEff:\s+0+$/m);
        // the only DRM descriptor it holds is the lease fd (the compositor's drm_fd was closed; the card never opened)
        const drmFds = readdirSync(`/proc/${a.p.pid}/fd`).filter((fd) => {
          try {
            return readlinkSync(`/proc/${a.p.pid}/fd/${fd}`).startsWith('/dev/dri/');
          } catch {
            return false;
          }
        });
        expect(drmFds.length).toBe(1);
        expect(a.events().filter((e) => e.type === 'error'), a.out()).toEqual([]);
        a.p.kill('SIGTERM');
        expect(await a.exited, a.out()).toBe(143);
      } finally {
        if (a.p.exitCode === null) a.p.kill('SIGKILL');
        writeFileSync(path.join(import.meta.dirname, '..', '..', '.vm-out', 'wayland-lease-nonroot.out'), a.out());
      }
    } finally {
      chownSync(node, st.uid, st.gid);
    }
    await waitFor(isOffered, 60_000, `${leased} to be offered again after the unprivileged vgpu-flip exited`);
  }, 180_000);

  it('sway exiting ends the lease: vgpu-flip stops by itself, exit status 0, and says why', async () => {
    const a = await assign(62);
    try {
      await shows(1, a.W, a.H, 62);
      await sway!.stop();
      const code = await Promise.race([a.exited, sleep(60_000).then(() => 'still running')]);
      expect(code, a.out()).toBe(0);
      const summary = a.events().find((e) => e.type === 'summary') as { stoppedBecause?: string } | undefined;
      expect(summary?.stoppedBecause).toMatch(new RegExp(`^the lease of ${leased} ended with the connection to the compositor`));
      expect(a.out()).not.toMatch(/"type":"error"/);
    } finally {
      if (a.p.exitCode === null) a.p.kill('SIGKILL');
    }
  }, 180_000);
});
