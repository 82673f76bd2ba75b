// zod issues of the kiosk schema -> Problems with line:column and a sentence saying what to do:
// one problem per unknown key (at the key, with a "did you mean"), missing keys at the mapping
// that lacks them, empty values with a hint about unquoted "#".
import type { z } from 'zod';
import { KioskConfigSchema } from './schema.js';
import type { Problem, YamlPath } from './problems.js';
import { locate, sourceLine, type YamlSource } from './yaml-source.js';
import { closest } from './values.js';

type AnySchema = z.core.$ZodType;

function unwrap(s: AnySchema): AnySchema {
  for (;;) {
    const def = s._zod.def as { type: string; innerType?: AnySchema; in?: AnySchema };
    if (def.innerType && ['optional', 'default', 'nullable', 'readonly', 'prefault', 'nonoptional', 'catch'].includes(def.type)) s = def.innerType;
    else if (def.type === 'pipe' && def.in) s = def.in;
    else return s;
  }
}

/** the schema at `path` (undefined when the path leaves the schema) */
function schemaAt(path: YamlPath): AnySchema | undefined {
  let s: AnySchema | undefined = KioskConfigSchema;
  for (const seg of path) {
    if (!s) return undefined;
    const def = unwrap(s)._zod.def as { type: string; shape?: Record<string, AnySchema>; element?: AnySchema };
    if (def.type === 'object') s = def.shape?.[String(seg)];
    else if (def.type === 'array') s = def.element;
    else return undefined;
  }
  return s;
}

function keysAt(path: YamlPath): string[] {
  const s = schemaAt(path);
  const def = s && (unwrap(s)._zod.def as { type: string; shape?: Record<string, unknown> });
  return def?.type === 'object' && def.shape ? Object.keys(def.shape) : [];
}

function describeAt(path: YamlPath): string | undefined {
  const s = schemaAt(path) as (AnySchema & { description?: string }) | undefined;
  return s?.description ?? (s ? (unwrap(s) as { description?: string }).description : undefined);
}

function kindOf(v: unknown): string {
  if (v === null) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the string "${v}"`;
  return `${typeof v === 'number' ? 'the number' : typeof v === 'boolean' ? 'the boolean' : typeof v} ${String(v)}`;
}

const EXPECTED: Record<string, string> = {
  object: 'a mapping (key: value lines)',
  array: 'a list ("- " items)',
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
};

/** what to say about one key that the schema does not know */
function unknownKey(path: YamlPath, key: string): string {
  const allowed = keysAt(path);
  const parent = path[path.length - 1];
  if (parent === 'cursor' && key === 'placement') {
    return 'unknown key "placement": the cursor follows the guest pointer over the primary plane; remove it';
  }
  const near = closest(key, allowed);
  return `unknown key "${key}"${near ? `; did you mean "${near}"?` : ''} (allowed here: ${allowed.join(', ')})`;
}

function isDefaultMessage(m: string): boolean {
  return /^Invalid input|^Invalid option|^Too (small|big)|^Unrecognized key/.test(m);
}

function valueAt(data: unknown, path: YamlPath): unknown {
  let v = data;
  for (const seg of path) v = typeof v === 'object' && v !== null ? (v as Record<string | number, unknown>)[seg] : undefined;
  return v;
}

export function issuesToProblems(src: YamlSource, issues: readonly z.core.$ZodIssue[]): Problem[] {
  const out: Problem[] = [];
  const add = (path: YamlPath, message: string, key = false): void => {
    const pos = locate(src, path, { key });
    out.push({ file: src.file, line: pos.line, column: pos.column, path, message, source: 'schema' });
  };
  for (const iss of issues) {
    const path = iss.path.filter((p): p is string | number => typeof p !== 'symbol');
    const input = 'input' in iss ? iss.input : valueAt(src.data, path);
    if (iss.code === 'unrecognized_keys') {
      for (const k of iss.keys) add([...path, k], unknownKey(path, k), true);
      continue;
    }
    const custom = !isDefaultMessage(iss.message) ? iss.message : null;
    if (iss.code === 'invalid_type' && path.length === 0) {
      add(path, `the file is ${input === null || input === undefined ? 'empty' : kindOf(input)}, not a mapping: start it with \`version: 1\`, then \`outputs:\` and \`vms:\``);
      continue;
    }
    if (iss.code === 'invalid_type' && input === undefined) {
      const key = String(path[path.length - 1]);
      const help = describeAt(path);
      add(path, `missing "${key}"${custom ? `: ${custom}` : ''}${help ? ` (${key}: ${help})` : ''}`);
      continue;
    }
    if (iss.code === 'invalid_type' && input === null) {
      const pos = locate(src, path);
      const line = sourceLine(src, pos.line);
      const comment = /:\s+#/.test(line) ? '; an unquoted # starts a YAML comment: quote the value ("#203040")' : '';
      add(path, `has no value${comment}${custom && !comment ? `: ${custom}` : ''}`);
      continue;
    }
    if (iss.code === 'invalid_type') {
      const expected = EXPECTED[iss.expected] ?? iss.expected;
      add(path, custom ? `${custom} (got ${kindOf(input)})` : `expected ${expected}, got ${kindOf(input)}`);
      continue;
    }
    const said = custom !== null && custom.includes(`"${String(input)}"`);
    const got = input !== undefined && !said && (iss.code === 'invalid_value' || !custom) ? ` (got ${kindOf(input)})` : '';
    add(path, `${custom ?? iss.message}${got}`);
  }
  return out;
}
