// SPDX-License-Identifier: GPL-2.0
/*
 * vgpu-sim drmfb.c: the DRM_FB plane type (native/include/vfio_gfx_drm_fb.h).
 *
 * The module binds to the host DRM device named by host_card (e.g. card0: vkms), as an
 * in-kernel DRM client. A plane's buffer state is exported as a dma-buf, imported into the
 * host device (PRIME) and wrapped into a framebuffer with the driver's own fb_create, exactly
 * as ADDFB2 would do, so its id lives in the device's object table and any client can use it.
 * When the guest flips or changes mode, every host plane that currently shows a framebuffer
 * of that guest plane is moved to the new one by an in-kernel atomic commit, made by a worker
 * (the guest's write never waits for it; flips faster than the host's commits coalesce).
 */
#include <linux/dma-buf.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/workqueue.h>
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
static struct workqueue_struct *vsim_kflip_wq;	/* the in-kernel flips (see vsim_drm_flip_work) */

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
	vsim_kflip_wq = alloc_ordered_workqueue("vgpu_sim_kflip", 0);
	if (!vsim_kflip_wq)
		return -ENOMEM;
	vsim_drm_available();	/* bind now if the card is there; retried on use otherwise */
	return 0;
}

/* after every instance is gone (their flips were cancelled then) */
void vsim_drm_exit(void)
{
	if (vsim_kflip_wq) {
		destroy_workqueue(vsim_kflip_wq);
		vsim_kflip_wq = NULL;
	}
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
	WRITE_ONCE(b->fb_removed, true);	/* before the removal takes the plane locks */
	if (fb)
		drm_framebuffer_remove(fb);
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
 * The in-kernel flip. The guest's write (flip, mode, disable, reset) only queues the plane's
 * work and returns: a vCPU must not wait a frame for the host's commit. The worker gathers,
 * under d->lock, the guest plane's framebuffers and its current buffer (taking references),
 * then commits without d->lock: every host plane showing one of those framebuffers gets the new
 * one, or is disabled (unless keep_last_frame), in one blocking atomic commit. Changes made
 * meanwhile queue the work again (or are taken by the flip not started yet: coalesced), so a
 * guest flipping faster than the host's vblank is shown at most once per commit, the newest
 * buffer last. One ordered workqueue for all instances: in-kernel commits never race each other.
 */
struct vsim_kflip {
	struct vsim_buf *newb;		/* referenced; NULL: the plane goes off */
	struct drm_framebuffer *nfb;	/* newb's framebuffer, referenced */
	struct drm_framebuffer *fbs[VSIM_CACHE_MAX];	/* the guest plane's framebuffers, referenced */
	int nfbs;
};

/*
 * d->lock held: the guest changed `plane`. true: host planes show one of its framebuffers, and
 * the in-kernel flip worker signals the display event once it has moved them.
 */
bool vsim_drm_plane_changed(struct vsim_dev *d, int plane)
{
	struct vsim_plane *p = &d->planes[plane];
	struct vsim_buf *b;
	bool shown = false;

	if (!vsim_kflip_wq)
		return false;
	list_for_each_entry(b, &d->bufs, node)
		if (b->plane == plane && b->fb)
			shown = true;
	if (!queue_work(vsim_kflip_wq, &p->kflip_work))
		p->kflip_coalesced++;	/* the queued flip, not started yet, shows this change too */
	if (shown)
		p->kflip_event = true;
	return shown;
}

/* no in-kernel flip of this instance is queued or running after this (d->lock NOT held) */
void vsim_drm_plane_stop(struct vsim_dev *d)
{
	int i;

	for (i = 0; i < VSIM_NPLANES; i++)
		cancel_work_sync(&d->planes[i].kflip_work);
}

/* d->lock held. > 0: a flip to make; 0: nothing to move; < 0: error */
static int vsim_kflip_prepare(struct vsim_dev *d, int plane, struct vsim_kflip *k)
{
	struct vsim_buf *b, *newb;
	u32 id;
	int ret;

	if (!vsim_hdev)
		return 0;
	list_for_each_entry(b, &d->bufs, node) {
		if (b->plane != plane || !b->fb || k->nfbs == ARRAY_SIZE(k->fbs))
			continue;
		drm_framebuffer_get(b->fb);
		k->fbs[k->nfbs++] = b->fb;
	}
	if (!k->nfbs)
		return 0;	/* nobody asked for a framebuffer of this plane */
	newb = vsim_plane_current(d, plane);
	if (IS_ERR(newb))
		return PTR_ERR(newb);
	if (!newb)
		return vsim_keep_last_frame ? 0 : 1;
	ret = vsim_drm_buf_fb(newb, &id);
	if (ret)
		return ret;
	kref_get(&newb->ref);
	k->newb = newb;
	k->nfb = newb->fb;
	drm_framebuffer_get(k->nfb);
	return 1;
}

static bool vsim_kflip_has(const struct vsim_kflip *k, const struct drm_framebuffer *fb)
{
	int i;

	for (i = 0; fb && i < k->nfbs; i++)
		if (k->fbs[i] == fb)
			return true;
	return false;
}

/* no d->lock: move the host planes; *moved: a commit was made */
static int vsim_kflip_commit(struct vsim_kflip *k, bool *moved)
{
	struct drm_device *dev = vsim_hdev;
	struct drm_modeset_acquire_ctx ctx;
	struct drm_atomic_state *state;
	struct drm_plane *hp;
	bool changed;
	int ret;

	*moved = false;
	state = drm_atomic_state_alloc(dev);
	if (!state)
		return -ENOMEM;
	drm_modeset_acquire_init(&ctx, 0);
	state->acquire_ctx = &ctx;
retry:
	changed = false;
	drm_for_each_plane(hp, dev) {
		struct drm_plane_state *ps;

		ret = drm_modeset_lock(&hp->mutex, &ctx);
		if (ret)
			goto fail;
		if (!vsim_kflip_has(k, hp->state->fb) || hp->state->fb == k->nfb)
			continue;
		ps = drm_atomic_get_plane_state(state, hp);
		if (IS_ERR(ps)) {
			ret = PTR_ERR(ps);
			goto fail;
		}
		if (k->nfb) {
			vsim_retarget(ps, hp->state->fb, k->nfb);
		} else {
			ret = drm_atomic_set_crtc_for_plane(ps, NULL);
			if (ret)
				goto fail;
			drm_atomic_set_fb_for_plane(ps, NULL);
		}
		changed = true;
	}
	/*
	 * The new buffer left the cache meanwhile (its framebuffer removed, which needs these
	 * plane locks, so it cannot happen from here on): never put it back on a plane.
	 */
	if (k->newb && READ_ONCE(k->newb->fb_removed))
		changed = false;
	ret = changed ? drm_atomic_commit(state) : 0;
fail:
	if (ret == -EDEADLK) {
		drm_atomic_state_clear(state);
		drm_modeset_backoff(&ctx);
		goto retry;
	}
	*moved = changed && !ret;
	drm_atomic_state_put(state);
	drm_modeset_drop_locks(&ctx);
	drm_modeset_acquire_fini(&ctx);
	return ret;
}

void vsim_drm_flip_work(struct work_struct *w)
{
	struct vsim_plane *p = container_of(w, struct vsim_plane, kflip_work);
	struct vsim_dev *d = p->dev;
	struct vsim_kflip k = {};
	bool moved = false;
	int ret, i;

	vsim_lock(d);
	ret = vsim_kflip_prepare(d, p->idx, &k);
	mutex_unlock(&d->lock);
	if (ret > 0)
		ret = vsim_kflip_commit(&k, &moved);
	vsim_lock(d);
	if (moved)
		p->kflips++;
	else if (!ret)
		p->kflip_idle++;
	if (moved || ret) {
		p->kflip_err = ret;
		if (ret)
			pr_debug("vgpu_sim: in-kernel commit for %s failed: %d\n", vsim_plane_name(p->idx), ret);
	}
	if (p->kflip_event) {	/* the change's display event, now that the host plane followed */
		p->kflip_event = false;
		vsim_display_irq_plane(d, p->idx);
	}
	mutex_unlock(&d->lock);
	for (i = 0; i < k.nfbs; i++)
		drm_framebuffer_put(k.fbs[i]);
	if (k.nfb)
		drm_framebuffer_put(k.nfb);
	if (k.newb)
		vsim_buf_put(k.newb);
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
