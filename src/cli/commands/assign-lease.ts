// `vgpu-flip assign --lease [CONNECTOR]`: the display is a connector leased from the running
// Wayland compositor (wp_drm_lease_v1). The lease fd is a DRM master fd that sees only the
// leased connector, its CRTC and the planes the compositor added (wlroots: primary and cursor),
// so the session's snapshot and plan are of those objects alone; CRTC index 0 is the leased CRTC.
// Handed back (lease destroyed, connection closed) when the session ends; the compositor ending
// it (`finished`, or the connection closing) stops the session without restoring anything.
import { DrmDevice } from '../../kms/index.js';
import { UsageError } from '../../flip/session-checks.js';
import { acquireLease, type HeldLease } from '../../wayland/leases.js';

export interface AssignLease {
  held: HeldLease;
  /** the DrmDevice on the lease fd (owned: closed by close()) */
  drm: DrmDevice;
  checks: string[];
  /** resolves with the reason when the compositor ends the lease */
  ended: Promise<string>;
  /** close the lease fd only (the lease ended: its objects are not ours to restore); idempotent */
  drop(): void;
  /** close the lease fd and hand the lease back; idempotent */
  close(): void;
}

/** the options that name another display, which --lease replaces */
export function checkLeaseOptions(o: { device?: string; deviceFromCli: boolean; crtc: string; crtcFromCli: boolean; loopbackGuest?: string }): void {
  if (o.deviceFromCli) throw new UsageError('--lease and --device exclude each other: the lease is the display (its DRM device is the compositor\'s)');
  if (o.crtcFromCli && o.crtc !== '0') throw new UsageError(`--crtc ${o.crtc} with --lease: a lease holds one CRTC, index 0`);
  if (o.loopbackGuest) throw new UsageError('--lease and --loopback-guest exclude each other');
}

export async function openAssignLease(connector: string | undefined): Promise<AssignLease> {
  const held = await acquireLease(connector);
  const name = held.connector.name;
  let drm: DrmDevice;
  try {
    // named by its node: the session's checks compare card names (DRM_FB lives on one card)
    drm = DrmDevice.fromFd(held.fd, held.drmNode ?? `lease of ${name}`, { writeback: false, lessee: true });
  } catch (e) {
    held.release(); // fromFd closed the fd
    throw e;
  }
  const checks: string[] = [];
  try {
    const s = drm.snapshot();
    checks.push(
      `leased ${name} (${held.connector.description}, connector ${held.connector.connectorId}) from the compositor at ${held.socket}: ` +
        `${held.drmNode ?? '?'} (${held.driver ?? drm.version.name}); the lease holds ${s.connectors.map((c) => c.name).join(', ') || 'no connector'}, ` +
        `CRTC ${s.crtcs.map((c) => c.id).join(', ') || 'none'}, planes ${s.planes.map((p) => `${p.id} ${p.type}`).join(', ') || 'none'}`,
    );
    if (s.crtcs.length === 0) throw new UsageError(`the lease of ${name} holds no CRTC: nothing can be shown on it`);
  } catch (e) {
    drm.close();
    held.release();
    throw e;
  }
  let closed = false;
  const ended = held.ended.then((e) => e.message);
  return {
    held,
    drm,
    checks,
    ended,
    drop(): void {
      if (!drm.closed) drm.close();
    },
    close(): void {
      if (closed) return;
      closed = true;
      if (!drm.closed) drm.close();
      held.release();
    },
  };
}
