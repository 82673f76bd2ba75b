// A libvirt domain's QEMU process and vGPUs, from libvirt's runtime files (qemu driver):
//
//   /run/libvirt/qemu/NAME.pid   the QEMU pid (a number and a newline)
//   /run/libvirt/qemu/NAME.xml   the live status XML: <domstatus state=... pid='N'> around the
//                                running <domain>, whose mediated devices are
//                                <hostdev mode='subsystem' type='mdev' model='vfio-pci' display='on'>
//                                  <source><address uuid='...'/></source></hostdev>
//                                (libvirt's domain XML format, "Host device assignment", mdev)
// Both files are root-only; the root folder is injectable for tests.
import { readFileSync } from 'node:fs';
import path from 'node:path';

export const LIBVIRT_QEMU_RUN_DIR = '/run/libvirt/qemu';

export interface LibvirtHostdev {
  type: 'mdev' | 'pci';
  /** mdev UUID, or PCI address as 0000:01:00.0 */
  name: string;
  /** the display attribute of an mdev hostdev ('on' / 'off'), null when absent */
  display: string | null;
}

export interface LibvirtDomain {
  name: string;
  pid: number;
  pidFile: string;
  xmlFile: string;
  hostdevs: LibvirtHostdev[];
  /** the mdev UUIDs, in the XML's order */
  mdevs: string[];
}

function attr(tag: string, name: string): string | null {
  const m = new RegExp(`\\s${name}\\s*=\\s*(?:'([^']*)'|"([^"]*)")`).exec(tag);
  return m ? (m[1] ?? m[2] ?? '') : null;
}

/** The hostdevs of a domain (or domstatus) XML, and domstatus' pid attribute when present. */
export function parseDomainXml(xml: string): { pid: number | null; hostdevs: LibvirtHostdev[] } {
  const noComments = xml.replace(/<!--[\s\S]*?-->/g, '');
  const ds = /<domstatus\b[^>]*>/.exec(noComments);
  const pidAttr = ds ? attr(ds[0], 'pid') : null;
  const hostdevs: LibvirtHostdev[] = [];
  const re = /<hostdev\b([^>]*?)(\/>|>([\s\S]*?)<\/hostdev>)/g;
  for (let m = re.exec(noComments); m; m = re.exec(noComments)) {
    const open = `<hostdev${m[1]}>`;
    const body = m[3] ?? '';
    const type = attr(open, 'type');
    // only <source>'s address names the host device (a sibling <address> is the guest's slot)
    const src = /<source\b[^>]*>([\s\S]*?)<\/source>/.exec(body)?.[1] ?? '';
    const addr = /<address\b[^>]*\/?>/.exec(src)?.[0];
    if (!addr) continue;
    if (type === 'mdev') {
      const uuid = attr(addr, 'uuid');
      if (uuid) hostdevs.push({ type: 'mdev', name: uuid.toLowerCase(), display: attr(open, 'display') });
    } else if (type === 'pci') {
      const num = (k: string, width: number): string | null => {
        const v = attr(addr, k);
        if (v === null) return null;
        const n = Number(v); // libvirt writes 0x-prefixed hex; decimal is allowed
        return Number.isInteger(n) ? n.toString(16).padStart(width, '0') : null;
      };
      const d = num('domain', 4) ?? '0000';
      const b = num('bus', 2);
      const s = num('slot', 2);
      const f = attr(addr, 'function');
      if (b !== null && s !== null) hostdevs.push({ type: 'pci', name: `${d}:${b}:${s}.${f === null ? 0 : Number(f)}`, display: null });
    }
  }
  return { pid: pidAttr !== null && /^\d+$/.test(pidAttr) ? Number(pidAttr) : null, hostdevs };
}

/** Read NAME.pid and NAME.xml of a running domain. Throws with the file and what to do. */
export function readLibvirtDomain(name: string, runDir = LIBVIRT_QEMU_RUN_DIR): LibvirtDomain {
  if (name === '' || name.includes('/') || name === '.' || name === '..') {
    throw new Error(`--domain ${JSON.stringify(name)}: not a libvirt domain name`);
  }
  const pidFile = path.join(runDir, `${name}.pid`);
  const xmlFile = path.join(runDir, `${name}.xml`);
  const read = (f: string): string => {
    try {
      return readFileSync(f, 'utf8');
    } catch (e) {
      const code = (e as { code?: string }).code ?? String(e);
      const what =
        code === 'ENOENT'
          ? `domain ${name} is not running under libvirt's qemu driver (list them: virsh list)`
          : code === 'EACCES'
            ? 'run as root'
            : code;
      throw new Error(`--domain ${name}: cannot read ${f} (${code}): ${what}`, { cause: e });
    }
  };
  const pidText = read(pidFile).trim();
  if (!/^\d+$/.test(pidText) || Number(pidText) <= 0) throw new Error(`--domain ${name}: ${pidFile} does not hold a pid (${JSON.stringify(pidText.slice(0, 40))})`);
  const pid = Number(pidText);
  const x = parseDomainXml(read(xmlFile));
  if (x.pid !== null && x.pid !== pid) {
    throw new Error(`--domain ${name}: ${pidFile} says pid ${pid} but ${xmlFile} says pid ${x.pid} (the domain is restarting? try again)`);
  }
  return { name, pid, pidFile, xmlFile, hostdevs: x.hostdevs, mdevs: x.hostdevs.filter((h) => h.type === 'mdev').map((h) => h.name) };
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
