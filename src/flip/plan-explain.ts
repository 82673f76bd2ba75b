// The planner's choice in words, for people: the layout chosen, then what was ruled out and why
// (each rejected plane, each layout TEST_ONLY refused). Pure.
import type { Layout, Plan, PlaneAssignment, TryResult } from './planner.js';

export function describeAssignment(a: PlaneAssignment): string {
  const d = a.dst;
  const who = a.layer === a.guest ? `guest ${a.guest}` : `layer ${a.layer}`;
  return `${who} -> plane ${a.planeId} (${a.planeType}) at ${d.x},${d.y} size ${d.w}x${d.h}${a.zpos !== undefined ? ` zpos ${a.zpos}` : ''}`;
}

export function describeLayout(l: Layout): string {
  return l.assignments.map(describeAssignment).join('; ') + (l.disable.length ? `; disables plane ${l.disable.join(', ')}` : '');
}

/** Human explanation of a plan and its TEST_ONLY loop: the choice first, then what was ruled out and why. */
export function explainPlan(plan: Plan, result?: TryResult): string[] {
  const out: string[] = [];
  const crtc = plan.crtc;
  if (result?.chosen) {
    out.push(`CRTC ${crtc.index} (id ${crtc.id}): ${describeLayout(result.chosen)}`);
  } else if (plan.layouts.length === 0) {
    out.push(`CRTC ${crtc.index} (id ${crtc.id}): no layout possible`);
  } else {
    out.push(`CRTC ${crtc.index} (id ${crtc.id}): the driver refused all ${plan.layouts.length} layout(s)`);
  }
  for (const g of plan.unplaceable) out.push(`  ${/^(primary|cursor|overlay)$/.test(g) ? 'guest ' : 'layer '}${g}: no hardware plane can show it`);
  const seen = new Set<string>();
  for (const r of plan.rejections) {
    const key = `${r.layer}/${r.planeId}`;
    if (seen.has(key) || / plane is not used for a guest /.test(r.reason)) continue;
    seen.add(key);
    out.push(`  ${r.layer === r.guest ? `guest ${r.guest}` : `layer ${r.layer}`}: plane ${r.planeId} (${r.planeType}) ruled out: ${r.reason}`);
  }
  if (result) {
    for (const a of result.attempts) {
      if (!a.ok) out.push(`  layout [${describeLayout(a.layout)}] failed TEST_ONLY: ${a.reason}`);
    }
    if (result.chosen) out.push(`  chosen layout passed TEST_ONLY after ${result.attempts.length} attempt(s) (rules: ${plan.rules.source})`);
  }
  return out;
}
