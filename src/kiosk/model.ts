// The kiosk configuration as the daemon uses it: the schema's output (src/kiosk/schema.ts)
// with every string format parsed (src/kiosk/values.ts) and every default decided, as plain,
// JSON-serialisable data. Built by resolveConfig() only from a configuration that passed the
// schema AND the cross-field checks (src/kiosk/checks.ts).
import type { GuestPlaneKind, Placement } from '../flip/planner.js';
import type { KioskConfigRaw, PathKind } from './schema.js';
import { devicePath, parseIdle, parseMatch, parseMode, parsePlacement, type IdleSpec, type ModeSpec, type OutputMatch } from './values.js';

export interface OutputConfig {
  name: string;
  match: OutputMatch;
  /** DRM card path; null = the first card with KMS */
  device: string | null;
  mode: ModeSpec;
  modeset: boolean;
  idle: IdleSpec;
  /** leased from the Wayland compositor (wayland: its socket, null = as libwayland finds it); null = the card as DRM master */
  lease: { wayland: string | null } | null;
}

/** How the daemon finds the VM's vGPU. UUIDs are lower case. */
export type VmSource =
  /** runDir: libvirt's runtime directory when the configuration names one (libvirt: run-dir:) */
  | { kind: 'domain'; domain: string; runDir?: string; vgpu?: string }
  | { kind: 'pidfile'; path: string; vgpu?: string }
  /** an existing vGPU whose VFIO group the daemon opens and owns */
  | { kind: 'mdev'; uuid: string }
  /** created at start, removed on exit (only when the daemon created it) */
  | { kind: 'create'; parent: string; type: string; uuid?: string };

/** One guest plane of one VM on one output: a layer of that output. */
export interface LayerConfig {
  vm: string;
  plane: GuestPlaneKind;
  output: string;
  /** null for the cursor: it follows the guest pointer */
  placement: Placement | null;
  z: number;
  /** display paths in order of preference */
  paths: PathKind[];
}

export interface VmConfig {
  name: string;
  source: VmSource;
  /** in plane order primary, overlay, cursor */
  layers: LayerConfig[];
}

export interface KioskConfig {
  version: 1;
  outputs: OutputConfig[];
  vms: VmConfig[];
  control: { socket: string; group: string | null };
  log: { format: 'text' | 'pretty' | 'json'; level: 'error' | 'warn' | 'info' | 'debug' };
}

/** default z per guest plane kind: primary at the bottom, cursor on top */
export const DEFAULT_Z: Record<GuestPlaneKind, number> = { primary: 0, overlay: 1, cursor: 2 };

/** "win10/primary": how diffs and logs name a layer */
export function layerKey(l: Pick<LayerConfig, 'vm' | 'plane'>): string {
  return `${l.vm}/${l.plane}`;
}

export function allLayers(c: KioskConfig): LayerConfig[] {
  return c.vms.flatMap((v) => v.layers);
}

/** the layers of one output, bottom to top */
export function layersOf(c: KioskConfig, output: string): LayerConfig[] {
  return allLayers(c).filter((l) => l.output === output).sort((a, b) => a.z - b.z);
}

export function sourceText(s: VmSource): string {
  switch (s.kind) {
    case 'domain': return `libvirt domain ${s.domain}${s.runDir ? ` (${s.runDir})` : ''}${s.vgpu ? ` (vGPU ${s.vgpu})` : ''}`;
    case 'pidfile': return `VMM of ${s.path}${s.vgpu ? ` (vGPU ${s.vgpu})` : ''}`;
    case 'mdev': return `mdev ${s.uuid} (owned)`;
    case 'create': return `new ${s.type} on ${s.parent}${s.uuid ? ` as ${s.uuid}` : ''}`;
  }
}

function sourceOf(v: KioskConfigRaw['vms'][number], runDir: string | undefined): VmSource {
  const vgpu = v.vgpu ? { vgpu: v.vgpu.toLowerCase() } : {};
  if (v.domain !== undefined) return { kind: 'domain', domain: v.domain, ...(runDir !== undefined ? { runDir } : {}), ...vgpu };
  if (v.pidfile !== undefined) return { kind: 'pidfile', path: v.pidfile, ...vgpu };
  if (v.mdev !== undefined) return { kind: 'mdev', uuid: v.mdev.toLowerCase() };
  if (v.create !== undefined) {
    return { kind: 'create', parent: v.create.parent, type: v.create.type, ...(v.create.uuid ? { uuid: v.create.uuid.toLowerCase() } : {}) };
  }
  throw new Error(`vm ${v.name}: no source (the checks should have said so)`);
}

/** Schema output -> model. Throws only on a configuration the checks would have rejected. */
export function resolveConfig(raw: KioskConfigRaw): KioskConfig {
  const outputs: OutputConfig[] = raw.outputs.map((o) => ({
    name: o.name,
    match: parseMatch(o.match),
    device: o.device ? devicePath(o.device) : null,
    mode: parseMode(o.mode),
    modeset: o.modeset,
    idle: parseIdle(o.idle),
    lease: o.lease === undefined || o.lease === false ? null : { wayland: o.lease === true ? null : (o.lease.wayland ?? null) },
  }));
  const vms: VmConfig[] = raw.vms.map((v) => {
    const layers: LayerConfig[] = [];
    const { primary, overlay, cursor } = v.planes;
    for (const [plane, l] of [['primary', primary], ['overlay', overlay]] as const) {
      if (!l) continue;
      const placement = l.placement ?? (plane === 'primary' ? 'fill' : undefined);
      if (placement === undefined) throw new Error(`vm ${v.name}: overlay without placement`);
      layers.push({ vm: v.name, plane, output: l.output, placement: parsePlacement(placement), z: l.z ?? DEFAULT_Z[plane], paths: [...l.paths] });
    }
    if (cursor) {
      const output = cursor.output ?? primary?.output;
      if (output === undefined) throw new Error(`vm ${v.name}: cursor without an output`);
      layers.push({ vm: v.name, plane: 'cursor', output, placement: null, z: cursor.z ?? DEFAULT_Z.cursor, paths: [...cursor.paths] });
    }
    return { name: v.name, source: sourceOf(v, raw.libvirt?.['run-dir']), layers };
  });
  return {
    version: 1,
    outputs,
    vms,
    control: { socket: raw.control.socket, group: raw.control.group ?? null },
    log: { format: raw.log.format, level: raw.log.level },
  };
}
