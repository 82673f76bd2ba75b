// Several guests on one output, pure parts: the planner keyed by layer with explicit stacking,
// and the `--vgpu UUID[@place]` argument.
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { loadSnapshotFile } from '../../src/kms/snapshot-json.js';
import { DRM_FORMAT_ARGB8888, DRM_FORMAT_XRGB8888 } from '../../src/binding/constants.js';
import { explainPlan, planLayouts, PlanError, type GuestPlaneSpec } from '../../src/flip/planner.js';
import { parseVgpuArg } from '../../src/cli/commands/assign.js';

const vkms = loadSnapshotFile(path.join(import.meta.dirname, '..', 'fixtures', 'flip-vkms-snapshot.json'));
const prim = (layer: string, z: number, x: number): GuestPlaneSpec => ({
  kind: 'primary', layer, z, format: DRM_FORMAT_XRGB8888, modifier: 0n, width: 512, height: 768, placement: { kind: 'position', x, y: 0 },
});

describe('planner: layers of several guests', () => {
  it('two half-screen primaries and a cursor: each layer its own plane, stacked by z, keyed by layer', () => {
    const cur: GuestPlaneSpec = { kind: 'cursor', layer: 'a/cursor', z: 2, format: DRM_FORMAT_ARGB8888, modifier: 0n, width: 64, height: 64, x: 10, y: 10 };
    const plan = planLayouts(vkms, { crtcIndex: 0, crtcWidth: 1024, crtcHeight: 768, guests: [prim('b/primary', 3, 512), cur, prim('a/primary', 0, 0)] });
    const l = plan.layouts[0]!;
    expect(l.assignments.map((a) => a.layer)).toEqual(['a/primary', 'a/cursor', 'b/primary']); // bottom first
    expect(new Set(l.assignments.map((a) => a.planeId)).size).toBe(3);
    // neither half covers the CRTC: both primaries on overlays (vkms' primary plane must)
    expect(l.assignments.filter((a) => a.guest === 'primary').every((a) => a.planeType === 'overlay')).toBe(true);
    expect(l.assignments.find((a) => a.layer === 'b/primary')!.dst).toMatchObject({ x: 512, y: 0, w: 512, h: 768 });
    expect(explainPlan(plan, { chosen: l, attempts: [{ layout: l, ok: true, reason: '' }] }).join('\n')).toMatch(/layer b\/primary -> plane \d+ \(overlay\) at 512,0/);
  });

  it('the same layer twice is refused by name; two primaries of different layers are fine', () => {
    expect(() => planLayouts(vkms, { crtcIndex: 0, crtcWidth: 1024, crtcHeight: 768, guests: [prim('x', 0, 0), prim('x', 1, 512)] })).toThrow(new PlanError('layer x requested twice'));
    expect(planLayouts(vkms, { crtcIndex: 0, crtcWidth: 1024, crtcHeight: 768, guests: [prim('x', 0, 0), prim('y', 1, 512)] }).layouts.length).toBeGreaterThan(0);
  });
});

describe('assign --vgpu UUID[@place]', () => {
  const u = '6b2fdf1a-98fc-4645-b1b6-89dee6ab0d2b';
  it('parses X,Y, center and fill after @, and a bare UUID', () => {
    expect(parseVgpuArg(u)).toEqual({ uuid: u });
    expect(parseVgpuArg(`${u}@512,-3`)).toEqual({ uuid: u, placement: { kind: 'position', x: 512, y: -3 } });
    expect(parseVgpuArg(`${u}@center`)).toEqual({ uuid: u, placement: { kind: 'center' } });
    expect(parseVgpuArg(`${u}@fill`)).toEqual({ uuid: u, placement: { kind: 'fill' } });
  });
  it('names a bad placement', () => {
    expect(() => parseVgpuArg(`${u}@left`)).toThrow(/--vgpu ".*@left": the placement after @ must be X,Y, center or fill/);
  });
});
