// The typed surface of the native addon (native/addon). This file is the contract between
// the C++ side (syscalls and struct marshalling only) and every TypeScript layer above it.
// Layouts and constants come from the kernel (linux/vfio.h) and libdrm (xf86drm.h,
// xf86drmMode.h, drm_fourcc.h) headers; the addon adds no policy.

/** Every failing call throws an Error with these fields (see errors.ts: isKernelError). */
export interface KernelErrorFields {
  /** ioctl or call name, e.g. 'DRM_IOCTL_MODE_ATOMIC', 'VFIO_DEVICE_QUERY_GFX_PLANE', 'open' */
  op: string;
  /** device path or label of the fd ('/dev/dri/card0', 'vfio-device 1234-...'), '' if unknown */
  path: string;
  /** positive errno number */
  errno: number;
  /** errno name: 'EINVAL', 'EBUSY', ... */
  code: string;
}

export interface ModeInfo {
  clock: number;
  hdisplay: number; hsyncStart: number; hsyncEnd: number; htotal: number; hskew: number;
  vdisplay: number; vsyncStart: number; vsyncEnd: number; vtotal: number; vscan: number;
  vrefresh: number;
  flags: number;
  type: number;
  name: string;
}

export interface DrmVersion {
  major: number; minor: number; patch: number;
  name: string; date: string; desc: string;
}

export interface DrmResources {
  fbs: number[]; crtcs: number[]; connectors: number[]; encoders: number[];
  minWidth: number; maxWidth: number; minHeight: number; maxHeight: number;
}

export interface DrmConnector {
  id: number;
  /** DRM_MODE_CONNECTOR_* */
  type: number;
  typeId: number;
  /** 1 connected, 2 disconnected, 3 unknown */
  status: number;
  mmWidth: number; mmHeight: number;
  subpixel: number;
  encoderId: number;
  encoders: number[];
  modes: ModeInfo[];
}

export interface DrmEncoder {
  id: number; type: number; crtcId: number; possibleCrtcs: number; possibleClones: number;
}

export interface DrmCrtc {
  id: number; bufferId: number; x: number; y: number; width: number; height: number;
  modeValid: boolean; mode: ModeInfo | null; gammaSize: number;
}

export interface DrmPlane {
  id: number; crtcId: number; fbId: number; crtcX: number; crtcY: number; x: number; y: number;
  possibleCrtcs: number; gammaSize: number;
  /** legacy format list (fourcc codes) */
  formats: number[];
}

/** DRM_IOCTL_MODE_GETFB2: a framebuffer's description (GEM handles are closed by the addon). */
export interface DrmFb2 {
  id: number; width: number; height: number;
  /** DRM fourcc */
  format: number;
  /** DRM_MODE_FB_* flags (MODIFIERS = 2) */
  flags: number;
  /** the modifier when flags has DRM_MODE_FB_MODIFIERS, else null */
  modifier: bigint | null;
  /** per plane of the buffer (as many as have a pitch) */
  pitches: number[]; offsets: number[];
}

export type PropertyKind = 'range' | 'signed_range' | 'enum' | 'bitmask' | 'blob' | 'object';

export interface DrmProperty {
  id: number;
  name: string;
  /** DRM_MODE_PROP_* flags (IMMUTABLE = 4, ATOMIC = 0x80000000, ...) */
  flags: number;
  kind: PropertyKind;
  /** current value on the object (u64; signed ranges are two's complement) */
  value: bigint;
  /** range / signed_range: [min, max] (signed ranges already sign-extended) */
  range?: [bigint, bigint];
  /** enum / bitmask: the named values (for bitmask, value is the bit index as in libdrm) */
  enums?: { name: string; value: bigint }[];
  /** object: the object type it points to, e.g. DRM_MODE_OBJECT_CRTC */
  objectType?: number;
}

export interface FormatModifier { format: number; modifier: bigint }

export interface DrmEvent {
  /** DRM_EVENT_FLIP_COMPLETE = 2, DRM_EVENT_VBLANK = 1, DRM_EVENT_CRTC_SEQUENCE = 3 */
  type: 'flip' | 'vblank' | 'sequence';
  /** u32 for flip/vblank; the u64 sequence of a 'sequence' event as a number */
  sequence: number;
  /** event time in microseconds (CLOCK_MONOTONIC) */
  timeUs: number;
  /** the CRTC of a flip/vblank event (0 on kernels that do not report it, and for 'sequence') */
  crtcId: number;
  userData: bigint;
}

export interface AddFb2Args {
  width: number; height: number;
  /** DRM fourcc */
  format: number;
  handles: number[]; pitches: number[]; offsets: number[];
  /** when present, DRM_MODE_FB_MODIFIERS is set and these are passed per plane */
  modifiers?: bigint[];
}

export interface OutFence { outFence: true }

export interface DumbBuffer { handle: number; pitch: number; size: number }

/** Memory mapped with mmap(2). `buffer` is an external ArrayBuffer over the mapping. */
export interface Mapping {
  buffer: ArrayBuffer;
  length: number;
  /** munmap; detaches `buffer` first so later access throws instead of faulting. Idempotent. */
  unmap(): void;
}

export interface VfioDeviceInfo { flags: number; numRegions: number; numIrqs: number }

export interface VfioRegionCap {
  id: number; version: number;
  /**
   * the whole capability as the kernel laid it out, starting with its struct
   * vfio_info_cap_header (id u16, version u16, next u32), so the offsets of the C structs in
   * linux/vfio.h apply directly (e.g. vfio_region_info_cap_type: type at 8, subtype at 12);
   * it runs to the next capability or the end of the returned info
   */
  data: Buffer;
}

/** One capability of an IRQ's chain (see native/include/vfio_gfx_display_irq.h). */
export interface VfioIrqCap {
  id: number; version: number;
  /** where the capability starts in the info (from its first byte) */
  offset: number;
  /**
   * the whole capability starting with its struct vfio_info_cap_header (id u16, version u16,
   * next u32), up to the next capability or the end of the info: the C offsets apply directly
   * (vfio_irq_info_cap_type: type at 8, subtype at 12; vfio_irq_info_cap_display_plane_events:
   * cur_event_val at 8, pri_event_val at 16)
   */
  data: Buffer;
}

/**
 * VFIO_DEVICE_GET_IRQ_INFO, with the capability chain of the IRQ-capabilities proposal
 * (VFIO_IRQ_INFO_FLAG_CAPS = 1 << 4, cap_offset after count). Drivers without it leave caps [].
 */
export interface VfioIrqInfo {
  index: number;
  /** VFIO_IRQ_INFO_EVENTFD 1, MASKABLE 2, AUTOMASKED 4, NORESIZE 8, FLAG_CAPS 16 */
  flags: number;
  count: number;
  /** the argsz of the final answer (the size the driver needed for the chain) */
  argsz: number;
  /** 0 without FLAG_CAPS */
  capOffset: number;
  caps: VfioIrqCap[];
  /** the bytes of the final answer as the kernel wrote them (16 bytes without FLAG_CAPS) */
  raw: Buffer;
}

export interface VfioRegionInfo {
  index: number; flags: number; size: bigint; offset: bigint; caps: VfioRegionCap[];
}

/** struct vfio_device_gfx_plane_info, as filled by the vendor driver. */
export interface GfxPlaneInfo {
  flags: number;
  drmPlaneType: number;
  drmFormat: number;
  drmFormatMod: bigint;
  width: number; height: number; stride: number; size: number;
  /** signed 32-bit (a cursor can be partly off screen) */
  xPos: number; yPos: number;
  /** raw u32; 0xFFFFFFFF means no hotspot */
  xHot: number; yHot: number;
  /** the union: region_index for REGION, dmabuf_id for DMABUF, drm_fb_id for DRM_FB */
  id: number;
}

export interface VfioMdevHandles {
  container: number; group: number; device: number; groupId: number;
}

/**
 * One kernel uevent from the NETLINK_KOBJECT_UEVENT socket: "ACTION@DEVPATH\0KEY=VAL\0...".
 * action is the kernel's (add, remove, change, move, online, offline, bind, unbind), or the
 * reserved 'overrun' (devpath '', props {}): the socket queue overflowed (ENOBUFS) and the
 * kernel dropped messages at that point; whoever tracks state must rescan.
 */
export interface Uevent {
  action: string;
  /** e.g. '/devices/platform/vkms/drm/card0' (without /sys) */
  devpath: string;
  /** the environment: ACTION, DEVPATH, SUBSYSTEM, SEQNUM, DEVNAME ('dri/card0'), HOTPLUG, ... */
  props: Record<string, string>;
}

export interface FdPoller {
  /** stop watching; the fd itself is not closed. Idempotent. */
  stop(): void;
}

export interface NativeAddon {
  // ---- fds and labels -------------------------------------------------------------------
  /** give an fd a label used in error messages (e.g. an adopted VFIO fd) */
  setFdLabel(fd: number, label: string): void;
  close(fd: number): void;
  /** open(2) any path read-write with O_CLOEXEC, for tests and generic use */
  openPath(path: string, flags?: number): number;
  /** 'EINVAL' for 22, etc. */
  errnoName(errno: number): string;

  // ---- DRM ------------------------------------------------------------------------------
  /** open a card or render node (O_RDWR | O_CLOEXEC); checks it is a DRM device (drmGetVersion) */
  drmOpen(path: string): number;
  drmSetClientCap(fd: number, cap: number, value: number): void;
  drmGetCap(fd: number, cap: number): bigint;
  drmGetVersion(fd: number): DrmVersion;
  drmGetResources(fd: number): DrmResources;
  drmGetConnector(fd: number, id: number): DrmConnector;
  drmGetEncoder(fd: number, id: number): DrmEncoder;
  drmGetCrtc(fd: number, id: number): DrmCrtc;
  drmGetPlaneResources(fd: number): number[];
  drmGetPlane(fd: number, id: number): DrmPlane;
  /** DRM_IOCTL_MODE_GETFB2 (ENOENT for an unknown id) */
  drmGetFb2(fd: number, fbId: number): DrmFb2;
  /** objectType: DRM_MODE_OBJECT_* (CRTC 0xcccccccc, CONNECTOR 0xc0c0c0c0, PLANE 0xeeeeeeee, ...) */
  drmGetProperties(fd: number, objectId: number, objectType: number): DrmProperty[];
  /** null if the blob id is 0 or does not exist (ENOENT) */
  drmGetPropertyBlob(fd: number, blobId: number): Buffer | null;
  drmCreatePropertyBlob(fd: number, data: Buffer): number;
  drmDestroyPropertyBlob(fd: number, blobId: number): void;
  /** decode an IN_FORMATS blob (struct drm_format_modifier_blob) into pairs */
  drmDecodeInFormats(blob: Buffer): FormatModifier[];
  /**
   * props: [objectId, propertyId, value] triples; flags: DRM_MODE_ATOMIC_* / DRM_MODE_PAGE_FLIP_EVENT.
   * A value of OUT_FENCE ({ outFence: true }) makes the addon pass the address of an s32 it owns
   * (for WRITEBACK_OUT_FENCE_PTR / OUT_FENCE_PTR); the returned array holds those fence fds in
   * the order of such props (-1 when the kernel set none). Otherwise it returns [].
   * The caller owns (and must close) every returned fence fd that is not -1.
   * Props are grouped by object for the ioctl, keeping their relative order; numbers and bigints
   * may be negative (passed as two's complement u64, for signed properties such as CRTC_X).
   */
  drmAtomicCommit(fd: number, props: Array<[number, number, bigint | number | OutFence]>, flags: number, userData?: bigint): number[];
  drmPrimeFdToHandle(fd: number, dmabufFd: number): number;
  drmPrimeHandleToFd(fd: number, handle: number, flags: number): number;
  drmGemClose(fd: number, handle: number): void;
  drmAddFb2(fd: number, args: AddFb2Args): number;
  drmRmFb(fd: number, fbId: number): void;
  drmCreateDumb(fd: number, width: number, height: number, bpp: number): DumbBuffer;
  drmMapDumb(fd: number, handle: number, size: number): Mapping;
  drmDestroyDumb(fd: number, handle: number): void;
  drmSetMaster(fd: number): void;
  drmDropMaster(fd: number): void;
  /**
   * drmIsMaster's test: DRM_IOCTL_AUTH_MAGIC with magic 0; EACCES -> false, EINVAL/0 -> true.
   * Other errors throw (EBADF; ENOTTY for a non-DRM fd), where libdrm would answer "master".
   */
  drmIsMaster(fd: number): boolean;
  /** non-blocking read of all pending events on the fd; [] when none */
  drmReadEvents(fd: number): DrmEvent[];
  /**
   * DRM_IOCTL_WAIT_VBLANK relative 0 for the CRTC index (returns at once), returns the sequence.
   * With eventUserData: queue a vblank event for the next vblank instead (_DRM_VBLANK_EVENT,
   * returns at once with the target sequence); drmReadEvents then yields a 'vblank' event
   * carrying that user data. For tests and diagnostics.
   */
  drmWaitVblank(fd: number, crtcIndex: number, eventUserData?: bigint): number;

  // ---- VFIO -----------------------------------------------------------------------------
  /** legacy group API: container (type1v2 iommu set) + /dev/vfio/<group> + device by name */
  vfioOpenMdev(groupId: number, deviceName: string): VfioMdevHandles;
  /** pidfd_open(pid) + pidfd_getfd(targetFd): a duplicate of another process' fd (root) */
  pidfdGetFd(pid: number, targetFd: number): number;
  /**
   * pidfd_open(pid): a pidfd (O_CLOEXEC) that polls readable when the process exits; the
   * caller closes it. Optional: addons built before it was added lack it.
   */
  pidfdOpen?(pid: number): number;
  vfioDeviceInfo(deviceFd: number): VfioDeviceInfo;
  vfioRegionInfo(deviceFd: number, index: number): VfioRegionInfo;
  /** VFIO_DEVICE_QUERY_GFX_PLANE with argsz = sizeof(struct); flags as given; drmPlaneType in */
  vfioQueryGfxPlane(deviceFd: number, flags: number, drmPlaneType: number): GfxPlaneInfo;
  /** VFIO_DEVICE_GET_GFX_DMABUF: returns a dma-buf fd */
  vfioGetGfxDmabuf(deviceFd: number, dmabufId: number): number;
  /** VFIO_DEVICE_GET_IRQ_INFO for one index; argsz grows for a capability chain as the driver asks */
  vfioIrqInfo(deviceFd: number, index: number): VfioIrqInfo;
  /**
   * VFIO_DEVICE_SET_IRQS. flags: VFIO_IRQ_SET_DATA_NONE 1 / BOOL 2 / EVENTFD 4 |
   * VFIO_IRQ_SET_ACTION_MASK 8 / UNMASK 16 / TRIGGER 32. data: one entry per vector (count of
   * them) for DATA_EVENTFD (fds, -1 = none) and DATA_BOOL (booleans or 0/1); omitted for DATA_NONE.
   */
  vfioSetIrqs(deviceFd: number, index: number, flags: number, start: number, count: number, data?: Array<number | boolean>): void;
  /** eventfd2(initval, EFD_CLOEXEC | EFD_NONBLOCK): the caller closes it (native.close) */
  eventfdCreate(initval?: number): number;
  /** read the eventfd counter (which resets it): null when it is 0 (EAGAIN) */
  eventfdRead(fd: number): bigint | null;
  /**
   * pread/pwrite on the device fd at region offset + offset (one syscall: pread may return
   * fewer bytes than asked, e.g. at end of file)
   */
  pread(fd: number, offset: bigint, length: number): Buffer;
  pwrite(fd: number, offset: bigint, data: Buffer): number;
  /** mmap(MAP_SHARED) of any fd (VFIO region, dma-buf) */
  mmap(fd: number, offset: bigint, length: number, writable: boolean): Mapping;
  /** DMA_BUF_IOCTL_SYNC with DMA_BUF_SYNC_* flags */
  dmabufSync(fd: number, flags: number): void;

  // ---- event loop -----------------------------------------------------------------------
  /**
   * uv_poll on fd for readability; callback runs on the JS thread each time it is readable
   * (level-triggered: it fires again while data stays unread). One active poller per fd
   * (a second one throws EBUSY); native.close(fd) stops the fd's poller (closing the fd any
   * other way while it is polled is a bug). If the callback throws, the error goes to process
   * 'uncaughtException'. On a poll error the poller stops itself and calls the callback once more.
   */
  pollReadable(fd: number, onReadable: () => void): FdPoller;
  /**
   * poll(2) with timeout in ms (-1: no timeout); true if readable, or if POLLHUP/POLLERR is set
   * (a read would not block); false on timeout; throws EBADF for a closed fd. For sync waits
   * such as fences.
   */
  pollWait(fd: number, timeoutMs: number): boolean;

  // ---- kernel uevents -------------------------------------------------------------------
  /**
   * socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT) bound
   * to multicast group 1 (kernel events), SO_PASSCRED, a 4 MiB receive queue (SO_RCVBUFFORCE
   * when privileged). Watch it with pollReadable; close it with close().
   */
  ueventOpen(): number;
  /**
   * Drain the pending datagrams without blocking (at most 1024 per call: a poller fires again
   * if more wait); [] when none. Only the kernel's own messages (sender port 0, SCM_CREDENTIALS
   * uid 0) are returned; libudev-format messages and truncated datagrams are skipped; ENOBUFS
   * becomes an { action: 'overrun' } entry in order, and reading goes on.
   */
  ueventRead(fd: number): Uevent[];
}
