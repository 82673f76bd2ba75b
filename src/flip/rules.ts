// Driver constraints the planner knows about, as data. They only prune layouts that the
// driver is known to refuse (so the user gets a precise explanation instead of a bare EINVAL);
// every layout that survives is still verified by a TEST_ONLY commit. Unknown drivers get the
// permissive rules: TEST_ONLY is then the only judge.
import type { KmsSnapshot, PlaneType } from '../kms/types.js';

export interface PlaneRule {
  /** the plane may be placed anywhere (false: it must cover the whole CRTC exactly) */
  canPosition: boolean;
  /** the plane may scale (destination size differs from source size) */
  canScale: boolean;
  /** the plane may be partly outside the CRTC (clipped) */
  canClip: boolean;
  /** largest source size, if the driver has one (cursor planes) */
  maxWidth?: number;
  maxHeight?: number;
}

export interface DriverRules {
  /** driver name these rules are for ('*' for the permissive default) */
  driver: string;
  /** where the facts come from, shown with explanations */
  source: string;
  planes: Record<PlaneType, PlaneRule>;
  /** true when planes have no zpos property and stack in plane-index order (primary lowest) */
  implicitZorderByIndex: boolean;
}

const free: PlaneRule = { canPosition: true, canScale: true, canClip: true };

/** Rules by driver name (DRM_IOCTL_VERSION name). */
export const DRIVER_RULES: Readonly<Record<string, DriverRules>> = {
  vkms: {
    driver: 'vkms',
    source: 'vkms_plane_atomic_check (Linux 6.1): primary cannot position, no plane scales',
    planes: {
      primary: { canPosition: false, canScale: false, canClip: false },
      overlay: { canPosition: true, canScale: false, canClip: true },
      cursor: { canPosition: true, canScale: false, canClip: true },
    },
    implicitZorderByIndex: true,
  },
  i915: {
    driver: 'i915',
    source: 'i915 universal planes: primary and sprites position and scale (pipe scalers), cursor does not scale',
    planes: {
      primary: { canPosition: true, canScale: true, canClip: true },
      overlay: { canPosition: true, canScale: true, canClip: true },
      cursor: { canPosition: true, canScale: false, canClip: true, maxWidth: 256, maxHeight: 256 },
    },
    implicitZorderByIndex: true,
  },
};

export const DEFAULT_RULES: DriverRules = {
  driver: '*',
  source: 'no rules known for this driver: TEST_ONLY decides',
  planes: { primary: free, overlay: free, cursor: { ...free, canScale: false } },
  implicitZorderByIndex: true,
};

/** The rules for a snapshot's driver, with the cursor size caps from DRM_CAP_CURSOR_*. */
export function rulesFor(snapshot: Pick<KmsSnapshot, 'driver' | 'caps'>): DriverRules {
  const base = DRIVER_RULES[snapshot.driver.name] ?? DEFAULT_RULES;
  const cw = snapshot.caps['CURSOR_WIDTH'];
  const ch = snapshot.caps['CURSOR_HEIGHT'];
  if (cw === undefined && ch === undefined) return base;
  // The cursor caps are the preferred legacy cursor size; atomic cursor planes accept up to
  // that size on the drivers we know (i915, vkms has no limit but reports a default).
  if (base.driver === 'vkms') return base;
  return {
    ...base,
    planes: {
      ...base.planes,
      cursor: {
        ...base.planes.cursor,
        maxWidth: cw !== undefined ? Number(cw) : base.planes.cursor.maxWidth,
        maxHeight: ch !== undefined ? Number(ch) : base.planes.cursor.maxHeight,
      },
    },
  };
}
