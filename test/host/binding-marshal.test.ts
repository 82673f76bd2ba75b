// Struct marshalling of the addon against a scripted ioctl: an LD_PRELOAD shim (compiled here
// with gcc) answers VFIO and DRM ioctls on one marked file and records what the addon passed.
// This checks layouts, argsz growth, sign handling and atomic grouping on the host; real
// driver behaviour is tested in the VM.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addonPath } from '../../src/binding/index.js';

const SHIM = String.raw`
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/vfio.h>
#include <linux/dma-buf.h>
#include <drm.h>
#include <drm_mode.h>

static int (*real_ioctl)(int, unsigned long, ...);
static dev_t fake_dev; static ino_t fake_ino; static int have_fake;
static FILE *logf;

__attribute__((constructor)) static void init(void) {
  real_ioctl = dlsym(RTLD_NEXT, "ioctl");
  const char *p = getenv("FAKE_PATH");
  struct stat st;
  if (p && stat(p, &st) == 0) { fake_dev = st.st_dev; fake_ino = st.st_ino; have_fake = 1; }
  const char *l = getenv("FAKE_LOG");
  if (l) logf = fopen(l, "w");
}

static int is_fake(int fd) {
  struct stat st;
  return have_fake && fstat(fd, &st) == 0 && st.st_dev == fake_dev && st.st_ino == fake_ino;
}

static int region_info(struct vfio_region_info *ri) {
  const uint32_t need = sizeof(*ri) + 16 + 32;
  if (logf) fprintf(logf, "REGION argsz=%u index=%u\n", ri->argsz, ri->index);
  if (ri->index != 2) { errno = EINVAL; return -1; }
  ri->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP |
              VFIO_REGION_INFO_FLAG_CAPS;
  ri->size = 0x200000000ull;
  ri->offset = 0x20000000000ull;
  if (ri->argsz < need) { ri->argsz = need; ri->cap_offset = 0; return 0; }
  uint8_t *b = (uint8_t *)ri;
  ri->cap_offset = sizeof(*ri);
  struct vfio_region_info_cap_type t = { .header = { .id = VFIO_REGION_INFO_CAP_TYPE, .version = 1,
                                                     .next = sizeof(*ri) + 16 }, .type = 1, .subtype = 1 };
  memcpy(b + sizeof(*ri), &t, sizeof t);
  struct { struct vfio_info_cap_header h; uint32_t nr, res; uint64_t off, size; } s =
      { { VFIO_REGION_INFO_CAP_SPARSE_MMAP, 1, 0 }, 1, 0, 0x1000, 0x2000 };
  memcpy(b + sizeof(*ri) + 16, &s, sizeof s);
  return 0;
}

int ioctl(int fd, unsigned long req, ...) {
  va_list ap; va_start(ap, req); void *arg = va_arg(ap, void *); va_end(ap);
  if (!is_fake(fd)) return real_ioctl(fd, req, arg);
  switch (req) {
  case VFIO_DEVICE_GET_INFO: {
    struct vfio_device_info *d = arg;
    if (d->argsz < sizeof *d) { errno = EINVAL; return -1; }
    d->flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET; d->num_regions = 13; d->num_irqs = 5;
    return 0;
  }
  case VFIO_DEVICE_GET_REGION_INFO: return region_info(arg);
  case VFIO_DEVICE_QUERY_GFX_PLANE: {
    struct vfio_device_gfx_plane_info *p = arg;
    if (logf) fprintf(logf, "QUERY argsz=%u flags=%u type=%u\n", p->argsz, p->flags, p->drm_plane_type);
    if (p->argsz != sizeof *p) { errno = EINVAL; return -1; }
    if (p->flags == (VFIO_GFX_PLANE_TYPE_PROBE | VFIO_GFX_PLANE_TYPE_REGION)) { errno = EINVAL; return -1; }
    p->drm_format = 0x34325258; p->drm_format_mod = 0x0100000000000002ull;
    p->width = 64; p->height = 32; p->stride = 256; p->size = 8192;
    p->x_pos = (uint32_t)-5; p->y_pos = (uint32_t)-7; p->x_hot = 0xffffffffu; p->y_hot = 3;
    p->dmabuf_id = 0xdeadbeefu;
    return 0;
  }
  case VFIO_DEVICE_GET_GFX_DMABUF: {
    uint32_t id = *(uint32_t *)arg;
    if (logf) fprintf(logf, "DMABUF id=%u\n", id);
    if (id != 0xdeadbeefu) { errno = ENOENT; return -1; }
    return open("/dev/null", O_RDWR);
  }
  case DMA_BUF_IOCTL_SYNC: {
    struct dma_buf_sync *s = arg;
    if (logf) fprintf(logf, "SYNC flags=%llu\n", (unsigned long long)s->flags);
    return 0;
  }
  case DRM_IOCTL_MODE_ATOMIC: {
    struct drm_mode_atomic *a = arg;
    const uint32_t *objs = (const uint32_t *)(uintptr_t)a->objs_ptr;
    const uint32_t *counts = (const uint32_t *)(uintptr_t)a->count_props_ptr;
    const uint32_t *props = (const uint32_t *)(uintptr_t)a->props_ptr;
    const uint64_t *vals = (const uint64_t *)(uintptr_t)a->prop_values_ptr;
    if (logf) fprintf(logf, "ATOMIC flags=%u user=%llu objs=%u\n", a->flags, (unsigned long long)a->user_data, a->count_objs);
    uint32_t k = 0;
    for (uint32_t i = 0; i < a->count_objs; i++) {
      for (uint32_t j = 0; j < counts[i]; j++, k++) {
        uint64_t v = vals[k];
        if (props[k] == 99) { /* OUT_FENCE_PTR-like: write an fd (or leave -1 for prop 98) */
          int32_t *out = (int32_t *)(uintptr_t)v;
          if (logf) fprintf(logf, "PROP obj=%u prop=%u fence-ptr initial=%d\n", objs[i], props[k], *out);
          *out = open("/dev/null", O_RDONLY | O_CLOEXEC);
        } else if (props[k] == 98) {
          if (logf) fprintf(logf, "PROP obj=%u prop=%u fence-ptr untouched\n", objs[i], props[k]);
        } else if (logf) fprintf(logf, "PROP obj=%u prop=%u value=%llu\n", objs[i], props[k], (unsigned long long)v);
      }
    }
    if (logf) fflush(logf);
    if (a->flags & DRM_MODE_ATOMIC_TEST_ONLY) { errno = EINVAL; return -1; }
    return 0;
  }
  case DRM_IOCTL_MODE_ADDFB2: {
    struct drm_mode_fb_cmd2 *c = arg;
    if (logf) fprintf(logf, "ADDFB2 %ux%u fmt=%u flags=%u h=%u,%u p=%u,%u o=%u,%u m=%llu,%llu\n", c->width, c->height,
                      c->pixel_format, c->flags, c->handles[0], c->handles[1], c->pitches[0], c->pitches[1],
                      c->offsets[0], c->offsets[1], (unsigned long long)c->modifier[0], (unsigned long long)c->modifier[1]);
    c->fb_id = 77;
    return 0;
  }
  }
  errno = ENOTTY;
  return -1;
}
`;

// the child: exercises the addon against the shim and prints JSON results
const CHILD = String.raw`
const a = require(process.env.ADDON);
// Buffers reach the replacer already as { type: 'Buffer', data } (toJSON runs first)
const j = (o) => JSON.stringify(o, (k, v) =>
  typeof v === 'bigint' ? 'n' + v.toString()
  : v && v.type === 'Buffer' && Array.isArray(v.data) ? 'hex:' + Buffer.from(v.data).toString('hex')
  : v);
const fd = a.openPath(process.env.FAKE_PATH);
a.setFdLabel(fd, 'vfio-device fake');
const out = {};
out.info = a.vfioDeviceInfo(fd);
out.region = a.vfioRegionInfo(fd, 2);
try { a.vfioRegionInfo(fd, 3); } catch (e) { out.regionErr = { op: e.op, path: e.path, code: e.code, message: e.message }; }
out.plane = a.vfioQueryGfxPlane(fd, 2, 1);
try { a.vfioQueryGfxPlane(fd, 5, 1); } catch (e) { out.probeErr = { op: e.op, code: e.code, message: e.message }; }
const dmabuf = a.vfioGetGfxDmabuf(fd, out.plane.id);
out.dmabufFd = dmabuf > 2;
a.dmabufSync(fd, 4 | 1); // the shim answers on the marked file only
out.dmabufLabelOk = true;
a.close(dmabuf);
try { a.vfioGetGfxDmabuf(fd, 1); } catch (e) { out.dmabufErr = { op: e.op, code: e.code }; }
out.fences = a.drmAtomicCommit(fd, [
  [10, 1, 5], [20, 2, -10], [10, 3, 0xffffffffffffffffn], [30, 99, { outFence: true }], [20, 4, -1n], [30, 98, { outFence: true }],
], 0x0200 | 0x01, 0xfedcba9876543210n);
for (const f of out.fences) if (f >= 0) a.close(f);
try { a.drmAtomicCommit(fd, [[1, 2, 3]], 0x0100); } catch (e) { out.atomicErr = { op: e.op, path: e.path, code: e.code, message: e.message }; }
out.fb = a.drmAddFb2(fd, { width: 64, height: 32, format: 0x3231564e, handles: [5, 5], pitches: [64, 64], offsets: [0, 2048], modifiers: [0x0100000000000002n, 0x0100000000000002n] });
out.fbPlain = a.drmAddFb2(fd, { width: 8, height: 8, format: 0x34325258, handles: [6], pitches: [32], offsets: [0] });
a.close(fd);
console.log(j(out));
`;

let dir = '';
let result: Record<string, any> = {};
let log: string[] = [];

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'vgpu-flip-marshal-'));
  writeFileSync(path.join(dir, 'shim.c'), SHIM);
  const cflags = execFileSync('pkg-config', ['--cflags', 'libdrm'], { encoding: 'utf8' }).trim().split(/\s+/).filter(Boolean);
  execFileSync('gcc', ['-shared', '-fPIC', '-O1', ...cflags, '-o', path.join(dir, 'shim.so'), path.join(dir, 'shim.c'), '-ldl'], { stdio: 'pipe' });
  writeFileSync(path.join(dir, 'device'), '');
  writeFileSync(path.join(dir, 'child.cjs'), CHILD);
  const r = spawnSync(process.execPath, [path.join(dir, 'child.cjs')], {
    encoding: 'utf8',
    timeout: 30_000,
    env: {
      ...process.env,
      LD_PRELOAD: path.join(dir, 'shim.so'),
      FAKE_PATH: path.join(dir, 'device'),
      FAKE_LOG: path.join(dir, 'log.txt'),
      ADDON: addonPath,
    },
  });
  if (r.status !== 0) throw new Error(`child failed (${r.status} ${r.signal}): ${r.stderr}`);
  result = JSON.parse(r.stdout.trim().split('\n').pop()!);
  log = readFileSync(path.join(dir, 'log.txt'), 'utf8').trim().split('\n');
}, 60_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('VFIO marshalling', () => {
  it('device info', () => {
    expect(result['info']).toEqual({ flags: 3, numRegions: 13, numIrqs: 5 });
  });

  it('region info grows argsz, re-queries and walks the capability chain', () => {
    const regionLines = log.filter((l) => l.startsWith('REGION') && l.includes('index=2'));
    expect(regionLines).toEqual(['REGION argsz=32 index=2', 'REGION argsz=80 index=2']);
    const r = result['region'];
    expect(r.index).toBe(2);
    expect(r.flags).toBe(0xf);
    expect(r.size).toBe('n' + 0x200000000n.toString());
    expect(r.offset).toBe('n' + 0x20000000000n.toString());
    expect(r.caps).toHaveLength(2);
    expect(r.caps[0]).toMatchObject({ id: 2, version: 1 });
    // header (id 2, version 1, next 48) + type 1 + subtype 1
    expect(r.caps[0].data).toBe('hex:' + '0200' + '0100' + '30000000' + '01000000' + '01000000');
    expect(r.caps[1]).toMatchObject({ id: 1, version: 1 });
    expect(r.caps[1].data).toBe(
      'hex:' + '0100' + '0100' + '00000000' + '01000000' + '00000000' + '0010000000000000' + '0020000000000000',
    );
  });

  it('region info errors name the ioctl, the fd label and the region', () => {
    expect(result['regionErr']).toMatchObject({ op: 'VFIO_DEVICE_GET_REGION_INFO', path: 'vfio-device fake', code: 'EINVAL' });
    expect(result['regionErr'].message).toContain('region 3');
  });

  it('QUERY_GFX_PLANE passes argsz/flags/type and returns every field, positions signed', () => {
    expect(log).toContain('QUERY argsz=64 flags=2 type=1');
    expect(result['plane']).toEqual({
      flags: 2,
      drmPlaneType: 1,
      drmFormat: 0x34325258,
      drmFormatMod: 'n' + 0x0100000000000002n.toString(),
      width: 64,
      height: 32,
      stride: 256,
      size: 8192,
      xPos: -5,
      yPos: -7,
      xHot: 0xffffffff,
      yHot: 3,
      id: 0xdeadbeef,
    });
    expect(result['probeErr']).toMatchObject({ op: 'VFIO_DEVICE_QUERY_GFX_PLANE', code: 'EINVAL' });
  });

  it('GET_GFX_DMABUF passes the id and returns an fd; DMA_BUF sync flags pass through', () => {
    expect(log).toContain(`DMABUF id=${0xdeadbeef}`);
    expect(result['dmabufFd']).toBe(true);
    expect(log).toContain('SYNC flags=5');
    expect(result['dmabufErr']).toEqual({ op: 'VFIO_DEVICE_GET_GFX_DMABUF', code: 'ENOENT' });
  });
});

describe('DRM marshalling', () => {
  it('atomic groups props by object, keeps order, wraps negatives, passes flags and user data', () => {
    const start = log.indexOf(`ATOMIC flags=${0x201} user=${0xfedcba9876543210n} objs=3`);
    expect(start).toBeGreaterThanOrEqual(0);
    expect(log.slice(start + 1, start + 7)).toEqual([
      'PROP obj=10 prop=1 value=5',
      `PROP obj=10 prop=3 value=${0xffffffffffffffffn}`,
      `PROP obj=20 prop=2 value=${2n ** 64n - 10n}`,
      `PROP obj=20 prop=4 value=${2n ** 64n - 1n}`,
      'PROP obj=30 prop=99 fence-ptr initial=-1',
      'PROP obj=30 prop=98 fence-ptr untouched',
    ]);
    const fences = result['fences'] as number[];
    expect(fences).toHaveLength(2);
    expect(fences[0]).toBeGreaterThan(2);
    expect(fences[1]).toBe(-1);
  });

  it('atomic failure is a kernel error on the fd label', () => {
    expect(result['atomicErr']).toMatchObject({ op: 'DRM_IOCTL_MODE_ATOMIC', path: 'vfio-device fake', code: 'EINVAL' });
    expect(result['atomicErr'].message).toBe('DRM_IOCTL_MODE_ATOMIC on vfio-device fake: EINVAL (Invalid argument)');
  });

  it('ADDFB2 sets DRM_MODE_FB_MODIFIERS only with modifiers and passes per-plane arrays', () => {
    expect(result['fb']).toBe(77);
    expect(log).toContain(
      `ADDFB2 64x32 fmt=${0x3231564e} flags=2 h=5,5 p=64,64 o=0,2048 m=${0x0100000000000002n},${0x0100000000000002n}`,
    );
    expect(log).toContain(`ADDFB2 8x8 fmt=${0x34325258} flags=0 h=6,0 p=32,0 o=0,0 m=0,0`);
  });
});
