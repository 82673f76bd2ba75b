import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { loadSnapshotFile } from '../../src/kms/snapshot-json.js';
import { DRM_FORMAT_ARGB8888, DRM_FORMAT_XRGB8888, DRM_FORMAT_NV12, I915_FORMAT_MOD_Y_TILED } from '../../src/binding/constants.js';
import { explainPlan, planLayouts, PlanError, tryLayouts, type GuestPlaneSpec, type Layout } from '../../src/flip/planner.js';

const fixtures = path.join(import.meta.dirname, '..', 'fixtures');
const vkms = loadSnapshotFile(path.join(fixtures, 'flip-vkms-snapshot.json'));
const intel = loadSnapshotFile(path.join(fixtures, 'flip-intel-snapshot.json'));

const primary = (w: number, h: number, extra: Partial<GuestPlaneSpec> = {}): GuestPlaneSpec => ({
  kind: 'primary', format: DRM_FORMAT_XRGB8888, modifier: 0n, width: w, height: h, ...extra,
});
const cursor = (x: number, y: number, extra: Partial<GuestPlaneSpec> = {}): GuestPlaneSpec => ({
  kind: 'cursor', format: DRM_FORMAT_ARGB8888, modifier: 0n, width: 64, height: 64, x, y, ...extra,
});
const planes = (l: Layout): number[] => l.assignments.map((a) => a.planeId);

describe('planner on vkms (Linux 6.1)', () => {
  it('puts a full-size guest primary on the primary plane first, overlays after', () => {
    const plan = planLayouts(vkms, { crtcIndex: 0, crtcWidth: 1024, crtcHeight: 768, guests: [primary(1024, 768)] });
    expect(plan.layouts.length).toBe(9);
    expect(planes(plan.layouts[0]!)).toEqual([31]);
    expect(planes(plan.layouts[1]!)).toEqual([32]);
    expect(plan.layouts[0]!.disable).toEqual([]);
  });

  it('rules out the primary plane for a smaller guest (must cover the CRTC) and uses an overlay', () => {
    const plan = planLayouts(vkms, {
      crtcIndex: 0, crtcWidth: 1024, crtcHeight: 768,
      guests: [primary(640, 480, { placement: { kind: 'center' } })],
    });
    const first = plan.layouts[0]!;
    expect(first.assignments[0]).toMatchObject({ planeId: 32, planeType: 'overlay', dst: { x: 192, y: 144, w: 640, h: 480 } });
    // fbcon's primary is switched off so the guest shows on black
    expect(first.disable).toEqual([31]);
    const why = plan.rejections.find((r) => r.planeId === 31)!;
    expect(why.reason).toMatch(/must cover the whole CRTC \(1024x768\)/);
  });

  it('refuses fill on vkms (no plane scales) with a clear reason', () => {
    const plan = planLayouts(vkms, {
      crtcIndex: 0, crtcWidth: 1024, crtcHeight: 768,
      guests: [primary(800, 600, { placement: { kind: 'fill' } })],
    });
    expect(plan.layouts).toEqual([]);
    expect(plan.unplaceable).toEqual(['primary']);
    expect(explainPlan(plan).join('\n')).toMatch(/cannot scale \(guest 800x600 -> 1024x768\)/);
  });

  it('puts the cursor on the cursor plane, above the primary, positioned by the guest (partly off screen too)', () => {
    const plan = planLayouts(vkms, { crtcIndex: 0, crtcWidth: 1024, crtcHeight: 768, guests: [cursor(-10, 700), primary(1024, 768)] });
    const first = plan.layouts[0]!;
    expect(first.assignments.map((a) => [a.guest, a.planeId])).toEqual([['primary', 31], ['cursor', 40]]);
    expect(first.assignments[1]!.dst).toEqual({ x: -10, y: 700, w: 64, h: 64 });
    // every layout keeps the cursor above the primary
    for (const l of plan.layouts) {
      const [p, c] = l.assignments;
      expect(c!.planeIndex).toBeGreaterThan(p!.planeIndex);
    }
  });

  it('an ARGB8888 guest primary cannot use the vkms primary plane (format)', () => {
    const plan = planLayouts(vkms, { crtcIndex: 0, crtcWidth: 1024, crtcHeight: 768, guests: [primary(1024, 768, { format: DRM_FORMAT_ARGB8888 })] });
    expect(planes(plan.layouts[0]!)).toEqual([32]);
    expect(plan.rejections.find((r) => r.planeId === 31)!.reason).toMatch(/does not support AR24/);
  });

  it('rejects a CRTC out of range and an unknown --hw-plane before anything else', () => {
    expect(() => planLayouts(vkms, { crtcIndex: 3, crtcWidth: 1, crtcHeight: 1, guests: [primary(1, 1)] })).toThrow(PlanError);
    expect(() => planLayouts(vkms, { crtcIndex: 3, crtcWidth: 1, crtcHeight: 1, guests: [primary(1, 1)] })).toThrow(/CRTC 3 does not exist.*0\.\.0/);
    expect(() => planLayouts(vkms, { crtcIndex: 0, crtcWidth: 1024, crtcHeight: 768, guests: [primary(1024, 768, { hwPlaneId: 999 })] })).toThrow(/plane 999 does not exist/);
  });

  it('--hw-plane forces one plane', () => {
    const plan = planLayouts(vkms, { crtcIndex: 0, crtcWidth: 1024, crtcHeight: 768, guests: [primary(1024, 768, { hwPlaneId: 35 })] });
    expect(plan.layouts.map(planes)).toEqual([[35]]);
  });

  it('tryLayouts takes the first layout TEST_ONLY accepts and records why the others failed', () => {
    const plan = planLayouts(vkms, { crtcIndex: 0, crtcWidth: 1024, crtcHeight: 768, guests: [primary(1024, 768), cursor(5, 5)] });
    const result = tryLayouts(plan.layouts, (l) => {
      if (l.assignments[0]!.planeId === 31) return { ok: false, code: 'EINVAL', message: 'DRM_IOCTL_MODE_ATOMIC: EINVAL' };
      if (l.assignments[1]!.planeId === 40) return new Error('ERANGE from the driver');
      return true;
    });
    expect(result.chosen && planes(result.chosen)).toEqual([32, 39]);
    expect(result.attempts.filter((a) => !a.ok).length).toBeGreaterThan(0);
    const text = explainPlan(plan, result).join('\n');
    expect(text).toMatch(/guest primary -> plane 32 \(overlay\).*guest cursor -> plane 39 \(overlay\)/);
    expect(text).toMatch(/failed TEST_ONLY: EINVAL/);
    expect(text).toMatch(/failed TEST_ONLY: ERANGE from the driver/);
  });

  it('tryLayouts returns null when every layout fails, a throwing test counts as failure', () => {
    const plan = planLayouts(vkms, { crtcIndex: 0, crtcWidth: 1024, crtcHeight: 768, guests: [primary(1024, 768)] });
    const result = tryLayouts(plan.layouts, () => {
      throw new Error('boom');
    });
    expect(result.chosen).toBeNull();
    expect(result.attempts).toHaveLength(plan.layouts.length);
    expect(explainPlan(plan, result)[0]).toMatch(/refused all 9 layout/);
  });
});

describe('planner on an Intel-like topology (3 pipes, primary + 2 sprites + cursor each)', () => {
  it('only uses planes of the requested pipe', () => {
    const plan = planLayouts(intel, { crtcIndex: 1, crtcWidth: 1920, crtcHeight: 1080, guests: [primary(1280, 720, { placement: { kind: 'center' } }), cursor(100, 100)] });
    const ids = new Set(plan.layouts.flatMap(planes));
    const pipe1 = intel.planes.filter((p) => p.possibleCrtcIndices.includes(1)).map((p) => p.id);
    for (const id of ids) expect(pipe1).toContain(id);
    expect(plan.layouts[0]!.assignments.map((a) => a.planeType)).toEqual(['primary', 'cursor']);
    expect(plan.layouts[0]!.assignments[0]!.dst).toEqual({ x: 320, y: 180, w: 1280, h: 720 });
  });

  it('i915 planes scale: fill is allowed on the primary', () => {
    const plan = planLayouts(intel, { crtcIndex: 0, crtcWidth: 1920, crtcHeight: 1080, guests: [primary(1280, 720, { placement: { kind: 'fill' } })] });
    expect(plan.layouts[0]!.assignments[0]).toMatchObject({ planeType: 'primary', src: { w: 1280, h: 720 }, dst: { w: 1920, h: 1080 } });
  });

  it('respects modifiers from IN_FORMATS (Y-tiled not on the cursor) and zpos order', () => {
    const plan = planLayouts(intel, { crtcIndex: 0, crtcWidth: 1920, crtcHeight: 1080, guests: [primary(1920, 1080, { modifier: I915_FORMAT_MOD_Y_TILED })] });
    expect(plan.layouts.map((l) => l.assignments[0]!.planeType)).toEqual(['primary', 'overlay', 'overlay']);
    // a cursor on a sprite must sit above the primary's sprite: zpos is fixed
    const both = planLayouts(intel, { crtcIndex: 0, crtcWidth: 1920, crtcHeight: 1080, guests: [primary(1920, 1080), cursor(0, 0)] });
    for (const l of both.layouts) {
      const [p, c] = l.assignments;
      const z = (id: number) => intel.planes.find((x) => x.id === id)!.zpos!.value;
      expect(z(c!.planeId)).toBeGreaterThan(z(p!.planeId));
    }
    expect(both.layouts[0]!.assignments.map((a) => a.planeType)).toEqual(['primary', 'cursor']);
  });

  it('a cursor larger than the cursor plane takes a sprite; NV12 guests never get the cursor plane', () => {
    const plan = planLayouts(intel, { crtcIndex: 0, crtcWidth: 1920, crtcHeight: 1080, guests: [cursor(0, 0, { width: 300, height: 300 })] });
    expect(plan.layouts[0]!.assignments[0]!.planeType).toBe('overlay');
    expect(plan.rejections.some((r) => r.planeType === 'cursor' && /at most 256 pixels wide/.test(r.reason))).toBe(true);
    const nv12 = planLayouts(intel, { crtcIndex: 0, crtcWidth: 1920, crtcHeight: 1080, guests: [primary(1920, 1080, { format: DRM_FORMAT_NV12 })] });
    expect(nv12.layouts.every((l) => l.assignments[0]!.planeType !== 'cursor')).toBe(true);
  });
});

describe('planner on a recorded vkms snapshot (when the kms layer recorded one)', () => {
  const recorded = path.join(fixtures, 'vkms-snapshot.json');
  it.runIf(existsSync(recorded))('finds a layout for primary + cursor', () => {
    const snap = loadSnapshotFile(recorded);
    const crtc = snap.crtcs[0]!;
    const w = crtc.mode?.hdisplay ?? 1024;
    const h = crtc.mode?.vdisplay ?? 768;
    const plan = planLayouts(snap, { crtcIndex: 0, crtcWidth: w, crtcHeight: h, guests: [primary(w, h), cursor(1, 1)] });
    expect(plan.layouts.length).toBeGreaterThan(0);
    expect(plan.layouts[0]!.assignments.map((a) => a.planeType)).toEqual(['primary', 'cursor']);
  });
});
