import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { loadSnapshotFile } from '../../src/kms/snapshot-json.js';
import { chooseMode, connectorFor, parseModeRequest } from '../../src/flip/engine.js';
import { parsePosition, UsageError } from '../../src/flip/session.js';
import { formatTable, type BenchResult } from '../../src/bench/main.js';

const fixtures = path.join(import.meta.dirname, '..', 'fixtures');
const vkms = loadSnapshotFile(path.join(fixtures, 'flip-vkms-snapshot.json'));
const intel = loadSnapshotFile(path.join(fixtures, 'flip-intel-snapshot.json'));

describe('assign option parsing and mode choice', () => {
  it('parses --position and --mode', () => {
    expect(parsePosition('10,-20')).toEqual({ kind: 'position', x: 10, y: -20 });
    expect(() => parsePosition('10x20')).toThrow(UsageError);
    expect(parseModeRequest('1024x768@60')).toEqual({ width: 1024, height: 768, refresh: 60 });
    expect(parseModeRequest('800x600')).toEqual({ width: 800, height: 600 });
    expect(() => parseModeRequest('big')).toThrow(/expected WIDTHxHEIGHT/);
  });

  it('finds the display connector of a CRTC (never the writeback one)', () => {
    expect(connectorFor(vkms, vkms.crtcs[0]!)?.name).toBe('Virtual-1');
    // an idle pipe on the Intel-like device gets the connected, unrouted HDMI connector
    expect(connectorFor(intel, intel.crtcs[1]!)?.name).toBe('HDMI-A-1');
  });

  it('keeps the current mode unless asked; a requested mode must be offered', () => {
    const crtc = vkms.crtcs[0]!;
    const conn = connectorFor(vkms, crtc);
    expect(chooseMode(crtc, conn)).toMatchObject({ modeset: false, mode: { hdisplay: 1024 } });
    expect(chooseMode(crtc, conn, { width: 1024, height: 768 })).toMatchObject({ modeset: false });
    expect(chooseMode(crtc, conn, { width: 800, height: 600, refresh: 60 })).toMatchObject({ modeset: true, mode: { hdisplay: 800 } });
    expect(() => chooseMode(crtc, conn, { width: 1000, height: 1000 })).toThrow(/not offered by connector Virtual-1 \(it offers: 1024x768@60, 1920x1080@60/);
    // an inactive CRTC takes the connector's first/preferred mode, with a modeset
    const idle = intel.crtcs[1]!;
    expect(chooseMode(idle, connectorFor(intel, idle))).toMatchObject({ modeset: true, mode: { hdisplay: 2560 } });
  });
});

describe('bench table', () => {
  it('prints both paths side by side with per-kind ioctls', () => {
    const r = (p: 'dmabuf' | 'region', bytes: number): BenchResult => ({
      path: p, guest: 'x', frames: 100, seconds: 1.7, fps: 58.8, ioctlsPerFrame: 2,
      callsPerFrame: { vfioQueryGfxPlane: 1, drmAtomicCommit: 1, ...(p === 'region' ? { mmap: 0.01 } : {}) }, commitsPerFrame: 1,
      bytesCopiedPerFrame: bytes, cpuUsPerFrame: 350, flipLatencyVblanks: { avg: 1, max: 1 }, guestToScreenVblanks: { avg: 1.5, max: 2 }, imports: 3, errors: 0,
    });
    const t = formatTable([r('dmabuf', 0), r('region', 1920000)]);
    expect(t).toMatch(/DMABUF \(zero copy\)\s+copy \(REGION\)/);
    expect(t).toMatch(/ {2}vfioQueryGfxPlane\s+1\.00\s+1\.00/);
    expect(t).toMatch(/ {2}mmap \(syscall\)\s+0\.00\s+0\.01/);
    expect(t).toMatch(/bytes copied per frame\s+0\s+1920000/);
    // a DRM_FB column that could not run says so, with the reason
    const u = formatTable([{ path: 'drm_fb', unavailable: 'not bound to a host card' }, r('dmabuf', 0)]);
    expect(u).toMatch(/DRM_FB \(kernel flips\)\s+DMABUF \(zero copy\)/);
    expect(u).toMatch(/bytes copied per frame\s+unavailable\s+0/);
    expect(u).toMatch(/DRM_FB \(kernel flips\): unavailable: not bound to a host card/);
  });
});

describe('vgpu-flip assign validation (before anything is opened)', () => {
  const run = async (...args: string[]): Promise<string> => {
    const { main } = await import('../../src/cli/main.js');
    try {
      await main(['node', 'vgpu-flip', 'assign', ...args]);
      return 'ok';
    } catch (e) {
      return (e as Error).message;
    }
  };
  it('explains bad arguments', async () => {
    expect(await run('--plane', 'primary')).toMatch(/--vgpu <uuid> is required/);
    expect(await run('--vgpu', 'nope', '--plane', 'primary')).toMatch(/is not a UUID/);
    expect(await run('--vgpu', '6f0a5bd2-3c1e-4b6e-9a8f-000000000000', '--plane', 'primary')).toMatch(
      /unknown vGPU 6f0a5bd2-3c1e-4b6e-9a8f-000000000000: \/sys\/bus\/mdev\/devices\/6f0a5bd2-3c1e-4b6e-9a8f-000000000000 does not exist/,
    );
    expect(await run('--vgpu', '6f0a5bd2-3c1e-4b6e-9a8f-000000000000', '--plane', 'sprite')).toMatch(/--plane sprite: expected primary, cursor or overlay/);
    expect(await run('--vgpu', '6f0a5bd2-3c1e-4b6e-9a8f-000000000000', '--position', '1;2')).toMatch(/--position "1;2": expected X,Y/);
    expect(await run('--vgpu', '6f0a5bd2-3c1e-4b6e-9a8f-000000000000', '--crtc', 'x')).toMatch(/--crtc "x": expected a non-negative integer/);
  });
});
