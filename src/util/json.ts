// JSON text with exact 64-bit integers: bigints are written as plain integer literals (as
// drm_info does for u64 values), which JSON.stringify refuses to do.

export type JsonLike =
  | null
  | boolean
  | number
  | bigint
  | string
  | undefined
  | JsonLike[]
  | { [k: string]: JsonLike };

function write(v: JsonLike, indent: string, depth: number, out: string[]): void {
  if (v === null || v === undefined) {
    out.push('null');
  } else if (typeof v === 'bigint') {
    out.push(v.toString(10));
  } else if (typeof v === 'number') {
    out.push(Number.isFinite(v) ? String(v) : 'null');
  } else if (typeof v === 'boolean') {
    out.push(v ? 'true' : 'false');
  } else if (typeof v === 'string') {
    out.push(JSON.stringify(v));
  } else if (Array.isArray(v)) {
    if (v.length === 0) {
      out.push('[]');
      return;
    }
    const nl = indent ? '\n' + indent.repeat(depth + 1) : '';
    out.push('[');
    v.forEach((x, i) => {
      if (i) out.push(',');
      out.push(nl);
      write(x, indent, depth + 1, out);
    });
    out.push(indent ? '\n' + indent.repeat(depth) : '', ']');
  } else {
    const keys = Object.keys(v).filter((k) => v[k] !== undefined);
    if (keys.length === 0) {
      out.push('{}');
      return;
    }
    const nl = indent ? '\n' + indent.repeat(depth + 1) : '';
    out.push('{');
    keys.forEach((k, i) => {
      if (i) out.push(',');
      out.push(nl, JSON.stringify(k), indent ? ': ' : ':');
      write(v[k], indent, depth + 1, out);
    });
    out.push(indent ? '\n' + indent.repeat(depth) : '', '}');
  }
}

/** Like JSON.stringify(value, null, indent) but bigints become exact integer literals. */
export function stringifyJson(value: JsonLike, indent: number | string = 2): string {
  const out: string[] = [];
  write(value, typeof indent === 'number' ? ' '.repeat(indent) : indent, 0, out);
  return out.join('');
}
