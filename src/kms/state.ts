// Save the display state found at start and restore it in one ALLOW_MODESET commit (the flip
// engine restores the display on exit with this).
import { DRM_MODE_ATOMIC_ALLOW_MODESET } from '../binding/constants.js';
import type { AtomicRequest } from './atomic.js';
import type { DrmDevice } from './device.js';
import type { AtomicTestResult, KmsSnapshot, PropertyMap, SavedKmsState } from './types.js';

/** Plane properties restored when present and mutable. */
export const PLANE_STATE_PROPS = [
  'FB_ID', 'CRTC_ID',
  'SRC_X', 'SRC_Y', 'SRC_W', 'SRC_H',
  'CRTC_X', 'CRTC_Y', 'CRTC_W', 'CRTC_H',
  'zpos', 'alpha', 'rotation', 'pixel blend mode', 'COLOR_ENCODING', 'COLOR_RANGE',
] as const;
/** CRTC properties restored besides MODE_ID (which is re-created from the saved mode). */
export const CRTC_STATE_PROPS = ['ACTIVE'] as const;
export const CONNECTOR_STATE_PROPS = ['CRTC_ID'] as const;

function pick(props: PropertyMap, names: readonly string[]): Record<string, bigint> {
  const out: Record<string, bigint> = {};
  for (const n of names) {
    const p = props[n];
    if (p && !p.immutable) out[n] = p.value;
  }
  return out;
}

/**
 * Capture the restorable state from a snapshot (pure). With `crtcIds`, only what a presenter
 * on those CRTCs can change: those CRTCs, the connectors routed to them (and `connectorIds`,
 * the ones it will route there; writeback connectors always), and the planes that can be on
 * them. Restoring then leaves every other CRTC of the device alone (never recommits a monitor
 * we did not touch).
 */
export function captureState(s: KmsSnapshot, scope?: { crtcIds: number[]; connectorIds?: number[] }): SavedKmsState {
  if (scope) {
    const crtcs = s.crtcs.filter((c) => scope.crtcIds.includes(c.id));
    const mask = crtcs.reduce((m, c) => m | (1 << c.index), 0);
    const conns = new Set(scope.connectorIds ?? []);
    const sub: KmsSnapshot = {
      ...s,
      crtcs,
      connectors: s.connectors.filter((c) => c.writeback || conns.has(c.id) || scope.crtcIds.includes(c.crtcId)),
      // planes that can be on them and are not showing on another CRTC
      planes: s.planes.filter((p) => (p.possibleCrtcs & mask) !== 0 && (p.crtcId === 0 || scope.crtcIds.includes(p.crtcId))),
    };
    return captureState(sub);
  }
  return {
    path: s.path,
    crtcs: s.crtcs.map((c) => ({
      id: c.id,
      active: c.active,
      mode: c.mode ? { ...c.mode } : null,
      props: pick(c.properties, CRTC_STATE_PROPS),
    })),
    // writeback connectors need WRITEBACK_FB_ID with a CRTC: they are always restored detached
    connectors: s.connectors.map((c) => ({
      id: c.id,
      props: c.writeback ? { CRTC_ID: 0n } : pick(c.properties, CONNECTOR_STATE_PROPS),
    })),
    planes: s.planes.map((p) => ({ id: p.id, props: pick(p.properties, PLANE_STATE_PROPS) })),
  };
}

/**
 * Build the restore request. MODE_ID blobs are created from the saved modes and returned for
 * destruction after the commit. Objects missing from the device's index (e.g. writeback
 * connectors when the cap is off) are skipped. `skipPlanes` leaves those planes disabled
 * (FB_ID/CRTC_ID 0): used for a retry when an original framebuffer no longer exists.
 */
export function buildRestoreRequest(
  dev: DrmDevice,
  saved: SavedKmsState,
  skipPlanes: ReadonlySet<number> = new Set(),
): { req: AtomicRequest; blobs: { destroy(): void }[] } {
  const req = dev.atomic();
  const blobs: { destroy(): void }[] = [];
  try {
    for (const c of saved.crtcs) {
      if (!req.index.kindOf(c.id)) continue;
      for (const [k, v] of Object.entries(c.props)) req.set(c.id, k, v);
      if (req.index.has(c.id, 'MODE_ID')) {
        if (c.mode && c.active) {
          const b = dev.createModeBlob(c.mode);
          blobs.push(b);
          req.set(c.id, 'MODE_ID', b.id);
        } else {
          req.set(c.id, 'MODE_ID', 0);
        }
      }
    }
    for (const c of saved.connectors) {
      if (!req.index.kindOf(c.id)) continue;
      for (const [k, v] of Object.entries(c.props)) req.set(c.id, k, v);
    }
    for (const p of saved.planes) {
      if (!req.index.kindOf(p.id)) continue;
      if (skipPlanes.has(p.id)) {
        req.set(p.id, 'FB_ID', 0);
        req.set(p.id, 'CRTC_ID', 0);
        continue;
      }
      for (const [k, v] of Object.entries(p.props)) req.set(p.id, k, v);
    }
  } catch (e) {
    for (const b of blobs) b.destroy();
    throw e;
  }
  return { req, blobs };
}

export interface RestoreResult {
  /** planes left disabled because restoring them failed (their framebuffer is gone, ...) */
  disabledPlanes: number[];
}

/**
 * Restore a saved state in one ALLOW_MODESET commit. If the full restore is rejected, retry
 * with the overlay/cursor planes disabled, then with every plane that had a framebuffer
 * disabled (CRTC and connector routing still restored); throws the first error if nothing works.
 */
export function restoreState(dev: DrmDevice, saved: SavedKmsState): RestoreResult {
  if (saved.path !== dev.path) {
    throw new Error(`restoreState: state was saved from ${saved.path}, not ${dev.path}`);
  }
  const snap = dev.currentSnapshot();
  const nonPrimary = new Set(snap.planes.filter((p) => p.type !== 'primary').map((p) => p.id));
  const allWithFb = new Set(saved.planes.filter((p) => (p.props['FB_ID'] ?? 0n) !== 0n).map((p) => p.id));
  const attempts: ReadonlySet<number>[] = [new Set(), nonPrimary, allWithFb];
  let firstError: unknown;
  for (const skip of attempts) {
    const { req, blobs } = buildRestoreRequest(dev, saved, skip);
    try {
      req.commit(DRM_MODE_ATOMIC_ALLOW_MODESET);
      return { disabledPlanes: [...skip].filter((id) => allWithFb.has(id)) };
    } catch (e) {
      firstError ??= e;
    } finally {
      for (const b of blobs) b.destroy();
    }
  }
  if (firstError instanceof Error) firstError.message = `restoring the display state of ${dev.path}: ${firstError.message}`;
  throw firstError;
}

/** TEST_ONLY check of a full restore (for diagnostics). */
export function testRestore(dev: DrmDevice, saved: SavedKmsState): AtomicTestResult {
  const { req, blobs } = buildRestoreRequest(dev, saved);
  try {
    return req.testOnly(DRM_MODE_ATOMIC_ALLOW_MODESET);
  } finally {
    for (const b of blobs) b.destroy();
  }
}
