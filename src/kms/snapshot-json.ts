// Explicit JSON form of a KmsSnapshot. JSON has no 64-bit integers, so every bigint of the
// snapshot (property values, ranges, enum values, caps, format modifiers) is written as a hex
// string: "0x0", "0x100000000000001", "-0xa" for negative signed-range values. Everything else
// is a plain JSON number/string. snapshotFromJson() turns them back into bigints, so a recorded
// fixture (test/fixtures/vkms-snapshot.json) gives the same data as a live snapshot.
import { readFileSync } from 'node:fs';
import type {
  FormatModifiers,
  KmsSnapshot,
  PlaneSnapshot,
  PropertyMap,
  PropertySnapshot,
} from './types.js';

export function bigintToHex(v: bigint): string {
  return v < 0n ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`;
}

export function hexToBigint(s: unknown, where: string): bigint {
  if (typeof s === 'number' && Number.isSafeInteger(s)) return BigInt(s);
  if (typeof s !== 'string' || !/^-?(0x[0-9a-fA-F]+|[0-9]+)$/.test(s)) {
    throw new TypeError(`snapshot JSON: ${where} should be a hex string like "0x1f", got ${JSON.stringify(s)}`);
  }
  return s.startsWith('-') ? -BigInt(s.slice(1)) : BigInt(s);
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function propertyToJson(p: PropertySnapshot): Json {
  const o: { [k: string]: Json } = {
    id: p.id,
    name: p.name,
    kind: p.kind,
    flags: p.flags,
    immutable: p.immutable,
    atomic: p.atomic,
    value: bigintToHex(p.value),
  };
  if (p.range) o['range'] = [bigintToHex(p.range[0]), bigintToHex(p.range[1])];
  if (p.enums) o['enums'] = p.enums.map((e) => ({ name: e.name, value: bigintToHex(e.value) }));
  if (p.objectType !== undefined) o['objectType'] = p.objectType;
  return o;
}

function propertiesToJson(m: PropertyMap): Json {
  const o: { [k: string]: Json } = {};
  for (const [k, v] of Object.entries(m)) o[k] = propertyToJson(v);
  return o;
}

/** A JSON-ready copy of the snapshot (JSON.stringify it as you like). */
export function snapshotToJson(s: KmsSnapshot): Json {
  const caps: { [k: string]: Json } = {};
  for (const [k, v] of Object.entries(s.caps)) caps[k] = bigintToHex(v);
  return {
    path: s.path,
    driver: { ...s.driver },
    clientCaps: { ...s.clientCaps },
    caps,
    minWidth: s.minWidth,
    maxWidth: s.maxWidth,
    minHeight: s.minHeight,
    maxHeight: s.maxHeight,
    fbs: [...s.fbs],
    connectors: s.connectors.map((c) => ({
      ...c,
      encoders: [...c.encoders],
      modes: c.modes.map((m) => ({ ...m })),
      properties: propertiesToJson(c.properties),
    })),
    encoders: s.encoders.map((e) => ({ ...e })),
    crtcs: s.crtcs.map((c) => ({
      ...c,
      mode: c.mode ? { ...c.mode } : null,
      properties: propertiesToJson(c.properties),
    })),
    planes: s.planes.map((p) => ({
      ...p,
      possibleCrtcIndices: [...p.possibleCrtcIndices],
      possibleCrtcIds: [...p.possibleCrtcIds],
      zpos: p.zpos ? { ...p.zpos } : null,
      formats: [...p.formats],
      formatModifiers: p.formatModifiers.map((f) => ({
        format: f.format,
        modifiers: f.modifiers.map(bigintToHex),
      })),
      src: { ...p.src },
      crtc: { ...p.crtc },
      properties: propertiesToJson(p.properties),
    })),
  } as unknown as Json;
}

/** Pretty JSON text of a snapshot. */
export function snapshotToJsonText(s: KmsSnapshot): string {
  return JSON.stringify(snapshotToJson(s), null, 2) + '\n';
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

function propertyFromJson(o: Any, where: string): PropertySnapshot {
  if (typeof o !== 'object' || o === null || typeof o.id !== 'number' || typeof o.name !== 'string') {
    throw new TypeError(`snapshot JSON: ${where} is not a property object`);
  }
  const p: PropertySnapshot = {
    id: o.id,
    name: o.name,
    kind: o.kind,
    flags: o.flags,
    immutable: Boolean(o.immutable),
    atomic: Boolean(o.atomic),
    value: hexToBigint(o.value, `${where}.value`),
  };
  if (Array.isArray(o.range)) {
    p.range = [hexToBigint(o.range[0], `${where}.range[0]`), hexToBigint(o.range[1], `${where}.range[1]`)];
  }
  if (Array.isArray(o.enums)) {
    p.enums = o.enums.map((e: Any, i: number) => ({
      name: String(e.name),
      value: hexToBigint(e.value, `${where}.enums[${i}].value`),
    }));
  }
  if (typeof o.objectType === 'number') p.objectType = o.objectType;
  return p;
}

function propertiesFromJson(o: Any, where: string): PropertyMap {
  const m: PropertyMap = {};
  for (const [k, v] of Object.entries(o ?? {})) m[k] = propertyFromJson(v, `${where}.properties.${k}`);
  return m;
}

/** Inverse of snapshotToJson(): accepts the parsed JSON value (or its text). */
export function snapshotFromJson(input: unknown): KmsSnapshot {
  const o: Any = typeof input === 'string' ? JSON.parse(input) : input;
  if (typeof o !== 'object' || o === null || !Array.isArray(o.planes) || !Array.isArray(o.crtcs)) {
    throw new TypeError('snapshot JSON: not a KMS snapshot (needs "crtcs" and "planes" arrays)');
  }
  const caps: Record<string, bigint> = {};
  for (const [k, v] of Object.entries(o.caps ?? {})) caps[k] = hexToBigint(v, `caps.${k}`);
  return {
    path: String(o.path),
    driver: { ...o.driver },
    clientCaps: { ...o.clientCaps },
    caps,
    minWidth: o.minWidth,
    maxWidth: o.maxWidth,
    minHeight: o.minHeight,
    maxHeight: o.maxHeight,
    fbs: [...(o.fbs ?? [])],
    connectors: o.connectors.map((c: Any) => ({
      ...c,
      encoders: [...c.encoders],
      modes: c.modes.map((m: Any) => ({ ...m })),
      properties: propertiesFromJson(c.properties, `connector ${c.id}`),
    })),
    encoders: o.encoders.map((e: Any) => ({ ...e })),
    crtcs: o.crtcs.map((c: Any) => ({
      ...c,
      mode: c.mode ? { ...c.mode } : null,
      properties: propertiesFromJson(c.properties, `crtc ${c.id}`),
    })),
    planes: o.planes.map(
      (p: Any): PlaneSnapshot => ({
        ...p,
        possibleCrtcIndices: [...p.possibleCrtcIndices],
        possibleCrtcIds: [...p.possibleCrtcIds],
        zpos: p.zpos ? { ...p.zpos } : null,
        formats: [...p.formats],
        formatModifiers: p.formatModifiers.map(
          (f: Any, i: number): FormatModifiers => ({
            format: f.format,
            modifiers: f.modifiers.map((m: unknown, j: number) =>
              hexToBigint(m, `plane ${p.id}.formatModifiers[${i}].modifiers[${j}]`),
            ),
          }),
        ),
        src: { ...p.src },
        crtc: { ...p.crtc },
        properties: propertiesFromJson(p.properties, `plane ${p.id}`),
      }),
    ),
  };
}

/** Load a recorded snapshot file (e.g. test/fixtures/vkms-snapshot.json). */
export function loadSnapshotFile(file: string): KmsSnapshot {
  return snapshotFromJson(readFileSync(file, 'utf8'));
}
