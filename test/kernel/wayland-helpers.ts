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
