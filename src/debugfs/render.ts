// Output of `vgpu-flip debugfs`: a table for people, JSON for scripts.
import { stringifyJson, type JsonLike } from '../util/json.js';
import { renderTable, type Cell } from '../util/table.js';
import type { DebugfsReport } from './collect.js';
import type { JoinedRow } from './join.js';
import type { Rect } from './state.js';

function rect(r: Rect | null): string {
  if (!r) return '-';
  const n = (v: number): string => (Number.isInteger(v) ? String(v) : v.toFixed(2));
  return `${n(r.w)}x${n(r.h)}${r.x >= 0 ? '+' : ''}${n(r.x)}${r.y >= 0 ? '+' : ''}${n(r.y)}`;
}

function guestCell(r: JoinedRow): string {
  const g = r.guest;
  if (!g) return '(host)';
  const who = g.vgpu ? g.vgpu.slice(0, 8) : g.label || 'guest';
  return `${who} ${g.plane}`;
}

function fbOwner(r: JoinedRow): string {
  const fb = r.fb;
  if (!fb) return '-';
  if (fb.origin === 'vgpu-sim') return 'vgpu-sim';
  const by = fb.allocatedBy || '?';
  if (fb.origin === 'vgpu-flip') return `vgpu-flip${r.guest?.pid ? ` ${r.guest.pid}` : ''} (${by})`;
  return by;
}

export function renderDebugfsText(rep: DebugfsReport): string {
  const out: string[] = [];
  for (const d of rep.devices) {
    const crtcs = d.state.crtcs.map((c) => `${c.name} ${c.active ? (c.mode ? `${c.mode.hdisplay}x${c.mode.vdisplay}@${c.mode.vrefresh}` : 'active') : 'off'}`);
    out.push(`DRM device dri/${d.minor}${d.driver ? ` (${d.driver})` : ''}: ${d.state.planes.length} planes, ${crtcs.join(', ') || 'no CRTC'}, ${d.state.connectors.length} connectors`);
  }
  const rows = rep.rows;
  const headers = ['GUEST PLANE', 'VIA', 'FB', 'FORMAT', 'FB SIZE', 'FB FROM', 'IMPORTED', 'HW PLANE', 'CRTC', 'CONNECTOR', 'ON CRTC'];
  const multi = rep.devices.length > 1;
  const cells: Cell[][] = rows.map((r) => [
    guestCell(r),
    r.guest?.path ?? '-',
    r.fb?.id ?? '-',
    r.fb ? r.fb.format + (r.fb.modifier !== 0n ? `:0x${r.fb.modifier.toString(16)}` : '') : '-',
    r.fb ? `${r.fb.width}x${r.fb.height}` : '-',
    fbOwner(r),
    r.fb ? r.fb.imported : '-',
    r.hwPlane ? `${multi ? `${r.minor}:` : ''}${r.hwPlane.id} ${r.hwPlane.type ?? r.hwPlane.name}` : '-',
    r.crtc ? `${r.crtc.id} ${r.crtc.name}${r.crtc.active ? '' : ' (off)'}` : '-',
    r.connectors.length ? r.connectors.map((c) => `${c.id} ${c.name}`).join(', ') : '-',
    rect(r.dst),
  ]);
  out.push('');
  if (cells.length) out.push(renderTable(headers, cells, { alignRight: [2] }).trimEnd());
  else out.push('no hardware plane shows anything, and no guest plane is up');
  const rowNotes = rows.flatMap((r) => r.notes.map((n) => `${guestCell(r)}${r.hwPlane ? ` on plane ${r.hwPlane.id}` : ''}: ${n}`));
  if (rowNotes.length) out.push('', ...rowNotes.map((n) => `  ${n}`));

  // every framebuffer of the devices (the framebuffer file; else the ones on planes)
  const simFbs = simFbMap(rep);
  const claimed = new Map<number, number>();
  for (const a of rep.assignments.live) for (const id of a.fbIdsInUse) claimed.set(id, a.pid);
  for (const d of rep.devices) {
    const fbs = d.framebuffers ?? d.state.framebuffers;
    if (!fbs.length) continue;
    out.push('', `framebuffers of dri/${d.minor}:`);
    out.push(
      renderTable(
        ['FB', 'ALLOCATED BY', 'FORMAT', 'SIZE', 'IMPORTED', 'ON PLANES', 'OWNER'],
        fbs.map((f) => {
          const sim = simFbs.get(f.id);
          const pid = claimed.get(f.id);
          return [
            f.id,
            f.allocatedBy || '?',
            f.format + (f.modifier !== 0n ? `:0x${f.modifier.toString(16)}` : ''),
            `${f.width}x${f.height}`,
            f.imported,
            d.state.planes.filter((p) => p.fbId === f.id).map((p) => p.id).join(',') || '-',
            sim ? `vgpu-sim ${sim.uuid.slice(0, 8)} ${sim.plane}` : pid !== undefined ? `vgpu-flip ${pid}` : '-',
          ];
        }),
        { indent: 2, alignRight: [0] },
      ).trimEnd(),
    );
  }
  if (rep.assignments.live.length) {
    out.push('', 'vgpu-flip processes:');
    out.push(
      renderTable(
        ['PID', 'COMMAND', 'VGPU', 'PATH', 'STATE', 'CRTC', 'MODE', 'FRAMES', 'COMMITS', 'ERRORS', 'UPDATED'],
        rep.assignments.live.map((a) => [a.pid, a.command, a.vgpu ?? a.guest, a.path, a.state, a.crtc?.id ?? '-', a.mode ?? '-', a.stats.frames, a.stats.commits, a.stats.errors, a.updatedAt]),
        { indent: 2 },
      ).trimEnd(),
    );
  }
  if (rep.sim.length) {
    out.push('', 'vgpu-sim instances:');
    const simRows: Cell[][] = [];
    for (const inst of rep.sim) {
      for (const p of inst.planes) {
        const s = p.status;
        simRows.push([
          inst.uuid,
          inst.drmFb ? inst.hostCard ?? 'yes' : 'no',
          p.plane,
          s ? (s.enabled ? (s.ready ? 'ready' : `not ready: ${s.reason}`) : 'off') : p.error ?? '?',
          s && s.enabled ? `${s.fourcc} ${s.width}x${s.height}` : '-',
          s && s.enabled ? `${s.x},${s.y}` : '-',
          p.fbId ?? '-',
          s ? s.kflips : '-',
          s && s.kflipErr ? s.kflipErr : '-',
        ]);
      }
    }
    out.push(renderTable(['INSTANCE', 'DRM_FB', 'PLANE', 'STATE', 'BUFFER', 'AT', 'FB_ID', 'KFLIPS', 'KFLIP_ERR'], simRows, { indent: 2 }).trimEnd());
  }
  for (const g of rep.gvt) {
    out.push('', `GVT-g (${g.dir})${g.numTrackedMmio !== null ? `: ${g.numTrackedMmio} tracked MMIO registers` : ''}`);
    if (g.vgpus.length) {
      out.push(
        renderTable(
          ['VGPU', 'ACTIVE', 'SCAN_NONPRIVBB', 'KVMGT CACHE'],
          g.vgpus.map((v) => [v.name, v.active, v.scanNonprivbb, v.kvmgtCacheEntries]),
          { indent: 2 },
        ).trimEnd(),
      );
    } else out.push('  no vGPU');
    out.push('  (upstream GVT-g has no plane/framebuffer attribute: its planes are joined through vgpu-flip\'s assignment state only)');
  }
  if (rep.notes.length) out.push('', ...rep.notes.map((n) => `note: ${n}`));
  return out.join('\n') + '\n';
}

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** fb id -> the vgpu-sim plane it belongs to (from the fb_id attributes read) */
function simFbMap(rep: DebugfsReport): Map<number, { uuid: string; plane: string }> {
  const m = new Map<number, { uuid: string; plane: string }>();
  for (const s of rep.sim) for (const p of s.planes) if (p.fbId) m.set(p.fbId, { uuid: s.uuid, plane: p.plane });
  return m;
}

/** The report as JSON (modifiers as hex strings). */
export function debugfsJson(rep: DebugfsReport): JsonLike {
  return {
    debugfsRoot: rep.debugfsRoot,
    rows: rep.rows.map((r) => ({
      minor: r.minor,
      driver: r.driver,
      guest: r.guest as unknown as JsonLike,
      fb: r.fb ? ({ ...r.fb, modifier: hex(r.fb.modifier) } as unknown as JsonLike) : null,
      hwPlane: r.hwPlane as unknown as JsonLike,
      crtc: r.crtc as unknown as JsonLike,
      connectors: r.connectors as unknown as JsonLike,
      dst: r.dst as unknown as JsonLike,
      src: r.src as unknown as JsonLike,
      notes: r.notes,
    })),
    devices: rep.devices.map((d) => ({
      minor: d.minor,
      driver: d.driver,
      statePath: d.statePath,
      planes: d.state.planes.map((p) => ({
        ...p,
        type: d.planeTypes.get(p.id) ?? null,
        fb: p.fb ? { ...p.fb, modifier: hex(p.fb.modifier) } : null,
      })) as unknown as JsonLike,
      crtcs: d.state.crtcs as unknown as JsonLike,
      connectors: d.state.connectors as unknown as JsonLike,
      framebuffers: (d.framebuffers ?? d.state.framebuffers).map((f) => ({
        ...f,
        modifier: hex(f.modifier),
        onPlanes: d.state.planes.filter((p) => p.fbId === f.id).map((p) => p.id),
        vgpuSim: simFbMap(rep).get(f.id) ?? null,
        vgpuFlipPid: rep.assignments.live.find((a) => a.fbIdsInUse.includes(f.id))?.pid ?? null,
      })) as unknown as JsonLike,
    })),
    vgpuSim: rep.sim.map((s) => ({
      ...s,
      planes: s.planes.map((p) => ({ ...p, status: p.status ? { ...p.status, offset: hex(p.status.offset) } : null })),
    })) as unknown as JsonLike,
    gvt: rep.gvt as unknown as JsonLike,
    assignments: rep.assignments.live as unknown as JsonLike,
    staleAssignments: rep.assignments.stale as unknown as JsonLike,
    notes: rep.notes,
  };
}

export function renderDebugfsJson(rep: DebugfsReport): string {
  return stringifyJson(debugfsJson(rep), 2) + '\n';
}
