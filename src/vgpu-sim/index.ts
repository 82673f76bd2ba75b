// vgpu-sim from user space: mdev instance management (sysfs) and "the guest" (debugfs).
// Plain file I/O only, no ioctls: the VFIO side belongs to whoever displays the vGPU.
// The debugfs files are documented in native/vgpu-sim/README.md.
export { SIM_MODULE, SIM_PARENT, SIM_PLANES, SimError, type SimPlane, type SimRoots } from './sysfs.js';
export * from './instances.js';
export * from './guest.js';
