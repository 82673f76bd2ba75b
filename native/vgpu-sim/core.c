// SPDX-License-Identifier: GPL-2.0
/*
 * vgpu-sim: a simulated vGPU for the VFIO mdev display ABI (QUERY_GFX_PLANE / GET_GFX_DMABUF,
 * the video memory as a region, and the proposed DRM_FB plane type). The "guest" is driven
 * through debugfs (see README.md). Written for vgpu-flip's kernel tests and as a reference.
 *
 * core.c: module, mdev parent and types, the VFIO device (regions, ioctls), the plane checks
 * and the cache of buffer states (dmabuf ids).
 */
#include <linux/ctype.h>
#include <linux/device.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/pci_regs.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include <asm/unaligned.h>
#include <drm/drm_fourcc.h>
#include <drm/drm_plane.h>

#include "vfio_gfx_display_irq.h"
#include "vfio_gfx_drm_fb.h"
#include "vgpu_sim.h"

#define VSIM_ALL_TYPE_BITS (VFIO_GFX_PLANE_TYPE_DMABUF | VFIO_GFX_PLANE_TYPE_REGION | \
			    VFIO_GFX_PLANE_TYPE_DRM_FB)
#define VSIM_ALL_FLAGS (VFIO_GFX_PLANE_TYPE_PROBE | VSIM_ALL_TYPE_BITS)

static unsigned int vram_budget_mb = 256;
module_param(vram_budget_mb, uint, 0444);
MODULE_PARM_DESC(vram_budget_mb, "video memory shared by all instances in MiB (default 256)");

bool vsim_keep_last_frame;
module_param_named(keep_last_frame, vsim_keep_last_frame, bool, 0644);
MODULE_PARM_DESC(keep_last_frame,
		 "DRM_FB: on guest reset / plane disable keep the host plane on its last frame instead of disabling it");

DEFINE_MUTEX(vsim_buf_lock);
static atomic_t vsim_used_mb = ATOMIC_INIT(0);

static struct vsim_type vsim_types[] = {
	{ .type.sysfs_name = "small", .type.pretty_name = "vgpu-sim small (32 MiB, up to 1920x1080)",
	  .vram_mb = 32, .max_width = 1920, .max_height = 1080 },
	{ .type.sysfs_name = "large", .type.pretty_name = "vgpu-sim large (128 MiB, up to 3840x2160)",
	  .vram_mb = 128, .max_width = 3840, .max_height = 2160 },
	/* compute only (like NVIDIA's C-series profiles): a VFIO PCI device without the display ABI */
	{ .type.sysfs_name = "headless", .type.pretty_name = "vgpu-sim headless (16 MiB, no display)",
	  .vram_mb = 16, .headless = true },
};
static struct mdev_type *vsim_mdev_types[] = { &vsim_types[0].type, &vsim_types[1].type,
					       &vsim_types[2].type };

static struct mdev_parent vsim_parent;
static struct device vsim_parent_dev;
static struct class *vsim_class;
static const struct vfio_device_ops vsim_dev_ops;

/* ------------------------------------------------------------------ planes and formats */

static const char *const vsim_plane_names[VSIM_NPLANES] = { "primary", "cursor", "overlay" };

const char *vsim_plane_name(int idx)
{
	return idx >= 0 && idx < VSIM_NPLANES ? vsim_plane_names[idx] : "?";
}

int vsim_format_cpp(u32 fourcc)
{
	switch (fourcc) {
	case DRM_FORMAT_XRGB8888:
	case DRM_FORMAT_ARGB8888:
	case DRM_FORMAT_XBGR8888:
	case DRM_FORMAT_ABGR8888:
		return 4;
	case DRM_FORMAT_RGB565:
		return 2;
	default:
		return 0;
	}
}

void vsim_fourcc_str(u32 f, char out[5])
{
	int i;

	for (i = 0; i < 4; i++) {
		char c = (f >> (8 * i)) & 0xff;

		out[i] = isprint(c) ? c : '?';
	}
	out[4] = 0;
}

static int vsim_plane_from_drm_type(u32 t)
{
	switch (t) {
	case DRM_PLANE_TYPE_PRIMARY:
		return VSIM_PRIMARY;
	case DRM_PLANE_TYPE_CURSOR:
		return VSIM_CURSOR;
	case DRM_PLANE_TYPE_OVERLAY:
		return VSIM_OVERLAY;
	default:
		return -1;
	}
}

/*
 * Can the plane be shown as configured? Every guest value is checked here, in 64-bit
 * arithmetic, before anything reads video memory on its behalf. On failure `why` says what
 * is wrong (shown in debugfs "status").
 */
bool vsim_plane_check(const struct vsim_dev *d, int plane, const struct vsim_plane_cfg *c,
		      u64 *size, char *why, size_t whylen)
{
	int cpp = vsim_format_cpp(c->fourcc);
	u64 need;

	*size = 0;
	if (!c->enabled) {
		snprintf(why, whylen, "disabled");
		return false;
	}
	if (!cpp) {
		char fcc[5];

		vsim_fourcc_str(c->fourcc, fcc);
		snprintf(why, whylen, "format %s (0x%08x) not supported (XR24 AR24 XB24 AB24 RG16)",
			 fcc, c->fourcc);
		return false;
	}
	if (c->modifier != DRM_FORMAT_MOD_LINEAR) {
		snprintf(why, whylen, "modifier 0x%llx not supported (linear only)", c->modifier);
		return false;
	}
	if (!c->width || !c->height) {
		snprintf(why, whylen, "empty size %ux%u", c->width, c->height);
		return false;
	}
	if (c->width > d->type->max_width || c->height > d->type->max_height) {
		snprintf(why, whylen, "size %ux%u exceeds the maximum %ux%u", c->width, c->height,
			 d->type->max_width, d->type->max_height);
		return false;
	}
	if ((u64)c->stride < (u64)c->width * cpp) {
		snprintf(why, whylen, "stride %u smaller than width*cpp %llu", c->stride,
			 (u64)c->width * cpp);
		return false;
	}
	if (c->stride % 4) {
		snprintf(why, whylen, "stride %u not a multiple of 4", c->stride);
		return false;
	}
	if (c->offset & ~PAGE_MASK) {
		snprintf(why, whylen, "offset 0x%llx not page aligned", c->offset);
		return false;
	}
	need = (u64)c->stride * c->height;
	if (c->offset >= d->vram_size || need > d->vram_size - c->offset) {
		snprintf(why, whylen,
			 "offset 0x%llx + stride*height 0x%llx beyond video memory (0x%llx bytes)",
			 c->offset, need, d->vram_size);
		return false;
	}
	*size = PAGE_ALIGN(need);
	if (*size > d->vram_size - c->offset)
		*size = need;	/* cannot happen with page-sized video memory */
	snprintf(why, whylen, "ok");
	return true;
}

/* ------------------------------------------------------------------ buffer cache */

static void vsim_buf_free(struct kref *ref)
{
	struct vsim_buf *b = container_of(ref, struct vsim_buf, ref);
	unsigned int i;

	WARN_ON(b->vaddr);
	for (i = 0; i < b->npages; i++)
		put_page(b->pages[i]);
	kvfree(b->pages);
	kfree(b);
}

void vsim_buf_put(struct vsim_buf *b)
{
	kref_put(&b->ref, vsim_buf_free);
}

static bool vsim_same_buffer(const struct vsim_plane_cfg *a, const struct vsim_plane_cfg *b)
{
	return a->fourcc == b->fourcc && a->modifier == b->modifier && a->width == b->width &&
	       a->height == b->height && a->stride == b->stride && a->offset == b->offset;
}

/* d->lock held: take a buffer state out of the cache (it lives on while exported). */
static void vsim_cache_drop(struct vsim_dev *d, struct vsim_buf *b)
{
	mutex_lock(&vsim_buf_lock);
	list_del_init(&b->node);
	b->dev = NULL;
	d->nbufs--;
	mutex_unlock(&vsim_buf_lock);
	if (b->fb)
		vsim_drm_buf_release(b);
	vsim_buf_put(b);
}

static void vsim_cache_clear(struct vsim_dev *d)
{
	struct vsim_buf *b, *tmp;

	list_for_each_entry_safe(b, tmp, &d->bufs, node)
		vsim_cache_drop(d, b);
}

/* d->lock held: the least recently used state that is not any plane's current buffer */
static void vsim_cache_evict_one(struct vsim_dev *d)
{
	struct vsim_buf *b, *victim = NULL;

	list_for_each_entry(b, &d->bufs, node) {
		const struct vsim_plane_cfg *cur = &d->planes[b->plane].cfg;

		if (cur->enabled && vsim_same_buffer(cur, &b->cfg))
			continue;
		if (!victim || b->last_use < victim->last_use)
			victim = b;
	}
	if (!victim)	/* all current: drop the oldest anyway */
		list_for_each_entry(b, &d->bufs, node)
			if (!victim || b->last_use < victim->last_use)
				victim = b;
	if (victim)
		vsim_cache_drop(d, victim);
}

/*
 * d->lock held. The cached buffer state of a plane's current (valid) configuration, created if
 * needed; force_new gives a fresh one (fault: new ids on every query). The pointer stays valid
 * while d->lock is held.
 */
static struct vsim_buf *vsim_plane_buf(struct vsim_dev *d, int plane, u64 size, bool force_new)
{
	const struct vsim_plane_cfg *c = &d->planes[plane].cfg;
	struct vsim_buf *b;
	unsigned int i, first;

	if (!force_new) {
		list_for_each_entry(b, &d->bufs, node) {
			if (b->plane == plane && vsim_same_buffer(&b->cfg, c)) {
				b->last_use = ++d->use_clock;
				b->cfg = *c;
				return b;
			}
		}
	}
	while (d->nbufs >= VSIM_CACHE_MAX)
		vsim_cache_evict_one(d);

	b = kzalloc(sizeof(*b), GFP_KERNEL);
	if (!b)
		return ERR_PTR(-ENOMEM);
	b->npages = size >> PAGE_SHIFT;
	b->pages = kvmalloc_array(b->npages, sizeof(*b->pages), GFP_KERNEL);
	if (!b->pages) {
		kfree(b);
		return ERR_PTR(-ENOMEM);
	}
	first = c->offset >> PAGE_SHIFT;
	if (WARN_ON(first + b->npages > d->npages)) {
		kvfree(b->pages);
		kfree(b);
		return ERR_PTR(-EINVAL);
	}
	for (i = 0; i < b->npages; i++) {
		b->pages[i] = d->pages[first + i];
		get_page(b->pages[i]);
	}
	kref_init(&b->ref);
	mutex_init(&b->vlock);
	INIT_LIST_HEAD(&b->node);
	b->plane = plane;
	b->cfg = *c;
	b->size = size;
	b->id = d->next_id++;
	if (!d->next_id)
		d->next_id = 1;
	b->last_use = ++d->use_clock;

	mutex_lock(&vsim_buf_lock);
	b->dev = d;
	list_add_tail(&b->node, &d->bufs);
	d->nbufs++;
	mutex_unlock(&vsim_buf_lock);
	return b;
}

/*
 * The guest changed a plane (mode, flip, disable): host planes showing one of its framebuffers
 * (DRM_FB) follow, in the in-kernel flip worker (drmfb.c). d->lock held; returns at once.
 */
void vsim_guest_changed(struct vsim_dev *d, int plane)
{
	/*
	 * The display event, at the next vblank; while host planes show this guest plane (DRM_FB)
	 * it is signalled by the in-kernel flip once made, so whoever looks then finds the host
	 * plane already following the guest.
	 */
	if (d->type->headless || !vsim_drm_available() || !vsim_drm_plane_changed(d, plane))
		vsim_display_irq_plane(d, plane);
}

/* d->lock held: the cached buffer state of the plane's current configuration; NULL if none */
struct vsim_buf *vsim_plane_current(struct vsim_dev *d, int plane)
{
	char why[128];
	u64 size;

	if (!vsim_plane_check(d, plane, &d->planes[plane].cfg, &size, why, sizeof(why)))
		return NULL;
	return vsim_plane_buf(d, plane, size, false);
}

/* DRM_FB: the framebuffer id of the plane's current buffer (d->lock held) */
int vsim_plane_fb_id(struct vsim_dev *d, int plane, u32 *id, char *why, size_t whylen)
{
	struct vsim_plane *p = &d->planes[plane];
	struct vsim_buf *b;
	u64 size;

	*id = 0;
	if (d->type->headless) {
		snprintf(why, whylen, "headless type: no display");
		return -ENODEV;
	}
	if (p->not_ready) {
		snprintf(why, whylen, "not ready (fault injected)");
		return -ENODATA;
	}
	if (!vsim_plane_check(d, plane, &p->cfg, &size, why, whylen))
		return -ENODATA;
	b = vsim_plane_buf(d, plane, size, false);
	if (IS_ERR(b))
		return PTR_ERR(b);
	return vsim_drm_buf_fb(b, id);
}

/* guest reset: all planes off (d->lock held); one display event for all of it */
void vsim_guest_reset(struct vsim_dev *d)
{
	int i;

	vsim_display_irq_hold(d);
	for (i = 0; i < VSIM_NPLANES; i++) {
		bool was = d->planes[i].cfg.enabled;

		memset(&d->planes[i].cfg, 0, sizeof(d->planes[i].cfg));
		if (was)
			vsim_guest_changed(d, i);
	}
	vsim_display_irq_unhold(d, VFIO_GFX_DISPLAY_PRI_EVENT_VAL | VFIO_GFX_DISPLAY_CUR_EVENT_VAL);
}

/* ------------------------------------------------------------------ ioctls */

static int vsim_query_plane(struct vsim_dev *d, void __user *arg)
{
	const size_t minsz = offsetofend(struct vfio_device_gfx_plane_info_drm_fb, region_index);
	struct vfio_device_gfx_plane_info_drm_fb info;
	u32 types, flags;
	struct vsim_plane *p;
	struct vsim_buf *b;
	char why[128];
	int plane, ret = 0;
	u64 size;

	if (copy_from_user(&info, arg, minsz))
		return -EFAULT;
	if (info.argsz < minsz)
		return -EINVAL;
	flags = info.flags;
	if (flags & ~VSIM_ALL_FLAGS)
		return -EINVAL;
	types = flags & VSIM_ALL_TYPE_BITS;
	if (hweight32(types) != 1)	/* exactly one type, for probes and queries */
		return -EINVAL;

	if (flags & VFIO_GFX_PLANE_TYPE_PROBE) {
		if (types == VFIO_GFX_PLANE_TYPE_DRM_FB && !vsim_drm_available())
			return -EINVAL;
		return 0;
	}
	if (types == VFIO_GFX_PLANE_TYPE_DRM_FB && !vsim_drm_available())
		return -EINVAL;
	plane = vsim_plane_from_drm_type(info.drm_plane_type);
	if (plane < 0)
		return -EINVAL;

	vsim_lock(d);
	if (d->fault_query.count) {
		d->fault_query.count--;
		ret = -d->fault_query.err;
		goto out;
	}
	p = &d->planes[plane];

	info.drm_format = 0;
	info.drm_format_mod = 0;
	info.width = 0;
	info.height = 0;
	info.stride = 0;
	info.size = 0;
	info.x_pos = 0;
	info.y_pos = 0;
	info.x_hot = 0;
	info.y_hot = 0;
	info.region_index = 0;
	if (p->not_ready || !vsim_plane_check(d, plane, &p->cfg, &size, why, sizeof(why)))
		goto copy;	/* not ready: 0 with size 0 */
	if (types == VFIO_GFX_PLANE_TYPE_REGION && p->cfg.offset != 0)
		goto copy;	/* a region consumer reads from offset 0 */

	info.drm_format = p->cfg.fourcc;
	info.drm_format_mod = p->cfg.modifier;
	info.width = p->cfg.width;
	info.height = p->cfg.height;
	info.stride = p->cfg.stride;
	info.size = size;
	info.x_pos = (u32)p->cfg.x;
	info.y_pos = (u32)p->cfg.y;
	if (plane == VSIM_CURSOR) {
		info.x_hot = p->cfg.xhot;
		info.y_hot = p->cfg.yhot;
	} else {
		info.x_hot = 0xffffffff;
		info.y_hot = 0xffffffff;
	}

	switch (types) {
	case VFIO_GFX_PLANE_TYPE_REGION:
		info.region_index = VSIM_VRAM_REGION;
		break;
	case VFIO_GFX_PLANE_TYPE_DMABUF:
		b = vsim_plane_buf(d, plane, size, d->fault_new_ids);
		if (IS_ERR(b)) {
			ret = PTR_ERR(b);
			goto out;
		}
		info.dmabuf_id = b->id;
		break;
	case VFIO_GFX_PLANE_TYPE_DRM_FB:
		b = vsim_plane_buf(d, plane, size, false);
		if (IS_ERR(b)) {
			ret = PTR_ERR(b);
			goto out;
		}
		ret = vsim_drm_buf_fb(b, &info.drm_fb_id);
		if (ret)
			goto out;
		break;
	}
copy:
	mutex_unlock(&d->lock);
	return copy_to_user(arg, &info, minsz) ? -EFAULT : 0;
out:
	mutex_unlock(&d->lock);
	return ret;
}

static int vsim_get_dmabuf(struct vsim_dev *d, void __user *arg)
{
	struct vsim_buf *b, *found = NULL;
	u32 id;
	int ret;

	if (get_user(id, (u32 __user *)arg))
		return -EFAULT;
	vsim_lock(d);
	if (d->fault_dmabuf.count) {
		d->fault_dmabuf.count--;
		mutex_unlock(&d->lock);
		return -d->fault_dmabuf.err;
	}
	list_for_each_entry(b, &d->bufs, node) {
		if (b->id == id) {
			found = b;
			break;
		}
	}
	if (!found) {
		mutex_unlock(&d->lock);
		return -ENOENT;
	}
	found->last_use = ++d->use_clock;
	ret = vsim_buf_get_dmabuf_fd(found);
	mutex_unlock(&d->lock);
	return ret;
}

/*
 * The video memory region carries a capability chain of one VFIO_REGION_INFO_CAP_SPARSE_MMAP
 * naming the whole region mmap'able (as vfio-pci does for BARs). Following the uapi: when argsz
 * is too small for the chain, the answer sets VFIO_REGION_INFO_FLAG_CAPS, cap_offset 0 and the
 * argsz needed; otherwise the chain follows the struct at cap_offset.
 */
#define VSIM_VRAM_CAPS_SIZE (sizeof(struct vfio_region_info_cap_sparse_mmap) + \
			     sizeof(struct vfio_region_sparse_mmap_area))

static int vsim_region_info(struct vsim_dev *d, void __user *arg)
{
	const size_t minsz = offsetofend(struct vfio_region_info, offset);
	struct vfio_region_info info;
	u64 capbuf[DIV_ROUND_UP(VSIM_VRAM_CAPS_SIZE, sizeof(u64))];
	struct vfio_region_info_cap_sparse_mmap *sparse = (void *)capbuf;
	bool with_caps = false;

	if (copy_from_user(&info, arg, minsz))
		return -EFAULT;
	if (info.argsz < minsz)
		return -EINVAL;
	if (info.index >= VFIO_PCI_NUM_REGIONS)
		return -EINVAL;
	info.offset = (u64)info.index << VSIM_REGION_SHIFT;
	info.cap_offset = 0;
	switch (info.index) {
	case VSIM_VRAM_REGION:
		info.size = d->vram_size;
		info.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
			     VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS;
		memset(capbuf, 0, sizeof(capbuf));
		sparse->header.id = VFIO_REGION_INFO_CAP_SPARSE_MMAP;
		sparse->header.version = 1;
		sparse->header.next = 0;	/* the last (only) capability */
		sparse->nr_areas = 1;
		sparse->areas[0].offset = 0;
		sparse->areas[0].size = d->vram_size;
		with_caps = true;
		break;
	case VFIO_PCI_CONFIG_REGION_INDEX:
		info.size = VSIM_CONFIG_SIZE;
		info.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
		break;
	default:
		info.size = 0;
		info.flags = 0;
	}
	if (with_caps) {
		const u32 need = sizeof(info) + VSIM_VRAM_CAPS_SIZE;

		if (info.argsz < need) {
			info.argsz = need;	/* tell the caller how much room the chain needs */
		} else {
			info.cap_offset = sizeof(info);
			if (copy_to_user(arg + sizeof(info), capbuf, VSIM_VRAM_CAPS_SIZE))
				return -EFAULT;
		}
		return copy_to_user(arg, &info, sizeof(info)) ? -EFAULT : 0;
	}
	return copy_to_user(arg, &info, minsz) ? -EFAULT : 0;
}

static long vsim_ioctl(struct vfio_device *vdev, unsigned int cmd, unsigned long arg)
{
	struct vsim_dev *d = container_of(vdev, struct vsim_dev, vdev);
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case VFIO_DEVICE_GET_INFO: {
		const size_t minsz = offsetofend(struct vfio_device_info, num_irqs);
		struct vfio_device_info info;

		if (copy_from_user(&info, uarg, minsz))
			return -EFAULT;
		if (info.argsz < minsz)
			return -EINVAL;
		info.flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET;
		info.num_regions = VFIO_PCI_NUM_REGIONS;
		info.num_irqs = vsim_num_irqs(d);	/* + the display event IRQ (display_irq.c) */
		return copy_to_user(uarg, &info, minsz) ? -EFAULT : 0;
	}
	case VFIO_DEVICE_GET_REGION_INFO:
		return vsim_region_info(d, uarg);
	case VFIO_DEVICE_GET_IRQ_INFO:
		return vsim_pci_irq_info(d, uarg);
	case VFIO_DEVICE_SET_IRQS:
		return vsim_pci_set_irqs(d, uarg);
	case VFIO_DEVICE_RESET:
		/*
		 * A function reset, as QEMU's vfio-pci does at every machine reset (also when it
		 * starts, before the guest runs): the guest's display is gone (all planes off, as
		 * after a reboot), config space returns to its power-on state, INTx is unmasked.
		 * The user's IRQ eventfds stay set up (as with vfio-pci).
		 */
		vsim_lock(d);
		d->resets++;
		vsim_display_irq_hold(d);	/* the whole reset is one signal */
		vsim_display_irq_reset(d);	/* unmasked; the reset is signalled at the next vblank */
		vsim_guest_reset(d);
		vsim_pci_init_config(d);
		d->intx_masked = false;
		vsim_display_irq_unhold(d, 0);
		mutex_unlock(&d->lock);
		return 0;
	case VFIO_DEVICE_QUERY_GFX_PLANE:
		if (d->type->headless)
			return -ENOTTY;	/* no display ABI at all, as a passthrough device */
		return vsim_query_plane(d, uarg);
	case VFIO_DEVICE_GET_GFX_DMABUF:
		if (d->type->headless)
			return -ENOTTY;
		return vsim_get_dmabuf(d, uarg);
	}
	return -ENOTTY;
}

/* ------------------------------------------------------------------ regions: read/write/mmap */

/* the emulated config space (pci.c): reads as stored, writes through the per-byte masks */
static ssize_t vsim_config_rw(struct vsim_dev *d, char __user *ubuf, size_t count, loff_t *ppos,
			      bool write)
{
	u64 off = *ppos & VSIM_REGION_MASK;
	u8 buf[VSIM_CONFIG_SIZE];

	if (off >= VSIM_CONFIG_SIZE)
		return 0;
	count = min_t(u64, count, VSIM_CONFIG_SIZE - off);
	if (write) {
		if (copy_from_user(buf, ubuf, count))
			return -EFAULT;
		vsim_lock(d);
		vsim_pci_config_write(d, off, buf, count);
		mutex_unlock(&d->lock);
	} else {
		vsim_lock(d);
		memcpy(buf, d->vconfig + off, count);
		mutex_unlock(&d->lock);
		if (copy_to_user(ubuf, buf, count))
			return -EFAULT;
	}
	*ppos += count;
	return count;
}

static ssize_t vsim_rw(struct vsim_dev *d, char __user *ubuf, size_t count, loff_t *ppos,
		       bool write)
{
	u64 pos = *ppos;
	u32 index = pos >> VSIM_REGION_SHIFT;
	u64 off = pos & VSIM_REGION_MASK;
	u64 limit;
	u8 *base;

	if (index == VFIO_PCI_CONFIG_REGION_INDEX)
		return vsim_config_rw(d, ubuf, count, ppos, write);
	switch (index) {
	case VSIM_VRAM_REGION:
		base = d->vram;
		limit = d->vram_size;
		break;
	default:
		return -EINVAL;
	}
	if (off >= limit)
		return 0;
	count = min_t(u64, count, limit - off);
	if (write) {
		if (copy_from_user(base + off, ubuf, count))
			return -EFAULT;
	} else if (copy_to_user(ubuf, base + off, count)) {
		return -EFAULT;
	}
	*ppos += count;
	return count;
}

static ssize_t vsim_read(struct vfio_device *vdev, char __user *buf, size_t count, loff_t *ppos)
{
	return vsim_rw(container_of(vdev, struct vsim_dev, vdev), buf, count, ppos, false);
}

static ssize_t vsim_write(struct vfio_device *vdev, const char __user *buf, size_t count,
			  loff_t *ppos)
{
	return vsim_rw(container_of(vdev, struct vsim_dev, vdev), (char __user *)buf, count, ppos,
		       true);
}

static vm_fault_t vsim_vram_fault(struct vm_fault *vmf)
{
	struct vsim_dev *d = vmf->vma->vm_private_data;
	pgoff_t pg = vmf->pgoff - (((u64)VSIM_VRAM_REGION << VSIM_REGION_SHIFT) >> PAGE_SHIFT);

	if (pg >= d->npages)
		return VM_FAULT_SIGBUS;
	vmf->page = d->pages[pg];
	get_page(vmf->page);
	return 0;
}

static const struct vm_operations_struct vsim_vram_vm_ops = {
	.fault = vsim_vram_fault,
};

static int vsim_mmap(struct vfio_device *vdev, struct vm_area_struct *vma)
{
	struct vsim_dev *d = container_of(vdev, struct vsim_dev, vdev);
	u64 start = (u64)vma->vm_pgoff << PAGE_SHIFT;
	u64 len = vma->vm_end - vma->vm_start;

	if ((start >> VSIM_REGION_SHIFT) != VSIM_VRAM_REGION)
		return -EINVAL;
	start &= VSIM_REGION_MASK;
	if (start >= d->vram_size || len > d->vram_size - start)
		return -EINVAL;
	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	vma->vm_flags |= VM_DONTEXPAND | VM_DONTDUMP;
	vma->vm_ops = &vsim_vram_vm_ops;
	vma->vm_private_data = d;
	return 0;
}

/* ------------------------------------------------------------------ device lifetime */

static bool vsim_budget_take(u32 mb)
{
	int used = atomic_read(&vsim_used_mb);

	do {
		if (used + mb > vram_budget_mb)
			return false;
	} while (!atomic_try_cmpxchg(&vsim_used_mb, &used, used + mb));
	return true;
}

static int vsim_init_dev(struct vfio_device *vdev)
{
	struct vsim_dev *d = container_of(vdev, struct vsim_dev, vdev);
	struct mdev_device *mdev = to_mdev_device(vdev->dev);
	const struct vsim_type *t = container_of(mdev->type, struct vsim_type, type);
	unsigned int i;
	int ret = -ENOMEM;

	if (!vsim_budget_take(t->vram_mb))
		return -ENOSPC;
	d->mdev = mdev;
	d->type = t;
	mutex_init(&d->lock);
	INIT_LIST_HEAD(&d->bufs);
	d->next_id = 1;
	d->vram_size = (u64)t->vram_mb << 20;
	d->npages = d->vram_size >> PAGE_SHIFT;
	d->pages = kvcalloc(d->npages, sizeof(*d->pages), GFP_KERNEL);
	if (!d->pages)
		goto err_budget;
	for (i = 0; i < d->npages; i++) {
		d->pages[i] = alloc_page(GFP_KERNEL | __GFP_ZERO);
		if (!d->pages[i])
			goto err_pages;
	}
	d->vram = vmap(d->pages, d->npages, VM_MAP, PAGE_KERNEL);
	if (!d->vram)
		goto err_pages;
	for (i = 0; i < VSIM_NPLANES; i++) {
		d->planes[i].dev = d;
		d->planes[i].idx = i;
		INIT_WORK(&d->planes[i].kflip_work, vsim_drm_flip_work);
	}
	d->fault_query.dev = d;
	d->fault_dmabuf.dev = d;
	vsim_pci_init_config(d);
	vsim_display_irq_init(d);
	return 0;

err_pages:
	for (i = 0; i < d->npages && d->pages[i]; i++)
		__free_page(d->pages[i]);
	kvfree(d->pages);
err_budget:
	atomic_sub(t->vram_mb, &vsim_used_mb);
	return ret;
}

static void vsim_release_dev(struct vfio_device *vdev)
{
	struct vsim_dev *d = container_of(vdev, struct vsim_dev, vdev);
	unsigned int i;

	vsim_display_irq_shutdown(d);	/* already stopped by remove; the timer never outlives d */
	vsim_drm_plane_stop(d);		/* likewise: no in-kernel flip outlives d */
	vunmap(d->vram);
	for (i = 0; i < d->npages; i++)
		put_page(d->pages[i]);	/* buffers still exported keep their own references */
	kvfree(d->pages);
	atomic_sub(d->type->vram_mb, &vsim_used_mb);
	vfio_free_device(vdev);
}

static int vsim_open_device(struct vfio_device *vdev)
{
	struct vsim_dev *d = container_of(vdev, struct vsim_dev, vdev);

	vsim_lock(d);
	d->open = true;
	mutex_unlock(&d->lock);
	return 0;
}

static void vsim_close_device(struct vfio_device *vdev)
{
	struct vsim_dev *d = container_of(vdev, struct vsim_dev, vdev);

	vsim_lock(d);
	d->open = false;
	vsim_cache_clear(d);
	vsim_pci_irqs_release(d);	/* the user's eventfds go with the device */
	vsim_pci_init_config(d);
	mutex_unlock(&d->lock);
	vsim_display_irq_release(d);	/* display event eventfd detached, unmasked, timer stopped */
}

static int vsim_probe(struct mdev_device *mdev)
{
	struct vsim_dev *d;
	int ret;

	d = vfio_alloc_device(vsim_dev, vdev, &mdev->dev, &vsim_dev_ops);
	if (IS_ERR(d))
		return PTR_ERR(d);
	ret = vfio_register_emulated_iommu_dev(&d->vdev);
	if (ret) {
		vfio_put_device(&d->vdev);
		return ret;
	}
	dev_set_drvdata(&mdev->dev, d);
	vsim_debugfs_add(d);
	dev_info(&mdev->dev, "vgpu-sim instance: %s, %u MiB video memory\n",
		 d->type->type.sysfs_name, d->type->vram_mb);
	return 0;
}

static void vsim_remove(struct mdev_device *mdev)
{
	struct vsim_dev *d = dev_get_drvdata(&mdev->dev);

	vsim_debugfs_remove(d);		/* waits for debugfs writers */
	vfio_unregister_group_dev(&d->vdev);	/* waits for the VFIO fd to be closed */
	vsim_display_irq_shutdown(d);
	vsim_drm_plane_stop(d);		/* no writer is left to queue another in-kernel flip */
	vsim_lock(d);
	vsim_cache_clear(d);		/* buffers created through debugfs (fb_id) */
	mutex_unlock(&d->lock);
	vfio_put_device(&d->vdev);
}

static unsigned int vsim_get_available(struct mdev_type *mtype)
{
	const struct vsim_type *t = container_of(mtype, struct vsim_type, type);
	int used = atomic_read(&vsim_used_mb);

	return used >= (int)vram_budget_mb ? 0 : (vram_budget_mb - used) / t->vram_mb;
}

static ssize_t vsim_show_description(struct mdev_type *mtype, char *buf)
{
	const struct vsim_type *t = container_of(mtype, struct vsim_type, type);

	if (t->headless)
		return sysfs_emit(buf, "video memory %u MiB, no display (compute only)\n", t->vram_mb);
	return sysfs_emit(buf, "video memory %u MiB, max %ux%u, planes primary cursor overlay\n",
			  t->vram_mb, t->max_width, t->max_height);
}

static const struct vfio_device_ops vsim_dev_ops = {
	.name = "vgpu-sim",
	.init = vsim_init_dev,
	.release = vsim_release_dev,
	.open_device = vsim_open_device,
	.close_device = vsim_close_device,
	.read = vsim_read,
	.write = vsim_write,
	.ioctl = vsim_ioctl,
	.mmap = vsim_mmap,
	.request = vsim_pci_request,
};

static struct mdev_driver vsim_driver = {
	.device_api = VFIO_DEVICE_API_PCI_STRING,
	.driver = {
		.name = "vgpu_sim",
		.owner = THIS_MODULE,
		.mod_name = KBUILD_MODNAME,
	},
	.probe = vsim_probe,
	.remove = vsim_remove,
	.get_available = vsim_get_available,
	.show_description = vsim_show_description,
};

static void vsim_parent_release(struct device *dev)
{
}

static int __init vsim_init(void)
{
	int ret;

	ret = vsim_debugfs_init();
	if (ret)
		return ret;
	ret = vsim_drm_init();
	if (ret)
		goto err_debugfs;
	ret = mdev_register_driver(&vsim_driver);
	if (ret)
		goto err_drm;
	vsim_class = class_create(THIS_MODULE, VSIM_NAME);
	if (IS_ERR(vsim_class)) {
		ret = PTR_ERR(vsim_class);
		goto err_driver;
	}
	vsim_parent_dev.class = vsim_class;
	vsim_parent_dev.release = vsim_parent_release;
	dev_set_name(&vsim_parent_dev, "%s", VSIM_NAME);
	ret = device_register(&vsim_parent_dev);
	if (ret) {
		put_device(&vsim_parent_dev);
		goto err_class;
	}
	ret = mdev_register_parent(&vsim_parent, &vsim_parent_dev, &vsim_driver, vsim_mdev_types,
				   ARRAY_SIZE(vsim_mdev_types));
	if (ret)
		goto err_device;
	pr_info("vgpu_sim: loaded, %u MiB video memory budget\n", vram_budget_mb);
	return 0;

err_device:
	device_unregister(&vsim_parent_dev);
err_class:
	class_destroy(vsim_class);
err_driver:
	mdev_unregister_driver(&vsim_driver);
err_drm:
	vsim_drm_exit();
err_debugfs:
	vsim_debugfs_exit();
	return ret;
}

static void __exit vsim_exit(void)
{
	mdev_unregister_parent(&vsim_parent);	/* removes all instances */
	device_unregister(&vsim_parent_dev);
	class_destroy(vsim_class);
	mdev_unregister_driver(&vsim_driver);
	vsim_drm_exit();
	vsim_debugfs_exit();
}

module_init(vsim_init);
module_exit(vsim_exit);
MODULE_LICENSE("GPL v2");
MODULE_DESCRIPTION("vgpu-sim: simulated vGPU implementing the VFIO mdev display ABI");
MODULE_IMPORT_NS(DMA_BUF);
