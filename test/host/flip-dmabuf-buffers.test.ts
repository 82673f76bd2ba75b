// The DMABUF source's kernel-object rules with a fake addon (pure logic): one export per
// dmabuf_id for the whole session, even after the buffer left the cache (mbochs corrupts kernel
// memory on a second export of an id, released or not); every fd closed at the end.
import { describe, expect, it } from 'vitest';
import { DmabufBuffers, PARKED_MAX, type DmabufCounters, type DmabufHost } from '../../src/flip/dmabuf-buffers.js';
import type { BufferDesc } from '../../src/flip/fb-cache.js';
import type { NativeAddon } from '../../src/binding/types.js';
import type { DrmDevice } from '../../src/kms/index.js';

const desc: BufferDesc = { width: 64, height: 64, format: 0x34325258, modifier: 0n, stride: 256 };

function setup(capacity = 2) {
  const open = new Set<number>();
  const exports: number[] = [];
  let nextFd = 100;
  let nextFb = 1;
  const api = {
    drmGetCap: () => 1n,
    drmPrimeFdToHandle: () => 7,
    drmAddFb2: () => nextFb++,
    drmGemClose: () => undefined,
    drmRmFb: () => undefined,
    close: (fd: number) => {
      if (!open.delete(fd)) throw new Error(`close of fd ${fd} that is not open`);
    },
  } as unknown as NativeAddon;
  const host: DmabufHost = {
    api,
    dev: { fd: 3, path: '/dev/dri/card0', closed: false } as unknown as DrmDevice,
    exportDmabuf: (id) => {
      exports.push(id);
      const fd = nextFd++;
      open.add(fd);
      return fd;
    },
    problem: (stage, e) => {
      throw new Error(`${stage}: ${(e as Error).message}`);
    },
    fallback: () => undefined,
    videoMemory: () => null,
    locator: () => null,
  };
  const counters: DmabufCounters = { exports: 0, imports: 0, cacheHits: 0, copies: 0, bytesCopied: 0, errors: 0 };
  return { b: new DmabufBuffers(host, 'test', capacity, counters), exports, open, counters };
}

describe('DmabufBuffers', () => {
  it('an id that left the cache comes back without a second export (its fd was kept)', () => {
    const { b, exports, counters } = setup(2);
    let frame = 0;
    for (const id of [1, 2, 3, 4, 1, 2, 3, 4, 1]) {
      const got = b.obtain(id, desc, 64 * 256, ++frame);
      expect(got).not.toBeNull();
      b.cache.committedAndFlipped(got!.fbId);
      b.presented(got!);
    }
    expect(exports).toEqual([1, 2, 3, 4]);
    expect(counters.exports).toBe(4);
    expect(counters.imports).toBe(9); // framebuffers are re-made, dma-bufs are not re-exported
  });

  it('the kept fds are bounded (a driver with a new id per query) and all closed by clear()', () => {
    const { b, exports, open } = setup(2);
    for (let id = 1; id <= PARKED_MAX + 10; id++) {
      const got = b.obtain(id, desc, 64 * 256, id);
      b.cache.committedAndFlipped(got!.fbId);
    }
    expect(exports).toHaveLength(PARKED_MAX + 10);
    expect(open.size).toBeLessThanOrEqual(PARKED_MAX + 2);
    expect(b.clear()).toEqual([]);
    expect(open.size).toBe(0);
  });
});
