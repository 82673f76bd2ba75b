// Checks src/binding/constants.ts against the installed uapi headers: a small C program prints
// each macro's value (gcc, pkg-config and libdrm-dev are needed to build the addon anyway).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as C from '../../src/binding/constants.js';

// every exported numeric/bigint constant that has a C macro or enum of the same name
const NOT_IN_HEADERS = new Set([
  'VFIO_GFX_PLANE_TYPE_DRM_FB', // proposed ABI, not in linux/vfio.h yet
  'VFIO_GFX_NO_HOTSPOT',
]);

describe('constants match the kernel/libdrm headers', () => {
  it('every constant equals the header value', () => {
    const names = Object.entries(C)
      .filter(([k, v]) => /^[A-Z][A-Za-z0-9_]*$/.test(k) && (typeof v === 'number' || typeof v === 'bigint'))
      .map(([k]) => k)
      .filter((k) => !NOT_IN_HEADERS.has(k));
    expect(names.length).toBeGreaterThan(100);
    const dir = mkdtempSync(path.join(tmpdir(), 'vgpu-flip-consts-'));
    try {
      const src = [
        '#include <stdio.h>',
        '#include <fcntl.h>',
        '#include <xf86drm.h>',
        '#include <xf86drmMode.h>',
        '#include <drm_fourcc.h>',
        '#include <linux/vfio.h>',
        '#include <linux/dma-buf.h>',
        'int main(void) {',
        // cast through the macro's own width: (1 << 31) style macros are ints
        ...names.map((n) => `  printf("%s %llu\\n", "${n}", sizeof(${n}) == 4 ? (unsigned long long)(unsigned int)(${n}) : (unsigned long long)(${n}));`),
        '  return 0;',
        '}',
      ].join('\n');
      writeFileSync(path.join(dir, 'c.c'), src);
      const cflags = execFileSync('pkg-config', ['--cflags', 'libdrm'], { encoding: 'utf8' }).trim().split(/\s+/).filter(Boolean);
      execFileSync('gcc', [...cflags, '-o', path.join(dir, 'c'), path.join(dir, 'c.c')], { stdio: 'pipe' });
      const out = execFileSync(path.join(dir, 'c'), { encoding: 'utf8' });
      const diffs: string[] = [];
      for (const line of out.trim().split('\n')) {
        const [name, value] = line.split(' ') as [string, string];
        const ours = (C as Record<string, unknown>)[name] as number | bigint;
        if (BigInt(ours) !== BigInt(value)) diffs.push(`${name}: ours ${ours}, header ${value}`);
      }
      expect(diffs).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
