// Problems found in a kiosk configuration: where (file, line:column, YAML path), what is wrong
// and what to do. Plain data, so the CLI can print them as text or JSON.

export type YamlPath = readonly (string | number)[];

export interface Problem {
  file: string;
  /** 1-based; 0 when the position is unknown */
  line: number;
  column: number;
  /** path in the document, e.g. ['vms', 1, 'planes', 'primary', 'output'] ([] for the whole file) */
  path: YamlPath;
  /** what is wrong and what to do */
  message: string;
  /** which stage found it: YAML syntax, the schema, or a cross-field check */
  source: 'yaml' | 'schema' | 'check';
}

/** "vms[1].planes.primary.output"; "(top level)" for [] */
export function pathText(path: YamlPath): string {
  if (path.length === 0) return '(top level)';
  let s = '';
  for (const p of path) {
    if (typeof p === 'number') s += `[${p}]`;
    else s += s === '' ? p : `.${p}`;
  }
  return s;
}

/** "kiosk.yaml:12:17: vms[1].planes.primary.output: ..." */
export function formatProblem(p: Problem): string {
  const where = p.line > 0 ? `${p.file}:${p.line}:${p.column}` : p.file;
  return `${where}: ${pathText(p.path)}: ${p.message}`;
}

/** by position, then path: the order a reader goes through the file */
export function sortProblems(ps: Problem[]): Problem[] {
  return [...ps].sort((a, b) => a.line - b.line || a.column - b.column || pathText(a.path).localeCompare(pathText(b.path)));
}
