// `vgpu-flip status` for people: one line per output (its monitor, mode and counters), a table of
// its layers, then every last error in full. Pure (the report comes from the daemon).
import { renderTable } from '../util/table.js';
import type { OutputStatus, StatusReport } from './status.js';

const STATE_TEXT: Record<OutputStatus['state'], string> = {
  presenting: 'presenting',
  paused: 'paused (DRM master lost or monitor unplugged)',
  stopped: 'stopped',
  'no-monitor': 'waiting: no matching monitor connected',
  'no-vm': 'waiting: no VM layer to show',
  'no-lease': 'waiting for the Wayland compositor to lease it',
};

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

function uptime(s: number): string {
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return d ? `${d}d ${h}h ${m}m` : h ? `${h}h ${m}m` : `${m}m ${s % 60}s`;
}

export function renderStatus(r: StatusReport): string {
  const out: string[] = [`kiosk daemon pid ${r.pid}, up ${uptime(r.uptimeSeconds)}`];
  const errors: string[] = [];
  for (const o of r.outputs) {
    const where = o.connector ? `${o.connector} on ${o.device ?? '?'}, CRTC ${o.crtc}${o.mode ? `, ${o.mode}` : ''}` : (o.device ?? 'no device');
    const counts = o.state === 'no-monitor' || o.state === 'no-lease' ? '' : `: ${o.fps} fps, ${o.frames} frames, ${o.commits} commits, ${o.errors} errors`;
    out.push('', `output ${o.name} (${where}): ${STATE_TEXT[o.state]}${counts}`);
    if (o.lease) out.push(`  lease: ${o.lease.state === 'held' ? `held, ${o.lease.detail}` : o.lease.detail}${o.lease.socket ? ` (compositor at ${o.lease.socket})` : ''}`);
    if (o.lastError) errors.push(`  output ${o.name}: ${o.lastError.at} ${o.lastError.stage}: ${o.lastError.message}`);
    if (o.layers.length === 0) continue;
    const rows = o.layers.map((l) => [
      l.vm || '-',
      l.plane,
      l.presenting && l.presenting !== l.path ? `${l.path} (${l.presenting})` : l.path,
      l.ready ? 'yes' : 'no',
      l.fps.toFixed(1),
      l.frames,
      l.copies ? `${l.copies} (${bytes(l.bytesCopied)})` : '0',
      l.errors,
      l.latencyMs ? `${l.latencyMs.last.toFixed(1)} (${l.latencyMs.mean.toFixed(1)})` : '-',
      l.lastError ? l.lastError.message.slice(0, 60) + (l.lastError.message.length > 60 ? '...' : '') : '-',
    ]);
    out.push(renderTable(['VM', 'PLANE', 'PATH', 'READY', 'FPS', 'FRAMES', 'COPIES', 'ERRORS', 'LATENCY MS (MEAN)', 'LAST ERROR'], rows, { indent: 2, alignRight: [4, 5, 7] }).trimEnd());
    for (const l of o.layers) if (l.lastError) errors.push(`  ${l.name}: ${l.lastError.at} ${l.lastError.stage}: ${l.lastError.message}`);
  }
  const idle = r.vms.filter((v) => v.layersOnScreen === 0);
  if (idle.length) out.push('', 'VMs not on screen:', ...idle.map((v) => `  ${v.name} (${v.source})${v.waiting ? `: ${v.waiting}` : ''}`));
  if (errors.length) out.push('', 'last errors:', ...errors);
  return out.join('\n') + '\n';
}

/** One line for systemd's STATUS= (changes only when something people care about changes: no fps). */
export function statusLine(r: StatusReport): string {
  const parts = r.outputs.map((o) => {
    if (o.state !== 'presenting') return `${o.name}: ${o.state}`;
    const shown = o.layers.map((l) => `${l.name} ${l.ready ? (l.presenting ?? l.path) : 'not ready'}`);
    return `${o.name}: ${shown.join(', ') || 'nothing'}`;
  });
  return parts.join('; ') || 'no outputs';
}
