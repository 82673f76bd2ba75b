/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * vfio_gfx_drm_fb.h - the DRM_FB plane type of VFIO_DEVICE_QUERY_GFX_PLANE (a proposal,
 * not in upstream linux/vfio.h). Shared by the vgpu-sim kernel module and the vgpu-flip
 * native addon; include it after <linux/vfio.h>.
 *
 * Semantics
 * ---------
 * VFIO_GFX_PLANE_TYPE_DRM_FB is bit 3 of vfio_device_gfx_plane_info.flags, next to PROBE (0),
 * DMABUF (1) and REGION (2). Intel's QEMU branch called the same bit VFIO_GFX_PLANE_TYPE_DRM;
 * both names are defined here.
 *
 *  - PROBE | DRM_FB answers 0 when the vendor driver is bound to a host DRM device (vgpu-sim:
 *    module parameter host_card=cardN) and EINVAL otherwise. As for the other types, a probe
 *    must name exactly one type.
 *  - A DRM_FB query fills drm_format, drm_format_mod, width, height, stride, size, x_pos,
 *    y_pos, x_hot, y_hot exactly as a DMABUF query does, and puts the id of a framebuffer
 *    object of the host DRM device in drm_fb_id (the union member that holds dmabuf_id /
 *    region_index for the other types). A disabled or not-ready plane answers 0 with size 0
 *    and drm_fb_id 0.
 *  - The framebuffer is a real object of the host device (the plane's buffer imported there
 *    with PRIME), so any client of that device may use it as FB_ID in its atomic commits
 *    (subject to the usual DRM master / lease rules). It belongs to the vendor driver: clients
 *    must not RMFB it, and it stays valid while the plane keeps that buffer.
 *  - drm_fb_id names the framebuffer of the plane's *current* buffer, so it changes when the
 *    guest flips to another buffer or changes mode (the same buffer state gives the same id
 *    while it stays cached). The vendor driver itself moves every hardware plane that shows a
 *    framebuffer of this guest plane to the new framebuffer with an in-kernel atomic commit:
 *    after one assignment, user space does not need to commit per guest frame. User space
 *    only has to re-plan when the new mode no longer fits the hardware plane (the driver then
 *    leaves the hardware plane on the last framebuffer it could show) or when the guest plane
 *    is disabled.
 *  - On guest reset / plane disable the driver disables those hardware planes (or keeps the
 *    last frame, vgpu-sim module parameter keep_last_frame=1). When the instance goes away or
 *    the module unloads, its framebuffers are removed with drm_framebuffer_remove(), which
 *    takes them off any hardware plane first.
 */
#ifndef VGPU_FLIP_VFIO_GFX_DRM_FB_H
#define VGPU_FLIP_VFIO_GFX_DRM_FB_H

#include <linux/types.h>

#ifndef VFIO_GFX_PLANE_TYPE_DRM_FB
#define VFIO_GFX_PLANE_TYPE_DRM_FB (1 << 3)
#endif
#ifndef VFIO_GFX_PLANE_TYPE_DRM
#define VFIO_GFX_PLANE_TYPE_DRM VFIO_GFX_PLANE_TYPE_DRM_FB
#endif

/*
 * struct vfio_device_gfx_plane_info with the drm_fb_id union member: the same size and layout
 * (64 bytes), so argsz = sizeof(struct vfio_device_gfx_plane_info) is correct for it.
 */
struct vfio_device_gfx_plane_info_drm_fb {
	__u32 argsz;
	__u32 flags;
	__u32 drm_plane_type;	/* in: DRM_PLANE_TYPE_PRIMARY (1) / CURSOR (2) / OVERLAY (0) */
	__u32 drm_format;
	__u64 drm_format_mod;
	__u32 width;
	__u32 height;
	__u32 stride;
	__u32 size;
	__u32 x_pos;
	__u32 y_pos;
	__u32 x_hot;
	__u32 y_hot;
	union {
		__u32 region_index;	/* REGION */
		__u32 dmabuf_id;	/* DMABUF */
		__u32 drm_fb_id;	/* DRM_FB: framebuffer object id on the host DRM device */
	};
};

#define VFIO_GFX_PLANE_INFO_DRM_FB_SIZE 64

#endif /* VGPU_FLIP_VFIO_GFX_DRM_FB_H */
