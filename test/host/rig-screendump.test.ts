// The rig's display read-back without a VM: test/rig/screendump-service.mjs against a fake QMP
// server, driven by the guest-side helper test/kernel/display2-helpers.ts (same files, same
// protocol as in the rig), and the helper's PPM decoder.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePpm, screendump } from '../kernel/display2-helpers.js';

const service = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', 'rig', 'screendump-service.mjs');

function ppm(w: number, h: number, rgb: (x: number, y: number) => [number, number, number], comment = false): Buffer {
  const head = Buffer.from(`P6\n${comment ? '# by a test\n' : ''}${w} ${h}\n255\n`, 'latin1');
  const data = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set(rgb(x, y), (y * w + x) * 3);
  return Buffer.concat([head, data]);
}

describe('decodePpm', () => {
  it('decodes P6 (with a comment) into XRGB8888 little endian', () => {
    const img = decodePpm(ppm(3, 2, (x, y) => [x * 10, y * 20, 0x33], true));
    expect(img).toMatchObject({ width: 3, height: 2 });
    expect([...img.pixels.subarray(4 * 4, 4 * 5)]).toEqual([0x33, 20, 10, 0xff]); // (1,1): B G R X
  });

  it('refuses other formats and truncated data', () => {
    expect(() => decodePpm(Buffer.from('P3\n1 1\n255\n0 0 0\n'))).toThrow(/not a binary PPM/);
    expect(() => decodePpm(ppm(4, 4, () => [0, 0, 0]).subarray(0, 20))).toThrow(/truncated PPM/);
  });
});

describe('screendump service + helper (fake QMP)', () => {
  let dir = '';
  let server: net.Server;
  let child: ChildProcess;
  const commands: Array<{ execute: string; arguments?: Record<string, unknown> }> = [];
  let failNext = false;
  const savedJob = process.env['VGPU_FLIP_JOB_DIR'];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'vgpu-flip-sd-'));
    const sock = path.join(dir, 'qmp.sock');
    server = net.createServer((c) => {
      c.write(`${JSON.stringify({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 22 } }, capabilities: [] } })}\n`);
      let buf = '';
      c.on('data', (d) => {
        buf += d.toString();
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const msg = JSON.parse(buf.slice(0, i));
          buf = buf.slice(i + 1);
          commands.push(msg);
          if (msg.execute === 'screendump') {
            const a = msg.arguments;
            if (failNext) {
              failNext = false;
              c.write(`${JSON.stringify({ error: { class: 'GenericError', desc: 'no surface' }, id: msg.id })}\n`);
              continue;
            }
            writeFileSync(a.filename, ppm(8, 4, (x) => (a.head === 0 ? [255, x, 0] : [0, x, 255])));
            c.write(`${JSON.stringify({ event: 'SOMETHING', data: {} })}\n`);
          }
          c.write(`${JSON.stringify({ return: {}, id: msg.id })}\n`);
        }
      });
    });
    await new Promise<void>((r) => server.listen(sock, r));
    const sdir = path.join(dir, 'screendump');
    mkdirSync(sdir);
    child = spawn(process.execPath, [service, '--qmp', sock, '--dir', sdir, '--device', 'display2', '--heads', '2'], { stdio: 'ignore' });
    process.env['VGPU_FLIP_JOB_DIR'] = dir;
    const end = Date.now() + 10_000;
    while (!existsSync(path.join(sdir, 'service.json')) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  });

  afterAll(() => {
    child?.kill();
    server?.close();
    if (savedJob === undefined) delete process.env['VGPU_FLIP_JOB_DIR'];
    else process.env['VGPU_FLIP_JOB_DIR'] = savedJob;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a request becomes QMP screendump of the device and head, and the helper decodes the PPM', async () => {
    const s0 = await screendump(0, { timeoutMs: 10_000 });
    const s1 = await screendump(1, { timeoutMs: 10_000 });
    expect({ w: s0.width, h: s0.height }).toEqual({ w: 8, h: 4 });
    expect(s0.at(3, 2)).toBe(0xff0300);
    expect(s1.at(5, 0)).toBe(0x0005ff);
    expect(commands[0]).toMatchObject({ execute: 'qmp_capabilities' });
    const dumps = commands.filter((c) => c.execute === 'screendump');
    expect(dumps.map((c) => c.arguments)).toEqual([
      { filename: expect.stringMatching(/screendump\/g\d+-1-\w+\.ppm$/), device: 'display2', head: 0, format: 'ppm' },
      { filename: expect.stringMatching(/screendump\/g\d+-2-\w+\.ppm$/), device: 'display2', head: 1, format: 'ppm' },
    ]);
    // nothing left behind but the service's own files
    expect(existsSync(s0.file)).toBe(false);
  });

  it('a head the device does not have is an error file, and the helper rejects with its text', async () => {
    await expect(screendump(2, { timeoutMs: 10_000 })).rejects.toThrow(/screendump of display2 head 2 failed: bad head 2: the device has heads 0\.\.1/);
  });

  it('a QMP error reaches the helper as the rejection', async () => {
    failNext = true;
    await expect(screendump(1, { timeoutMs: 10_000 })).rejects.toThrow(/screendump of display2 head 1 failed: QMP GenericError: no surface/);
    expect((await screendump(1, { timeoutMs: 10_000 })).width).toBe(8);
  });
});
