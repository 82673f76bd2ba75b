// `vgpu-flip inspect` default output: readable tables per DRM device, then the vGPUs.
import type { DrmFb2 } from '../binding/types.js';
import type { KmsSnapshot, PlaneSnapshot } from '../kms/types.js';
import { modeSummary } from '../kms/mode.js';
import { formatName, modifierName } from '../util/format.js';
import { renderTable, summarizeList } from '../util/table.js';
import type { DrmDeviceReport, ErrorEntry, InspectReport, MdevParent, VgpuReport } from './collect.js';

export interface TextOptions {
  /** list every format and modifier instead of a summary */
  verbose?: boolean;
  /** GETFB2 of the planes' framebuffers (from the inspect report): FB shows size and format */
  fbs?: Record<number, DrmFb2 | null>;
}

/** "60 1024x768 XR24" (+ the modifier when not linear), or just the id. */
function fbCell(id: number, fbs?: Record<number, DrmFb2 | null>): string | number {
  if (!id) return '-';
  const f = fbs?.[id];
  if (!f) return id;
  const mod = f.modifier !== null && f.modifier !== 0n ? ` ${modifierName(f.modifier)}` : '';
  return `${id} ${f.width}x${f.height} ${formatName(f.format)}${mod}`;
}

function errorLine(e: ErrorEntry): string {
  return `error: ${e.message} [${e.op} ${e.code}]`;
}

/** Formats of a plane, summarised: "XR24 AR24 RG16 (+3 more)"; modifiers: "LINEAR" or a list. */
export function planeFormatsSummary(p: PlaneSnapshot, verbose = false): { formats: string; modifiers: string } {
  const names = p.formatModifiers.map((f) => formatName(f.format));
  const mods = new Set<bigint>();
  for (const f of p.formatModifiers) for (const m of f.modifiers) mods.add(m);
  const modNames = [...mods].map(modifierName);
  return {
    formats: verbose ? names.join(' ') : summarizeList(names, 6),
    modifiers: (verbose ? modNames.join(' ') : summarizeList(modNames, 3)) + (p.inFormats ? '' : ' (implied)'),
  };
}

function planeFormatsVerbose(p: PlaneSnapshot): string {
  return p.formatModifiers
    .map((f) => `      ${formatName(f.format)}: ${f.modifiers.map(modifierName).join(', ')}`)
    .join('\n');
}

export function renderSnapshotText(s: KmsSnapshot, opts: TextOptions = {}): string {
  const out: string[] = [];
  const caps = [
    s.clientCaps.atomic ? 'atomic' : 'no atomic',
    s.clientCaps.universalPlanes ? 'universal planes' : 'no universal planes',
    s.clientCaps.writebackConnectors ? 'writeback' : null,
  ].filter(Boolean);
  out.push(
    `${s.path}: ${s.driver.name} ${s.driver.major}.${s.driver.minor}.${s.driver.patch} (${s.driver.desc}); ${caps.join(', ')}; ` +
      `fb ${s.minWidth}x${s.minHeight}..${s.maxWidth}x${s.maxHeight}\n`,
  );
  const crtcName = (id: number): string => (id === 0 ? '-' : String(id));

  out.push('  Connectors\n');
  out.push(
    renderTable(
      ['ID', 'NAME', 'STATUS', 'CRTC', 'MODES'],
      s.connectors.map((c) => {
        // distinct "WxH@R" entries (modes differing only in timings/flags collapse); * = preferred
        const modes = [...new Set(c.modes.map((m) => `${modeSummary(m)}${(m.type & 8) !== 0 ? '*' : ''}`))];
        return [c.id, c.name, c.status, crtcName(c.crtcId), modes.length ? (opts.verbose ? modes.join(' ') : summarizeList(modes, 4)) : '-'];
      }),
      { indent: 4 },
    ),
  );

  out.push('  CRTCs\n');
  out.push(
    renderTable(
      ['ID', 'INDEX', 'ACTIVE', 'MODE', 'FB'],
      s.crtcs.map((c) => [c.id, c.index, c.active, c.mode ? `${modeSummary(c.mode)} (${c.mode.name})` : '-', c.fbId || '-']),
      { indent: 4 },
    ),
  );

  out.push(`  Planes (${s.planes.length}: ${(['primary', 'overlay', 'cursor'] as const).map((t) => `${s.planes.filter((p) => p.type === t).length} ${t}`).join(', ')})\n`);
  out.push(
    renderTable(
      ['ID', 'TYPE', 'CRTCS', 'ZPOS', 'FB', 'CRTC', 'POSITION', 'FORMATS', 'MODIFIERS'],
      s.planes.map((p) => {
        const f = planeFormatsSummary(p, false);
        const z = p.zpos ? `${p.zpos.value}${p.zpos.immutable ? '' : ` (${p.zpos.min}..${p.zpos.max})`}` : '-';
        const pos = p.fbId ? `${p.crtc.w}x${p.crtc.h}+${p.crtc.x}+${p.crtc.y}` : '-';
        return [p.id, p.type, p.possibleCrtcIds.join(',') || '-', z, fbCell(p.fbId, opts.fbs), crtcName(p.crtcId), pos, f.formats, f.modifiers];
      }),
      { indent: 4, alignRight: [0] },
    ),
  );
  if (opts.verbose) {
    for (const p of s.planes) out.push(`    plane ${p.id} formats:\n${planeFormatsVerbose(p)}\n`);
  }
  return out.join('');
}

export function renderDrmReport(r: DrmDeviceReport, opts: TextOptions = {}): string {
  if (r.snapshot) return renderSnapshotText(r.snapshot, r.fbs ? { ...opts, fbs: r.fbs } : opts);
  return `${r.path}: ${errorLine(r.error!)}\n`;
}

function probeSummary(v: VgpuReport): string {
  if (!v.probe) return v.probeSkipped?.startsWith('idle') ? '- (idle: --probe)' : '-';
  return (['drm_fb', 'dmabuf', 'region'] as const)
    .map((k) => {
      const a = v.probe![k];
      const name = k.toUpperCase();
      if (a.supported === true) return `${name}:yes`;
      if (a.supported === false) return `${name}:no`;
      return `${name}:${a.error?.code ?? 'error'}`;
    })
    .join(' ');
}

function renderParents(parents: readonly MdevParent[]): string {
  if (parents.length === 0) return '';
  return (
    '  mdev parents (create a vGPU: echo $(uuidgen) > /sys/class/mdev_bus/<parent>/mdev_supported_types/<type>/create)\n' +
    renderTable(
      ['PARENT', 'TYPES'],
      parents.map((p) => [
        p.parent,
        p.types.map((t) => `${t.id}${t.available !== null ? ` [${t.available} available]` : ''}`).join(', ') || '-',
      ]),
      { indent: 4 },
    )
  );
}

export function renderVgpus(vgpus: readonly VgpuReport[], reason?: string, parents: readonly MdevParent[] = []): string {
  const out: string[] = ['vGPUs\n'];
  if (vgpus.length === 0) {
    out.push(`    none${reason ? `: ${reason}` : ''}\n`);
    out.push(renderParents(parents));
    return out.join('');
  }
  out.push(
    renderTable(
      ['UUID', 'PARENT', 'TYPE', 'GROUP', 'HOLDER', 'PROBE', 'EVENT'],
      vgpus.map((v) => [
        v.uuid,
        v.parent,
        v.typeName && v.typeName !== v.type ? `${v.type} (${v.typeName})` : v.type,
        v.iommuGroup === null ? '-' : `${v.iommuGroup}${v.groupNodeExists ? '' : ' (no node)'}`,
        v.holders.length ? v.holders.map((h) => `${h.pid} (${h.comm || '?'})`).join(', ') : '-',
        probeSummary(v) + (v.probeVia && v.probeVia !== 'open' ? ` via ${v.probeVia}` : ''),
        // the display event IRQ: "irq N" (signals guest display changes, no polling), "no", "-" not asked
        v.displayEvent === undefined ? '-' : v.displayEvent === false ? 'no' : `irq ${v.displayEvent.index}`,
      ]),
      { indent: 4 },
    ),
  );
  for (const v of vgpus) {
    if (v.error) out.push(`    ${v.uuid}: ${errorLine(v.error)}\n`);
    if (v.probeError) out.push(`    ${v.uuid}: PROBE through the holder failed: ${errorLine(v.probeError)}\n`);
    if (v.probeSkipped && !v.probeSkipped.startsWith('idle')) out.push(`    ${v.uuid}: not probed: ${v.probeSkipped}\n`);
  }
  out.push(renderParents(parents));
  return out.join('');
}

export function renderInspectText(r: InspectReport, opts: TextOptions = {}): string {
  const parts: string[] = [];
  if (r.drm.length === 0) parts.push(`DRM devices: none${r.drmReason ? `: ${r.drmReason}` : ''}\n`);
  for (const d of r.drm) parts.push(renderDrmReport(d, opts));
  parts.push(renderVgpus(r.vgpus, r.vgpuReason, r.mdevParents));
  return parts.join('\n');
}
