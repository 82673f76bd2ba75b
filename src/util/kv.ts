// "key=value key2=value2" lines, as vgpu-sim's debugfs files print them.

/** The key=value tokens of one line (tokens without '=' are ignored). */
export function parseKeyValues(line: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const tok of line.trim().split(/\s+/)) {
    const i = tok.indexOf('=');
    if (i > 0) m.set(tok.slice(0, i), tok.slice(i + 1));
  }
  return m;
}
