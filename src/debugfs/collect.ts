// Gather everything `vgpu-flip debugfs` shows: DRM state of each device, vGPU debug
// attributes, the assignment state of running vgpu-flip processes; then join them.
// Failures that make the command pointless (debugfs not mounted, not root, no DRM device)
// throw DebugfsUnavailableError with what to do; everything else degrades to notes.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { defaultRunDir, drmMinorOf, readAssignmentStates, type AssignmentStates } from './assignment-state.js';
import { joinDebugfs, type DeviceState, type JoinedRow } from './join.js';
import { parseDrmFramebuffers, parseDrmState } from './state.js';
import { readGvt, readSimInstances, type GvtDebug, type SimInstanceDebug } from './vgpu.js';

export const DEFAULT_DEBUGFS = '/sys/kernel/debug';

export function defaultDebugfsRoot(): string {
  return process.env.VGPU_FLIP_DEBUGFS || DEFAULT_DEBUGFS;
}

export type UnavailableReason = 'not-mounted' | 'not-root' | 'no-drm' | 'no-device';

/** debugfs cannot be read: `reason` and a message that says what to do. */
export class DebugfsUnavailableError extends Error {
  constructor(
    message: string,
    readonly reason: UnavailableReason,
    readonly root: string,
  ) {
    super(message);
    this.name = 'DebugfsUnavailableError';
  }
}

export interface CollectOptions {
  /** debugfs mount point (default $VGPU_FLIP_DEBUGFS or /sys/kernel/debug) */
  debugfsRoot?: string;
  /** assignment state folder (default $VGPU_FLIP_RUN_DIR or /run/vgpu-flip) */
  runDir?: string;
  /** only this DRM device: '/dev/dri/card0', 'card0' or a minor number '0' */
  device?: string;
  /** plane types from the KMS API, per minor (optional; failures ignored) */
  planeTypes?: (minor: number) => Map<number, string> | null;
  /**
   * read vgpu-sim's per-plane fb_id attributes (default true: when a hardware plane shows an
   * imported framebuffer that no running vgpu-flip claims)
   */
  simFbIds?: boolean;
  /** /sys/module/vgpu_sim/parameters/host_card (tests) */
  simHostCardParam?: string;
  /** is the caller root (default: process.getuid() === 0) */
  isRoot?: boolean;
  /** the mount table (default /proc/self/mounts) */
  mountsFile?: string;
}

export interface DebugfsReport {
  debugfsRoot: string;
  devices: (DeviceState & { statePath: string })[];
  sim: SimInstanceDebug[];
  gvt: GvtDebug[];
  assignments: AssignmentStates;
  rows: JoinedRow[];
  notes: string[];
}

function code(e: unknown): string {
  return typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : String(e);
}

const MOUNT_HINT = (root: string): string => `mount it (as root): mount -t debugfs none ${root}`;
const ROOT_HINT = 'debugfs is readable by root only: run as root (e.g. sudo vgpu-flip debugfs)';

function isMountPoint(root: string, mountsFile: string): boolean | null {
  try {
    const mounts = readFileSync(mountsFile, 'utf8');
    const want = path.resolve(root);
    return mounts.split('\n').some((l) => {
      const f = l.split(' ');
      return f[1]?.replace(/\\040/g, ' ') === want && (f[2] === 'debugfs' || f[0] === 'debugfs');
    });
  } catch {
    return null;
  }
}

function minorOfArg(device: string): number {
  if (/^\d+$/.test(device)) return Number(device);
  const m = /^card(\d+)$/.exec(device);
  if (m) return Number(m[1]);
  const minor = drmMinorOf(device);
  if (minor === null) throw new DebugfsUnavailableError(`--device ${device}: not a DRM card node (expected /dev/dri/cardN, cardN or a minor number)`, 'no-device', '');
  return minor;
}

/** The DRM side alone: devices with a readable atomic state dump. */
export function readDrmDevices(root: string, o: CollectOptions = {}): (DeviceState & { statePath: string })[] {
  const isRoot = o.isRoot ?? (typeof process.getuid === 'function' ? process.getuid() === 0 : true);
  let top: string[];
  try {
    top = readdirSync(root);
  } catch (e) {
    const c = code(e);
    if (c === 'EACCES' || c === 'EPERM') throw new DebugfsUnavailableError(`cannot read ${root} (${c}): ${ROOT_HINT}`, 'not-root', root);
    if (c === 'ENOENT') throw new DebugfsUnavailableError(`${root} does not exist: debugfs is not mounted there; ${MOUNT_HINT(root)} (the kernel needs CONFIG_DEBUG_FS)`, 'not-mounted', root);
    throw new DebugfsUnavailableError(`cannot read ${root} (${c})`, 'not-mounted', root);
  }
  if (!top.includes('dri')) {
    const mounted = isMountPoint(root, o.mountsFile ?? '/proc/self/mounts');
    if (top.length === 0 || mounted === false) {
      throw new DebugfsUnavailableError(`debugfs is not mounted at ${root} (${top.length === 0 ? 'the folder is empty' : 'no debugfs in the mount table'}): ${MOUNT_HINT(root)}`, 'not-mounted', root);
    }
    throw new DebugfsUnavailableError(`no DRM device: ${path.join(root, 'dri')} does not exist (no DRM driver loaded? load your GPU's KMS driver, e.g. modprobe vkms)`, 'no-drm', root);
  }
  const driDir = path.join(root, 'dri');
  let minors: number[];
  try {
    minors = readdirSync(driDir)
      .filter((n) => /^\d+$/.test(n))
      .map(Number)
      .filter((n) => n < 64) // primary nodes; render nodes (128+) repeat the same device
      .sort((a, b) => a - b);
  } catch (e) {
    const c = code(e);
    throw new DebugfsUnavailableError(`cannot read ${driDir} (${c})${c === 'EACCES' || c === 'EPERM' ? `: ${ROOT_HINT}` : ''}`, c === 'EACCES' || c === 'EPERM' ? 'not-root' : 'no-drm', root);
  }
  let wanted: number | null = null;
  if (o.device !== undefined) {
    wanted = minorOfArg(o.device);
    if (!minors.includes(wanted)) {
      throw new DebugfsUnavailableError(`no DRM device with minor ${wanted} in ${driDir} (there: ${minors.length ? minors.join(', ') : 'none'})`, 'no-device', root);
    }
  }
  const out: (DeviceState & { statePath: string })[] = [];
  const problems: string[] = [];
  for (const minor of minors) {
    if (wanted !== null && minor !== wanted) continue;
    const dir = path.join(driDir, String(minor));
    const statePath = path.join(dir, 'state');
    let text: string;
    try {
      text = readFileSync(statePath, 'utf8');
    } catch (e) {
      const c = code(e);
      if (c === 'EACCES' || c === 'EPERM') throw new DebugfsUnavailableError(`cannot read ${statePath} (${c}): ${ROOT_HINT}`, 'not-root', root);
      problems.push(`${statePath}: ${c === 'ENOENT' ? 'absent (the driver does not use atomic modesetting)' : c}`);
      continue;
    }
    let framebuffers = null;
    try {
      framebuffers = parseDrmFramebuffers(readFileSync(path.join(dir, 'framebuffer'), 'utf8'));
    } catch {
      /* optional */
    }
    let driver = '';
    try {
      driver = readFileSync(path.join(dir, 'name'), 'utf8').trim().split(/\s+/)[0] ?? '';
    } catch {
      /* optional */
    }
    let planeTypes = new Map<number, string>();
    try {
      planeTypes = o.planeTypes?.(minor) ?? planeTypes;
    } catch {
      /* optional */
    }
    out.push({ minor, driver, state: parseDrmState(text), framebuffers, planeTypes, statePath });
  }
  if (out.length === 0) {
    const why = problems.length ? problems.join('; ') : `no device folders in ${driDir}`;
    throw new DebugfsUnavailableError(
      `no DRM device with an atomic state dump under ${driDir} (${why})${!isRoot ? `; ${ROOT_HINT}` : ''}`,
      'no-drm',
      root,
    );
  }
  return out;
}

/** Read every source and join them. Throws DebugfsUnavailableError when the DRM side is unreadable. */
export function collectDebugfs(o: CollectOptions = {}): DebugfsReport {
  const root = o.debugfsRoot ?? defaultDebugfsRoot();
  const devices = readDrmDevices(root, o);
  const assignments = readAssignmentStates(o.runDir ?? defaultRunDir());
  // vgpu-sim creates a plane's host framebuffer when its fb_id is first read: read the ids only
  // when a hardware plane shows an imported framebuffer no running vgpu-flip claims as its own
  // (then it may be one of vgpu-sim's, and such a framebuffer exists already)
  const claimed = new Set(assignments.live.flatMap((a) => a.fbIdsInUse));
  const unexplained = devices.some((d) => d.state.planes.some((p) => p.fb !== null && p.fb.imported && !claimed.has(p.fbId)));
  const sim = readSimInstances(root, {
    fbIds: o.simFbIds !== false && unexplained,
    ...(o.simHostCardParam ? { hostCardParam: o.simHostCardParam } : {}),
  });
  const gvt = readGvt(root);
  const joined = joinDebugfs({ devices, sim, assignments: assignments.live });
  const notes = [...joined.notes];
  if (assignments.error) notes.push(`assignment state: ${assignments.error}`);
  for (const s of assignments.stale) notes.push(`ignored stale assignment state ${s.file}: ${s.why}`);
  if (assignments.live.length === 0) notes.push(`no running vgpu-flip assignment (no live state file in ${assignments.dir}): guest planes are known only from the vGPUs' own attributes`);
  for (const inst of sim) if (inst.error) notes.push(`vgpu-sim ${inst.uuid}: ${inst.error}`);
  if (!existsSync(path.join(root, 'vgpu_sim')) && gvt.length === 0) notes.push('no vGPU debug attributes (no vgpu_sim or GVT-g folder in debugfs)');
  return { debugfsRoot: root, devices, sim, gvt, assignments, rows: joined.rows, notes };
}
