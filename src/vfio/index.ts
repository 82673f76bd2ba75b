// Public surface of the VFIO layer.
export type * from './types.js';
export { VfioDevice, VfioGroupBusyError } from './device.js';
export type { VfioOpenOptions, VfioFromPidOptions } from './device.js';
export { discoverVgpus, readVgpu, scanVfioHolders, holdersOf, listMdevParents, isUuid } from './sysfs.js';
export { normalizePlaneInfo, PLANE_PATHS, PLANE_PATH_FLAGS, DRM_PLANE_TYPES } from './plane.js';
