// Minimal KMS for the vgpu-sim kernel tests: put an imported dma-buf on a vkms overlay plane
// with a real atomic commit (raw addon calls, so the test depends on nothing but the addon).
import { native } from '../../src/binding/index.js';
import { isKernelError } from '../../src/binding/errors.js';
import {
  DRM_CLIENT_CAP_ATOMIC,
  DRM_CLIENT_CAP_UNIVERSAL_PLANES,
  DRM_CLIENT_CAP_WRITEBACK_CONNECTORS,
  DRM_FORMAT_XRGB8888,
  DRM_MODE_ATOMIC_ALLOW_MODESET,
  DRM_MODE_ATOMIC_TEST_ONLY,
  DRM_MODE_OBJECT_CONNECTOR,
  DRM_MODE_OBJECT_CRTC,
  DRM_MODE_OBJECT_PLANE,
} from '../../src/binding/constants.js';
import { packModeInfo } from '../../src/kms/mode.js';
import { readDebugfsState } from './kms-helpers.js';

const DRM_MODE_CONNECTOR_VIRTUAL = 15;
const DRM_MODE_CONNECTOR_WRITEBACK = 18;
const DRM_MODE_TYPE_PREFERRED = 1 << 3;

type Props = Map<string, number>;

function propIds(fd: number, id: number, type: number): Props {
  return new Map(native.drmGetProperties(fd, id, type).map((p) => [p.name, p.id]));
}

function planeType(fd: number, id: number): number {
  const t = native.drmGetProperties(fd, id, DRM_MODE_OBJECT_PLANE).find((p) => p.name === 'type');
  return t ? Number(t.value) : -1;
}

function errText(fn: () => unknown): string {
  try {
    fn();
    return 'OK';
  } catch (e) {
    return isKernelError(e) ? e.code : String(e);
  }
}

export interface OverlayCommitResult {
  fbId: number;
  overlayId: number;
  testOnly: string;
  commit: string;
  /** the overlay plane's block of /sys/kernel/debug/dri/N/state right after the commit */
  stateOfOverlay: string | null;
}

/** The block "plane[ID]: ..." of a debugfs state dump. */
export function planeBlock(state: string, planeId: number): string | null {
  const lines = state.split('\n');
  const i = lines.findIndex((l) => l.startsWith(`plane[${planeId}]`));
  if (i < 0) return null;
  const out = [lines[i]!];
  for (let j = i + 1; j < lines.length && lines[j]!.startsWith('\t'); j++) out.push(lines[j]!);
  return out.join('\n');
}

/**
 * Light up vkms' CRTC (virtual connector, preferred mode, a dumb primary) and put the dma-buf
 * on the first overlay plane at (0,0) unscaled; TEST_ONLY first, then the real commit. Reads
 * the debugfs state while it is shown, then turns everything off and frees what it made.
 */
export function vkmsOverlayCommit(
  card: string,
  dmabufFd: number,
  buf: { width: number; height: number; stride: number; format: number },
): OverlayCommitResult {
  const fd = native.drmOpen(card);
  const cleanup: Array<() => void> = [];
  try {
    native.drmSetClientCap(fd, DRM_CLIENT_CAP_UNIVERSAL_PLANES, 1);
    native.drmSetClientCap(fd, DRM_CLIENT_CAP_ATOMIC, 1);
    try {
      native.drmSetMaster(fd);
    } catch {
      /* already master as the first opener */
    }
    const res = native.drmGetResources(fd);
    const crtc = res.crtcs[0];
    if (crtc === undefined) throw new Error(`${card}: no CRTC`);
    const conn = res.connectors.map((c) => native.drmGetConnector(fd, c)).find((c) => c.type === DRM_MODE_CONNECTOR_VIRTUAL);
    if (!conn) throw new Error(`${card}: no virtual connector`);
    const mode = conn.modes.find((m) => m.type & DRM_MODE_TYPE_PREFERRED) ?? conn.modes[0];
    if (!mode) throw new Error(`${card}: connector ${conn.id} has no modes`);
    const planes = native.drmGetPlaneResources(fd);
    const primary = planes.find((p) => planeType(fd, p) === 1);
    const overlay = planes.find((p) => planeType(fd, p) === 0 && native.drmGetPlane(fd, p).formats.includes(buf.format));
    if (primary === undefined || overlay === undefined) throw new Error(`${card}: no primary or overlay plane for the format`);

    const handle = native.drmPrimeFdToHandle(fd, dmabufFd);
    cleanup.push(() => native.drmGemClose(fd, handle));
    const fbId = native.drmAddFb2(fd, { width: buf.width, height: buf.height, format: buf.format, handles: [handle], pitches: [buf.stride], offsets: [0] });
    cleanup.push(() => native.drmRmFb(fd, fbId));

    const dumb = native.drmCreateDumb(fd, mode.hdisplay, mode.vdisplay, 32);
    cleanup.push(() => native.drmDestroyDumb(fd, dumb.handle));
    const bg = native.drmAddFb2(fd, { width: mode.hdisplay, height: mode.vdisplay, format: DRM_FORMAT_XRGB8888, handles: [dumb.handle], pitches: [dumb.pitch], offsets: [0] });
    cleanup.push(() => native.drmRmFb(fd, bg));
    const blob = native.drmCreatePropertyBlob(fd, packModeInfo(mode));
    cleanup.push(() => native.drmDestroyPropertyBlob(fd, blob));

    const cp = propIds(fd, conn.id, DRM_MODE_OBJECT_CONNECTOR);
    const kp = propIds(fd, crtc, DRM_MODE_OBJECT_CRTC);
    const pp = propIds(fd, primary, DRM_MODE_OBJECT_PLANE);
    const op = propIds(fd, overlay, DRM_MODE_OBJECT_PLANE);
    const id = (m: Props, n: string): number => {
      const v = m.get(n);
      if (v === undefined) throw new Error(`${card}: property ${n} missing`);
      return v;
    };
    const planeProps = (m: Props, plane: number, fb: number, w: number, h: number): Array<[number, number, number]> => [
      [plane, id(m, 'FB_ID'), fb],
      [plane, id(m, 'CRTC_ID'), crtc],
      [plane, id(m, 'SRC_X'), 0],
      [plane, id(m, 'SRC_Y'), 0],
      [plane, id(m, 'SRC_W'), w * 65536],
      [plane, id(m, 'SRC_H'), h * 65536],
      [plane, id(m, 'CRTC_X'), 0],
      [plane, id(m, 'CRTC_Y'), 0],
      [plane, id(m, 'CRTC_W'), w],
      [plane, id(m, 'CRTC_H'), h],
    ];
    const on: Array<[number, number, number]> = [
      [conn.id, id(cp, 'CRTC_ID'), crtc],
      [crtc, id(kp, 'MODE_ID'), blob],
      [crtc, id(kp, 'ACTIVE'), 1],
      ...planeProps(pp, primary, bg, mode.hdisplay, mode.vdisplay),
      ...planeProps(op, overlay, fbId, buf.width, buf.height),
    ];
    const testOnly = errText(() => native.drmAtomicCommit(fd, on, DRM_MODE_ATOMIC_TEST_ONLY | DRM_MODE_ATOMIC_ALLOW_MODESET));
    const commit = errText(() => native.drmAtomicCommit(fd, on, DRM_MODE_ATOMIC_ALLOW_MODESET));
    const state = readDebugfsState(card);
    const stateOfOverlay = state ? planeBlock(state, overlay) : null;
    if (commit === 'OK') {
      const off: Array<[number, number, number]> = [
        [overlay, id(op, 'FB_ID'), 0],
        [overlay, id(op, 'CRTC_ID'), 0],
        [primary, id(pp, 'FB_ID'), 0],
        [primary, id(pp, 'CRTC_ID'), 0],
        [conn.id, id(cp, 'CRTC_ID'), 0],
        [crtc, id(kp, 'MODE_ID'), 0],
        [crtc, id(kp, 'ACTIVE'), 0],
      ];
      native.drmAtomicCommit(fd, off, DRM_MODE_ATOMIC_ALLOW_MODESET);
    }
    return { fbId, overlayId: overlay, testOnly, commit, stateOfOverlay };
  } finally {
    for (const f of cleanup.reverse()) {
      try {
        f();
      } catch {
        /* closing the fd frees the rest */
      }
    }
    native.close(fd);
  }
}

/**
 * A lit vkms display for the DRM_FB tests: the CRTC on the virtual connector in its preferred
 * mode with a dumb primary, and helpers to put any framebuffer id on the first overlay plane.
 * close() turns everything off and frees what it made.
 */
export class VkmsScene {
  readonly fd: number;
  readonly crtc: number;
  readonly primary: number;
  readonly overlay: number;
  readonly width: number;
  readonly height: number;
  private readonly cleanup: Array<() => void> = [];
  private readonly props = new Map<number, Props>();
  private readonly conn: number;
  private readonly bg: number;
  private readonly blob: number;
  private closed = false;

  constructor(readonly card: string) {
    this.fd = native.drmOpen(card);
    const fd = this.fd;
    try {
      native.drmSetClientCap(fd, DRM_CLIENT_CAP_UNIVERSAL_PLANES, 1);
      native.drmSetClientCap(fd, DRM_CLIENT_CAP_ATOMIC, 1);
      native.drmSetClientCap(fd, DRM_CLIENT_CAP_WRITEBACK_CONNECTORS, 1);
      try {
        native.drmSetMaster(fd);
      } catch {
        /* already master */
      }
      const res = native.drmGetResources(fd);
      const crtc = res.crtcs[0];
      if (crtc === undefined) throw new Error(`${card}: no CRTC`);
      this.crtc = crtc;
      const conn = res.connectors.map((c) => native.drmGetConnector(fd, c)).find((c) => c.type === DRM_MODE_CONNECTOR_VIRTUAL);
      if (!conn) throw new Error(`${card}: no virtual connector`);
      this.conn = conn.id;
      const mode = conn.modes.find((m) => m.type & DRM_MODE_TYPE_PREFERRED) ?? conn.modes[0];
      if (!mode) throw new Error(`${card}: no mode`);
      this.width = mode.hdisplay;
      this.height = mode.vdisplay;
      const planes = native.drmGetPlaneResources(fd);
      const primary = planes.find((p) => planeType(fd, p) === 1);
      const overlay = planes.find((p) => planeType(fd, p) === 0);
      if (primary === undefined || overlay === undefined) throw new Error(`${card}: no primary/overlay plane`);
      this.primary = primary;
      this.overlay = overlay;
      const dumb = native.drmCreateDumb(fd, this.width, this.height, 32);
      this.cleanup.push(() => native.drmDestroyDumb(fd, dumb.handle));
      this.bg = native.drmAddFb2(fd, { width: this.width, height: this.height, format: DRM_FORMAT_XRGB8888, handles: [dumb.handle], pitches: [dumb.pitch], offsets: [0] });
      this.cleanup.push(() => native.drmRmFb(fd, this.bg));
      this.blob = native.drmCreatePropertyBlob(fd, packModeInfo(mode));
      this.cleanup.push(() => native.drmDestroyPropertyBlob(fd, this.blob));
    } catch (e) {
      this.close();
      throw e;
    }
  }

  private prop(obj: number, type: number, name: string): number {
    let m = this.props.get(obj);
    if (!m) {
      m = propIds(this.fd, obj, type);
      this.props.set(obj, m);
    }
    const v = m.get(name);
    if (v === undefined) throw new Error(`${this.card}: object ${obj} has no property ${name}`);
    return v;
  }

  private planeProps(plane: number, fb: number, w: number, h: number, x = 0, y = 0): Array<[number, number, number]> {
    const P = DRM_MODE_OBJECT_PLANE;
    return [
      [plane, this.prop(plane, P, 'FB_ID'), fb],
      [plane, this.prop(plane, P, 'CRTC_ID'), fb ? this.crtc : 0],
      [plane, this.prop(plane, P, 'SRC_X'), 0],
      [plane, this.prop(plane, P, 'SRC_Y'), 0],
      [plane, this.prop(plane, P, 'SRC_W'), w * 65536],
      [plane, this.prop(plane, P, 'SRC_H'), h * 65536],
      [plane, this.prop(plane, P, 'CRTC_X'), x],
      [plane, this.prop(plane, P, 'CRTC_Y'), y],
      [plane, this.prop(plane, P, 'CRTC_W'), w],
      [plane, this.prop(plane, P, 'CRTC_H'), h],
    ];
  }

  /** Light the CRTC and put `fb` (w x h) on the overlay at (x, y); returns 'OK' or the errno name. */
  showOnOverlay(fb: number, w: number, h: number, x = 0, y = 0): string {
    const props: Array<[number, number, number]> = [
      [this.conn, this.prop(this.conn, DRM_MODE_OBJECT_CONNECTOR, 'CRTC_ID'), this.crtc],
      [this.crtc, this.prop(this.crtc, DRM_MODE_OBJECT_CRTC, 'MODE_ID'), this.blob],
      [this.crtc, this.prop(this.crtc, DRM_MODE_OBJECT_CRTC, 'ACTIVE'), 1],
      ...this.planeProps(this.primary, this.bg, this.width, this.height),
      ...this.planeProps(this.overlay, fb, w, h, x, y),
    ];
    return errText(() => native.drmAtomicCommit(this.fd, props, DRM_MODE_ATOMIC_ALLOW_MODESET));
  }

  /** the overlay's current FB_ID property value */
  overlayFb(): number {
    const p = native.drmGetProperties(this.fd, this.overlay, DRM_MODE_OBJECT_PLANE).find((x) => x.name === 'FB_ID');
    return p ? Number(p.value) : -1;
  }

  /**
   * The composed frame through vkms' writeback connector (XRGB8888, `stride` bytes per row).
   * On 6.1 the CRTC goes to Writeback-1 alone for the capture (the encoders are not clones),
   * then back to the virtual connector.
   */
  capture(): { pixels: Buffer; stride: number } {
    const fd = this.fd;
    const wb = native.drmGetResources(fd).connectors.map((c) => native.drmGetConnector(fd, c)).find((c) => c.type === DRM_MODE_CONNECTOR_WRITEBACK);
    if (!wb) throw new Error(`${this.card}: no writeback connector (vkms enable_writeback=1)`);
    const C = DRM_MODE_OBJECT_CONNECTOR;
    const dumb = native.drmCreateDumb(fd, this.width, this.height, 32);
    let fb = 0;
    try {
      fb = native.drmAddFb2(fd, { width: this.width, height: this.height, format: DRM_FORMAT_XRGB8888, handles: [dumb.handle], pitches: [dumb.pitch], offsets: [0] });
      const fences = native.drmAtomicCommit(
        fd,
        [
          [this.conn, this.prop(this.conn, C, 'CRTC_ID'), 0],
          [wb.id, this.prop(wb.id, C, 'CRTC_ID'), this.crtc],
          [wb.id, this.prop(wb.id, C, 'WRITEBACK_FB_ID'), fb],
          [wb.id, this.prop(wb.id, C, 'WRITEBACK_OUT_FENCE_PTR'), { outFence: true }],
        ],
        DRM_MODE_ATOMIC_ALLOW_MODESET,
      );
      const fence = fences[0] ?? -1;
      try {
        if (fence < 0) throw new Error('no writeback fence');
        if (!native.pollWait(fence, 5000)) throw new Error('writeback fence did not signal in 5 s');
      } finally {
        if (fence >= 0) native.close(fence);
        native.drmAtomicCommit(
          fd,
          [
            [wb.id, this.prop(wb.id, C, 'CRTC_ID'), 0],
            [this.conn, this.prop(this.conn, C, 'CRTC_ID'), this.crtc],
          ],
          DRM_MODE_ATOMIC_ALLOW_MODESET,
        );
      }
      const m = native.drmMapDumb(fd, dumb.handle, dumb.size);
      try {
        return { pixels: Buffer.from(Buffer.from(m.buffer, 0, m.length)), stride: dumb.pitch };
      } finally {
        m.unmap();
      }
    } finally {
      if (fb) native.drmRmFb(fd, fb);
      native.drmDestroyDumb(fd, dumb.handle);
    }
  }

  overlayState(): string | null {
    const s = readDebugfsState(this.card);
    return s ? planeBlock(s, this.overlay) : null;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.crtc !== undefined && this.bg !== undefined) {
        const off: Array<[number, number, number]> = [
          [this.overlay, this.prop(this.overlay, DRM_MODE_OBJECT_PLANE, 'FB_ID'), 0],
          [this.overlay, this.prop(this.overlay, DRM_MODE_OBJECT_PLANE, 'CRTC_ID'), 0],
          [this.primary, this.prop(this.primary, DRM_MODE_OBJECT_PLANE, 'FB_ID'), 0],
          [this.primary, this.prop(this.primary, DRM_MODE_OBJECT_PLANE, 'CRTC_ID'), 0],
          [this.conn, this.prop(this.conn, DRM_MODE_OBJECT_CONNECTOR, 'CRTC_ID'), 0],
          [this.crtc, this.prop(this.crtc, DRM_MODE_OBJECT_CRTC, 'MODE_ID'), 0],
          [this.crtc, this.prop(this.crtc, DRM_MODE_OBJECT_CRTC, 'ACTIVE'), 0],
        ];
        errText(() => native.drmAtomicCommit(this.fd, off, DRM_MODE_ATOMIC_ALLOW_MODESET));
      }
    } finally {
      for (const f of this.cleanup.reverse()) errText(f);
      this.cleanup.length = 0;
      native.close(this.fd);
    }
  }
}

/** Does the captured frame show `src` (XRGB8888, srcStride) at (x, y), w x h? Compares RGB only. */
export function frameShows(
  frame: { pixels: Buffer; stride: number },
  src: Buffer,
  srcStride: number,
  x: number,
  y: number,
  w: number,
  h: number,
): { ok: boolean; firstDiff?: string } {
  for (let row = 0; row < h; row++) {
    for (let col = 0; col < w; col++) {
      const a = frame.pixels.readUInt32LE((y + row) * frame.stride + (x + col) * 4) & 0xffffff;
      const b = src.readUInt32LE(row * srcStride + col * 4) & 0xffffff;
      if (a !== b) return { ok: false, firstDiff: `(${col},${row}): got 0x${a.toString(16)}, want 0x${b.toString(16)}` };
    }
  }
  return { ok: true };
}
