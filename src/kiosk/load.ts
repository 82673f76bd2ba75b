// Loading a kiosk configuration: YAML (with positions) -> the schema -> the cross-field checks
// -> the model. Every problem of every stage is listed, sorted by position; the model is only
// built when there is none. Reading the file is the caller's job (loadConfigFile does it).
import { readFileSync } from 'node:fs';
import { KioskConfigSchema } from './schema.js';
import { issuesToProblems } from './schema-issues.js';
import { checkConfig } from './checks.js';
import { resolveConfig, type KioskConfig } from './model.js';
import { sortProblems, type Problem, type YamlPath } from './problems.js';
import { locate, parseYaml } from './yaml-source.js';

export type LoadResult =
  | { ok: true; file: string; config: KioskConfig; problems: [] }
  | { ok: false; file: string; config: null; problems: Problem[] };

/** Validate configuration text; `file` is only used to name it in problems. */
export function loadConfigText(file: string, text: string): LoadResult {
  const src = parseYaml(file, text);
  if (src.problems.length > 0) {
    // a syntax error makes the rest of the document unreliable: report the YAML problems only
    return { ok: false, file, config: null, problems: sortProblems(src.problems) };
  }
  const problems: Problem[] = [];
  const parsed = KioskConfigSchema.safeParse(src.data, { reportInput: true });
  if (!parsed.success) problems.push(...issuesToProblems(src, parsed.error.issues));
  checkConfig(src.data, {
    report(path: YamlPath, message: string, opts?: { key?: boolean }) {
      const pos = locate(src, path, opts);
      problems.push({ file, line: pos.line, column: pos.column, path, message, source: 'check' });
    },
    lineOf: (path: YamlPath) => locate(src, path).line,
  });
  if (problems.length > 0 || !parsed.success) return { ok: false, file, config: null, problems: sortProblems(problems) };
  return { ok: true, file, config: resolveConfig(parsed.data), problems: [] };
}

export class ConfigReadError extends Error {
  constructor(readonly file: string, readonly code: string, message: string) {
    super(message);
    this.name = 'ConfigReadError';
  }
}

/** Read and validate a configuration file; an unreadable file throws ConfigReadError. */
export function loadConfigFile(file: string): LoadResult {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ConfigReadError(file, err.code ?? 'ERROR', `cannot read ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  }
  return loadConfigText(file, text);
}
