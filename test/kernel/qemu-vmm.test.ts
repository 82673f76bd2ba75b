// A real QEMU as the VMM (issue 8): Debian's qemu-system-x86_64 (7.2, from the shared host root)
// runs paused (-S, TCG, no guest code ever runs) and owns two VFIO devices through vfio-pci: a
// vgpu-sim vGPU with a display and a vgpu-sim "headless" (compute-only, no display ABI) instance,
// so it holds two VFIO device fds, as a VM with a vGPU and a passthrough device does.
// vgpu-sim's debugfs files play the guest. The tool attaches through QEMU's fd (pidfd_getfd):
// in process (openSession) with pixels read back through vkms' writeback, and as the CLI
// (`vgpu-flip assign --pid <qemu pid> [--vgpu <uuid>]`); killing QEMU while the CLI presents
// makes it restore the display and exit.
//
// QEMU resets the device when the machine is created (VFIO_DEVICE_RESET, before -S pauses):
// for vgpu-sim that is a guest reboot (all planes off), so the guest draws only after QEMU is up.
// One QEMU start for the whole file (TCG inside TCG is slow). Run in the VM:
//   bash test/rig/vm.sh --check-dmesg -- npx vitest run --configLoader runner --project kernel test/kernel/qemu-vmm.test.ts
// The CLI tests run bin/vgpu-flip.js, i.e. dist/ (npm run build first).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync, readlinkSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareRegion, type CapturedFrame } from '../../src/capture/writeback.js';
import { native } from '../../src/binding/index.js';
import { DrmDevice } from '../../src/kms/index.js';
import { drawPattern, patternPixel } from '../../src/flip/pattern.js';
import { openSession, type Session } from '../../src/flip/session.js';
import { VfioDevice, VfioGroupBusyError } from '../../src/vfio/index.js';
import { readVgpu } from '../../src/vfio/sysfs.js';
import { SimGuest, createSimInstance, type SimInstance } from '../../src/vgpu-sim/index.js';
import { findVkmsCard } from './kms-helpers.js';
import { displayState, sleep, waitFor } from './flip-helpers.js';
import { Qemu } from './qemu-helpers.js';

const PARAM = '/sys/module/vgpu_sim/parameters/host_card';
const PAGE = 4096;
const align = (n: number): number => Math.ceil(n / PAGE) * PAGE;
const BIN = path.join(import.meta.dirname, '..', '..', 'bin', 'vgpu-flip.js');
const BAD_KERNEL_LOG = /WARNING:|BUG:|Oops|KASAN|Call Trace|refcount_t|refcount:|UBSAN|list_(add|del) corruption|general protection|Bad page state/;

function dmesgProblems(): string[] {
  return execFileSync('dmesg', { encoding: 'utf8' })
    .split('\n')
    .filter((l) => BAD_KERNEL_LOG.test(l));
}

/** The capture shows pattern `seed` (w x h) at (0,0). */
function showsPattern(f: CapturedFrame, w: number, h: number, seed: number): string {
  const r = compareRegion(f, 0, 0, w, h, (x, y) => patternPixel(x, y, w, h, seed));
  return r.mismatches === 0 ? 'ok' : `${r.mismatches} pixels differ from pattern ${seed} (first ${JSON.stringify(r.first)})`;
}

/** QEMU's /proc fd links by kind. */
function qemuFds(pid: number): { devices: number[]; container: number; groups: string[] } {
  const dir = `/proc/${pid}/fd`;
  const out = { devices: [] as number[], container: 0, groups: [] as string[] };
  for (const n of readdirSync(dir)) {
    let t = '';
    try {
      t = readlinkSync(`${dir}/${n}`);
    } catch {
      continue;
    }
    if (t === 'anon_inode:[vfio-device]') out.devices.push(Number(n));
    else if (t === '/dev/vfio/vfio') out.container++;
    else if (/^\/dev\/vfio\/\d+$/.test(t)) out.groups.push(t);
  }
  out.devices.sort((a, b) => a - b);
  out.groups.sort();
  return out;
}

interface CliRun {
  lines: () => { type: string; [k: string]: unknown }[];
  out: () => string;
  err: () => string;
  exited: Promise<number | null>;
  pid: number;
}

function runCli(args: string[]): CliRun {
  const cli = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  cli.stdout.on('data', (d: Buffer) => (out += d.toString()));
  cli.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => cli.on('exit', (code) => resolve(code)));
  return {
    lines: () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { type: string; [k: string]: unknown }),
    out: () => out,
    err: () => err,
    exited,
    pid: cli.pid!,
  };
}

let card = '';
let vgpu: SimInstance | null = null;
let headless: SimInstance | null = null;
let guest: SimGuest;
let qemu: Qemu | null = null;
let session: Session | null = null;
let dup: VfioDevice | null = null;
let cliPid = 0;
let W = 0;
let H = 0;

beforeAll(async () => {
  card = findVkmsCard();
  const cur = readFileSync(PARAM, 'utf8').trim();
  if (cur === '' || cur === '(null)') writeFileSync(PARAM, path.basename(card)); // DRM_FB: bind to vkms
  const m = DrmDevice.open(card);
  try {
    const mode = m.snapshot().crtcs[0]!.mode;
    if (!mode) throw new Error(`${card}: CRTC 0 is dark (the rig lights it through fbcon unless --no-fbdev)`);
    W = mode.hdisplay;
    H = mode.vdisplay;
  } finally {
    m.close();
  }
  vgpu = createSimInstance('vgpu_sim-small');
  headless = createSimInstance('vgpu_sim-headless');
  guest = new SimGuest(vgpu.uuid);
  qemu = await Qemu.start({
    devices: [
      `vfio-pci,sysfsdev=/sys/bus/mdev/devices/${vgpu.uuid},display=off,id=vgpu0`,
      `vfio-pci,sysfsdev=/sys/bus/mdev/devices/${headless.uuid},id=compute0`,
    ],
    trace: ['vfio_pci_reset*', 'vfio_intx_enable', 'vfio_populate_device_config', 'vfio_region_setup', 'vfio_pci_size_rom'],
    startTimeoutMs: 150_000,
  });
}, 200_000);

afterAll(async () => {
  try {
    await session?.close();
  } catch {
    /* reported by the test that opened it */
  }
  dup?.close();
  if (cliPid) {
    try {
      process.kill(cliPid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  await qemu?.stop();
  if (qemu && process.env['VGPU_FLIP_JOB_DIR']) {
    // what QEMU said (warnings, vfio trace events), kept with the rig job for diagnosis
    writeFileSync(path.join(process.env['VGPU_FLIP_JOB_DIR'], 'qemu-vmm-stderr.txt'), qemu.stderr);
  }
  vgpu?.remove();
  headless?.remove();
});

describe('vgpu-sim as a PCI device (what vfio-pci needs), through its own VFIO fd', () => {
  const CFG = 7n << 40n; // VFIO_PCI_CONFIG_REGION_INDEX at index << 40
  const tool = path.join(process.env.TMPDIR ?? '/tmp', `vsim-irq-check-${process.pid}`);
  const irqCheck = (fd: number, ...args: string[]): Record<string, unknown> => {
    const r = spawnSync(tool, ['3', ...args], { stdio: ['ignore', 'pipe', 'pipe', fd], encoding: 'utf8' });
    expect(r.stderr).toBe('');
    return JSON.parse(r.stdout) as Record<string, unknown>;
  };
  beforeAll(() => {
    execFileSync('gcc', ['-O1', '-o', tool, path.join(import.meta.dirname, '..', '..', 'native/vgpu-sim/tools/irq-check.c')], { stdio: 'pipe' });
  });
  it('config space: type 0 header, BAR0 sized by writing ones, command/interrupt line writable, ROM absent; reset restores it', () => {
    const inst = createSimInstance('vgpu_sim-small');
    const d = VfioDevice.open(inst.uuid);
    try {
      const rd32 = (off: number): number => native.pread(d.fd, CFG + BigInt(off), 4).readUInt32LE(0);
      const wr32 = (off: number, v: number): void => {
        const b = Buffer.alloc(4);
        b.writeUInt32LE(v >>> 0);
        expect(native.pwrite(d.fd, CFG + BigInt(off), b)).toBe(4);
      };
      expect(rd32(0x00)).toBe(0x10f01b36);
      expect(rd32(0x08) >>> 8).toBe(0x038000); // class display/other, prog-if 0
      expect((rd32(0x0c) >>> 16) & 0xff).toBe(0); // header type 0, single function
      expect(rd32(0x04) & 0x00100000).toBe(0); // status: no capability list
      expect(rd32(0x34) & 0xff).toBe(0);
      expect((rd32(0x3c) >>> 8) & 0xff).toBe(1); // interrupt pin INTA#
      expect(rd32(0x10)).toBe(0x8); // BAR0: 32-bit prefetchable memory
      wr32(0x10, 0xffffffff);
      expect(rd32(0x10)).toBe((~(32 * 1024 * 1024 - 1) | 0x8) >>> 0); // sized: 32 MiB, flags kept
      wr32(0x10, 0xe0000000);
      expect(rd32(0x10)).toBe(0xe0000008);
      for (const off of [0x14, 0x18, 0x1c, 0x20, 0x24, 0x30]) {
        wr32(off, 0xffffffff);
        expect(rd32(off), `offset 0x${off.toString(16)}`).toBe(0); // no BAR1-5, no ROM
      }
      wr32(0x04, 0xffffffff);
      expect(rd32(0x04) & 0xffff).toBe(0x0406); // memory, bus master, INTx disable; no I/O space
      wr32(0x3c, 0xffffffff);
      expect(rd32(0x3c) & 0xffff).toBe(0x01ff); // line written, pin read-only
      wr32(0x00, 0); // ids are read-only
      expect(rd32(0x00)).toBe(0x10f01b36);
      const g = new SimGuest(inst.uuid);
      const r0 = g.pciState().resets;
      expect(g.pciState()).toMatchObject({ command: 0x0406, bar0: 0xe0000008 });
      g.setMode('primary', { fourcc: 'XR24', width: 64, height: 64 });
      expect(irqCheck(d.fd, 'reset')).toEqual({ reset: 0 }); // VFIO_DEVICE_RESET, as QEMU at machine reset
      expect(g.pciState()).toMatchObject({ resets: r0 + 1, command: 0, bar0: 0x8 });
      expect(g.status('primary').enabled).toBe(false); // a reset is a guest reboot: display off
      expect(d.regionInfo(7)).toMatchObject({ size: 256n });
      expect(d.regionInfo(6)).toMatchObject({ size: 0n }); // ROM
      expect(d.info()).toMatchObject({ numIrqs: 6 }); // INTx MSI MSI-X ERR REQ + the display event IRQ (index 5)
    } finally {
      d.close();
      inst.remove();
    }
  });

  it('IRQs: INTx (eventfd, loopback trigger, automask, unmask), ERR and REQ eventfds; no MSI/MSI-X vectors', () => {
    const inst = createSimInstance('vgpu_sim-small');
    const d = VfioDevice.open(inst.uuid);
    try {
      const j = irqCheck(d.fd);
      const EVENTFD = 1, MASKABLE = 2, AUTOMASKED = 4, NORESIZE = 8;
      expect(j.info).toEqual([
        { index: 0, err: 0, flags: EVENTFD | MASKABLE | AUTOMASKED, count: 1 },
        { index: 1, err: 0, flags: EVENTFD | NORESIZE, count: 0 },
        { index: 2, err: 0, flags: EVENTFD, count: 0 },
        { index: 3, err: 0, flags: EVENTFD, count: 1 },
        { index: 4, err: 0, flags: EVENTFD, count: 1 },
      ]);
      expect(j).toMatchObject({
        intx_set: 0, intx_fire: 0, intx_signalled: 1, intx_signalled_automasked: 0,
        intx_unmask: 0, intx_signalled_unmasked: 1, intx_mask: 0, intx_signalled_masked: 0,
        intx_unmask_eventfd: 22, intx_disable: 0, err_set: 0, err_clear: 0, req_set: 0,
        msi_set: 22, msix_disable: 22, bad_eventfd: 9, bad_index: 22,
      });
      // INTx disabled and ERR cleared by the tool; REQ stays set (the device holds a reference on
      // the eventfd, the tool's fd is gone) until the device is closed
      expect(new SimGuest(inst.uuid).pciState()).toMatchObject({ intx: false, err: false, req: true, intxFired: 2 });
    } finally {
      d.close();
    }
    expect(new SimGuest(inst.uuid).pciState()).toMatchObject({ req: false }); // released on close
    inst.remove();
  });

  it('a headless instance is a VFIO PCI device without the display ABI (QUERY_GFX_PLANE: ENOTTY)', () => {
    const inst = createSimInstance('vgpu_sim-headless');
    const d = VfioDevice.open(inst.uuid);
    try {
      expect(d.probePath('dmabuf')).toMatchObject({ supported: null, error: { code: 'ENOTTY' } });
      expect(d.regionInfo(0)).toMatchObject({ size: 16n << 20n });
      expect(native.pread(d.fd, CFG + 8n, 4).readUInt32LE(0) >>> 8).toBe(0x030200); // 3D controller
      expect(new SimGuest(inst.uuid).info().drmFb).toBe(false);
    } finally {
      d.close();
      inst.remove();
    }
  });
});

describe('QEMU 7.2 (vfio-pci) owns a vgpu-sim vGPU and a headless vgpu-sim device', () => {
  it('realizes both as PCI devices, resets them, wires INTx/ERR/REQ, and holds two VFIO device fds', async () => {
    const q = qemu!;
    expect(await q.cmd('query-status')).toMatchObject({ running: false, status: 'prelaunch' });
    const pci = (await q.cmd('query-pci')) as { devices: Record<string, unknown>[] }[];
    const devs = pci.flatMap((b) => b.devices);
    const byId = (id: string): Record<string, unknown> | undefined => devs.find((d) => d['qdev_id'] === id);
    for (const [id, cls, size] of [['vgpu0', 0x0380, 32 << 20], ['compute0', 0x0302, 16 << 20]] as const) {
      const d = byId(id);
      expect(d, `query-pci has no ${id}: ${JSON.stringify(devs)}`).toBeDefined();
      expect(d).toMatchObject({ id: { vendor: 0x1b36, device: 0x10f0, 'subsystem-vendor': 0x1b36, subsystem: 0x10f0 }, class_info: { class: cls } });
      expect(d!['irq_pin']).toBe(1); // INTA#, from config space
      // BAR0 as config space types it and region info sizes it: 32-bit prefetchable memory
      expect(d!['regions']).toEqual([expect.objectContaining({ bar: 0, type: 'memory', prefetch: true, mem_type_64: false, size })]);
    }
    expect(q.messages().filter((l) => /error|fail|cannot|could not/i.test(l))).toEqual([]);
    // the machine reset at creation reached the device as VFIO_DEVICE_RESET (QEMU's "FLR" path)
    expect(q.traces().some((l) => l.startsWith('vfio_pci_reset_flr'))).toBe(true);
    expect(q.traces().filter((l) => l.startsWith('vfio_intx_enable')).length).toBeGreaterThanOrEqual(2);

    const fds = qemuFds(q.pid);
    expect(fds.devices).toHaveLength(2);
    expect(fds.container).toBe(1);
    const groups = [vgpu!, headless!].map((i) => `/dev/vfio/${readVgpu(i.uuid).iommuGroup}`).sort();
    expect(fds.groups).toEqual(groups);
    for (const i of [vgpu!, headless!]) {
      const g = new SimGuest(i.uuid);
      expect(g.info().open).toBe(true);
      const p = g.pciState();
      expect(p.resets).toBeGreaterThanOrEqual(1);
      expect(p).toMatchObject({ intx: true, err: true, req: true, intxMasked: false });
      expect(readVgpu(i.uuid).holders.map((h) => h.pid)).toEqual([q.pid]);
    }
    // nobody else can open the group while QEMU holds it
    expect(() => VfioDevice.open(vgpu!.uuid)).toThrow(VfioGroupBusyError);
  });

  it('the guest draws after QEMU started; through a duplicate of QEMU\'s device fd the tool presents it (pixels via writeback)', async () => {
    const B = align(W * H * 4);
    guest.setMode('primary', { fourcc: 'XR24', width: W, height: H });
    guest.writePixels(0, drawPattern(W, H, 1));
    guest.writePixels(B, drawPattern(W, H, 2));
    // which of QEMU's two device fds is the vGPU: the one whose display answers
    const pid = qemu!.pid;
    const answers: string[] = [];
    for (const fd of qemuFds(pid).devices) {
      const d = VfioDevice.fromPid(pid, { targetFd: fd });
      const probe = d.probePath('dmabuf');
      answers.push(`fd ${fd}: ${JSON.stringify(probe)}`);
      if (probe.supported === true && d.queryPlane('primary', 'dmabuf').ready && !dup) dup = d;
      else d.close();
    }
    expect(dup, answers.join('\n')).not.toBeNull();
    expect(answers.filter((a) => /ENOTTY/.test(a))).toHaveLength(1); // the headless device has no display ABI
    const before = displayState(card);
    session = openSession({ vfioDevice: dup!, planes: ['primary'], crtc: 0, device: card, writeback: true });
    expect(session.path).toBe('drm_fb');
    const e = session.engine;
    const assigned = e.waitAssigned(20_000);
    e.start();
    await assigned;
    let f = await e.capture();
    expect(showsPattern(f, W, H, 1)).toBe('ok');
    guest.flip('primary', B); // the kernel moves the plane (DRM_FB), no commit of ours
    await sleep(300);
    f = await e.capture();
    expect(showsPattern(f, W, H, 2)).toBe('ok');
    await session.close();
    session = null;
    dup!.close();
    dup = null;
    expect(displayState(card)).toBe(before);
    expect(qemu!.running).toBe(true);
    expect(guest.info().open).toBe(true); // QEMU still holds it
  });

  it('openSession({ pid, vgpu }) finds the vGPU\'s fd among QEMU\'s two and presents it [needs --pid discovery]', async () => {
    guest.flip('primary', 0);
    const before = displayState(card);
    session = openSession({ pid: qemu!.pid, vgpu: vgpu!.uuid, planes: ['primary'], crtc: 0, device: card, writeback: true });
    expect(session.vfio).not.toBeNull();
    expect(session.path).toBe('drm_fb');
    const e = session.engine;
    const assigned = e.waitAssigned(20_000);
    e.start();
    await assigned;
    const f = await e.capture();
    expect(showsPattern(f, W, H, 1)).toBe('ok');
    await session.close();
    session = null;
    expect(displayState(card)).toBe(before);
  });

  it('CLI: `assign --pid <qemu pid> --vgpu <uuid> --plane primary --duration 3 --json` presents and restores [needs --pid discovery]', async () => {
    const before = displayState(card);
    const r = runCli(['assign', '--pid', String(qemu!.pid), '--vgpu', vgpu!.uuid, '--device', card, '--plane', 'primary', '--duration', '3', '--json']);
    cliPid = r.pid;
    const code = await Promise.race([r.exited, sleep(60_000).then(() => 'timeout')]);
    cliPid = 0;
    expect(code, `stdout:\n${r.out()}\nstderr:\n${r.err()}`).toBe(0);
    expect(r.lines().find((l) => l.type === 'assigned')).toMatchObject({ paths: { primary: 'drm_fb' } });
    expect(r.lines().find((l) => l.type === 'summary')).toBeDefined();
    expect(displayState(card)).toBe(before);
    expect(qemu!.running).toBe(true);
  });

  it('CLI: `assign --pid <qemu pid>` alone picks the vGPU (not the headless device); killing QEMU makes it restore the display and exit [needs --pid discovery + VMM-exit detection]', async () => {
    const before = displayState(card);
    const r = runCli(['assign', '--pid', String(qemu!.pid), '--device', card, '--plane', 'primary', '--duration', '60', '--json']);
    cliPid = r.pid;
    const early = await Promise.race([
      waitFor(() => r.lines().some((l) => l.type === 'assigned'), 60_000, 'the CLI assignment').then(() => 'assigned'),
      r.exited.then((c) => `exited ${c}`),
    ]).catch((e: Error) => e.message);
    expect(early, `stdout:\n${r.out()}\nstderr:\n${r.err()}`).toBe('assigned');
    expect(r.lines().find((l) => l.type === 'assigned')).toMatchObject({ paths: { primary: 'drm_fb' } });
    // the kernel's display state shows the vGPU's framebuffer (vgpu-sim's fb id for its primary)
    await sleep(300);
    const fb = guest.fbId('primary');
    expect(fb).toBeGreaterThan(0);
    expect(displayState(card)).toMatch(new RegExp(`fb=${fb}\\b`));

    const t0 = Date.now();
    await qemu!.stop('SIGKILL');
    const code = await Promise.race([r.exited, sleep(20_000).then(() => 'timeout')]);
    const dt = Date.now() - t0;
    cliPid = code === 'timeout' ? cliPid : 0;
    expect(code, `stdout:\n${r.out()}\nstderr:\n${r.err()}`).toBe(0);
    expect(dt).toBeLessThan(10_000);
    expect(r.out()).toMatch(/exit/i); // it says the VMM went away
    expect(displayState(card)).toBe(before);
    // with QEMU and the tool gone, the device is closed and the group free
    await waitFor(() => !guest.info().open, 5000, 'the vGPU to be closed');
    expect(readVgpu(vgpu!.uuid).holders).toEqual([]);
    const d = VfioDevice.open(vgpu!.uuid);
    expect(d.probe().dmabuf.supported).toBe(true);
    d.close();
    expect(dmesgProblems()).toEqual([]);
  });
});
