// libvirt's runtime files of a QEMU domain (src/vfio/libvirt.ts), read from libvirt's own test
// data (test/fixtures/libvirt/README.md says where each file comes from): a whole status file
// (tests/qemustatusxml2xmldata/modern-in.xml) and domain XMLs with mdev, PCI and vfio-ccw
// hostdevs put in libvirt's status wrapper the way libvirt's status tests do (qemuxml2xmltest.c's
// testStatusXMLPrefix + the domain + </domstatus>). The QEMU process behind a pid is a fake
// /proc entry or a real process with a libvirt-like command line.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkQemuProcess, LibvirtDomainError, parseStatusXml, readLibvirtDomain } from '../../src/vfio/libvirt.js';
import { resolveVmmTarget } from '../../src/cli/commands/assign-target.js';
import { acquireVm } from '../../src/kiosk/vm-source.js';
import type { VmConfig } from '../../src/kiosk/model.js';

const FIX = path.join(import.meta.dirname, '..', 'fixtures', 'libvirt');
const fixture = (f: string): string => readFileSync(path.join(FIX, f), 'utf8');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'vgpu-flip-libvirt-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

const MDEV = '53764d0e-85a0-42b4-af5c-2046b460b1dc';
const CCW = '90c6c135-ad44-41d0-b1b7-bae47de48627';
const DOM_UUID = 'c7a5fdbd-edaf-9455-926a-d65c16db1809';

/** libvirt's header comment (virXMLSaveFile), as on a real host */
const header = (name: string): string =>
  `<!--\nWARNING: THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE\nOVERWRITTEN AND LOST. Changes to this xml configuration should be made using:\n  virsh edit ${name}\nor other application using the libvirt API.\n-->\n\n`;

/** a domain XML in libvirt's status wrapper, indented by 2 as libvirt's status test does */
function status(domainXml: string, o: { pid?: number | null; state?: string } = {}): string {
  let prefix = fixture('status-prefix.xml');
  if (o.pid === null) prefix = prefix.replace(" pid='3803518'", '');
  else if (o.pid !== undefined) prefix = prefix.replace("pid='3803518'", `pid='${o.pid}'`);
  if (o.state) prefix = prefix.replace("state='running'", `state='${o.state}'`);
  const indented = domainXml.trimEnd().split('\n').map((l) => `  ${l}`).join('\n');
  return `${prefix}${indented}\n</domstatus>\n`;
}

/** the <hostdev> elements of a fixture, as written there */
const hostdevsOf = (f: string): string[] => [...fixture(f).matchAll(/ *<hostdev [\s\S]*?<\/hostdev>\n/g)].map((m) => m[0]);

/** a fake /proc entry: pid -> argv */
function fakeProc(root: string, pid: number, argv: string[], comm = 'qemu-system-x86'): void {
  mkdirSync(path.join(root, String(pid)), { recursive: true });
  writeFileSync(path.join(root, String(pid), 'cmdline'), argv.map((a) => `${a}\0`).join(''));
  writeFileSync(path.join(root, String(pid), 'comm'), `${comm}\n`);
}
/** libvirt's QEMU command line (tests/qemuxmlconfdata/*.args) */
const qemuArgv = (name: string, uuid: string): string[] => ['/usr/bin/qemu-system-x86_64', '-name', `guest=${name.replace(/,/g, ',,')},debug-threads=on`, '-S', '-uuid', uuid, '-display', 'none'];

function runDir(name: string): string {
  const d = path.join(tmp, name);
  mkdirSync(d, { recursive: true });
  return d;
}

describe('libvirt status XML (libvirt\'s test data)', () => {
  it('a whole status file (modern-in.xml): state, pid, name, uuid; private data and other devices\' <source> are not hostdevs', () => {
    const s = parseStatusXml(fixture('modern-in.xml'));
    expect(s).toEqual({ root: 'domstatus', state: 'running', reason: 'booted', pid: 195139, name: 'upstream', uuid: 'dcf47dbd-46d1-4d5b-b442-262a806a333a', hostdevs: [] });
    // libvirt's header comment in front changes nothing (it names `virsh edit NAME`)
    expect(parseStatusXml(header('upstream') + fixture('modern-in.xml'))).toEqual(s);
  });

  it('mdev hostdevs: the uuid from <source>, not the guest\'s <address type=pci>; model and display as written', () => {
    expect(parseStatusXml(status(fixture('hostdev-mdev-display.xml'))).hostdevs).toEqual([{ type: 'mdev', model: 'vfio-pci', name: MDEV, display: 'on', alias: null }]);
    expect(parseStatusXml(status(fixture('hostdev-mdev-precreated.x86_64-latest.xml'))).hostdevs).toEqual([{ type: 'mdev', model: 'vfio-pci', name: MDEV, display: 'off', alias: null }]);
    expect(parseStatusXml(status(fixture('hostdev-subsys-mdev-vfio-ccw.xml'))).hostdevs).toEqual([{ type: 'mdev', model: 'vfio-ccw', name: CCW, display: null, alias: null }]);
    expect(parseStatusXml(status(fixture('hostdev-vfio.xml'))).hostdevs).toEqual([{ type: 'pci', model: null, name: '0000:06:12.1', display: null, alias: null }]);
  });
});

describe('readLibvirtDomain: the running domain behind NAME.pid and NAME.xml', () => {
  const proc = path.join(tmp, 'proc');
  // several hostdevs in one domain: hostdev-vfio.xml's PCI device, then the display mdev, a second
  // vfio-pci mdev (display off, its uuid changed to be another device) and a vfio-ccw mdev
  const SECOND = '53764d0e-85a0-42b4-af5c-2046b460b1dd';
  const several = fixture('hostdev-vfio.xml').replace(
    '    <memballoon',
    [...hostdevsOf('hostdev-mdev-display.xml'), ...hostdevsOf('hostdev-mdev-precreated.x86_64-latest.xml').map((h) => h.replace(MDEV, SECOND.toUpperCase())), ...hostdevsOf('hostdev-subsys-mdev-vfio-ccw.xml')].join('') + '    <memballoon',
  ).replace('c7a5fdbd-edaf-9466-926a-d65c16db1809', DOM_UUID);

  it('several hostdevs: all listed in order; the vGPUs are the vfio-pci mdevs; a pid file without newline (as libvirt writes it)', () => {
    const d = runDir('several');
    writeFileSync(path.join(d, 'QEMUGuest2.xml'), header('QEMUGuest2') + status(several, { pid: 5001 }));
    writeFileSync(path.join(d, 'QEMUGuest2.pid'), '5001');
    fakeProc(proc, 5001, qemuArgv('QEMUGuest2', DOM_UUID));
    const r = readLibvirtDomain('QEMUGuest2', d, { procRoot: proc });
    expect(r).toEqual({
      name: 'QEMUGuest2',
      pid: 5001,
      pidFile: path.join(d, 'QEMUGuest2.pid'),
      xmlFile: path.join(d, 'QEMUGuest2.xml'),
      state: 'running',
      uuid: DOM_UUID,
      hostdevs: [
        { type: 'pci', model: null, name: '0000:06:12.1', display: null, alias: null },
        { type: 'mdev', model: 'vfio-pci', name: MDEV, display: 'on', alias: null },
        { type: 'mdev', model: 'vfio-pci', name: SECOND, display: 'off', alias: null },
        { type: 'mdev', model: 'vfio-ccw', name: CCW, display: null, alias: null },
      ],
      mdevs: [MDEV, SECOND],
    });
  });

  it('the pid is taken from <domstatus pid> when NAME.pid is missing; the QEMU is recognised by -name guest=NAME too', () => {
    const d = runDir('xml-pid-only');
    writeFileSync(path.join(d, 'g1.xml'), status(fixture('hostdev-mdev-display.xml').replace('QEMUGuest2', 'g1'), { pid: 5002 }));
    fakeProc(proc, 5002, ['qemu-system-x86_64', '-name', 'guest=g1,debug-threads=on']);
    expect(readLibvirtDomain('g1', d, { procRoot: proc }).pid).toBe(5002);
  });

  const fails = (name: string, d: string): LibvirtDomainError => {
    try {
      readLibvirtDomain(name, d, { procRoot: proc });
    } catch (e) {
      if (e instanceof LibvirtDomainError) return e;
      throw e;
    }
    throw new Error(`readLibvirtDomain(${name}) did not fail`);
  };

  it('not running, starting, stopped: each says which file and what it means', () => {
    const d = runDir('states');
    expect(fails('gone', d)).toMatchObject({ kind: 'not-running', message: `--domain gone: domain gone is not running: neither ${d}/gone.xml nor ${d}/gone.pid exists (libvirt keeps them while it runs; list running domains: virsh list)` });
    writeFileSync(path.join(d, 'early.pid'), '5003');
    expect(fails('early', d)).toMatchObject({ kind: 'starting', message: `--domain early: ${d}/early.pid exists but ${d}/early.xml does not: the domain is starting (or a stale pid file is left)` });
    writeFileSync(path.join(d, 'nopid.xml'), status(fixture('hostdev-mdev-display.xml').replace('QEMUGuest2', 'nopid'), { pid: null }));
    expect(fails('nopid', d)).toMatchObject({ kind: 'starting', message: `--domain nopid: no QEMU pid: ${d}/nopid.xml has no <domstatus pid=...> and ${d}/nopid.pid does not exist (the domain is starting?)` });
    writeFileSync(path.join(d, 'off.xml'), status(fixture('hostdev-mdev-display.xml').replace('QEMUGuest2', 'off'), { state: 'shutoff' }).replace("reason='booted'", "reason='destroyed'"));
    expect(fails('off', d)).toMatchObject({ kind: 'not-running', message: `--domain off: ${d}/off.xml says the domain is shutoff (destroyed): not running` });
    writeFileSync(path.join(d, 'two.xml'), status(fixture('hostdev-mdev-display.xml').replace('QEMUGuest2', 'two'), { pid: 5004 }));
    writeFileSync(path.join(d, 'two.pid'), '5005');
    expect(fails('two', d)).toMatchObject({ kind: 'starting', message: `--domain two: ${d}/two.pid says pid 5005 but ${d}/two.xml says pid 5004 (the domain is restarting? try again)` });
  });

  it('stale files of a stopped domain: the pid is gone, or is now another process', () => {
    const d = runDir('stale');
    writeFileSync(path.join(d, 'QEMUGuest2.xml'), status(fixture('hostdev-mdev-display.xml'), { pid: 5006 }));
    writeFileSync(path.join(d, 'QEMUGuest2.pid'), '5006');
    expect(fails('QEMUGuest2', d)).toMatchObject({
      kind: 'stale',
      message: `--domain QEMUGuest2: stale runtime files: pid 5006 is not running (pid from ${d}/QEMUGuest2.xml); the domain stopped without libvirt removing them`,
    });
    fakeProc(proc, 5006, ['/usr/bin/sleep', '100'], 'sleep');
    expect(fails('QEMUGuest2', d).message).toBe(
      `--domain QEMUGuest2: stale runtime files: pid 5006 is now another process (sleep), not the QEMU of domain QEMUGuest2 (its command line has neither -uuid ${DOM_UUID} nor -name guest=QEMUGuest2) (pid from ${d}/QEMUGuest2.xml); the domain stopped without libvirt removing them`,
    );
    // another domain's QEMU is not this one's either
    fakeProc(proc, 5006, qemuArgv('other', 'dcf47dbd-46d1-4d5b-b442-262a806a333a'));
    expect(fails('QEMUGuest2', d).kind).toBe('stale');
  });

  it('files that are not what libvirt writes: not well-formed (line and column), a definition instead of the status, another domain, a broken hostdev, a bad pid', () => {
    const d = runDir('invalid');
    const full = status(fixture('hostdev-mdev-display.xml'), { pid: 5007 });
    writeFileSync(path.join(d, 'QEMUGuest2.xml'), full.slice(0, full.lastIndexOf('</devices>')));
    const cut = fails('QEMUGuest2', d);
    expect([cut.kind, cut.message]).toEqual(['invalid', `${d}/QEMUGuest2.xml: not well-formed XML: line 35, column 5: <devices> is never closed (the file ends inside it)`]);
    writeFileSync(path.join(d, 'QEMUGuest2.xml'), full.replace("<address uuid='53764d0e", "<address uuid=53764d0e"));
    expect(fails('QEMUGuest2', d).message).toBe(`${d}/QEMUGuest2.xml: not well-formed XML: line 55, column 25: attribute uuid of <address>: the value must be quoted`);
    writeFileSync(path.join(d, 'QEMUGuest2.xml'), header('QEMUGuest2') + fixture('hostdev-mdev-display.xml'));
    expect(fails('QEMUGuest2', d).message).toBe(`--domain QEMUGuest2: ${d}/QEMUGuest2.xml is a domain definition (<domain>), not libvirt's live status (<domstatus>): is ${d} libvirt's runtime directory (/run/libvirt/qemu), not /etc/libvirt/qemu?`);
    writeFileSync(path.join(d, 'QEMUGuest2.xml'), status(fixture('modern-in.xml').replace(/^[\s\S]*?<domain /, '<domain ').replace(/<\/domstatus>\n$/, '')));
    expect(fails('QEMUGuest2', d).message).toBe(`--domain QEMUGuest2: ${d}/QEMUGuest2.xml is the status of domain "upstream", not QEMUGuest2`);
    writeFileSync(path.join(d, 'QEMUGuest2.xml'), full.replace("        <address uuid='53764d0e-85a0-42b4-af5c-2046b460b1dc'/>\n", ''));
    expect(fails('QEMUGuest2', d).message).toBe(`${d}/QEMUGuest2.xml line 53: <hostdev type='mdev'> has no <source><address uuid='...'/></source>`);
    writeFileSync(path.join(d, 'QEMUGuest2.xml'), full);
    writeFileSync(path.join(d, 'QEMUGuest2.pid'), 'qemu\n');
    expect(fails('QEMUGuest2', d).message).toBe(`--domain QEMUGuest2: ${d}/QEMUGuest2.pid does not hold a pid ("qemu")`);
    unlinkSync(path.join(d, 'QEMUGuest2.pid'));
    writeFileSync(path.join(d, 'QEMUGuest2.xml'), full.replace("<domstatus state='running'", "<domstate state='running'").replace('</domstatus>', '</domstate>'));
    expect(fails('QEMUGuest2', d).message).toBe(`${d}/QEMUGuest2.xml: the root element is <domstate>, not libvirt's <domstatus> (or <domain>)`);
    expect(fails('../etc/x', d).message).toBe('--domain "../etc/x": not a libvirt domain name');
  });
});

describe('a real process as the domain\'s QEMU (/proc), `assign --domain` and the kiosk\'s domain: source', () => {
  /** a process with libvirt's QEMU command line (node sleeping, the arguments after --) */
  function fakeQemu(name: string, uuid: string): Promise<number> {
    const c = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600000)', '--', ...qemuArgv(name, uuid).slice(1)], { stdio: 'ignore' });
    children.push(c);
    return new Promise((resolve, reject) => {
      c.once('spawn', () => resolve(c.pid!));
      c.once('error', reject);
    });
  }

  it('checkQemuProcess reads the real /proc: -uuid and -name guest= (commas doubled) match, nothing else does', async () => {
    const pid = await fakeQemu('a,b', DOM_UUID);
    for (let i = 0; i < 50 && !readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('-uuid'); i++) await new Promise((r) => setTimeout(r, 20));
    expect(checkQemuProcess(pid, 'a,b', DOM_UUID)).toBe(null);
    expect(checkQemuProcess(pid, 'a,b', null)).toBe(null); // -name guest=a,,b
    expect(checkQemuProcess(pid, 'a', null)).toMatch(/^pid \d+ is now another process \(.+\), not the QEMU of domain a \(its command line has neither -name guest=a\)$/);
    expect(checkQemuProcess(process.pid, 'a,b', DOM_UUID)).toMatch(/is now another process/);
  });

  it('assign --domain: the pid and the single vGPU of the domain; --vgpu must be one of them', async () => {
    const d = runDir('assign');
    const pid = await fakeQemu('QEMUGuest2', DOM_UUID);
    writeFileSync(path.join(d, 'QEMUGuest2.xml'), header('QEMUGuest2') + status(fixture('hostdev-mdev-display.xml'), { pid }));
    writeFileSync(path.join(d, 'QEMUGuest2.pid'), String(pid));
    for (let i = 0; i < 50 && !readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('-uuid'); i++) await new Promise((r) => setTimeout(r, 20));
    expect(resolveVmmTarget({ domain: 'QEMUGuest2', libvirtRunDir: d, wait: true, via: 'vfio' })).toEqual({
      pid,
      vgpu: MDEV,
      locator: { kind: 'domain', name: 'QEMUGuest2', runDir: d },
      checks: [`libvirt domain QEMUGuest2: QEMU pid ${pid} (${d}/QEMUGuest2.pid), mdev ${MDEV} (${d}/QEMUGuest2.xml)`],
    });
    expect(() => resolveVmmTarget({ domain: 'QEMUGuest2', libvirtRunDir: d, vgpu: CCW, wait: false, via: 'vfio' })).toThrow(`--vgpu ${CCW} is not a vGPU of libvirt domain QEMUGuest2 (${d}/QEMUGuest2.xml has mdev ${MDEV})`);

    // the kiosk: the domain is found; its QEMU (a fake) has no VFIO device: "wait", said with the pid
    const vm = (domain: string, vgpu?: string): VmConfig => ({ name: 'wall', source: { kind: 'domain', domain, runDir: d, ...(vgpu ? { vgpu } : {}) }, layers: [] });
    const a = acquireVm(vm('QEMUGuest2'), undefined, () => undefined);
    expect(a.kind, JSON.stringify(a)).toBe('wait');
    expect((a as { why: string }).why).toContain(`vm wall: the VMM (pid ${pid}, libvirt domain QEMUGuest2) shows no vGPU display yet`);
    expect(acquireVm(vm('QEMUGuest2', CCW), undefined, () => undefined)).toEqual({ kind: 'error', why: `vm wall: vGPU ${CCW} is not a vGPU of libvirt domain QEMUGuest2 (${d}/QEMUGuest2.xml has mdev ${MDEV} (display on))` });
    // not running / stale: wait (looked for again); a broken file: an error
    expect(acquireVm(vm('gone'), undefined, () => undefined)).toEqual({
      kind: 'wait',
      why: `vm wall: domain gone is not running: neither ${d}/gone.xml nor ${d}/gone.pid exists (libvirt keeps them while it runs; list running domains: virsh list); its outputs show their idle content until it runs`,
    });
    writeFileSync(path.join(d, 'ccw.xml'), status(fixture('hostdev-subsys-mdev-vfio-ccw.xml').replace('QEMUGuest1', 'ccw'), { pid }));
    // the same QEMU (libvirt's test domains share a uuid) with only a vfio-ccw mdev: no display vGPU
    expect(acquireVm(vm('ccw'), undefined, () => undefined)).toEqual({ kind: 'error', why: `vm wall: libvirt domain ccw has no vGPU (no <hostdev type='mdev' model='vfio-pci'>; ${d}/ccw.xml has mdev (vfio-ccw) ${CCW})` });
    // files left by a stopped domain whose pid is now someone else (this test process): wait
    writeFileSync(path.join(d, 'left.xml'), status(fixture('hostdev-mdev-display.xml').replace('QEMUGuest2', 'left').replace(DOM_UUID, 'dcf47dbd-46d1-4d5b-b442-262a806a333a'), { pid: process.pid }));
    expect(acquireVm(vm('left'), undefined, () => undefined)).toMatchObject({ kind: 'wait' });
    writeFileSync(path.join(d, 'bad.xml'), '<domstatus');
    expect(acquireVm(vm('bad'), undefined, () => undefined)).toEqual({ kind: 'error', why: `vm wall: libvirt domain bad: ${d}/bad.xml: not well-formed XML: line 1, column 1: <domstatus> is cut off (the file ends inside its start tag)` });
  });

  it('a domain with no vGPU, and one with two: errors that list what the file has', async () => {
    const d = runDir('choice');
    const pid = await fakeQemu('QEMUGuest2', 'c7a5fdbd-edaf-9466-926a-d65c16db1809');
    for (let i = 0; i < 50 && !readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('-uuid'); i++) await new Promise((r) => setTimeout(r, 20));
    writeFileSync(path.join(d, 'QEMUGuest2.xml'), status(fixture('hostdev-vfio.xml'), { pid }));
    const vm: VmConfig = { name: 'wall', source: { kind: 'domain', domain: 'QEMUGuest2', runDir: d }, layers: [] };
    expect(acquireVm(vm, undefined, () => undefined)).toEqual({ kind: 'error', why: `vm wall: libvirt domain QEMUGuest2 has no vGPU (no <hostdev type='mdev' model='vfio-pci'>; ${d}/QEMUGuest2.xml has pci 0000:06:12.1)` });
    const two = fixture('hostdev-vfio.xml').replace('    <memballoon', [...hostdevsOf('hostdev-mdev-display.xml'), ...hostdevsOf('hostdev-mdev-display.xml').map((h) => h.replace(MDEV, CCW))].join('') + '    <memballoon');
    writeFileSync(path.join(d, 'QEMUGuest2.xml'), status(two, { pid }));
    expect(acquireVm(vm, undefined, () => undefined)).toEqual({ kind: 'error', why: `vm wall: libvirt domain QEMUGuest2 has 2 vGPUs (${MDEV}, ${CCW} in ${d}/QEMUGuest2.xml): say which with vgpu:` });
  });
});

describe('kiosk configuration: libvirt: run-dir:', () => {
  it('sets where domain: VMs are looked up (their source says so); a relative path is refused at its line', async () => {
    const { loadConfigText } = await import('../../src/kiosk/load.js');
    const { formatProblem } = await import('../../src/kiosk/problems.js');
    const { sourceText } = await import('../../src/kiosk/model.js');
    const text = (dir: string): string => ['version: 1', 'outputs:', '  - { name: main, match: Virtual-1 }', 'libvirt:', `  run-dir: ${dir}`, 'vms:', '  - { name: w, domain: win10, planes: { primary: { output: main } } }', ''].join('\n');
    const r = loadConfigText('k.yaml', text('/tmp/libvirt-test'));
    expect(r.problems).toEqual([]);
    expect(r.config!.vms[0]!.source).toEqual({ kind: 'domain', domain: 'win10', runDir: '/tmp/libvirt-test' });
    expect(sourceText(r.config!.vms[0]!.source)).toBe('libvirt domain win10 (/tmp/libvirt-test)');
    expect(loadConfigText('k.yaml', text('run/libvirt')).problems.map(formatProblem)).toEqual(['k.yaml:5:12: libvirt.run-dir: "run/libvirt" is not an absolute path to a directory (it must start with "/")']);
  });
});

describe('kiosk --check: a domain: VM against this machine', () => {
  it('not running: a warning (the daemon waits); a broken status file or a domain without a vGPU: a problem naming the file', async () => {
    const { checkMachine } = await import('../../src/kiosk/machine-check.js');
    const d = runDir('check');
    const cfg = (domain: string): import('../../src/kiosk/model.js').KioskConfig => ({
      version: 1,
      outputs: [{ name: 'main', match: { kind: 'connector', name: 'Virtual-1' }, device: path.join(d, 'no-card'), mode: { kind: 'preferred' }, modeset: true, idle: { kind: 'black' }, lease: null }],
      vms: [{ name: 'w', source: { kind: 'domain', domain, runDir: d }, layers: [] }],
      control: { socket: path.join(d, 'sock'), group: null },
      log: { format: 'text', level: 'info' },
    });
    const vmFindings = (domain: string) => checkMachine(cfg(domain)).findings.filter((f) => f.vm === 'w');
    expect(vmFindings('gone')).toEqual([{ severity: 'warning', vm: 'w', message: `domain gone is not running: neither ${d}/gone.xml nor ${d}/gone.pid exists (libvirt keeps them while it runs; list running domains: virsh list): the daemon waits for it` }]);
    writeFileSync(path.join(d, 'bad.xml'), status(fixture('hostdev-mdev-display.xml')).replace('</domain>', '</domian>'));
    expect(vmFindings('bad')).toEqual([{ severity: 'problem', vm: 'w', message: `libvirt domain bad: ${d}/bad.xml: not well-formed XML: line 61, column 3: </domian> closes <domain> (opened on line 21)` }]);
    writeFileSync(path.join(d, 'QEMUGuest2.xml'), status(fixture('hostdev-vfio.xml'), { pid: process.pid }));
    expect(vmFindings('QEMUGuest2')[0]).toMatchObject({ severity: 'warning', message: expect.stringContaining(`stale runtime files: pid ${process.pid} is now another process`) });
  });
});
