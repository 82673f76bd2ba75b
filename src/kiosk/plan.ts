// The plan of a valid kiosk configuration, per output: what it matches, its mode and idle
// content, and its layers bottom to top (VM, guest plane, placement, z, display paths, how the
// VM is found). Rendered as a readable table or as JSON for `vgpu-flip kiosk --check`.
import { renderTable } from '../util/table.js';
import { layersOf, sourceText, type KioskConfig, type LayerConfig, type OutputConfig, type VmSource } from './model.js';
import { idleText, matchText, modeText, placementText } from './values.js';

export interface OutputPlan {
  output: OutputConfig;
  /** bottom to top */
  layers: (LayerConfig & { source: VmSource })[];
}

export function planOf(config: KioskConfig): OutputPlan[] {
  const sources = new Map(config.vms.map((v) => [v.name, v.source]));
  return config.outputs.map((output) => ({
    output,
    layers: layersOf(config, output.name).map((l) => ({ ...l, source: sources.get(l.vm)! })),
  }));
}

function outputLine(o: OutputConfig): string {
  const where = o.lease ? `leased from the Wayland compositor${o.lease.wayland ? ` at ${o.lease.wayland}` : ''}` : `on ${o.device ?? 'the first KMS card'}`;
  return `output ${o.name}: match ${matchText(o.match)} ${where}, mode ${modeText(o.mode)}` +
    `${o.modeset ? '' : ' (no modeset)'}, idle ${idleText(o.idle)}`;
}

export function renderPlanText(config: KioskConfig): string {
  const parts: string[] = [];
  for (const p of planOf(config)) {
    parts.push(outputLine(p.output));
    if (p.layers.length === 0) {
      parts.push(`  no layers: shows ${idleText(p.output.idle)}`);
      continue;
    }
    const rows = p.layers.map((l) => [l.z, l.vm, l.plane, l.placement ? placementText(l.placement) : 'pointer', l.paths.join(','), sourceText(l.source)]);
    parts.push(renderTable(['z', 'vm', 'plane', 'placement', 'paths', 'vm found by'], rows, { indent: 2 }).trimEnd());
  }
  const c = config.control;
  parts.push(`control socket ${c.socket} (${c.group ? `root and group ${c.group}` : 'root only'}); log ${config.log.format}, level ${config.log.level}`);
  return parts.join('\n') + '\n';
}

/** plain data for --json: the model plus the per-output layer order */
export function planJson(config: KioskConfig): unknown {
  return {
    outputs: planOf(config).map((p) => ({ ...p.output, layers: p.layers.map(({ source: _s, ...l }) => l) })),
    vms: config.vms.map((v) => ({ name: v.name, source: v.source })),
    control: config.control,
    log: config.log,
  };
}
