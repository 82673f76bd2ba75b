// Parser of DRM's debugfs atomic state dump, /sys/kernel/debug/dri/N/state, and of the
// framebuffer list /sys/kernel/debug/dri/N/framebuffer (format of Linux 6.1:
// drm_atomic_plane_print_state, drm_atomic_crtc_print_state, drm_atomic_connector_print_state,
// drm_framebuffer_print_info, drm_gem_print_info). The text is a tree by tab indentation:
//
//   plane[31]: plane-0                      crtc[37]: crtc-0          connector[39]: Virtual-1
//   \tcrtc=crtc-0                           \tenable=1                \tcrtc=crtc-0
//   \tfb=42                                 \tactive=1                \tfb=51   (writeback job only)
//   \t\tallocated by = node                 \tmode: "1024x768": 60 65000 1024 ... 0x48 0xa
//   \t\tformat=XR24 little-endian (0x34325258)
//   \t\tlayers:  \t\t\tpitch[0]=4096  \t\t\tobj[0]:  \t\t\t\timported=yes
//   \tcrtc-pos=640x480+100+80
//   \tsrc-pos=640.000000x480.000000+0.000000+0.000000
//
// Unknown lines and blocks (driver atomic_print_state additions, private objects, other
// kernels' extra fields) are kept as raw key/values, never an error.

export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface DebugfsFbLayer {
  index: number;
  width: number;
  height: number;
  pitch: number;
  offset: number;
  /** the GEM object behind the layer (null: "(null)") */
  obj: {
    name: number;
    refcount: number;
    size: number;
    /** the buffer came from another device or exporter (PRIME import: dma-buf) */
    imported: boolean;
    /** driver additions (vkms/shmem: pages_use_count, vmap_use_count, vaddr) */
    extra: Record<string, string>;
  } | null;
}

export interface DebugfsFramebuffer {
  id: number;
  /** the command name (comm) of the task that created it: a client process, or a kernel context */
  allocatedBy: string;
  refcount: number;
  /** 'XR24' (trimmed), '' when unparsable */
  format: string;
  /** the DRM fourcc code, 0 when unparsable */
  fourcc: number;
  modifier: bigint;
  width: number;
  height: number;
  layers: DebugfsFbLayer[];
  /** any layer's GEM object is imported (dma-buf from elsewhere) */
  imported: boolean;
}

export interface DebugfsPlane {
  id: number;
  name: string;
  /** CRTC name ('crtc-0'), null when off */
  crtc: string | null;
  fbId: number;
  fb: DebugfsFramebuffer | null;
  /** destination on the CRTC (integer pixels) */
  crtcPos: Rect;
  /** source rectangle in the fb (pixels, fractions kept) */
  srcPos: Rect;
  rotation: number;
  normalizedZpos: number;
  extra: Record<string, string>;
}

export interface DebugfsMode {
  name: string;
  vrefresh: number;
  clock: number;
  hdisplay: number;
  hsyncStart: number;
  hsyncEnd: number;
  htotal: number;
  vdisplay: number;
  vsyncStart: number;
  vsyncEnd: number;
  vtotal: number;
  type: number;
  flags: number;
}

export interface DebugfsCrtc {
  id: number;
  name: string;
  enable: boolean;
  active: boolean;
  planeMask: number;
  connectorMask: number;
  encoderMask: number;
  /** null when the CRTC has no mode (all zero) */
  mode: DebugfsMode | null;
  extra: Record<string, string>;
}

export interface DebugfsConnector {
  id: number;
  name: string;
  crtc: string | null;
  /** writeback connectors with a pending job: the fb being written */
  writebackFbId: number | null;
  extra: Record<string, string>;
}

export interface DebugfsState {
  planes: DebugfsPlane[];
  crtcs: DebugfsCrtc[];
  connectors: DebugfsConnector[];
  /** the framebuffers on planes, by id (the framebuffer file adds the others) */
  framebuffers: DebugfsFramebuffer[];
  /** top-level blocks this parser does not know, by header line */
  unknown: string[];
}

interface Node {
  depth: number;
  text: string;
  children: Node[];
}

/** Lines -> tree by leading tabs (the kernel's drm_printf_indent uses tabs). */
function tree(text: string): Node[] {
  const root: Node = { depth: -1, text: '', children: [] };
  const stack: Node[] = [root];
  for (const raw of text.split('\n')) {
    if (raw.trim() === '') continue;
    const m = /^(\t*)/.exec(raw)!;
    let depth = m[1]!.length;
    // tolerate spaces (copied text): 8 spaces or one leading space block count as one level
    const rest = raw.slice(depth);
    const spaces = /^( +)/.exec(rest);
    if (spaces) depth += Math.max(1, Math.round(spaces[1]!.length / 8));
    const node: Node = { depth, text: rest.trim(), children: [] };
    while (stack.length > 1 && stack[stack.length - 1]!.depth >= depth) stack.pop();
    stack[stack.length - 1]!.children.push(node);
    stack.push(node);
  }
  return root.children;
}

/** "key=value", "key = value" or "key: value" -> [key, value]; null when neither. */
function kv(text: string): [string, string] | null {
  const eq = /^([A-Za-z_][\w\-[\] ]*?)\s*=\s*(.*)$/.exec(text);
  if (eq) return [eq[1]!.trim(), eq[2]!.trim()];
  const colon = /^([A-Za-z_][\w\-[\]]*):\s*(.*)$/.exec(text);
  if (colon) return [colon[1]!, colon[2]!.trim()];
  return null;
}

function int(s: string | undefined, dflt = 0): number {
  if (s === undefined) return dflt;
  const t = s.trim();
  const n = /^0x[0-9a-f]+$/i.test(t) ? Number.parseInt(t, 16) : Number.parseInt(t, 10);
  return Number.isFinite(n) ? n : dflt;
}

function big(s: string | undefined): bigint {
  if (!s) return 0n;
  try {
    return BigInt(s.trim());
  } catch {
    return 0n;
  }
}

function nullName(s: string | undefined): string | null {
  if (s === undefined || s === '(null)' || s === '') return null;
  return s;
}

/** "640x480+100+80" (DRM_RECT_FMT), signs on the offsets. */
export function parseRect(s: string | undefined): Rect {
  const m = /^(-?\d+)x(-?\d+)([+-]\d+)([+-]\d+)$/.exec((s ?? '').trim());
  if (!m) return { x: 0, y: 0, w: 0, h: 0 };
  return { w: Number(m[1]), h: Number(m[2]), x: Number(m[3]), y: Number(m[4]) };
}

/** "640.000000x480.000000+0.000000+0.000000" (DRM_RECT_FP_FMT, 16.16 shown as decimals). */
export function parseRectFp(s: string | undefined): Rect {
  const n = '(-?\\d+(?:\\.\\d+)?)';
  const m = new RegExp(`^${n}x${n}([+-]\\d+(?:\\.\\d+)?)([+-]\\d+(?:\\.\\d+)?)$`).exec((s ?? '').trim());
  if (!m) return { x: 0, y: 0, w: 0, h: 0 };
  return { w: Number(m[1]), h: Number(m[2]), x: Number(m[3]), y: Number(m[4]) };
}

/** `"1024x768": 60 65000 1024 1048 1184 1344 768 771 777 806 0x48 0xa` (DRM_MODE_FMT) */
export function parseMode(s: string): DebugfsMode | null {
  const m = /^"([^"]*)":\s*(.*)$/.exec(s.trim());
  if (!m) return null;
  const f = m[2]!.trim().split(/\s+/).map((x) => int(x));
  if (f.length < 12) return null;
  const mode: DebugfsMode = {
    name: m[1]!,
    vrefresh: f[0]!,
    clock: f[1]!,
    hdisplay: f[2]!,
    hsyncStart: f[3]!,
    hsyncEnd: f[4]!,
    htotal: f[5]!,
    vdisplay: f[6]!,
    vsyncStart: f[7]!,
    vsyncEnd: f[8]!,
    vtotal: f[9]!,
    type: f[10]!,
    flags: f[11]!,
  };
  return mode.hdisplay === 0 && mode.vdisplay === 0 && mode.clock === 0 ? null : mode;
}

/** "%p4cc": "XR24 little-endian (0x34325258)" -> name and code. */
export function parseFourcc(s: string | undefined): { name: string; code: number } {
  const t = (s ?? '').trim();
  const code = /\(0x([0-9a-f]+)\)/i.exec(t);
  const name = t.replace(/\s+(little|big)-endian.*$/, '').replace(/\s*\(0x[0-9a-f]+\)$/i, '').trim();
  return { name, code: code ? Number.parseInt(code[1]!, 16) >>> 0 : 0 };
}

/** The framebuffer fields below a plane's fb= line, or a framebuffer[ID]: header. */
function parseFbFields(id: number, nodes: Node[]): DebugfsFramebuffer {
  const fields = new Map<string, string>();
  const layers: DebugfsFbLayer[] = [];
  for (const n of nodes) {
    if (n.text === 'layers:') {
      // children: size[i]=, pitch[i]=, offset[i]=, obj[i]: with the GEM object below
      const byIndex = new Map<number, DebugfsFbLayer>();
      const layer = (i: number): DebugfsFbLayer => {
        let l = byIndex.get(i);
        if (!l) {
          l = { index: i, width: 0, height: 0, pitch: 0, offset: 0, obj: null };
          byIndex.set(i, l);
          layers.push(l);
        }
        return l;
      };
      for (const c of n.children) {
        const m = /^(size|pitch|offset|obj)\[(\d+)\]\s*[=:]\s*(.*)$/.exec(c.text);
        if (!m) continue;
        const l = layer(Number(m[2]));
        const v = m[3]!.trim();
        if (m[1] === 'size') {
          const s = /^(\d+)x(\d+)$/.exec(v);
          if (s) {
            l.width = Number(s[1]);
            l.height = Number(s[2]);
          }
        } else if (m[1] === 'pitch') l.pitch = int(v);
        else if (m[1] === 'offset') l.offset = int(v);
        else if (v !== '(null)') {
          const o = new Map<string, string>();
          for (const g of c.children) {
            const p = kv(g.text);
            if (p) o.set(p[0], p[1]);
          }
          const extra: Record<string, string> = {};
          for (const [k, val] of o) if (!['name', 'refcount', 'size', 'imported', 'start'].includes(k)) extra[k] = val;
          l.obj = { name: int(o.get('name')), refcount: int(o.get('refcount')), size: int(o.get('size')), imported: o.get('imported') === 'yes', extra };
        }
      }
      continue;
    }
    const p = kv(n.text);
    if (p) fields.set(p[0], p[1]);
  }
  const fourcc = parseFourcc(fields.get('format'));
  const size = /^(\d+)x(\d+)$/.exec(fields.get('size') ?? '');
  return {
    id,
    allocatedBy: fields.get('allocated by') ?? '',
    refcount: int(fields.get('refcount')),
    format: fourcc.name,
    fourcc: fourcc.code,
    modifier: big(fields.get('modifier')),
    width: size ? Number(size[1]) : 0,
    height: size ? Number(size[2]) : 0,
    layers,
    imported: layers.some((l) => l.obj?.imported === true),
  };
}

const HEADER = /^(plane|crtc|connector|framebuffer)\[(\d+)\]:\s*(.*)$/;

/** Parse the text of /sys/kernel/debug/dri/N/state. Never throws on unknown content. */
export function parseDrmState(text: string): DebugfsState {
  const out: DebugfsState = { planes: [], crtcs: [], connectors: [], framebuffers: [], unknown: [] };
  const fbs = new Map<number, DebugfsFramebuffer>();
  for (const block of tree(text)) {
    const h = HEADER.exec(block.text);
    if (!h) {
      out.unknown.push(block.text);
      continue;
    }
    const id = Number(h[2]);
    const name = h[3]!.trim();
    const fields = new Map<string, string>();
    const extra: Record<string, string> = {};
    let fb: DebugfsFramebuffer | null = null;
    for (const n of block.children) {
      const p = kv(n.text);
      if (!p) {
        extra[n.text] = '';
        continue;
      }
      fields.set(p[0], p[1]);
      if (h[1] === 'plane' && p[0] === 'fb' && n.children.length) fb = parseFbFields(int(p[1]), n.children);
    }
    const known = (keys: string[]): void => {
      for (const [k, v] of fields) if (!keys.includes(k)) extra[k] = v;
    };
    if (h[1] === 'plane') {
      const fbId = int(fields.get('fb'));
      if (fb && fbId) {
        // the same fb on several planes: the first parse wins (same object)
        if (!fbs.has(fbId)) fbs.set(fbId, fb);
        fb = fbs.get(fbId)!;
      }
      out.planes.push({
        id,
        name,
        crtc: nullName(fields.get('crtc')),
        fbId,
        fb: fbId ? fb : null,
        crtcPos: parseRect(fields.get('crtc-pos')),
        srcPos: parseRectFp(fields.get('src-pos')),
        rotation: int(fields.has('rotation') ? `0x${fields.get('rotation')}` : undefined),
        normalizedZpos: int(fields.has('normalized-zpos') ? `0x${fields.get('normalized-zpos')}` : undefined),
        extra,
      });
      known(['crtc', 'fb', 'crtc-pos', 'src-pos', 'rotation', 'normalized-zpos']);
    } else if (h[1] === 'crtc') {
      const hexf = (k: string): number => int(fields.has(k) ? `0x${fields.get(k)}` : undefined);
      out.crtcs.push({
        id,
        name,
        enable: fields.get('enable') === '1',
        active: fields.get('active') === '1',
        planeMask: hexf('plane_mask'),
        connectorMask: hexf('connector_mask'),
        encoderMask: hexf('encoder_mask'),
        mode: fields.has('mode') ? parseMode(fields.get('mode')!) : null,
        extra,
      });
      known(['enable', 'active', 'plane_mask', 'connector_mask', 'encoder_mask', 'mode']);
    } else if (h[1] === 'connector') {
      out.connectors.push({
        id,
        name,
        crtc: nullName(fields.get('crtc')),
        writebackFbId: fields.has('fb') ? int(fields.get('fb')) : null,
        extra,
      });
      known(['crtc', 'fb']);
    } else {
      out.unknown.push(block.text);
    }
  }
  out.framebuffers = [...fbs.values()].sort((a, b) => a.id - b.id);
  return out;
}

/** Parse /sys/kernel/debug/dri/N/framebuffer: every framebuffer of the device. */
export function parseDrmFramebuffers(text: string): DebugfsFramebuffer[] {
  const out: DebugfsFramebuffer[] = [];
  for (const block of tree(text)) {
    const h = HEADER.exec(block.text);
    if (!h || h[1] !== 'framebuffer') continue;
    out.push(parseFbFields(Number(h[2]), block.children));
  }
  return out.sort((a, b) => a.id - b.id);
}
