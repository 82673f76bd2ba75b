// The rig's second display (test/rig/vm.sh --display2): QEMU's virtio-gpu with 2 heads, driven by
// the guest's virtio_gpu as the card node in $VGPU_FLIP_DISPLAY2 (vkms stays card0), and a
// read-back of what each head scans out: the outer QEMU's QMP `screendump`, run on the host by
// test/rig/screendump-service.mjs when a request file appears in the job folder (shared over 9p).
//
//   import { display2Card, screendump } from './display2-helpers.js';
//   const card = display2Card();             // '/dev/dri/card1'; throws when the rig has none
//   const shot = await screendump(1);        // what head 1 scans out now
//   shot.width, shot.height;                 // the head's mode (640x480 "not active" placeholder when off)
//   shot.at(x, y);                           // 0xRRGGBB
//   shot.pixels;                             // XRGB8888 little endian (B, G, R, 0xff), stride width*4
//
// Heads are QEMU scanout indices = virtio_gpu output indices: connector/CRTC/primary plane i in
// the card's id order (Virtual-2 and Virtual-3 when vkms' Virtual-1 was registered first).
// virtio-gpu pushes a dumb buffer's pixels to the host on plane updates only (transfer + flush on
// a new framebuffer or damage): draw into a buffer before committing it, or flip to another one.
import { existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DrmDevice } from '../../src/kms/index.js';

export const DISPLAY2_ENV = 'VGPU_FLIP_DISPLAY2';

/** The second display's card node, or undefined when the rig was started without --display2. */
export function display2CardOrUndefined(): string | undefined {
  const c = process.env[DISPLAY2_ENV];
  return c && existsSync(c) ? c : undefined;
}

/** Head 0 of the second display: its first connector by id, writeback excluded (Virtual-2 in the rig). */
export function display2Head0(): string {
  const card = display2Card();
  const dev = DrmDevice.open(card);
  try {
    const c = dev.snapshot().connectors.filter((x) => !x.writeback).sort((a, b) => a.id - b.id)[0];
    if (!c) throw new Error(`${card} has no connector`);
    return c.name;
  } finally {
    dev.close();
  }
}

/** The second display's card node; throws (the test fails) when there is none. */
export function display2Card(): string {
  const c = display2CardOrUndefined();
  if (c) return c;
  const why = process.env[DISPLAY2_ENV] === undefined
    ? `${DISPLAY2_ENV} is not set`
    : `${DISPLAY2_ENV}=${JSON.stringify(process.env[DISPLAY2_ENV])} names no device`;
  throw new Error(
    `no second display (${why}): run the kernel tests in the rig with the virtio-gpu display, ` +
      '`bash test/rig/vm.sh --display2 -- vitest run --project kernel ...` (npm test passes --display2)',
  );
}

export interface Screendump {
  width: number;
  height: number;
  /** XRGB8888 little endian: bytes B, G, R, 0xff per pixel; stride width * 4 */
  pixels: Buffer;
  /** the pixel at (x, y) as 0xRRGGBB */
  at(x: number, y: number): number;
  /** the file QEMU wrote (host path = guest path; kept only with keep: true) */
  file: string;
  /** milliseconds from the request to the decoded image */
  ms: number;
}

/** Decode a binary PPM (P6, maxval 255) as QEMU's screendump writes it into XRGB8888. */
export function decodePpm(buf: Buffer): { width: number; height: number; pixels: Buffer } {
  // header: "P6" whitespace width whitespace height whitespace maxval, one whitespace, then data
  let pos = 0;
  const token = (): string => {
    for (;;) {
      while (pos < buf.length && /\s/.test(String.fromCharCode(buf[pos]!))) pos++;
      if (buf[pos] === 0x23) { // comment
        while (pos < buf.length && buf[pos] !== 0x0a) pos++;
        continue;
      }
      break;
    }
    const start = pos;
    while (pos < buf.length && !/\s/.test(String.fromCharCode(buf[pos]!))) pos++;
    return buf.toString('latin1', start, pos);
  };
  const magic = token();
  if (magic !== 'P6') throw new Error(`not a binary PPM (magic ${JSON.stringify(magic)})`);
  const width = Number(token());
  const height = Number(token());
  const maxval = Number(token());
  if (!(width > 0 && height > 0) || maxval !== 255) throw new Error(`unsupported PPM ${width}x${height} maxval ${maxval}`);
  pos++; // the single whitespace after maxval
  const need = width * height * 3;
  if (buf.length - pos < need) throw new Error(`truncated PPM: ${buf.length - pos} of ${need} pixel bytes`);
  const pixels = Buffer.alloc(width * height * 4);
  for (let i = 0, s = pos; i < width * height; i++, s += 3) {
    pixels[i * 4] = buf[s + 2]!;
    pixels[i * 4 + 1] = buf[s + 1]!;
    pixels[i * 4 + 2] = buf[s]!;
    pixels[i * 4 + 3] = 0xff;
  }
  return { width, height, pixels };
}

let seq = 0;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The folder the host-side screendump service watches, with a clear error when it is not running. */
export function screendumpDir(): string {
  const job = process.env['VGPU_FLIP_JOB_DIR'];
  if (!job) throw new Error('VGPU_FLIP_JOB_DIR is not set: screendump works only inside the rig (test/rig/vm.sh --display2)');
  const dir = path.join(job, 'screendump');
  const st = path.join(dir, 'service.json');
  if (!existsSync(st)) {
    throw new Error(`no screendump service for this job (${st} missing): start the rig with --display2`);
  }
  return dir;
}

/**
 * What virtio-gpu head `head` scans out now, read by the outer QEMU (QMP screendump, PPM).
 * Rejects with the service's message on a QMP error, or after timeoutMs without an answer.
 */
export async function screendump(head: number, opts: { timeoutMs?: number; keep?: boolean } = {}): Promise<Screendump> {
  const dir = screendumpDir();
  const t0 = Date.now();
  const id = `g${process.pid}-${++seq}-${Date.now().toString(36)}`;
  const req = path.join(dir, `${id}.req`);
  writeFileSync(`${req}.tmp`, `${JSON.stringify({ head, format: 'ppm' })}\n`);
  renameSync(`${req}.tmp`, req);
  const done = path.join(dir, `${id}.done`);
  const error = path.join(dir, `${id}.error`);
  const timeoutMs = opts.timeoutMs ?? 30_000;
  for (;;) {
    if (existsSync(done)) break;
    if (existsSync(error)) {
      const msg = readFileSync(error, 'utf8').trim();
      rmSync(error, { force: true });
      throw new Error(msg);
    }
    if (Date.now() - t0 > timeoutMs) {
      let svc = '';
      try {
        svc = readFileSync(path.join(dir, 'service.json'), 'utf8').trim();
      } catch { /* gone */ }
      const taken = existsSync(path.join(dir, `${id}.taken`));
      rmSync(req, { force: true });
      throw new Error(
        `screendump of head ${head}: no answer within ${timeoutMs} ms (${taken ? 'the service took the request' : 'the service never took the request'}; ` +
          `service ${svc || 'status unknown'}; log: ${path.join(dir, 'service.log')})`,
      );
    }
    await sleep(50);
  }
  const res = JSON.parse(readFileSync(done, 'utf8')) as { file: string };
  const file = path.join(dir, res.file);
  // QEMU wrote the file before answering; over 9p the size is visible once written
  const data = readFileSync(file);
  if (data.length === 0 || data.length !== statSync(file).size) throw new Error(`screendump file ${file} is incomplete`);
  const img = decodePpm(data);
  rmSync(done, { force: true });
  if (!opts.keep) rmSync(file, { force: true });
  const { width, pixels } = img;
  return {
    ...img,
    file,
    ms: Date.now() - t0,
    at: (x: number, y: number): number => pixels.readUInt32LE((y * width + x) * 4) & 0xffffff,
  };
}
