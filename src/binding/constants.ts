// Kernel ABI constants the TypeScript layers need. Values are copied from the uapi headers
// (libdrm's drm.h, drm_mode.h, drm_fourcc.h; linux/vfio.h; linux/dma-buf.h); the host test
// test/host/binding-constants.test.ts compares them against the installed headers.

// ---- DRM caps (DRM_IOCTL_GET_CAP) -------------------------------------------------------
export const DRM_CAP_DUMB_BUFFER = 0x1;
export const DRM_CAP_VBLANK_HIGH_CRTC = 0x2;
export const DRM_CAP_DUMB_PREFERRED_DEPTH = 0x3;
export const DRM_CAP_DUMB_PREFER_SHADOW = 0x4;
export const DRM_CAP_PRIME = 0x5;
export const DRM_PRIME_CAP_IMPORT = 0x1;
export const DRM_PRIME_CAP_EXPORT = 0x2;
export const DRM_CAP_TIMESTAMP_MONOTONIC = 0x6;
export const DRM_CAP_ASYNC_PAGE_FLIP = 0x7;
export const DRM_CAP_CURSOR_WIDTH = 0x8;
export const DRM_CAP_CURSOR_HEIGHT = 0x9;
export const DRM_CAP_ADDFB2_MODIFIERS = 0x10;
export const DRM_CAP_PAGE_FLIP_TARGET = 0x11;
export const DRM_CAP_CRTC_IN_VBLANK_EVENT = 0x12;
export const DRM_CAP_SYNCOBJ = 0x13;
export const DRM_CAP_SYNCOBJ_TIMELINE = 0x14;

// ---- DRM client caps (DRM_IOCTL_SET_CLIENT_CAP) ------------------------------------------
export const DRM_CLIENT_CAP_STEREO_3D = 1;
export const DRM_CLIENT_CAP_UNIVERSAL_PLANES = 2;
export const DRM_CLIENT_CAP_ATOMIC = 3;
export const DRM_CLIENT_CAP_ASPECT_RATIO = 4;
export const DRM_CLIENT_CAP_WRITEBACK_CONNECTORS = 5;

// ---- PRIME export flags (drmPrimeHandleToFd) ---------------------------------------------
/** O_RDWR */
export const DRM_RDWR = 0o2;
/** O_CLOEXEC */
export const DRM_CLOEXEC = 0o2000000;

// ---- atomic / page flip flags ------------------------------------------------------------
export const DRM_MODE_PAGE_FLIP_EVENT = 0x01;
export const DRM_MODE_PAGE_FLIP_ASYNC = 0x02;
export const DRM_MODE_ATOMIC_TEST_ONLY = 0x0100;
export const DRM_MODE_ATOMIC_NONBLOCK = 0x0200;
export const DRM_MODE_ATOMIC_ALLOW_MODESET = 0x0400;

/** ADDFB2 flag set by the addon when modifiers are passed */
export const DRM_MODE_FB_MODIFIERS = 1 << 1;

// ---- events ------------------------------------------------------------------------------
export const DRM_EVENT_VBLANK = 0x01;
export const DRM_EVENT_FLIP_COMPLETE = 0x02;
export const DRM_EVENT_CRTC_SEQUENCE = 0x03;

// ---- mode objects ------------------------------------------------------------------------
export const DRM_MODE_OBJECT_CRTC = 0xcccccccc;
export const DRM_MODE_OBJECT_CONNECTOR = 0xc0c0c0c0;
export const DRM_MODE_OBJECT_ENCODER = 0xe0e0e0e0;
export const DRM_MODE_OBJECT_MODE = 0xdededede;
export const DRM_MODE_OBJECT_PROPERTY = 0xb0b0b0b0;
export const DRM_MODE_OBJECT_FB = 0xfbfbfbfb;
export const DRM_MODE_OBJECT_BLOB = 0xbbbbbbbb;
export const DRM_MODE_OBJECT_PLANE = 0xeeeeeeee;
export const DRM_MODE_OBJECT_ANY = 0;

// ---- plane types (the enum values of the "type" plane property) ---------------------------
export const DRM_PLANE_TYPE_OVERLAY = 0;
export const DRM_PLANE_TYPE_PRIMARY = 1;
export const DRM_PLANE_TYPE_CURSOR = 2;

// ---- property flags ----------------------------------------------------------------------
export const DRM_MODE_PROP_PENDING = 1 << 0;
export const DRM_MODE_PROP_RANGE = 1 << 1;
export const DRM_MODE_PROP_IMMUTABLE = 1 << 2;
export const DRM_MODE_PROP_ENUM = 1 << 3;
export const DRM_MODE_PROP_BLOB = 1 << 4;
export const DRM_MODE_PROP_BITMASK = 1 << 5;
export const DRM_MODE_PROP_LEGACY_TYPE =
  DRM_MODE_PROP_RANGE | DRM_MODE_PROP_ENUM | DRM_MODE_PROP_BLOB | DRM_MODE_PROP_BITMASK;
export const DRM_MODE_PROP_EXTENDED_TYPE = 0x0000ffc0;
export const DRM_MODE_PROP_OBJECT = 1 << 6;
export const DRM_MODE_PROP_SIGNED_RANGE = 2 << 6;
/** 0x80000000 (a positive number in JS; test with `(flags & X) !== 0`) */
export const DRM_MODE_PROP_ATOMIC = 0x80000000;

// ---- connectors --------------------------------------------------------------------------
export const DRM_MODE_CONNECTED = 1;
export const DRM_MODE_DISCONNECTED = 2;
export const DRM_MODE_UNKNOWNCONNECTION = 3;

export const DRM_MODE_CONNECTOR_Unknown = 0;
export const DRM_MODE_CONNECTOR_VIRTUAL = 15;
export const DRM_MODE_CONNECTOR_WRITEBACK = 18;

/** DRM_MODE_CONNECTOR_* -> the name the kernel uses in connector names ("HDMI-A-1") */
export const CONNECTOR_TYPE_NAMES: Readonly<Record<number, string>> = Object.freeze({
  0: 'Unknown',
  1: 'VGA',
  2: 'DVI-I',
  3: 'DVI-D',
  4: 'DVI-A',
  5: 'Composite',
  6: 'SVIDEO',
  7: 'LVDS',
  8: 'Component',
  9: 'DIN',
  10: 'DP',
  11: 'HDMI-A',
  12: 'HDMI-B',
  13: 'TV',
  14: 'eDP',
  15: 'Virtual',
  16: 'DSI',
  17: 'DPI',
  18: 'Writeback',
  19: 'SPI',
  20: 'USB',
});

/** "HDMI-A-1" style name of a connector, as the kernel prints it */
export function connectorName(type: number, typeId: number): string {
  return `${CONNECTOR_TYPE_NAMES[type] ?? `Unknown${type}`}-${typeId}`;
}

// ---- fourcc formats ----------------------------------------------------------------------
/** fourcc_code('X','R','2','4') */
export function fourcc(code: string): number {
  if (code.length !== 4) throw new RangeError(`fourcc: need 4 characters, got ${JSON.stringify(code)}`);
  let v = 0;
  for (let i = 0; i < 4; i++) {
    const c = code.charCodeAt(i);
    if (c > 0x7f) throw new RangeError(`fourcc: non-ASCII character in ${JSON.stringify(code)}`);
    v |= c << (8 * i);
  }
  return v >>> 0;
}

export const DRM_FORMAT_BIG_ENDIAN = 0x80000000;

/** 'XR24' for DRM_FORMAT_XRGB8888; a trailing ' (BE)' when the big-endian bit is set */
export function fourccToString(format: number): string {
  const f = format >>> 0;
  const be = (f & DRM_FORMAT_BIG_ENDIAN) !== 0;
  const v = be ? f & 0x7fffffff : f;
  let s = '';
  for (let i = 0; i < 4; i++) {
    const c = (v >>> (8 * i)) & 0xff;
    s += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : '?';
  }
  return be ? `${s} (BE)` : s;
}

export const DRM_FORMAT_C8 = fourcc('C8  ');
export const DRM_FORMAT_R8 = fourcc('R8  ');
export const DRM_FORMAT_RGB565 = fourcc('RG16');
export const DRM_FORMAT_BGR565 = fourcc('BG16');
export const DRM_FORMAT_XRGB1555 = fourcc('XR15');
export const DRM_FORMAT_ARGB1555 = fourcc('AR15');
export const DRM_FORMAT_RGB888 = fourcc('RG24');
export const DRM_FORMAT_BGR888 = fourcc('BG24');
export const DRM_FORMAT_XRGB8888 = fourcc('XR24');
export const DRM_FORMAT_XBGR8888 = fourcc('XB24');
export const DRM_FORMAT_RGBX8888 = fourcc('RX24');
export const DRM_FORMAT_BGRX8888 = fourcc('BX24');
export const DRM_FORMAT_ARGB8888 = fourcc('AR24');
export const DRM_FORMAT_ABGR8888 = fourcc('AB24');
export const DRM_FORMAT_RGBA8888 = fourcc('RA24');
export const DRM_FORMAT_BGRA8888 = fourcc('BA24');
export const DRM_FORMAT_XRGB2101010 = fourcc('XR30');
export const DRM_FORMAT_XBGR2101010 = fourcc('XB30');
export const DRM_FORMAT_ARGB2101010 = fourcc('AR30');
export const DRM_FORMAT_ABGR2101010 = fourcc('AB30');
export const DRM_FORMAT_XRGB16161616F = fourcc('XR4H');
export const DRM_FORMAT_ARGB16161616F = fourcc('AR4H');
export const DRM_FORMAT_YUYV = fourcc('YUYV');
export const DRM_FORMAT_NV12 = fourcc('NV12');

// ---- format modifiers (u64: bigint) --------------------------------------------------------
export const DRM_FORMAT_MOD_VENDOR_NONE = 0;
export const DRM_FORMAT_MOD_VENDOR_INTEL = 0x01;
export const DRM_FORMAT_MOD_VENDOR_AMD = 0x02;
export const DRM_FORMAT_MOD_VENDOR_NVIDIA = 0x03;
export const DRM_FORMAT_RESERVED = (1n << 56n) - 1n;
/** fourcc_mod_code(vendor, val) */
export function fourccModCode(vendor: number, val: bigint): bigint {
  return (BigInt(vendor) << 56n) | (val & DRM_FORMAT_RESERVED);
}
export const DRM_FORMAT_MOD_LINEAR = 0n;
export const DRM_FORMAT_MOD_INVALID = 0x00ffffffffffffffn;
export const I915_FORMAT_MOD_X_TILED = fourccModCode(DRM_FORMAT_MOD_VENDOR_INTEL, 1n);
export const I915_FORMAT_MOD_Y_TILED = fourccModCode(DRM_FORMAT_MOD_VENDOR_INTEL, 2n);

// ---- VFIO ---------------------------------------------------------------------------------
export const VFIO_API_VERSION = 0;
export const VFIO_TYPE1_IOMMU = 1;
export const VFIO_TYPE1v2_IOMMU = 3;

export const VFIO_DEVICE_FLAGS_RESET = 1 << 0;
export const VFIO_DEVICE_FLAGS_PCI = 1 << 1;
export const VFIO_DEVICE_FLAGS_PLATFORM = 1 << 2;
export const VFIO_DEVICE_FLAGS_CAPS = 1 << 7;

export const VFIO_REGION_INFO_FLAG_READ = 1 << 0;
export const VFIO_REGION_INFO_FLAG_WRITE = 1 << 1;
export const VFIO_REGION_INFO_FLAG_MMAP = 1 << 2;
export const VFIO_REGION_INFO_FLAG_CAPS = 1 << 3;

export const VFIO_REGION_INFO_CAP_SPARSE_MMAP = 1;
export const VFIO_REGION_INFO_CAP_TYPE = 2;
export const VFIO_REGION_INFO_CAP_MSIX_MAPPABLE = 3;
export const VFIO_REGION_TYPE_PCI_VENDOR_TYPE = 0x80000000;
export const VFIO_REGION_TYPE_GFX = 1;
export const VFIO_REGION_SUBTYPE_GFX_EDID = 1;

export const VFIO_PCI_BAR0_REGION_INDEX = 0;
export const VFIO_PCI_BAR1_REGION_INDEX = 1;
export const VFIO_PCI_BAR2_REGION_INDEX = 2;
export const VFIO_PCI_BAR3_REGION_INDEX = 3;
export const VFIO_PCI_BAR4_REGION_INDEX = 4;
export const VFIO_PCI_BAR5_REGION_INDEX = 5;
export const VFIO_PCI_ROM_REGION_INDEX = 6;
export const VFIO_PCI_CONFIG_REGION_INDEX = 7;
export const VFIO_PCI_VGA_REGION_INDEX = 8;
export const VFIO_PCI_NUM_REGIONS = 9;

/** VFIO_DEVICE_QUERY_GFX_PLANE flags */
export const VFIO_GFX_PLANE_TYPE_PROBE = 1 << 0;
export const VFIO_GFX_PLANE_TYPE_DMABUF = 1 << 1;
export const VFIO_GFX_PLANE_TYPE_REGION = 1 << 2;
/** proposed: the vendor driver returns a host DRM framebuffer id in the union (id) */
export const VFIO_GFX_PLANE_TYPE_DRM_FB = 1 << 3;

/** x_hot / y_hot when the driver has no hotspot */
export const VFIO_GFX_NO_HOTSPOT = 0xffffffff;

// ---- dma-buf ------------------------------------------------------------------------------
export const DMA_BUF_SYNC_READ = 1 << 0;
export const DMA_BUF_SYNC_WRITE = 2 << 0;
export const DMA_BUF_SYNC_RW = DMA_BUF_SYNC_READ | DMA_BUF_SYNC_WRITE;
export const DMA_BUF_SYNC_START = 0 << 2;
export const DMA_BUF_SYNC_END = 1 << 2;

// ---- open(2) flags for native.openPath -------------------------------------------------------
export const O_RDONLY = 0;
export const O_WRONLY = 0o1;
export const O_RDWR = 0o2;
export const O_CREAT = 0o100;
export const O_TRUNC = 0o1000;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
