// The difference between two kiosk configurations, for a SIGHUP reload that applies only what
// changed: which outputs and which layers (VM + guest plane) were added, removed, changed (and
// in which fields) or left alone. Outputs are keyed by name, layers by "vm/plane". A layer
// whose VM is now found another way (domain, pid file, mdev, create) is changed in "source":
// it must be re-attached even when its own fields are the same. Pure.
import { allLayers, layerKey, type KioskConfig, type LayerConfig, type OutputConfig, type VmConfig } from './model.js';

export interface Change<K extends string> {
  name: string;
  /** the fields that differ */
  fields: K[];
}

export interface Section<K extends string> {
  added: string[];
  removed: string[];
  changed: Change<K>[];
  unchanged: string[];
}

export type OutputField = keyof Omit<OutputConfig, 'name'>;
export type LayerField = keyof Omit<LayerConfig, 'vm' | 'plane'> | 'source';
export type VmField = 'source';

export interface ConfigDiff {
  outputs: Section<OutputField>;
  /** keyed by "vm/plane" */
  layers: Section<LayerField>;
  vms: Section<VmField>;
  /** the control socket or logging changed (the daemon re-opens its socket / re-configures logs) */
  control: boolean;
  log: boolean;
  /** nothing at all changed */
  empty: boolean;
}

/** structural equality of plain JSON-like data (key order does not matter) */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

function section<T, K extends string>(
  before: ReadonlyMap<string, T>,
  after: ReadonlyMap<string, T>,
  fields: (a: T, b: T) => K[],
): Section<K> {
  const s: Section<K> = { added: [], removed: [], changed: [], unchanged: [] };
  for (const [name, a] of before) {
    const b = after.get(name);
    if (b === undefined) s.removed.push(name);
    else {
      const f = fields(a, b);
      if (f.length > 0) s.changed.push({ name, fields: f });
      else s.unchanged.push(name);
    }
  }
  for (const name of after.keys()) if (!before.has(name)) s.added.push(name);
  return s;
}

function differing<T extends object, K extends string>(a: T, b: T, keys: readonly K[]): K[] {
  return keys.filter((k) => !sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

const OUTPUT_FIELDS: readonly OutputField[] = ['match', 'device', 'mode', 'modeset', 'idle', 'lease'];
const LAYER_FIELDS: readonly Exclude<LayerField, 'source'>[] = ['output', 'placement', 'z', 'paths'];

export function diffConfigs(before: KioskConfig, after: KioskConfig): ConfigDiff {
  const outputs = section(
    new Map(before.outputs.map((o) => [o.name, o])),
    new Map(after.outputs.map((o) => [o.name, o])),
    (a, b) => differing(a, b, OUTPUT_FIELDS),
  );
  const vmsBefore = new Map(before.vms.map((v) => [v.name, v]));
  const vmsAfter = new Map(after.vms.map((v) => [v.name, v]));
  const vms = section<VmConfig, VmField>(vmsBefore, vmsAfter, (a, b) => (sameValue(a.source, b.source) ? [] : ['source']));
  const layers = section(
    new Map(allLayers(before).map((l) => [layerKey(l), l])),
    new Map(allLayers(after).map((l) => [layerKey(l), l])),
    (a, b): LayerField[] => {
      const f: LayerField[] = differing(a, b, LAYER_FIELDS);
      if (!sameValue(vmsBefore.get(a.vm)?.source, vmsAfter.get(b.vm)?.source)) f.push('source');
      return f;
    },
  );
  const control = !sameValue(before.control, after.control);
  const log = !sameValue(before.log, after.log);
  const quiet = (s: Section<string>): boolean => s.added.length + s.removed.length + s.changed.length === 0;
  return { outputs, layers, vms, control, log, empty: quiet(outputs) && quiet(layers) && quiet(vms) && !control && !log };
}

/** "outputs: +side ~main(mode); layers: -lin/cursor" — one line for logs */
export function diffSummary(d: ConfigDiff): string {
  if (d.empty) return 'no change';
  const part = (label: string, s: Section<string>): string | null => {
    const items = [
      ...s.added.map((n) => `+${n}`),
      ...s.removed.map((n) => `-${n}`),
      ...s.changed.map((c) => `~${c.name}(${c.fields.join(',')})`),
    ];
    return items.length > 0 ? `${label}: ${items.join(' ')}` : null;
  };
  return [
    part('outputs', d.outputs),
    part('vms', d.vms),
    part('layers', d.layers),
    d.control ? 'control socket' : null,
    d.log ? 'logging' : null,
  ].filter((x) => x !== null).join('; ');
}

/**
 * What a reload must bring down and up again; everything else keeps presenting untouched.
 * An output is affected when it was added, removed or changed, or a layer on it (before or
 * after) was; a VM is affected when it was added, removed or its source changed, or it has a
 * layer on an affected output. A VM's vGPU is one guest shared by all its outputs, so an
 * affected VM makes every output it shows on affected too: repeated until nothing more changes.
 */
export function reloadScope(before: KioskConfig, after: KioskConfig, d: ConfigDiff = diffConfigs(before, after)): { outputs: Set<string>; vms: Set<string> } {
  const outputs = new Set<string>([...d.outputs.added, ...d.outputs.removed, ...d.outputs.changed.map((c) => c.name)]);
  const vms = new Set<string>([...d.vms.added, ...d.vms.removed, ...d.vms.changed.map((c) => c.name)]);
  const layersBefore = new Map(allLayers(before).map((l) => [layerKey(l), l]));
  const layersAfter = new Map(allLayers(after).map((l) => [layerKey(l), l]));
  for (const key of [...d.layers.added, ...d.layers.removed, ...d.layers.changed.map((c) => c.name)]) {
    for (const l of [layersBefore.get(key), layersAfter.get(key)]) {
      if (!l) continue;
      outputs.add(l.output);
      vms.add(l.vm);
    }
  }
  closeScope([...layersBefore.values(), ...layersAfter.values()], outputs, vms);
  return { outputs, vms };
}

/** Close a scope over "a VM's vGPU is shared by all its outputs" (in place). */
export function closeScope(layers: readonly LayerConfig[], outputs: Set<string>, vms: Set<string>): void {
  for (let grew = true; grew; ) {
    grew = false;
    for (const l of layers) {
      if (outputs.has(l.output) && !vms.has(l.vm)) { vms.add(l.vm); grew = true; }
      if (vms.has(l.vm) && !outputs.has(l.output)) { outputs.add(l.output); grew = true; }
    }
  }
}
