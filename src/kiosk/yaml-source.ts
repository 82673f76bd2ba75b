// Reading a kiosk configuration's YAML with positions: parse with the `yaml` package (YAML 1.2
// core schema, unique keys, one document), keep the node tree and a line counter, and answer
// "where is this path?" (line:column) for the problems that the schema and the checks find.
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { Problem, YamlPath } from './problems.js';

export interface YamlSource {
  file: string;
  text: string;
  doc: Document;
  lineCounter: LineCounter;
  /** the document as plain JS data (undefined when the YAML has errors) */
  data: unknown;
  /** YAML syntax errors and warnings, with positions */
  problems: Problem[];
}

export interface Position {
  line: number;
  column: number;
}

/** "Map keys must be unique at line 3, column 1:\n\n..." -> "Map keys must be unique" */
function bareMessage(message: string): string {
  return message.replace(/ at line \d+, column \d+:?[\s\S]*$/, '').trim();
}

const YAML_HINTS: Record<string, string> = {
  DUPLICATE_KEY: 'remove or rename one of them',
  BAD_INDENT: 'check the indentation (spaces only, the same depth for siblings)',
  TAB_AS_INDENT: 'indent with spaces, not tabs',
  MULTIPLE_DOCS: 'keep one document in the file (remove the second `---`)',
  BLOCK_AS_IMPLICIT_KEY: 'put nested mappings on their own indented lines, or quote a value that contains ": "',
  MISSING_CHAR: 'close the quote or bracket',
};

export function parseYaml(file: string, text: string): YamlSource {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true, strict: true });
  const problems: Problem[] = [];
  for (const e of [...doc.errors, ...doc.warnings]) {
    const pos = e.linePos?.[0] ?? lineCounter.linePos(e.pos[0]);
    const hint = YAML_HINTS[e.code];
    const message = `YAML ${doc.errors.includes(e as never) ? 'error' : 'warning'}: ${bareMessage(e.message)}${hint ? `; ${hint}` : ''}`;
    problems.push({ file, line: pos.line, column: pos.col, path: [], message, source: 'yaml' });
  }
  const data = problems.length === 0 ? doc.toJS({ maxAliasCount: 100 }) : undefined;
  return { file, text, doc, lineCounter, data, problems };
}

function position(src: YamlSource, node: Node | null | undefined): Position | null {
  const offset = node?.range?.[0];
  if (offset === undefined) return null;
  const p = src.lineCounter.linePos(offset);
  return { line: p.line, column: p.col };
}

function deref(src: YamlSource, node: unknown): unknown {
  return isAlias(node) ? node.resolve(src.doc) : node;
}

/**
 * Where `path` is in the file: the value's node, or with `key: true` the key of the last
 * segment (for "unknown key" problems). A path that does not exist (a missing key) gives the
 * position of the deepest part that does, e.g. the mapping that lacks the key.
 */
export function locate(src: YamlSource, path: YamlPath, opts: { key?: boolean } = {}): Position {
  let node: unknown = src.doc.contents;
  let best = position(src, node as Node) ?? { line: 1, column: 1 };
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]!;
    const last = i === path.length - 1;
    node = deref(src, node);
    if (isMap(node)) {
      const pair = node.items.find((p) => {
        const k = isScalar(p.key) ? p.key.value : p.key;
        return k === seg || String(k) === String(seg);
      });
      if (!pair) return best;
      const keyPos = position(src, pair.key as Node);
      if (last && opts.key && keyPos) return keyPos;
      // `key:` with no value: the value node is empty or absent; point just after the key
      const valuePos = position(src, pair.value as Node);
      best = valuePos ?? keyPos ?? best;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg];
      if (item === undefined) return best;
      best = position(src, item as Node) ?? best;
      node = item;
    } else {
      return best;
    }
  }
  return best;
}

/** The text of line `line` (1-based), for hints such as "an unquoted # starts a comment". */
export function sourceLine(src: YamlSource, line: number): string {
  return src.text.split(/\r?\n/)[line - 1] ?? '';
}
