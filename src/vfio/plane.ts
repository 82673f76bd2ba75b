// Normalisation of struct vfio_device_gfx_plane_info and the plane-type/path flag mapping.
import type { GfxPlaneInfo } from '../binding/types.js';
import {
  DRM_PLANE_TYPE_CURSOR,
  DRM_PLANE_TYPE_OVERLAY,
  DRM_PLANE_TYPE_PRIMARY,
  VFIO_GFX_NO_HOTSPOT,
  VFIO_GFX_PLANE_TYPE_DMABUF,
  VFIO_GFX_PLANE_TYPE_DRM_FB,
  VFIO_GFX_PLANE_TYPE_REGION,
} from '../binding/constants.js';
import type { VgpuPlaneInfo, VgpuPlanePath, VgpuPlaneType } from './types.js';

export const PLANE_PATH_FLAGS: Readonly<Record<VgpuPlanePath, number>> = Object.freeze({
  drm_fb: VFIO_GFX_PLANE_TYPE_DRM_FB,
  dmabuf: VFIO_GFX_PLANE_TYPE_DMABUF,
  region: VFIO_GFX_PLANE_TYPE_REGION,
});

/** Paths in order of preference (zero copy first). */
export const PLANE_PATHS: readonly VgpuPlanePath[] = ['drm_fb', 'dmabuf', 'region'];

export const DRM_PLANE_TYPES: Readonly<Record<VgpuPlaneType, number>> = Object.freeze({
  primary: DRM_PLANE_TYPE_PRIMARY,
  cursor: DRM_PLANE_TYPE_CURSOR,
  overlay: DRM_PLANE_TYPE_OVERLAY,
});

/** Normalise the raw struct: signed position, hotspot null when absent, ready = size > 0. */
export function normalizePlaneInfo(raw: GfxPlaneInfo, type: VgpuPlaneType, path: VgpuPlanePath): VgpuPlaneInfo {
  const xHot = raw.xHot >>> 0;
  const yHot = raw.yHot >>> 0;
  const noHot = xHot === VFIO_GFX_NO_HOTSPOT || yHot === VFIO_GFX_NO_HOTSPOT;
  return {
    type,
    path,
    ready: raw.size > 0,
    flags: raw.flags >>> 0,
    drmFormat: raw.drmFormat >>> 0,
    drmFormatMod: BigInt.asUintN(64, raw.drmFormatMod),
    width: raw.width >>> 0,
    height: raw.height >>> 0,
    stride: raw.stride >>> 0,
    size: raw.size >>> 0,
    x: raw.xPos | 0,
    y: raw.yPos | 0,
    hotspot: noHot ? null : { x: xHot, y: yHot },
    id: raw.id >>> 0,
  };
}
