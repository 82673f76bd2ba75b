// A libvirt domain's QEMU process and vGPUs, from the qemu driver's runtime files, as libvirt
// writes them (checked against libvirt's sources and test data, see test/host/fixtures/libvirt/):
//
//   RUN/NAME.pid  the QEMU pid in decimal, no newline (util/virpidfile.c: "%lld"), written when
//                 QEMU is spawned; QEMU holds a lock on it while it runs.
//   RUN/NAME.xml  the live status: an "AUTO-GENERATED FILE" comment, then
//                 <domstatus state='running' reason='booted' pid='N'> with libvirt's private data
//                 (monitor, vcpus, qemuCaps, a private <devices> of aliases, ...) and the live
//                 <domain type='kvm' id='N'> with <name>, <uuid> and <devices>, where a vGPU is
//                 <hostdev mode='subsystem' type='mdev' model='vfio-pci' display='on|off' ...>
//                   <source><address uuid='...'/></source> [<alias>] [<address type='pci'>]
//                 (the second <address> is the guest's slot). Other hostdevs: type='pci'
//                 (<source><address domain= bus= slot= function=>), 'usb', 'scsi', 'scsi_host',
//                 and mdevs of other models (vfio-ccw, vfio-ap: no display).
//
// RUN is /run/libvirt/qemu for qemu:///system. libvirt removes both files when the domain stops;
// files left behind (libvirtd was not running when QEMU died, a crash) name a pid that is gone or
// that now belongs to another process: QEMU's command line is checked for the domain's
// `-uuid UUID` or `-name guest=NAME` (what libvirt passes it; tests/qemuxmlconfdata/*.args).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { child, children, parseXml, XmlSyntaxError, type XmlElement } from './xml-lite.js';

export const LIBVIRT_QEMU_RUN_DIR = '/run/libvirt/qemu';

export interface LibvirtHostdev {
  /** the hostdev's type: mdev, pci, usb, scsi, scsi_host */
  type: string;
  /** mdev: its model (vfio-pci has a display; vfio-ccw and vfio-ap do not); null for others */
  model: string | null;
  /** mdev UUID (lower case), PCI address as 0000:01:00.0, else what <source> says */
  name: string;
  /** the display attribute ('on' / 'off'), null when absent (libvirt's default: off) */
  display: string | null;
  /** the device alias (hostdev0, ua-...), null when absent */
  alias: string | null;
}

export interface LibvirtStatus {
  /** <domstatus state=...>: running, paused, shutdown, shutoff, crashed, pmsuspended, blocked, nostate */
  state: string | null;
  reason: string | null;
  pid: number | null;
  name: string | null;
  uuid: string | null;
  hostdevs: LibvirtHostdev[];
}

export interface LibvirtDomain {
  name: string;
  pid: number;
  pidFile: string;
  xmlFile: string;
  state: string | null;
  uuid: string | null;
  hostdevs: LibvirtHostdev[];
  /** the display-capable vGPUs (mdev, model vfio-pci), lower case, in the XML's order */
  mdevs: string[];
}

/**
 * Why a domain cannot be used now: not-running (no runtime files, or a stopped state), starting
 * (one file written, the other not yet; pids disagree), stale (files of a QEMU that is gone),
 * invalid (a file that is not what libvirt writes). The first three are worth waiting out.
 */
export class LibvirtDomainError extends Error {
  constructor(
    readonly kind: 'not-running' | 'starting' | 'stale' | 'invalid',
    message: string,
  ) {
    super(message);
  }
}

const STOPPED_STATES = new Set(['shutoff', 'crashed']);

function hostdevOf(h: XmlElement, file: string): LibvirtHostdev | null {
  const type = h.attrs['type'] ?? '';
  const mode = h.attrs['mode'] ?? 'subsystem';
  const src = child(h, 'source');
  const addr = src ? child(src, 'address') : undefined;
  const alias = child(h, 'alias')?.attrs['name'] ?? null;
  const bad = (what: string): never => {
    throw new LibvirtDomainError('invalid', `${file} line ${h.line}: <hostdev type='${type}'> ${what}`);
  };
  if (mode !== 'subsystem') return { type: `${mode}:${type}`, model: null, name: '', display: null, alias };
  if (type === 'mdev') {
    const uuid = addr?.attrs['uuid'];
    if (!uuid) return bad("has no <source><address uuid='...'/></source>");
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(uuid)) return bad(`names the mdev ${JSON.stringify(uuid)}, which is not a UUID`);
    return { type, model: h.attrs['model'] ?? null, name: uuid.toLowerCase(), display: h.attrs['display'] ?? null, alias };
  }
  if (type === 'pci') {
    const num = (k: string, width: number): string | null => {
      const v = addr?.attrs[k];
      if (v === undefined) return null;
      const n = Number(v); // libvirt writes 0x-prefixed hex; decimal is allowed
      return Number.isInteger(n) && n >= 0 ? n.toString(16).padStart(width, '0') : null;
    };
    const b = num('bus', 2);
    const s = num('slot', 2);
    if (b === null || s === null) return bad('has no <source><address bus= slot=> (the host PCI device)');
    return { type, model: null, name: `${num('domain', 4) ?? '0000'}:${b}:${s}.${Number(addr?.attrs['function'] ?? 0)}`, display: null, alias };
  }
  // usb (vendor/product or bus/device), scsi, scsi_host: not vGPUs; named for messages only
  const parts = src ? src.children.map((c) => `${c.name}${Object.entries(c.attrs).map(([k, v]) => ` ${k}=${v}`).join('')}`) : [];
  return { type, model: null, name: parts.join(', '), display: null, alias };
}

/** Parse a status XML (<domstatus> around <domain>; a bare <domain> is read too). Throws LibvirtDomainError('invalid'). */
export function parseStatusXml(xml: string, file = 'the status XML'): LibvirtStatus & { root: string } {
  let root: XmlElement;
  try {
    root = parseXml(xml);
  } catch (e) {
    if (e instanceof XmlSyntaxError) throw new LibvirtDomainError('invalid', `${file}: not well-formed XML: ${e.message}`);
    throw e;
  }
  let dom: XmlElement | undefined;
  if (root.name === 'domstatus') {
    dom = child(root, 'domain');
    if (!dom) throw new LibvirtDomainError('invalid', `${file}: <domstatus> has no <domain> (libvirt writes the live domain inside it)`);
  } else if (root.name === 'domain') dom = root;
  else throw new LibvirtDomainError('invalid', `${file}: the root element is <${root.name}>, not libvirt's <domstatus> (or <domain>)`);
  const ds = root.name === 'domstatus' ? root : null;
  const pidAttr = ds?.attrs['pid'];
  if (pidAttr !== undefined && !/^\d+$/.test(pidAttr)) throw new LibvirtDomainError('invalid', `${file}: <domstatus pid=${JSON.stringify(pidAttr)}> is not a process id`);
  const devices = child(dom, 'devices');
  const hostdevs = devices ? children(devices, 'hostdev').map((h) => hostdevOf(h, file)).filter((h): h is LibvirtHostdev => h !== null) : [];
  const text = (n: string): string | null => child(dom, n)?.text.trim() || null;
  return {
    root: root.name,
    state: ds?.attrs['state'] ?? null,
    reason: ds?.attrs['reason'] ?? null,
    pid: pidAttr !== undefined && Number(pidAttr) > 0 ? Number(pidAttr) : null,
    name: text('name'),
    uuid: text('uuid')?.toLowerCase() ?? null,
    hostdevs,
  };
}

/** The hostdevs of a domain (or domstatus) XML, and domstatus' pid attribute when present. */
export function parseDomainXml(xml: string): { pid: number | null; hostdevs: LibvirtHostdev[] } {
  const s = parseStatusXml(xml);
  return { pid: s.pid, hostdevs: s.hostdevs };
}

function readOrNull(f: string, name: string): string | null {
  try {
    return readFileSync(f, 'utf8');
  } catch (e) {
    const code = (e as { code?: string }).code ?? String(e);
    if (code === 'ENOENT') return null;
    throw new LibvirtDomainError('invalid', `--domain ${name}: cannot read ${f} (${code})${code === 'EACCES' ? ': run as root (libvirt makes its runtime files root-only)' : ''}`);
  }
}

/** null when `pid` runs domain `name`'s QEMU, else why not (stale runtime files). */
export function checkQemuProcess(pid: number, name: string, uuid: string | null, procRoot = '/proc'): string | null {
  let argv: string[];
  try {
    argv = readFileSync(path.join(procRoot, String(pid), 'cmdline'), 'latin1').split('\0');
  } catch {
    return `pid ${pid} is not running`;
  }
  if (argv.length <= 1 && argv[0] === '') return `pid ${pid} has exited (a zombie)`;
  const guest = name.replace(/,/g, ',,'); // QEMU option syntax: a comma is doubled
  for (let i = 0; i < argv.length - 1; i++) {
    const a = argv[i]!.replace(/^--/, '-');
    if (a === '-uuid' && uuid && argv[i + 1]!.toLowerCase() === uuid) return null;
    if (a === '-name' && (argv[i + 1] === name || argv[i + 1]!.split(/(?<!,),(?!,)/).includes(`guest=${guest}`))) return null;
  }
  let comm = '?';
  try {
    comm = readFileSync(path.join(procRoot, String(pid), 'comm'), 'utf8').trim();
  } catch {
    /* gone meanwhile */
  }
  return `pid ${pid} is now another process (${comm}), not the QEMU of domain ${name} (its command line has neither ${uuid ? `-uuid ${uuid} nor ` : ''}-name guest=${name})`;
}

/**
 * Read NAME.pid and NAME.xml of a running domain and check that the pid is its QEMU. Throws
 * LibvirtDomainError naming the file and what is wrong.
 */
export function readLibvirtDomain(name: string, runDir = LIBVIRT_QEMU_RUN_DIR, o: { procRoot?: string } = {}): LibvirtDomain {
  if (name === '' || name.includes('/') || name === '.' || name === '..') {
    throw new LibvirtDomainError('invalid', `--domain ${JSON.stringify(name)}: not a libvirt domain name`);
  }
  const pidFile = path.join(runDir, `${name}.pid`);
  const xmlFile = path.join(runDir, `${name}.xml`);
  const pidText = readOrNull(pidFile, name);
  const xml = readOrNull(xmlFile, name);
  if (xml === null) {
    throw pidText === null
      ? new LibvirtDomainError('not-running', `--domain ${name}: domain ${name} is not running: neither ${xmlFile} nor ${pidFile} exists (libvirt keeps them while it runs; list running domains: virsh list)`)
      : new LibvirtDomainError('starting', `--domain ${name}: ${pidFile} exists but ${xmlFile} does not: the domain is starting (or a stale pid file is left)`);
  }
  const s = parseStatusXml(xml, xmlFile);
  if (s.root !== 'domstatus') {
    throw new LibvirtDomainError('invalid', `--domain ${name}: ${xmlFile} is a domain definition (<domain>), not libvirt's live status (<domstatus>): is ${runDir} libvirt's runtime directory (/run/libvirt/qemu), not /etc/libvirt/qemu?`);
  }
  if (s.name !== null && s.name !== name) throw new LibvirtDomainError('invalid', `--domain ${name}: ${xmlFile} is the status of domain ${JSON.stringify(s.name)}, not ${name}`);
  if (s.state !== null && STOPPED_STATES.has(s.state)) {
    throw new LibvirtDomainError('not-running', `--domain ${name}: ${xmlFile} says the domain is ${s.state}${s.reason ? ` (${s.reason})` : ''}: not running`);
  }
  let filePid: number | null = null;
  if (pidText !== null) {
    const t = pidText.trim();
    if (!/^\d+$/.test(t) || Number(t) <= 0) throw new LibvirtDomainError('invalid', `--domain ${name}: ${pidFile} does not hold a pid (${JSON.stringify(t.slice(0, 40))})`);
    filePid = Number(t);
  }
  if (filePid !== null && s.pid !== null && filePid !== s.pid) {
    throw new LibvirtDomainError('starting', `--domain ${name}: ${pidFile} says pid ${filePid} but ${xmlFile} says pid ${s.pid} (the domain is restarting? try again)`);
  }
  const pid = s.pid ?? filePid;
  if (pid === null) {
    throw new LibvirtDomainError('starting', `--domain ${name}: no QEMU pid: ${xmlFile} has no <domstatus pid=...> and ${pidFile} does not exist (the domain is starting?)`);
  }
  const from = s.pid !== null ? xmlFile : pidFile;
  const why = checkQemuProcess(pid, name, s.uuid, o.procRoot);
  if (why !== null) throw new LibvirtDomainError('stale', `--domain ${name}: stale runtime files: ${why} (pid from ${from}); the domain stopped without libvirt removing them`);
  const mdevs = s.hostdevs.filter((h) => h.type === 'mdev' && (h.model === null || h.model === 'vfio-pci')).map((h) => h.name);
  return { name, pid, pidFile, xmlFile, state: s.state, uuid: s.uuid, hostdevs: s.hostdevs, mdevs };
}

/** "mdev A (display on), pci 0000:03:00.0": a domain's hostdevs for messages */
export function describeHostdevs(h: LibvirtHostdev[]): string {
  if (h.length === 0) return 'no <hostdev>';
  return h.map((d) => `${d.type}${d.model && d.model !== 'vfio-pci' ? ` (${d.model})` : ''} ${d.name}${d.display ? ` (display ${d.display})` : ''}`).join(', ');
}

/** A pid file: the first line's number, null when absent or not a pid. */
export function readPidFile(file: string): number | null {
  try {
    const t = readFileSync(file, 'utf8').split('\n')[0]!.trim();
    return /^\d+$/.test(t) && Number(t) > 0 ? Number(t) : null;
  } catch {
    return null;
  }
}
