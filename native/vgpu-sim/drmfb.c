// SPDX-License-Identifier: GPL-2.0
/*
 * vgpu-sim drmfb.c: the DRM_FB plane type (native/include/vfio_gfx_drm_fb.h).
 *
 * The module binds to the host DRM device named by host_card (e.g. card0: vkms), as an
 * in-kernel DRM client. A plane's buffer state is exported as a dma-buf, imported into the
 * host device (PRIME) and wrapped into a framebuffer with the driver's own fb_create, exactly
 * as ADDFB2 would do, so its id lives in the device's object table and any client can use it.
 * When the guest flips or changes mode, every host plane that currently shows a framebuffer
 * of that guest plane is moved to the new one by an in-kernel atomic commit.
 */
#include <linux/dma-buf.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/string.h>
#include <drm/drm_atomic.h>
#include <drm/drm_atomic_uapi.h>
#include <drm/drm_client.h>
#include <drm/drm_device.h>
#include <drm/drm_drv.h>
#include <drm/drm_file.h>
#include <drm/drm_framebuffer.h>
#include <drm/drm_gem.h>
#include <drm/drm_mode_config.h>
#include <drm/drm_modeset_lock.h>
#include <drm/drm_plane.h>
#include <drm/drm_prime.h>

#include "vgpu_sim.h"

#define DRM_MAJOR_NR 226

static char *host_card;
module_param(host_card, charp, 0644);
MODULE_PARM_DESC(host_card,
		 "host DRM card node (e.g. card0) for the DRM_FB plane type; empty: DRM_FB unsupported. Bound at load or first use; changes after binding apply on the next module load");

static DEFINE_MUTEX(vsim_drm_lock);
static struct drm_client_dev vsim_client;
static struct drm_device *vsim_hdev;	/* set once bound, until module exit */
static int vsim_bind_err;

/* vsim_drm_lock held */
static int vsim_drm_bind(void)
{
	struct drm_device *dev;
	struct drm_file *df;
	struct file *f;
	char path[80];
	int ret;

	kernel_param_lock(THIS_MODULE);
	snprintf(path, sizeof(path), "/dev/dri/%s", host_card ? host_card : "");
	kernel_param_unlock(THIS_MODULE);
	strim(path);
	if (!strcmp(path, "/dev/dri/"))
		return -ENODEV;
	if (strchr(path + 9, '/'))
		return -EINVAL;
	f = filp_open(path, O_RDWR | O_CLOEXEC, 0);
	if (IS_ERR(f))
		return PTR_ERR(f);
	if (!S_ISCHR(file_inode(f)->i_mode) || imajor(file_inode(f)) != DRM_MAJOR_NR ||
	    !f->private_data) {
		ret = -ENOTTY;
		goto out;
	}
	df = f->private_data;
	dev = df->minor->dev;
	if (!drm_core_check_feature(dev, DRIVER_MODESET) ||
	    !drm_core_check_feature(dev, DRIVER_ATOMIC) || !dev->mode_config.funcs->fb_create) {
		ret = -EOPNOTSUPP;
		goto out;
	}
	/* an in-kernel client: its own drm_file (never master), a device and module reference */
	ret = drm_client_init(dev, &vsim_client, "vgpu_sim", NULL);
	if (!ret) {
		vsim_hdev = dev;
		pr_info("vgpu_sim: DRM_FB bound to %s (%s)\n", path, dev->driver->name);
	}
out:
	filp_close(f, NULL);
	return ret;
}

bool vsim_drm_available(void)
{
	bool ok;

	mutex_lock(&vsim_drm_lock);
	if (!vsim_hdev) {
		int ret = vsim_drm_bind();

		if (ret && ret != -ENODEV && ret != vsim_bind_err)
			pr_warn("vgpu_sim: cannot bind DRM_FB to the host_card: %d\n", ret);
		vsim_bind_err = ret;
	}
	ok = vsim_hdev != NULL;
	mutex_unlock(&vsim_drm_lock);
	return ok;
}

int vsim_drm_init(void)
{
	vsim_drm_available();	/* bind now if the card is there; retried on use otherwise */
	return 0;
}

void vsim_drm_exit(void)
{
	mutex_lock(&vsim_drm_lock);
	if (vsim_hdev) {
		drm_client_release(&vsim_client);
		vsim_hdev = NULL;
	}
	mutex_unlock(&vsim_drm_lock);
}

/*
 * The framebuffer of a buffer state on the host device, created on first use. The instance
 * lock is held (the buffer is cached); the framebuffer reference is the buffer's until it
 * leaves the cache (vsim_drm_buf_release).
 */
int vsim_drm_buf_fb(struct vsim_buf *b, u32 *fb_id)
{
	struct drm_device *dev = vsim_hdev;
	struct drm_mode_fb_cmd2 cmd = {};
	struct drm_gem_object *obj;
	struct drm_framebuffer *fb;
	struct dma_buf *dmabuf;
	u32 handle;
	int ret;

	if (b->fb) {
		*fb_id = b->fb->base.id;
		return 0;
	}
	if (!dev)
		return -ENODEV;
	dmabuf = vsim_buf_export(b);
	if (IS_ERR(dmabuf))
		return PTR_ERR(dmabuf);
	obj = dev->driver->gem_prime_import ? dev->driver->gem_prime_import(dev, dmabuf)
					    : drm_gem_prime_import(dev, dmabuf);
	dma_buf_put(dmabuf);	/* the import holds its own reference */
	if (IS_ERR(obj))
		return PTR_ERR(obj);
	ret = drm_gem_handle_create(vsim_client.file, obj, &handle);
	drm_gem_object_put(obj);
	if (ret)
		return ret;
	cmd.width = b->cfg.width;
	cmd.height = b->cfg.height;
	cmd.pixel_format = b->cfg.fourcc;
	cmd.handles[0] = handle;
	cmd.pitches[0] = b->cfg.stride;
	cmd.offsets[0] = 0;
	fb = dev->mode_config.funcs->fb_create(dev, vsim_client.file, &cmd);
	drm_gem_handle_delete(vsim_client.file, handle);	/* the fb holds the object */
	if (IS_ERR(fb))
		return PTR_ERR(fb);
	b->fb = fb;
	*fb_id = fb->base.id;
	return 0;
}

/* The buffer leaves the cache: take its framebuffer off every plane and drop it. */
void vsim_drm_buf_release(struct vsim_buf *b)
{
	struct drm_framebuffer *fb = b->fb;

	b->fb = NULL;
	if (fb)
		drm_framebuffer_remove(fb);
}

static bool vsim_fb_of_plane(struct vsim_dev *d, int plane, struct drm_framebuffer *fb)
{
	struct vsim_buf *b;

	if (!fb)
		return false;
	list_for_each_entry(b, &d->bufs, node)
		if (b->plane == plane && b->fb == fb)
			return true;
	return false;
}

/* the new plane state for fb `nfb` replacing the shown `ofb` (sizes may differ) */
static void vsim_retarget(struct drm_plane_state *ps, struct drm_framebuffer *ofb,
			  struct drm_framebuffer *nfb)
{
	bool unscaled = ps->src_w == (u32)ps->crtc_w << 16 && ps->src_h == (u32)ps->crtc_h << 16;
	bool whole = ps->src_x == 0 && ps->src_y == 0 && ps->src_w == ofb->width << 16 &&
		     ps->src_h == ofb->height << 16;

	drm_atomic_set_fb_for_plane(ps, nfb);
	if (nfb->width == ofb->width && nfb->height == ofb->height)
		return;
	if (whole) {
		ps->src_x = 0;
		ps->src_y = 0;
		ps->src_w = nfb->width << 16;
		ps->src_h = nfb->height << 16;
		if (unscaled) {
			ps->crtc_w = nfb->width;
			ps->crtc_h = nfb->height;
		}
	}
}

/*
 * The guest changed `plane`: newb is its new buffer state (NULL: disabled or not showable).
 * Every host plane showing one of this guest plane's framebuffers gets the new framebuffer,
 * or is disabled (unless keep_last_frame), in one atomic commit. d->lock held.
 */
void vsim_drm_plane_update(struct vsim_dev *d, int plane, struct vsim_buf *newb)
{
	struct drm_device *dev = vsim_hdev;
	struct vsim_plane *p = &d->planes[plane];
	struct drm_modeset_acquire_ctx ctx;
	struct drm_framebuffer *nfb = NULL;
	struct drm_atomic_state *state;
	struct drm_plane *hp;
	struct vsim_buf *b;
	bool any = false, changed;
	u32 id;
	int ret;

	if (!dev)
		return;
	list_for_each_entry(b, &d->bufs, node)
		if (b->plane == plane && b->fb)
			any = true;
	if (!any)
		return;	/* nobody asked for a framebuffer of this plane */
	if (!newb && vsim_keep_last_frame)
		return;

	if (newb) {
		ret = vsim_drm_buf_fb(newb, &id);
		if (ret) {
			p->kflip_err = ret;
			return;
		}
		nfb = newb->fb;
	}
	state = drm_atomic_state_alloc(dev);
	if (!state) {
		p->kflip_err = -ENOMEM;
		return;
	}
	drm_modeset_acquire_init(&ctx, 0);
	state->acquire_ctx = &ctx;
retry:
	changed = false;
	drm_for_each_plane(hp, dev) {
		struct drm_plane_state *ps;

		ret = drm_modeset_lock(&hp->mutex, &ctx);
		if (ret)
			goto fail;
		if (!vsim_fb_of_plane(d, plane, hp->state->fb))
			continue;
		if (hp->state->fb == nfb)
			continue;
		ps = drm_atomic_get_plane_state(state, hp);
		if (IS_ERR(ps)) {
			ret = PTR_ERR(ps);
			goto fail;
		}
		if (nfb) {
			vsim_retarget(ps, hp->state->fb, nfb);
		} else {
			ret = drm_atomic_set_crtc_for_plane(ps, NULL);
			if (ret)
				goto fail;
			drm_atomic_set_fb_for_plane(ps, NULL);
		}
		changed = true;
	}
	/*
	 * NOTE (display event IRQ, display_irq.c): this in-kernel flip is still a blocking commit
	 * made inside the guest's write, not aligned to the guest vblank clock that coalesces the
	 * display event. Other tests depend on that (the host plane shows the new frame when the
	 * write returns); a nonblocking commit at the guest vblank is future work.
	 */
	ret = changed ? drm_atomic_commit(state) : 0;
fail:
	if (ret == -EDEADLK) {
		drm_atomic_state_clear(state);
		drm_modeset_backoff(&ctx);
		goto retry;
	}
	if (changed || ret) {
		p->kflip_err = ret;
		if (!ret)
			p->kflips++;
		else
			pr_debug("vgpu_sim: in-kernel commit for %s failed: %d\n",
				 vsim_plane_name(plane), ret);
	}
	drm_atomic_state_put(state);
	drm_modeset_drop_locks(&ctx);
	drm_modeset_acquire_fini(&ctx);
}

/* the framebuffer id of the plane's current buffer (0 with the reason when there is none) */
u32 vsim_drm_current_fb_id(struct vsim_dev *d, int plane, char *why, size_t whylen)
{
	u32 id = 0;
	int ret;

	if (!vsim_drm_available()) {
		snprintf(why, whylen, "not bound to a host DRM device (module parameter host_card)");
		return 0;
	}
	ret = vsim_plane_fb_id(d, plane, &id, why, whylen);
	return ret ? 0 : id;
}
