// Assigning an output's layers to hardware planes, the one place it happens (the equivalent of
// liftoff_output_apply): every ready layer gets a framebuffer first (TEST_ONLY needs real
// ones), the planner (src/flip/planner.ts) lists the layouts best first, TEST_ONLY picks the
// first the driver accepts, and one blocking commit puts it on screen. Fallback: when TEST_ONLY
// passed but the commit failed for a buffer never shown before (vkms needs the exporter's vmap),
// that buffer is copied from now on and the layouts are tried again, one layer at a time.
// Layers that are not ready are left out (and their hardware planes turned off): a guest that
// resets never holds up the others on the same output.
import { DRM_MODE_ATOMIC_ALLOW_MODESET } from '../binding/constants.js';
import type { AtomicRequest } from '../kms/index.js';
import { commitFailure, descOf } from '../flip/decide.js';
import type { AssignedEvent, PresentPath } from '../flip/events.js';
import { explainPlan, planLayouts, tryLayouts, type Layout } from '../flip/planner.js';
import type { Layer } from './layer.js';
import { describeMode } from './mode.js';
import type { Output } from './output.js';
import type { Presentable } from './sources/types.js';
import { dropPlaceholder } from './placeholder.js';

/** The request for a layout: mode (when a modeset is due), connector routing, planes off, layers. */
function buildRequest(out: Output, layout: Layout, fbs: Map<string, number>, modeset: boolean): AtomicRequest {
  const req = out.newRequest();
  if (modeset) {
    if (!out.modeBlob) out.modeBlob = out.display.dev.createModeBlob(out.mode);
    req.set(out.crtc.id, 'MODE_ID', out.modeBlob.id);
    req.set(out.crtc.id, 'ACTIVE', 1);
    if (out.connector) req.set(out.connector.id, 'CRTC_ID', out.crtc.id);
  }
  const used = new Set(layout.assignments.map((a) => a.planeId));
  for (const id of new Set([...layout.disable, ...out.usedHwPlanes])) {
    if (used.has(id)) continue;
    req.set(id, 'FB_ID', 0);
    req.set(id, 'CRTC_ID', 0);
  }
  for (const a of layout.assignments) {
    req.placePlane(a.planeId, layout.crtcId, fbs.get(a.layer)!, { w: a.src.w, h: a.src.h }, a.dst);
    if (a.zpos !== undefined) req.setIfPresent(a.planeId, 'zpos', a.zpos);
  }
  return req;
}

/** --mode guest: switch to the connector mode of the guest primary's size (a modeset), if offered. */
function adoptGuestMode(out: Output): void {
  if (out.opts.mode !== 'guest' || out.guestModeDone) return;
  const prim = out.layers.find((l) => l.kind === 'primary');
  if (!prim?.last || !prim.readyNow) return;
  out.guestModeDone = true;
  const { width: w, height: h } = prim.last;
  if (out.mode.hdisplay === w && out.mode.vdisplay === h) return;
  const m = out.connector?.modes.find((x) => x.hdisplay === w && x.vdisplay === h);
  if (m) out.setMode(m, true);
}

const abortOn = (v: unknown): boolean => typeof v === 'object' && v !== null && 'code' in v && ['EACCES', 'EPERM', 'ENODEV', 'EBADF'].includes(String((v as { code: unknown }).code));

/** Plan (again) for every ready layer, TEST_ONLY the layouts, commit the first that passes. */
export function assignLayers(out: Output, reason: string): void {
  const ready = out.layers.filter((l) => l.last && l.readyNow);
  if (ready.length === 0) return;
  const dev = out.display.dev;
  const fbs = new Map<string, number>();
  const got = new Map<Layer, Presentable>();
  const obtain = (l: Layer): Presentable | null => {
    const info = l.last!;
    return l.source.obtain(info.id, descOf(info), info, out.frameNo);
  };
  for (const l of ready) {
    const r = obtain(l);
    if (!r) {
      out.lastProblem = `no framebuffer for the guest ${l.kind} plane yet (see errors)`;
      return;
    }
    fbs.set(l.name, r.fbId);
    got.set(l, r);
  }
  adoptGuestMode(out);
  const specs = ready.map((l) => l.spec(l.last!, out.width, out.height));
  // hardware planes another output of the display uses are not candidates here
  const snap = out.display.snapshot;
  const taken = new Set(out.display.outputs.filter((o) => o !== out).flatMap((o) => [...o.usedHwPlanes]));
  const free = taken.size ? { ...snap, planes: snap.planes.filter((p) => !taken.has(p.id)) } : snap;
  let plan;
  try {
    plan = planLayouts(free, { crtcIndex: out.crtc.index, crtcWidth: out.width, crtcHeight: out.height, guests: specs });
  } catch (e) {
    out.stats.errors++;
    out.report({ stage: 'plan', error: e, count: 1, fatal: false });
    return;
  }
  const modeset = out.needModeset;
  const flags = modeset ? DRM_MODE_ATOMIC_ALLOW_MODESET : 0;
  let result = tryLayouts(plan.layouts, (l) => buildRequest(out, l, fbs, modeset).testOnly(flags), { abortOn });
  let explanation = explainPlan(plan, result);
  if (!result.chosen && result.aborted) {
    const last = result.attempts[result.attempts.length - 1]!;
    if (/EACCES|EPERM/.test(last.reason)) {
      const code = /EPERM/.test(last.reason) ? 'EPERM' : 'EACCES';
      const err = Object.assign(new Error(last.reason), { op: 'DRM_IOCTL_MODE_ATOMIC', path: dev.path, errno: code === 'EPERM' ? 1 : 13, code });
      out.forceReplanLater(reason);
      if (out.display.watch?.commitFailed(err)) return; // every output paused until master is back
      explanation = [`${dev.path}: the kernel refuses our commits (${last.reason.split(' [')[0]}): this process is not DRM master — another process (a display server?) owns the display`];
    }
  }
  if (!result.chosen) {
    const key = explanation.join('\n');
    out.lastProblem = `no hardware plane layout works: ${explanation.join(' | ')}`;
    if (key !== out.planFailureReported) {
      out.planFailureReported = key;
      out.stats.errors++;
      out.emit('error', { stage: 'plan', message: explanation.join('\n'), kernel: null, count: 1, fatal: false });
    }
    return;
  }
  let chosen = result.chosen;
  // the real commit (blocking: the assignment is in place when this returns)
  const commitWith = (l: Layout): unknown => {
    try {
      buildRequest(out, l, fbs, modeset).commit(flags);
      out.stats.commits++;
      out.stats.assignCommits++;
      return null;
    } catch (e) {
      return e;
    }
  };
  let err = commitWith(chosen);
  if (err && commitFailure(err) === 'master' && out.display.watch) {
    out.forceReplanLater(reason);
    if (out.display.watch.commitFailed(err)) return;
  }
  if (err && commitFailure(err) === 'buffer') {
    // TEST_ONLY passed but the commit failed: copy the buffers never shown before, one layer at
    // a time (errors that are not about a buffer never demote one)
    for (const l of ready) {
      if (!l.source.refuse(got.get(l)!, `TEST_ONLY passed but the commit failed: ${(err as Error).message.split(' [')[0]}`)) continue;
      const r = obtain(l);
      if (!r) continue;
      fbs.set(l.name, r.fbId);
      got.set(l, r);
      result = tryLayouts(plan.layouts, (x) => buildRequest(out, x, fbs, modeset).testOnly(flags), { abortOn });
      explanation = explainPlan(plan, result);
      if (!result.chosen) continue;
      chosen = result.chosen;
      err = commitWith(chosen);
      if (!err) break;
    }
  }
  if (err) {
    out.stats.errors++;
    const n = out.commitStreak.current + 1;
    out.commitStreak.fail();
    out.report({ stage: 'commit (assignment)', error: err, count: n, fatal: false });
    return;
  }
  out.commitStreak.ok();
  out.display.watch?.commitSucceeded();
  dropPlaceholder(out); // the commit turned its plane off or put a layer on it
  out.needModeset = false;
  out.layout = chosen;
  for (const g of out.guests) g.assigned();
  out.usedHwPlanes = new Set(chosen.assignments.map((a) => a.planeId));
  for (const l of out.layers) {
    const a = chosen.assignments.find((x) => x.layer === l.name) ?? null;
    l.assignment = a;
    const r = got.get(l);
    if (!a) {
      if (!r) l.fbId = 0; // not ready: its hardware plane was turned off
      continue;
    }
    if (!r) continue;
    l.fbId = r.fbId;
    l.source.assigned(r);
    l.view.copyMode = l.source.path === 'copy' || l.source.copying !== null;
    l.showInfo(l.last!);
    l.view.blanked = false;
    l.stats.flips++;
  }
  const pathOf = (l: Layer): PresentPath => (l.source.copying !== null ? 'copy' : l.source.path);
  if (modeset) explanation.push(`  modeset: ${describeMode(out.mode)} on ${out.connector?.name ?? '?'} (ALLOW_MODESET)`);
  for (const l of ready) if (pathOf(l) === 'copy') explanation.push(`  guest ${l.name}: copy path (${l.source.path === 'copy' ? 'REGION' : `fallback: ${l.source.copying}`})`);
  out.lastExplanation = explanation;
  out.planFailureReported = '';
  out.lastProblem = '';
  const paths: AssignedEvent['paths'] = {};
  for (const l of ready) paths[l.name] = pathOf(l);
  out.lastAssigned = { layout: chosen, paths, explanation, modeset, reason };
  out.emit('assigned', out.lastAssigned);
  for (const l of ready) {
    const r = got.get(l)!;
    out.frameEvent(l, { id: l.last!.id, fbId: r.fbId, path: r.got?.copied ? 'copy' : l.source.path, sequence: 0, vblankUs: 0, latencyUs: 0, latencyVblanks: 0, imported: r.imported, bytesCopied: r.bytes });
  }
  out.stats.frames++;
}
