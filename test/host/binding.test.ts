// Host tests of the native addon: error shape, argument validation, IN_FORMATS decoding,
// mmap/unmap, poll integration. No /dev/dri or /dev/vfio here: device behaviour is covered by
// the kernel tests inside the VM.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { addonPath, native } from '../../src/binding/index.js';
import { describeKernelError, hasCode, isKernelError } from '../../src/binding/errors.js';
import {
  DRM_FORMAT_ARGB8888,
  DRM_FORMAT_MOD_INVALID,
  DRM_FORMAT_MOD_LINEAR,
  DRM_FORMAT_NV12,
  DRM_FORMAT_XRGB8888,
  O_CREAT,
  O_RDWR,
  fourcc,
  fourccToString,
} from '../../src/binding/constants.js';

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'vgpu-flip-binding-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

describe('loading', () => {
  it('a missing addon gives an error that says to run npm install, at first use', async () => {
    const saved = process.env['VGPU_FLIP_ADDON'];
    process.env['VGPU_FLIP_ADDON'] = '/nonexistent/vgpu_flip.node';
    try {
      vi.resetModules();
      const m = await import('../../src/binding/index.js');
      expect(m.addonPath).toBe('/nonexistent/vgpu_flip.node');
      expect(() => m.native.errnoName(1)).toThrow(/not built .*Run `npm install`.*libdrm-dev/s);
    } finally {
      if (saved === undefined) delete process.env['VGPU_FLIP_ADDON'];
      else process.env['VGPU_FLIP_ADDON'] = saved;
      vi.resetModules();
    }
  });

  it('the default path is native/build/Release/vgpu_flip.node under the package root', () => {
    expect(addonPath).toBe(path.resolve(__dirname, '..', '..', 'native', 'build', 'Release', 'vgpu_flip.node'));
  });
});

describe('kernel errors', () => {
  it('opening a nonexistent card names open, the path and ENOENT', () => {
    const e = catchError(() => native.drmOpen('/nonexistent/dri/card7'));
    expect(isKernelError(e)).toBe(true);
    if (!isKernelError(e)) return;
    expect(e.op).toBe('open');
    expect(e.path).toBe('/nonexistent/dri/card7');
    expect(e.code).toBe('ENOENT');
    expect(e.errno).toBe(2);
    expect(e.message).toMatch(/^open on \/nonexistent\/dri\/card7: ENOENT \(No such file or directory\)/);
    expect(hasCode(e, 'ENOENT')).toBe(true);
    expect(hasCode(e, 'EBUSY', 'EINVAL')).toBe(false);
  });

  it('opening a non-DRM file fails with ENOTTY and says it is not a DRM device', () => {
    const e = catchError(() => native.drmOpen('/dev/null'));
    expect(isKernelError(e)).toBe(true);
    if (!isKernelError(e)) return;
    expect(e.op).toBe('DRM_IOCTL_VERSION');
    expect(e.path).toBe('/dev/null');
    expect(e.code).toBe('ENOTTY');
    expect(e.message).toContain('DRM_IOCTL_VERSION on /dev/null: ENOTTY');
    expect(e.message).toContain('not a DRM device');
    expect(describeKernelError(e, 'opening the display')).toMatch(/^opening the display: DRM_IOCTL_VERSION on/);
  });

  it('a failing ioctl on a labelled fd names the label', () => {
    const fd = native.openPath('/dev/null');
    try {
      native.setFdLabel(fd, 'test-label');
      const e = catchError(() => native.drmGetResources(fd));
      expect(isKernelError(e) && e.path).toBe('test-label');
      expect(isKernelError(e) && e.op).toBe('DRM_IOCTL_MODE_GETRESOURCES');
      const v = catchError(() => native.vfioQueryGfxPlane(fd, 3, 1));
      expect(isKernelError(v) && v.op).toBe('VFIO_DEVICE_QUERY_GFX_PLANE');
      expect(isKernelError(v) && v.code).toBe('ENOTTY');
    } finally {
      native.close(fd);
    }
  });

  it('closing an fd twice throws EBADF; errnoName maps numbers', () => {
    const fd = native.openPath('/dev/null');
    native.close(fd);
    const e = catchError(() => native.close(fd));
    expect(hasCode(e, 'EBADF')).toBe(true);
    expect(native.errnoName(22)).toBe('EINVAL');
    expect(native.errnoName(16)).toBe('EBUSY');
  });

  it('vfioOpenMdev without /dev/vfio names the step that failed', () => {
    const e = catchError(() => native.vfioOpenMdev(999999, '00000000-0000-0000-0000-000000000000'));
    expect(isKernelError(e)).toBe(true);
    if (!isKernelError(e)) return;
    expect(e.op).toBe('open');
    expect(e.path).toMatch(/^\/dev\/vfio\//);
  });

  it('isKernelError rejects plain errors and non-errors', () => {
    expect(isKernelError(new Error('x'))).toBe(false);
    expect(isKernelError({ op: 'a', path: '', errno: 1, code: 'EPERM' })).toBe(false);
    expect(isKernelError(undefined)).toBe(false);
  });
});

describe('argument validation', () => {
  const cases: Array<[string, () => unknown]> = [
    ['drmOpen(number)', () => (native.drmOpen as (p: unknown) => number)(5)],
    ['drmOpen()', () => (native.drmOpen as () => number)()],
    ['drmGetPlane(string fd)', () => (native.drmGetPlane as (f: unknown, i: unknown) => unknown)('3', 1)],
    ['drmGetPlane(negative fd)', () => native.drmGetPlane(-1, 1)],
    ['drmGetPlane(fractional id)', () => native.drmGetPlane(0, 1.5)],
    ['drmDecodeInFormats(array)', () => (native.drmDecodeInFormats as (b: unknown) => unknown)([1, 2, 3])],
    ['drmAtomicCommit(props not array)', () => (native.drmAtomicCommit as (...a: unknown[]) => unknown)(0, {}, 0)],
    ['drmAtomicCommit(bad triple)', () => (native.drmAtomicCommit as (...a: unknown[]) => unknown)(0, [[1, 2]], 0)],
    ['drmAtomicCommit(string value)', () => (native.drmAtomicCommit as (...a: unknown[]) => unknown)(0, [[1, 2, 'x']], 0)],
    ['drmAtomicCommit(bad outFence)', () => (native.drmAtomicCommit as (...a: unknown[]) => unknown)(0, [[1, 2, { outFence: 1 }]], 0)],
    ['drmAtomicCommit(number userData)', () => (native.drmAtomicCommit as (...a: unknown[]) => unknown)(0, [], 0, 5)],
    ['drmAddFb2(no object)', () => (native.drmAddFb2 as (...a: unknown[]) => unknown)(0, 5)],
    ['drmAddFb2(modifier number)', () =>
      native.drmAddFb2(0, { width: 1, height: 1, format: 1, handles: [1], pitches: [4], offsets: [0], modifiers: [0 as unknown as bigint] })],
    ['pread(number offset)', () => (native.pread as (...a: unknown[]) => unknown)(0, 0, 1)],
    ['pwrite(string data)', () => (native.pwrite as (...a: unknown[]) => unknown)(0, 0n, 'abc')],
    ['mmap(no writable flag)', () => (native.mmap as (...a: unknown[]) => unknown)(0, 0n, 4096)],
    ['pollReadable(no callback)', () => (native.pollReadable as (...a: unknown[]) => unknown)(0, 1)],
    ['setFdLabel(label number)', () => (native.setFdLabel as (...a: unknown[]) => unknown)(0, 1)],
    ['vfioOpenMdev(name number)', () => (native.vfioOpenMdev as (...a: unknown[]) => unknown)(1, 2)],
  ];
  for (const [name, fn] of cases) {
    it(`${name} throws TypeError`, () => {
      expect(fn).toThrow(TypeError);
    });
  }

  it('out of range numbers throw RangeError', () => {
    expect(() => native.drmGetPlane(0, 2 ** 32)).toThrow(RangeError);
    expect(() => native.drmAtomicCommit(0, [[1, 2, 1n << 64n]], 0)).toThrow(RangeError);
  });
});

/** Build a struct drm_format_modifier_blob the way the kernel lays it out. */
function inFormatsBlob(formats: number[], mods: Array<{ formats: bigint; offset: number; modifier: bigint }>): Buffer {
  const header = 24;
  const formatsOffset = header;
  const modifiersOffset = formatsOffset + formats.length * 4 + ((formats.length * 4) % 8); // 8-aligned
  const b = Buffer.alloc(modifiersOffset + mods.length * 24);
  b.writeUInt32LE(1, 0); // version
  b.writeUInt32LE(0, 4); // flags
  b.writeUInt32LE(formats.length, 8);
  b.writeUInt32LE(formatsOffset, 12);
  b.writeUInt32LE(mods.length, 16);
  b.writeUInt32LE(modifiersOffset, 20);
  formats.forEach((f, i) => b.writeUInt32LE(f, formatsOffset + i * 4));
  mods.forEach((m, i) => {
    const o = modifiersOffset + i * 24;
    b.writeBigUInt64LE(m.formats, o);
    b.writeUInt32LE(m.offset, o + 8);
    b.writeUInt32LE(0, o + 12);
    b.writeBigUInt64LE(m.modifier, o + 16);
  });
  return b;
}

describe('drmDecodeInFormats', () => {
  const TILED = 0x0100000000000001n; // I915_FORMAT_MOD_X_TILED: high bits set

  it('expands the format bitmasks into exact (format, modifier) pairs', () => {
    const blob = inFormatsBlob(
      [DRM_FORMAT_XRGB8888, DRM_FORMAT_ARGB8888, DRM_FORMAT_NV12],
      [
        { formats: 0b111n, offset: 0, modifier: DRM_FORMAT_MOD_LINEAR },
        { formats: 0b011n, offset: 0, modifier: TILED },
        { formats: 0b001n, offset: 0, modifier: DRM_FORMAT_MOD_INVALID },
      ],
    );
    const pairs = native.drmDecodeInFormats(blob);
    expect(pairs).toEqual([
      { format: DRM_FORMAT_XRGB8888, modifier: 0n },
      { format: DRM_FORMAT_XRGB8888, modifier: TILED },
      { format: DRM_FORMAT_XRGB8888, modifier: 0x00ffffffffffffffn },
      { format: DRM_FORMAT_ARGB8888, modifier: 0n },
      { format: DRM_FORMAT_ARGB8888, modifier: TILED },
      { format: DRM_FORMAT_NV12, modifier: 0n },
    ]);
    for (const p of pairs) expect(typeof p.modifier).toBe('bigint');
  });

  it('honours the sliding 64-format window (offset)', () => {
    const formats = Array.from({ length: 70 }, (_, i) => 0x1000 + i);
    const blob = inFormatsBlob(formats, [
      { formats: (1n << 0n) | (1n << 5n), offset: 64, modifier: 0xffffffffffffffffn },
      { formats: 1n << 63n, offset: 0, modifier: 7n },
    ]);
    expect(native.drmDecodeInFormats(blob)).toEqual([
      { format: 0x1000 + 63, modifier: 7n },
      { format: 0x1000 + 64, modifier: 0xffffffffffffffffn },
      { format: 0x1000 + 69, modifier: 0xffffffffffffffffn },
    ]);
  });

  it('ignores bits beyond count_formats and handles empty blobs', () => {
    const blob = inFormatsBlob([DRM_FORMAT_XRGB8888], [{ formats: 0xffn, offset: 0, modifier: 0n }]);
    expect(native.drmDecodeInFormats(blob)).toEqual([{ format: DRM_FORMAT_XRGB8888, modifier: 0n }]);
    expect(native.drmDecodeInFormats(inFormatsBlob([], []))).toEqual([]);
  });

  it('rejects truncated or inconsistent blobs instead of reading past the end', () => {
    expect(() => native.drmDecodeInFormats(Buffer.alloc(10))).toThrow(/shorter than struct drm_format_modifier_blob/);
    const blob = inFormatsBlob([DRM_FORMAT_XRGB8888, DRM_FORMAT_ARGB8888], [{ formats: 3n, offset: 0, modifier: 0n }]);
    expect(() => native.drmDecodeInFormats(blob.subarray(0, blob.length - 1))).toThrow(/modifiers .* overrun/);
    const lying = Buffer.from(blob);
    lying.writeUInt32LE(0xffffffff, 8); // count_formats
    expect(() => native.drmDecodeInFormats(lying)).toThrow(/formats .* overrun/);
    const far = Buffer.from(blob);
    far.writeUInt32LE(0xfffffff0, 20); // modifiers_offset
    expect(() => native.drmDecodeInFormats(far)).toThrow(/overrun/);
  });
});

describe('fourcc helpers', () => {
  it('round-trips codes', () => {
    expect(fourcc('XR24')).toBe(0x34325258);
    expect(DRM_FORMAT_XRGB8888).toBe(0x34325258);
    expect(fourccToString(DRM_FORMAT_ARGB8888)).toBe('AR24');
    expect(fourccToString((DRM_FORMAT_XRGB8888 | 0x80000000) >>> 0)).toBe('XR24 (BE)');
  });
});

describe('mmap', () => {
  it('maps a file, writes through the ArrayBuffer, then unmap detaches it', () => {
    const file = path.join(dir, 'map.bin');
    writeFileSync(file, Buffer.alloc(16384));
    const fd = native.openPath(file);
    try {
      const m = native.mmap(fd, 4096n, 8192, true);
      expect(m.length).toBe(8192);
      expect(m.buffer.byteLength).toBe(8192);
      const view = new Uint8Array(m.buffer);
      view[0] = 0xab;
      view[8191] = 0xcd;
      m.unmap();
      expect(m.buffer.byteLength).toBe(0);
      expect(() => new Uint8Array(m.buffer)).toThrow(TypeError);
      expect(view.length).toBe(0); // views over a detached buffer are empty, not dangling
      expect(view[0]).toBeUndefined();
      m.unmap(); // idempotent
      const back = readFileSync(file);
      expect(back[4096]).toBe(0xab);
      expect(back[4096 + 8191]).toBe(0xcd);
      expect(native.pread(fd, 4096n, 1)[0]).toBe(0xab);
    } finally {
      native.close(fd);
    }
  });

  it('pwrite/pread at 64-bit offsets and short reads at EOF', () => {
    const fd = native.openPath(path.join(dir, 'rw.bin'), O_RDWR | O_CREAT);
    try {
      expect(native.pwrite(fd, 100n, Buffer.from('hello'))).toBe(5);
      expect(native.pread(fd, 100n, 5).toString()).toBe('hello');
      expect(native.pread(fd, 102n, 100).toString()).toBe('llo');
      expect(native.pread(fd, 1000n, 10).length).toBe(0);
    } finally {
      native.close(fd);
    }
  });

  it('a read-only mapping of a read-only fd works; mapping past a bad fd throws', () => {
    const file = path.join(dir, 'ro.bin');
    writeFileSync(file, Buffer.from('abcdefgh'));
    const fd = native.openPath(file, 0 /* O_RDONLY */);
    try {
      const m = native.mmap(fd, 0n, 8, false);
      expect(Buffer.from(m.buffer).toString()).toBe('abcdefgh');
      m.unmap();
      const e = catchError(() => native.mmap(fd, 0n, 8, true));
      expect(isKernelError(e) && e.code).toBe('EACCES');
    } finally {
      native.close(fd);
    }
  });

  it('many mappings left to the garbage collector do not throw', () => {
    const file = path.join(dir, 'gc.bin');
    writeFileSync(file, Buffer.alloc(4096));
    const fd = native.openPath(file);
    try {
      for (let i = 0; i < 200; i++) native.mmap(fd, 0n, 4096, false);
    } finally {
      native.close(fd);
    }
  });
});

describe('event loop', () => {
  function fifo(name: string): number {
    const p = path.join(dir, name);
    execFileSync('mkfifo', [p]);
    // O_RDWR on a FIFO does not block on Linux and keeps it open for both ends
    return native.openPath(p, O_RDWR);
  }

  it('pollReadable fires once data is written, and stop() ends it', async () => {
    const fd = fifo('poll.fifo');
    try {
      let calls = 0;
      const fired = new Promise<void>((resolve) => {
        const poller = native.pollReadable(fd, () => {
          calls++;
          poller.stop(); // stopping from inside the callback is allowed
          poller.stop();
          resolve();
        });
      });
      await new Promise((r) => setTimeout(r, 30));
      expect(calls).toBe(0);
      writeSync(fd, 'x');
      await fired;
      await new Promise((r) => setTimeout(r, 30));
      expect(calls).toBe(1); // data still unread, but the poller is stopped
    } finally {
      native.close(fd);
    }
  });

  it('stop() before any event, and a callback that throws reaches uncaughtException', async () => {
    const fd = fifo('poll2.fifo');
    try {
      const idle = native.pollReadable(fd, () => {
        throw new Error('must not be called');
      });
      idle.stop();
      idle.stop();
      writeSync(fd, 'y');
      await new Promise((r) => setTimeout(r, 30));

      const seen = new Promise<Error>((resolve) => {
        const handler = (e: Error) => {
          process.removeListener('uncaughtException', handler);
          resolve(e);
        };
        // vitest installs its own listener; add ours first so we see it
        process.prependListener('uncaughtException', handler);
      });
      const listeners = process.listeners('uncaughtException');
      for (const l of listeners.slice(1)) process.removeListener('uncaughtException', l);
      let throwing: ReturnType<typeof native.pollReadable> | undefined;
      try {
        throwing = native.pollReadable(fd, () => {
          throwing?.stop();
          throw new Error('boom from poll callback');
        });
        const e = await seen;
        expect(e.message).toBe('boom from poll callback');
      } finally {
        throwing?.stop();
        for (const l of listeners.slice(1)) process.on('uncaughtException', l);
      }
    } finally {
      native.close(fd);
    }
  });

  it('one poller per fd; close() stops the poller of the fd it closes', async () => {
    const fd = fifo('poll3.fifo');
    let closed = false;
    try {
      let calls = 0;
      const p = native.pollReadable(fd, () => {
        calls++;
      });
      const e = catchError(() => native.pollReadable(fd, () => {}));
      expect(hasCode(e, 'EBUSY')).toBe(true);
      expect(isKernelError(e) && e.op).toBe('pollReadable');
      writeSync(fd, 'x'); // readable now, but the callback only runs on a later loop turn
      native.close(fd); // stops p: libuv must not keep watching a closed fd
      closed = true;
      p.stop(); // still idempotent afterwards
      await new Promise((r) => setTimeout(r, 30));
      expect(calls).toBe(0);
      // the fd number can be polled again once reused
      const again = fifo('poll4.fifo');
      try {
        const q = native.pollReadable(again, () => {});
        q.stop();
      } finally {
        native.close(again);
      }
    } finally {
      if (!closed) native.close(fd);
    }
  });

  it('pollWait times out, then reports readable', () => {
    const fd = fifo('wait.fifo');
    try {
      const t0 = Date.now();
      expect(native.pollWait(fd, 50)).toBe(false);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(45);
      writeSync(fd, 'z');
      expect(native.pollWait(fd, 1000)).toBe(true);
      expect(native.pollWait(fd, 0)).toBe(true);
    } finally {
      native.close(fd);
    }
  });

  it('pollWait on a closed fd throws EBADF', () => {
    const fd = native.openPath('/dev/null');
    native.close(fd);
    const e = catchError(() => native.pollWait(fd, 0));
    expect(hasCode(e, 'EBADF')).toBe(true);
  });
});

describe('teardown', () => {
  it('a worker that exits with an active poller and live mappings terminates cleanly', () => {
    const fifoPath = path.join(dir, 'teardown.fifo');
    execFileSync('mkfifo', [fifoPath]);
    const file = path.join(dir, 'teardown.bin');
    writeFileSync(file, Buffer.alloc(8192));
    const worker = `
      const { Worker, isMainThread } = require('node:worker_threads');
      const code = \`
        const a = require(${JSON.stringify(addonPath)});
        const fs = require('node:fs');
        const keep = [];
        const fd = a.openPath(${JSON.stringify(file)});
        for (let i = 0; i < 10; i++) keep.push(a.mmap(fd, 0n, 8192, true));
        keep[0].unmap();
        const p = a.pollReadable(fs.openSync(${JSON.stringify(fifoPath)}, 'r+'), () => {});
        globalThis.keep = keep; globalThis.p = p;
        setTimeout(() => process.exit(0), 20);
      \`;
      let exits = 0;
      for (let i = 0; i < 3; i++) {
        const w = new Worker(code, { eval: true });
        w.on('exit', (c) => { if (c !== 0) process.exit(10 + c); if (++exits === 3) console.log('ALL EXITED'); });
      }`;
    const r = spawnSync(process.execPath, ['-e', worker], { encoding: 'utf8', timeout: 30_000 });
    expect(r.signal).toBeNull();
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('ALL EXITED');
  });
});

describe('drmReadEvents', () => {
  it('returns [] on a readable-but-empty fd at EOF and throws on a bad fd', () => {
    const fd = native.openPath('/dev/null');
    try {
      // /dev/null polls readable and reads 0 bytes: no events, no loop
      expect(native.drmReadEvents(fd)).toEqual([]);
    } finally {
      native.close(fd);
    }
    const e = catchError(() => native.drmReadEvents(fd));
    expect(hasCode(e, 'EBADF')).toBe(true);
  });

  it('a stream that is not DRM events (/dev/zero) throws instead of looping', () => {
    const fd = native.openPath('/dev/zero', 0);
    try {
      const e = catchError(() => native.drmReadEvents(fd));
      expect(hasCode(e, 'EPROTO')).toBe(true);
      expect(isKernelError(e) && e.path).toBe('/dev/zero');
    } finally {
      native.close(fd);
    }
  });
});
