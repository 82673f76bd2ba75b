// `kiosk --check` for leased outputs (`lease:`): the compositor is asked what it offers, without
// taking a lease (nothing on screen changes). Not offered now, or no compositor: a warning (the
// daemon waits for the offer); the planes are not tested (TEST_ONLY needs the lease itself).
import { listLeases } from '../wayland/leases.js';
import type { MachineCheck } from './machine-check.js';
import type { KioskConfig } from './model.js';

export async function checkLeases(config: KioskConfig, m: MachineCheck, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  for (const o of config.outputs) {
    if (!o.lease) continue;
    const want = o.match.kind === 'connector' ? o.match.name : undefined;
    const e = o.lease.wayland === null ? env : { ...env, WAYLAND_DISPLAY: o.lease.wayland };
    const v = { name: o.name, device: '(leased)', connector: null as string | null, crtc: null, mode: null, planes: null };
    m.outputs.push(v);
    let offered: { name: string; node: string | null }[];
    let socket: string;
    try {
      const l = await listLeases(e);
      socket = l.socket;
      offered = l.devices.flatMap((d) => d.connectors.map((c) => ({ name: c.name, node: d.drmNode })));
    } catch (err) {
      m.findings.push({ severity: 'warning', output: o.name, message: `${(err as Error).message}: the daemon asks again with backoff until the compositor answers` });
      continue;
    }
    const c = want === undefined ? (offered.length === 1 ? offered[0] : undefined) : offered.find((x) => x.name === want);
    if (!c) {
      const what = offered.map((x) => x.name).join(', ') || 'no connector';
      m.findings.push({ severity: 'warning', output: o.name, message: `the compositor at ${socket} offers ${what} for lease, not ${want ?? 'exactly one connector'}: the daemon leases it when it is offered` });
      continue;
    }
    v.connector = c.name;
    v.device = c.node ?? '(leased)';
    m.findings.push({ severity: 'note', output: o.name, message: `${c.name} is offered for lease by the compositor at ${socket}; planes not tested (TEST_ONLY needs the lease itself)` });
  }
}
