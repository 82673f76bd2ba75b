// A small, strict XML reader for the files vgpu-flip reads from other programs (libvirt's status
// XML): elements, attributes, text, comments, CDATA, processing instructions and a doctype are
// understood; entities are the five predefined ones and numeric references. Not well-formed input
// (an unclosed or mismatched tag, a bad attribute, a second root) is an error that names the
// line and column. No namespaces (a prefixed name is kept as written), no DTD.

export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  /** the element's own text (its children's text not included), entities decoded */
  text: string;
  /** 1-based line of its start tag */
  line: number;
}

export class XmlSyntaxError extends Error {
  constructor(
    readonly line: number,
    readonly column: number,
    what: string,
  ) {
    super(`line ${line}, column ${column}: ${what}`);
  }
}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', apos: "'", quot: '"' };
const NAME = /[A-Za-z_:][-A-Za-z0-9_:.]*/y;

export function parseXml(src: string): XmlElement {
  let i = 0;
  const where = (at: number): [number, number] => {
    const before = src.slice(0, at);
    const line = before.split('\n').length;
    return [line, at - before.lastIndexOf('\n')];
  };
  const fail = (what: string, at = i): never => {
    const [l, c] = where(at);
    throw new XmlSyntaxError(l, c, what);
  };
  const decode = (s: string, at: number): string =>
    s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);|&/g, (m, e: string | undefined) => {
      if (e === undefined) fail('a bare "&" (write &amp;)', at);
      if (e![0] === '#') return String.fromCodePoint(e![1] === 'x' ? parseInt(e!.slice(2), 16) : Number(e!.slice(1)));
      const v = ENTITIES[e!];
      return v ?? fail(`unknown entity &${e};`, at);
    });
  const skipSpace = (): void => {
    while (i < src.length && /\s/.test(src[i]!)) i++;
  };
  const readName = (): string => {
    NAME.lastIndex = i;
    const m = NAME.exec(src);
    if (!m) fail(`expected a name, found ${JSON.stringify(src.slice(i, i + 10))}`);
    i += m![0].length;
    return m![0];
  };
  const skipUntil = (end: string, what: string): void => {
    const j = src.indexOf(end, i);
    if (j < 0) fail(`${what} is never closed (no "${end}")`);
    i = j + end.length;
  };
  /** comments, PIs, doctype: skipped wherever they are allowed */
  const skipMisc = (): boolean => {
    if (src.startsWith('<!--', i)) return (skipUntil('-->', 'a comment'), true);
    if (src.startsWith('<?', i)) return (skipUntil('?>', 'a processing instruction'), true);
    if (src.startsWith('<!DOCTYPE', i)) return (skipUntil('>', 'the doctype'), true);
    return false;
  };

  const element = (): XmlElement => {
    const start = i;
    i++; // '<'
    const name = readName();
    const el: XmlElement = { name, attrs: {}, children: [], text: '', line: where(start)[0] };
    for (;;) {
      skipSpace();
      if (src.startsWith('/>', i)) {
        i += 2;
        return el;
      }
      if (src[i] === '>') {
        i++;
        break;
      }
      if (i >= src.length) fail(`<${name}> is cut off (the file ends inside its start tag)`, start);
      const attrAt = i;
      const an = readName();
      skipSpace();
      if (src[i] !== '=') fail(`attribute ${an} of <${name}> has no value`);
      i++;
      skipSpace();
      const q = src[i];
      if (q !== '"' && q !== "'") fail(`attribute ${an} of <${name}>: the value must be quoted`);
      const end = src.indexOf(q!, i + 1);
      if (end < 0) fail(`attribute ${an} of <${name}>: the quote is never closed`);
      if (an in el.attrs) fail(`attribute ${an} of <${name}> is given twice`, attrAt);
      el.attrs[an] = decode(src.slice(i + 1, end), i);
      i = end + 1;
    }
    for (;;) {
      if (i >= src.length) fail(`<${name}> is never closed (the file ends inside it)`, start);
      if (src.startsWith('</', i)) {
        const closeAt = i;
        i += 2;
        const cn = readName();
        skipSpace();
        if (src[i] !== '>') fail(`</${cn}: expected ">"`);
        i++;
        if (cn !== name) fail(`</${cn}> closes <${name}> (opened on line ${el.line})`, closeAt);
        return el;
      }
      if (src.startsWith('<![CDATA[', i)) {
        const j = src.indexOf(']]>', i);
        if (j < 0) fail('a CDATA section is never closed');
        el.text += src.slice(i + 9, j);
        i = j + 3;
        continue;
      }
      if (skipMisc()) continue;
      if (src[i] === '<') {
        el.children.push(element());
        continue;
      }
      const j = src.indexOf('<', i);
      const end = j < 0 ? src.length : j;
      el.text += decode(src.slice(i, end), i);
      i = end;
    }
  };

  if (src.charCodeAt(0) === 0xfeff) i = 1;
  let root: XmlElement | null = null;
  for (;;) {
    skipSpace();
    if (i >= src.length) break;
    if (skipMisc()) continue;
    if (src[i] !== '<') fail('text outside the root element');
    if (root) fail(`a second root element after <${root.name}>`);
    root = element();
  }
  if (!root) fail('no element (the file is empty or only comments)');
  return root!;
}

/** the first child element of that name, or undefined */
export function child(el: XmlElement, name: string): XmlElement | undefined {
  return el.children.find((c) => c.name === name);
}

export function children(el: XmlElement, name: string): XmlElement[] {
  return el.children.filter((c) => c.name === name);
}
