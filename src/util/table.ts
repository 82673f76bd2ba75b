// Plain text tables for CLI output: left-aligned columns separated by two spaces, an optional
// indent, no trailing spaces. Numbers are right-aligned when every cell of a column is numeric.

export interface TableOptions {
  indent?: number;
  /** column indices to right-align (default: columns whose cells are all numbers or '-') */
  alignRight?: number[];
}

export type Cell = string | number | bigint | boolean | null | undefined;

function cellText(c: Cell): string {
  if (c === null || c === undefined) return '-';
  if (typeof c === 'boolean') return c ? 'yes' : 'no';
  return String(c);
}

/** Display width (code points; good enough for the ASCII we print). */
function width(s: string): number {
  return [...s].length;
}

export function renderTable(headers: readonly string[], rows: readonly (readonly Cell[])[], opts: TableOptions = {}): string {
  const pad = ' '.repeat(opts.indent ?? 0);
  const text = rows.map((r) => headers.map((_, i) => cellText(r[i])));
  const widths = headers.map((h, i) => Math.max(width(h), ...text.map((r) => width(r[i]!))));
  const right = new Set(
    opts.alignRight ??
      headers
        .map((_, i) => i)
        .filter((i) => text.length > 0 && text.every((r) => /^-?\d+$|^-$/.test(r[i]!))),
  );
  const line = (cells: readonly string[]): string =>
    (
      pad +
      cells
        .map((c, i) => {
          const w = widths[i]!;
          const fill = ' '.repeat(w - width(c));
          if (i === cells.length - 1 && !right.has(i)) return c;
          return right.has(i) ? fill + c : c + fill;
        })
        .join('  ')
    ).replace(/\s+$/, '');
  return [line(headers), ...text.map(line)].join('\n') + '\n';
}

/** "a, b, c (+5 more)" */
export function summarizeList(items: readonly string[], max: number, sep = ' '): string {
  if (items.length <= max) return items.join(sep);
  return `${items.slice(0, max).join(sep)}${sep}(+${items.length - max} more)`;
}
