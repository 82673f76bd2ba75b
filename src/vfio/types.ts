// Plain-data types of the VFIO layer.

/** A process that has a VFIO group or device open. */
export interface VfioHolder {
  pid: number;
  /** /proc/<pid>/comm ('' if unreadable) */
  comm: string;
  /** fds pointing at /dev/vfio/<group> */
  groupFds: number[];
  /** fds that are `anon_inode:[vfio-device]` (which device, if fdinfo tells: deviceSyspaths) */
  deviceFds: number[];
  /** fd -> sysfs path of the device, from fdinfo "vfio-device-syspath" (newer kernels only) */
  deviceSyspaths: Record<number, string>;
}

/** One mdev vGPU found in sysfs. */
export interface VgpuInfo {
  uuid: string;
  /** /sys/bus/mdev/devices/<uuid> */
  sysfsPath: string;
  /** resolved device directory (under /sys/devices), null if the link is broken */
  devicePath: string | null;
  /** parent device name (the directory above the mdev, e.g. "vgpu_sim" or "0000:00:02.0") */
  parent: string | null;
  /** mdev type id (the mdev_type link's target name, e.g. "vgpu_sim-small") */
  type: string | null;
  /** the type's human name (mdev_type/name), if it has one */
  typeName: string | null;
  /** IOMMU group number (iommu_group link), null if missing */
  iommuGroup: number | null;
  /** /dev/vfio/<group> */
  groupPath: string | null;
  /** whether groupPath exists */
  groupNodeExists: boolean;
  /** processes holding the group (or, if fdinfo says so, this device) open */
  holders: VfioHolder[];
}

export interface VgpuDiscovery {
  vgpus: VgpuInfo[];
  /** why the list is empty when it is not just "none created" (e.g. no mdev bus) */
  reason?: string;
}

/** Filesystem roots (tests point these at a fake tree). */
export interface SysRoots {
  sys?: string;
  dev?: string;
  proc?: string;
}

export type VgpuPlaneType = 'primary' | 'cursor' | 'overlay';
/** The plane access paths of the VFIO mdev display ABI, in order of preference. */
export type VgpuPlanePath = 'drm_fb' | 'dmabuf' | 'region';

export interface ProbeAnswer {
  /** true: PROBE answered 0; false: EINVAL (not supported); null: another error (see error) */
  supported: boolean | null;
  error?: { op: string; code: string; errno: number; message: string };
}

export type ProbeResult = Record<VgpuPlanePath, ProbeAnswer>;

/** struct vfio_device_gfx_plane_info, normalised. */
export interface VgpuPlaneInfo {
  type: VgpuPlaneType;
  path: VgpuPlanePath;
  /** size > 0: the guest has set up this plane (before that the driver answers with size 0) */
  ready: boolean;
  flags: number;
  /** DRM fourcc */
  drmFormat: number;
  drmFormatMod: bigint;
  width: number;
  height: number;
  stride: number;
  size: number;
  /** position on the guest screen, signed (a cursor can be partly off screen) */
  x: number;
  y: number;
  /** cursor hotspot, null when the driver reports none (0xFFFFFFFF) */
  hotspot: { x: number; y: number } | null;
  /** the raw union: dmabuf_id / region_index / drm_fb_id depending on path */
  id: number;
}
