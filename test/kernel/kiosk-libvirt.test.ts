// The kiosk daemon with a VM given as `domain: NAME` (issue 9), against a real QEMU: Debian's
// qemu-system-x86_64 (paused, TCG) owns a vgpu-sim vGPU as libvirt starts it (-name
// guest=NAME,debug-threads=on -uuid UUID, the mdev as vfio-pci sysfsdev with display=off), and
// the test writes libvirt's runtime files for it the way libvirt does (src/util/virpidfile.c:
// NAME.pid is the pid without a newline; NAME.xml is the status: libvirt's header comment,
// <domstatus state='running' reason='booted' pid=...> with private data, the live <domain> with
// the mdev <hostdev>; written to a temporary file and renamed, as virFileRewrite does) into a
// test directory given to the daemon as `libvirt: { run-dir: ... }` (the rig's /run is the
// host's, read-only). vgpu-sim's debugfs files play the guest; the output is the rig's second
// display (virtio-gpu head 0), read back by QEMU screendump.
//
// The guest's pixels are shown; QEMU is stopped (SIGTERM, as `virsh destroy` starts), its files
// first left behind (stale: the pid is gone) and then removed as libvirt does: the daemon shows
// its idle colour (pidfd: at once) and `vgpu-flip status` says the VM is not on screen and why;
// QEMU is started again with new runtime files (a new pid): the daemon finds it by itself and
// shows the guest's new pixels. SIGTERM exits 0. Fails in CI without the second display or QEMU.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drawPattern, patternPixel } from '../../src/flip/pattern.js';
import { SimGuest, createSimInstance, type SimInstance } from '../../src/vgpu-sim/index.js';
import type { StatusReport } from '../../src/kiosk/status.js';
import { display2Card, display2CardOrUndefined, display2Head0 } from './display2-helpers.js';
import { cli, headShows, runDaemon, until } from './kiosk-helpers.js';
import { Qemu, QEMU_BIN } from './qemu-helpers.js';

const ci = /^(1|true|yes)$/i.test(process.env['CI'] ?? '');
const W = 1024;
const H = 768;
const IDLE = 0x305070;
const NAME = 'kiosk-desk';

describe.skipIf((display2CardOrUndefined() === undefined || !existsSync(QEMU_BIN)) && !ci)('kiosk daemon: a libvirt domain (a real QEMU and its runtime files)', () => {
  const domUuid = randomUUID();
  let vgpu: SimInstance | null = null;
  let qemu: Qemu | null = null;
  let dir = '';
  let runDir = '';
  let head0 = '';

  beforeAll(() => {
    head0 = display2Head0();
    dir = mkdtempSync(path.join(os.tmpdir(), 'kiosk-libvirt-'));
    runDir = path.join(dir, 'run-libvirt-qemu');
    mkdirSync(runDir, { mode: 0o700 }); // root only, like /run/libvirt/qemu
    vgpu = createSimInstance('vgpu_sim-small');
  });

  afterAll(async () => {
    await qemu?.stop();
    vgpu?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** QEMU as libvirt starts it for domain NAME with the vGPU */
  async function startQemu(): Promise<Qemu> {
    return Qemu.start({
      devices: [`vfio-pci,sysfsdev=/sys/bus/mdev/devices/${vgpu!.uuid},display=off,id=hostdev0,bus=pci.0,addr=0x5`],
      args: ['-name', `guest=${NAME},debug-threads=on`, '-uuid', domUuid],
      startTimeoutMs: 150_000,
    });
  }

  /** libvirt's runtime files of the running domain (pid file first, as at spawn; then the status) */
  function writeRuntimeFiles(q: Qemu): void {
    writeFileSync(path.join(runDir, `${NAME}.pid`), String(q.pid), { mode: 0o600 });
    const xml = [
      '<!--',
      'WARNING: THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE',
      'OVERWRITTEN AND LOST. Changes to this xml configuration should be made using:',
      `  virsh edit ${NAME}`,
      'or other application using the libvirt API.',
      '-->',
      '',
      `<domstatus state='running' reason='booted' pid='${q.pid}'>`,
      "  <taint flag='high-privileges'/>",
      `  <monitor path='${q.sock}' type='unix'/>`,
      '  <vcpus>',
      `    <vcpu id='0' pid='${q.pid}'/>`,
      '  </vcpus>',
      '  <qemuCaps>',
      "    <flag name='vfio-pci'/>",
      "    <flag name='vfio-pci.display'/>",
      '  </qemuCaps>',
      '  <devices>',
      "    <device alias='hostdev0'/>",
      '  </devices>',
      `  <libDir path='/var/lib/libvirt/qemu/domain-1-${NAME}'/>`,
      '  <domain type=\'qemu\' id=\'1\'>',
      `    <name>${NAME}</name>`,
      `    <uuid>${domUuid}</uuid>`,
      "    <memory unit='KiB'>65536</memory>",
      "    <currentMemory unit='KiB'>65536</currentMemory>",
      "    <vcpu placement='static'>1</vcpu>",
      '    <os>',
      "      <type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>",
      '    </os>',
      '    <devices>',
      `      <emulator>${QEMU_BIN}</emulator>`,
      "      <controller type='pci' index='0' model='pci-root'>",
      "        <alias name='pci.0'/>",
      '      </controller>',
      "      <hostdev mode='subsystem' type='mdev' managed='no' model='vfio-pci' display='off'>",
      '        <source>',
      `          <address uuid='${vgpu!.uuid}'/>`,
      '        </source>',
      "        <alias name='hostdev0'/>",
      "        <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>",
      '      </hostdev>',
      "      <memballoon model='none'/>",
      '    </devices>',
      '  </domain>',
      '</domstatus>',
      '',
    ].join('\n');
    const tmp = path.join(runDir, `${NAME}.xml.new`);
    writeFileSync(tmp, xml, { mode: 0o600 });
    renameSync(tmp, path.join(runDir, `${NAME}.xml`));
  }

  function removeRuntimeFiles(): void {
    for (const f of [`${NAME}.pid`, `${NAME}.xml`]) unlinkSync(path.join(runDir, f));
  }

  /** the guest draws pattern t on its primary plane (after QEMU's reset of the device) */
  function draw(t: number): void {
    const g = new SimGuest(vgpu!.uuid);
    g.setMode('primary', { fourcc: 'XR24', width: W, height: H });
    g.writePixels(0, drawPattern(W, H, t));
    g.flip('primary', 0);
  }

  const shows = (what: string, want: (x: number, y: number) => number): Promise<void> => headShows(0, what, want, W, H);

  async function status(sock: string): Promise<StatusReport> {
    const r = await cli(['status', '--json', '--socket', sock]);
    if (r.status !== 0) throw new Error(`vgpu-flip status exited ${r.status}: ${r.stderr}`);
    return JSON.parse(r.stdout) as StatusReport;
  }

  it('shows the domain\'s guest; QEMU stops: the idle colour, said in status; QEMU starts again with new runtime files: the guest again', async () => {
    qemu = await startQemu();
    writeRuntimeFiles(qemu);
    draw(121);
    const firstPid = qemu.pid;
    const sock = path.join(dir, 'kiosk.sock');
    const cfg = path.join(dir, 'kiosk.yaml');
    writeFileSync(cfg, [
      'version: 1',
      'outputs:',
      `  - { name: wall, device: ${display2Card()}, match: ${head0}, mode: ${W}x${H}, idle: "#${IDLE.toString(16)}" }`,
      `libvirt: { run-dir: ${runDir} }`,
      'vms:',
      `  - { name: desk, domain: ${NAME}, planes: { primary: { output: wall, paths: [dmabuf] } } }`,
      `control: { socket: ${sock} }`,
      '',
    ].join('\n'));
    const { p, exited, events, log } = runDaemon(cfg);
    try {
      await shows('the domain\'s guest (pattern 121)', (x, y) => patternPixel(x, y, W, H, 121) & 0xffffff);
      expect(log()).toContain(`vm desk: VMM pid ${firstPid} (libvirt domain ${NAME}), fd `);
      expect(log()).toContain(`vGPU ${vgpu!.uuid}`);
      await until(() => existsSync(sock), 120_000, () => `the control socket (log: ${log()})`);
      const on = await status(sock);
      expect(on.vms).toEqual([{ name: 'desk', source: `libvirt domain ${NAME} (${runDir})`, layersOnScreen: 1, waiting: null }]);
      expect(on.outputs[0]!.state).toBe('presenting');

      // QEMU goes (SIGTERM, as virsh destroy starts); libvirt has not removed its files yet
      await qemu.stop('SIGTERM');
      qemu = null;
      await shows('the idle colour after QEMU exited', () => IDLE);
      await until(() => events().some((e) => e.event === 'guest-left'), 60_000, () => `the guest-left line (log: ${log()})`);
      expect(log()).toMatch(new RegExp(`the VMM \\(pid ${firstPid}\\) of vm desk exited`));
      await until(() => log().includes(`stale runtime files: pid ${firstPid} is not running`), 60_000, () => `the daemon saying the files are stale (log: ${log()})`);
      const stale = await status(sock);
      expect(stale.outputs[0]!.state).toBe('no-vm');
      expect(stale.vms[0]!.layersOnScreen).toBe(0);
      expect(stale.vms[0]!.waiting).toContain(`stale runtime files: pid ${firstPid} is not running`);
      // libvirt removes them: not running, and status says so
      removeRuntimeFiles();
      await until(() => log().includes(`domain ${NAME} is not running: neither`), 90_000, () => `the daemon saying the domain is not running (log: ${log()})`);
      const off = await status(sock);
      expect(off.vms[0]!.waiting).toBe(`domain ${NAME} is not running: neither ${runDir}/${NAME}.xml nor ${runDir}/${NAME}.pid exists (libvirt keeps them while it runs; list running domains: virsh list); its outputs show their idle content until it runs`);
      const human = await cli(['status', '--socket', sock]);
      expect(human.stdout).toContain('waiting: no VM layer to show');
      expect(human.stdout).toContain(`desk (libvirt domain ${NAME} (${runDir})): domain ${NAME} is not running`);
      await shows('the idle colour while the domain is down', () => IDLE);

      // the domain starts again: a new QEMU, new runtime files; the daemon finds it by itself
      qemu = await startQemu();
      expect(qemu.pid).not.toBe(firstPid);
      writeRuntimeFiles(qemu);
      draw(122);
      await shows('the guest again after QEMU came back (pattern 122)', (x, y) => patternPixel(x, y, W, H, 122) & 0xffffff);
      expect(log()).toContain(`vm desk: VMM pid ${qemu.pid} (libvirt domain ${NAME}), fd `);
      expect(events().filter((e) => e.event === 'vm-back')).toHaveLength(1);
      const back = await status(sock);
      expect(back.vms[0]).toMatchObject({ layersOnScreen: 1, waiting: null });
      expect(back.outputs[0]!.state).toBe('presenting');
      // the guest keeps going: a new frame is on screen too
      new SimGuest(vgpu!.uuid).writePixels(0, drawPattern(W, H, 123));
      new SimGuest(vgpu!.uuid).flip('primary', 0);
      await shows('the guest\'s next frame (pattern 123)', (x, y) => patternPixel(x, y, W, H, 123) & 0xffffff);
      const errorLevel = (e: { level?: unknown }): boolean => e.level === 50 || e.level === 'error';
      expect(events().filter(errorLevel).map((e) => e.msg)).toEqual([]);
      expect(readFileSync(path.join(runDir, `${NAME}.pid`), 'utf8')).toBe(String(qemu.pid));

      p.kill('SIGTERM');
      expect(await exited, log()).toBe(0);
    } finally {
      if (p.exitCode === null) p.kill('SIGKILL');
    }
  }, 900_000);
});

