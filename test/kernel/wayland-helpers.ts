// A real Wayland compositor for the kernel tests: Debian's sway 1.7 (wlroots 0.15) on the rig's
// second display (virtio-gpu), DRM backend only (no input), pixman renderer, libseat's embedded
// seatd (it opens the card itself). sway refuses to run as root, so it runs as nobody: the card
// node is made world read-write while it runs (restored by stop()), and its XDG_RUNTIME_DIR is
// a fresh folder owned by nobody. The rig has no udevd and wlroots learns of connector changes
// only from udev: fakeUdevChange() plays udevd.
//
// The non-desktop head: a connector's debugfs `edid_override` with the HTC Vive EDID of
// test/fixtures/edid-htc-vive.hex (HVR 0xaa01, on the kernel's non-desktop quirk list) makes the
// kernel set its "non-desktop" property to 1; sway then offers it for lease instead of using it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DrmDevice } from '../../src/kms/index.js';
import { patternPixel } from '../../src/flip/pattern.js';
import type { ModeInfo } from '../../src/binding/types.js';
import { screendump } from './display2-helpers.js';

const NOBODY = 65534;
const root = path.join(import.meta.dirname, '..', '..');

/** the HTC Vive EDID (128 bytes) of the fixture */
export function viveEdid(): Buffer {
  const text = readFileSync(path.join(root, 'test', 'fixtures', 'edid-htc-vive.hex'), 'utf8');
  const b = Buffer.from(text.split('\n').filter((l) => !l.startsWith('#')).join('').replace(/\s+/g, ''), 'hex');
  if (b.length !== 128) throw new Error(`edid-htc-vive.hex has ${b.length} bytes, not 128`);
  return b;
}

/** /sys/kernel/debug/dri/<minor>/<connector>/edid_override */
export function edidOverridePath(card: string, connector: string): string {
  const minor = /card(\d+)$/.exec(card)?.[1];
  if (minor === undefined) throw new Error(`${card} is not a card node`);
  return `/sys/kernel/debug/dri/${minor}/${connector}/edid_override`;
}

/** write the override (or 'reset' to remove it); throws with the errno the kernel gave */
export function setEdidOverride(card: string, connector: string, edid: Buffer | 'reset'): void {
  const p = edidOverridePath(card, connector);
  if (!existsSync(p)) throw new Error(`${p} does not exist: is debugfs mounted (mount -t debugfs none /sys/kernel/debug)?`);
  writeFileSync(p, edid === 'reset' ? 'reset' : edid);
}

export interface Sway {
  readonly proc: ChildProcess;
  readonly runtimeDir: string;
  /** WAYLAND_DISPLAY (a name in runtimeDir) */
  readonly display: string;
  /** the environment a client of this sway needs */
  readonly env: NodeJS.ProcessEnv;
  log(): string;
  /** swaymsg -t TYPE -r, parsed */
  ipc(type: string): unknown;
  /** SIGTERM, wait for the exit, restore the card's mode, remove the folder; idempotent */
  stop(): Promise<number | null>;
}

async function until<T>(f: () => T | undefined, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startSway(card: string): Promise<Sway> {
  const which = spawnSync('sh', ['-c', 'command -v sway swaymsg'], { encoding: 'utf8' });
  if (which.status !== 0) throw new Error('sway is not installed (apt-get install sway; setup.sh installs it)');
  const runtimeDir = mkdtempSync('/tmp/vgpu-wl-');
  chownSync(runtimeDir, NOBODY, NOBODY);
  chmodSync(runtimeDir, 0o700);
  const conf = path.join(runtimeDir, 'sway.conf');
  writeFileSync(conf, '# vgpu-flip test: nothing\n');
  chownSync(conf, NOBODY, NOBODY);
  const cardMode = statSync(card).mode & 0o777;
  chmodSync(card, 0o666);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: runtimeDir,
    XDG_RUNTIME_DIR: runtimeDir,
    WLR_BACKENDS: 'drm',
    WLR_DRM_DEVICES: card,
    WLR_RENDERER: 'pixman',
    // libseat's embedded seatd (noop never enables the seat under wlroots 0.15: it waits for its fd),
    // not bound to a VT (nobody cannot open /dev/tty0)
    LIBSEAT_BACKEND: 'builtin',
    SEATD_VTBOUND: '0',
  };
  let log = '';
  const proc = spawn('sway', ['-d', '-c', conf], { env, uid: NOBODY, gid: NOBODY, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((r) => proc.on('exit', (c) => r(c)));
  let stopped: Promise<number | null> | null = null;
  const stop = (): Promise<number | null> => {
    stopped ??= (async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 20_000);
      const code = await exited;
      clearTimeout(t);
      chmodSync(card, cardMode);
      writeFileSync(path.join(import.meta.dirname, '..', '..', '.vm-out', 'wayland-lease-sway.log'), log);
      rmSync(runtimeDir, { recursive: true, force: true });
      return code;
    })();
    return stopped;
  };
  try {
    const display = await until(
      () => {
        if (proc.exitCode !== null) throw new Error(`sway exited (${proc.exitCode}) at start:\n${log.slice(-3000)}`);
        return readdirSync(runtimeDir).find((f) => /^wayland-\d+$/.test(f));
      },
      60_000,
      'sway\'s Wayland socket',
    );
    const ipcSock = await until(() => readdirSync(runtimeDir).find((f) => f.startsWith('sway-ipc.')), 30_000, "sway's IPC socket");
    const clientEnv = { ...process.env, XDG_RUNTIME_DIR: runtimeDir, WAYLAND_DISPLAY: display };
    return {
      proc,
      runtimeDir,
      display,
      env: clientEnv,
      log: () => log,
      ipc: (type: string): unknown => {
        const r = spawnSync('swaymsg', ['-s', path.join(runtimeDir, ipcSock), '-t', type, '-r'], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`swaymsg -t ${type}: ${r.stderr || r.stdout}`);
        return JSON.parse(r.stdout);
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * What udevd would re-broadcast for a kernel uevent of the card: a "change" event in libudev's
 * monitor format on netlink group 2 (wayland-fake-udev.py). The rig has no udevd, and wlroots
 * learns of connector changes only from udev; e.g. { HOTPLUG: '1' } after writing a connector's
 * sysfs status makes sway rescan its connectors.
 */
export function fakeUdevChange(card: string, props: Record<string, string>): void {
  const sys = `/sys/class/drm/${path.basename(card)}`;
  const r = spawnSync('python3', [path.join(import.meta.dirname, 'wayland-fake-udev.py'), sys, ...Object.entries(props).map(([k, v]) => `${k}=${v}`)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`wayland-fake-udev.py ${sys}: ${r.stderr || r.stdout}`);
}

/** write a connector's sysfs status (on, off, detect) */
export function setConnectorStatus(card: string, connector: string, status: 'on' | 'off' | 'detect'): void {
  writeFileSync(`/sys/class/drm/${path.basename(card)}-${connector}/status`, status);
}

export interface LeaseHeads {
  /** head 0: sway's desktop */
  desktop: string;
  /** head 1: the Vive EDID override made it non-desktop, so sway offers it for lease */
  leased: string;
  leasedId: number;
  /** 1024x768 when offered (QEMU's EDID), else the first (the Vive EDID's own mode) */
  mode: ModeInfo;
}

/**
 * Before sway starts: head 1 of the second display gets the Vive EDID (non-desktop, checked);
 * `undo()` (afterAll) plugs it in again and removes the override, as the rig left it.
 */
export function prepareLeaseHeads(card: string): LeaseHeads & { undo(): void } {
  const dev = DrmDevice.open(card);
  let overridden = false;
  let leased = '';
  const undo = (): void => {
    if (!overridden) return;
    setConnectorStatus(card, leased, 'on'); // as the rig left it (and the reset needs it connected)
    setEdidOverride(card, leased, 'reset');
    overridden = false;
  };
  try {
    const heads = dev.snapshot().connectors.filter((c) => !c.writeback).sort((a, b) => a.id - b.id);
    if (heads.length !== 2) throw new Error(`${card} has ${heads.length} heads, not 2`);
    leased = heads[1]!.name;
    setEdidOverride(card, leased, viveEdid());
    overridden = true;
    const c = dev.snapshot().connectors.find((x) => x.id === heads[1]!.id)!;
    const nd = c.properties['non-desktop']?.value;
    if (nd !== 1n) throw new Error(`${leased}: non-desktop is ${nd} after the Vive EDID override (the kernel did not apply the quirk)`);
    const mode = c.modes.find((m) => m.hdisplay === 1024 && m.vdisplay === 768) ?? c.modes[0];
    if (!mode) throw new Error(`${leased} has no mode`);
    return { desktop: heads[0]!.name, leased, leasedId: c.id, mode, undo };
  } catch (e) {
    undo();
    throw e;
  } finally {
    dev.close(); // sway must become DRM master of the card
  }
}

/** the connectors the compositor of `env` offers, by `vgpu-flip inspect --leases --json` */
export function offeredConnectors(env: NodeJS.ProcessEnv): string[] {
  const r = spawnSync(process.execPath, [path.join(root, 'bin', 'vgpu-flip.js'), 'inspect', '--leases', '--json'], { env, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`inspect --leases failed (${r.status}): ${r.stderr}${r.stdout}`);
  return (JSON.parse(r.stdout) as { devices: { connectors: { name: string }[] }[] }).devices.flatMap((d) => d.connectors.map((c) => c.name));
}

/** offered now; false while the compositor is not answering yet (a client connected during sway's start waits) */
export function isOfferedNow(env: NodeJS.ProcessEnv, connector: string): boolean {
  try {
    return offeredConnectors(env).includes(connector);
  } catch {
    return false;
  }
}

/** head `head` of the second display shows guest pattern t (test/flip pattern), within 40 s */
export async function showsPattern(head: number, W: number, H: number, t: number): Promise<void> {
  const end = Date.now() + 40_000;
  for (;;) {
    const s = await screendump(head);
    let bad = 0;
    for (let y = 0; y < H; y += 9) for (let x = 0; x < W; x += 7) if (s.at(x, y) !== (patternPixel(x, y, W, H, t) & 0xffffff)) bad++;
    if (bad === 0 && s.width === W && s.height === H) return;
    if (Date.now() > end) throw new Error(`head ${head} does not show guest pattern ${t}: ${bad} sampled pixels differ (${s.width}x${s.height})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
