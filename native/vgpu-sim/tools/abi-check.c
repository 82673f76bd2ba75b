// SPDX-License-Identifier: GPL-2.0
/*
 * abi-check: raw VFIO_DEVICE_QUERY_GFX_PLANE / GET_GFX_DMABUF calls the typed addon cannot
 * make (short argsz, odd flag combinations), for the vgpu-sim kernel tests.
 * Usage: abi-check [FD]   (FD: an open VFIO device fd inherited from the caller, default 3)
 * Prints one JSON object: case name -> 0 or the positive errno of the ioctl.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/vfio.h>
#include "../../include/vfio_gfx_drm_fb.h"

static int fd;

static int query(unsigned int argsz, unsigned int flags, unsigned int plane_type)
{
	struct vfio_device_gfx_plane_info_drm_fb info;

	memset(&info, 0, sizeof(info));
	info.argsz = argsz;
	info.flags = flags;
	info.drm_plane_type = plane_type;
	return ioctl(fd, VFIO_DEVICE_QUERY_GFX_PLANE, &info) ? errno : 0;
}

int main(int argc, char **argv)
{
	const unsigned int full = sizeof(struct vfio_device_gfx_plane_info);
	const unsigned int minsz = offsetof(struct vfio_device_gfx_plane_info, dmabuf_id) + 4;
	unsigned int id = 0x7fffffff;

	fd = argc > 1 ? atoi(argv[1]) : 3;
	printf("{");
	printf("\"argsz_0\": %d, ", query(0, VFIO_GFX_PLANE_TYPE_PROBE | VFIO_GFX_PLANE_TYPE_DMABUF, 1));
	printf("\"argsz_minus_1\": %d, ", query(minsz - 1, VFIO_GFX_PLANE_TYPE_DMABUF, 1));
	printf("\"argsz_min\": %d, ", query(minsz, VFIO_GFX_PLANE_TYPE_DMABUF, 1));
	printf("\"argsz_full\": %d, ", query(full, VFIO_GFX_PLANE_TYPE_DMABUF, 1));
	printf("\"argsz_large\": %d, ", query(4096, VFIO_GFX_PLANE_TYPE_DMABUF, 1));
	printf("\"unknown_bit4\": %d, ", query(full, VFIO_GFX_PLANE_TYPE_DMABUF | (1u << 4), 1));
	printf("\"unknown_bit31\": %d, ", query(full, VFIO_GFX_PLANE_TYPE_PROBE | VFIO_GFX_PLANE_TYPE_DMABUF | (1u << 31), 1));
	printf("\"probe_none\": %d, ", query(full, VFIO_GFX_PLANE_TYPE_PROBE, 1));
	printf("\"probe_two\": %d, ", query(full, VFIO_GFX_PLANE_TYPE_PROBE | VFIO_GFX_PLANE_TYPE_DMABUF | VFIO_GFX_PLANE_TYPE_REGION, 1));
	printf("\"query_none\": %d, ", query(full, 0, 1));
	printf("\"query_two\": %d, ", query(full, VFIO_GFX_PLANE_TYPE_DMABUF | VFIO_GFX_PLANE_TYPE_REGION, 1));
	printf("\"bad_plane_type\": %d, ", query(full, VFIO_GFX_PLANE_TYPE_DMABUF, 7));
	printf("\"unknown_dmabuf_id\": %d", ioctl(fd, VFIO_DEVICE_GET_GFX_DMABUF, &id) ? errno : 0);
	printf("}\n");
	return 0;
}
