/* SPDX-License-Identifier: GPL-2.0 */
/* vgpu-sim: shared definitions of the module's parts (core, dmabuf, debugfs, drmfb). */
#ifndef VGPU_SIM_H
#define VGPU_SIM_H

#include <linux/hrtimer.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mdev.h>
#include <linux/mutex.h>
#include <linux/sched.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/vfio.h>
#include <linux/workqueue.h>

#define VSIM_NAME "vgpu_sim"

/* device fd offsets: region index in the high bits, as vfio-pci does */
#define VSIM_REGION_SHIFT 40
#define VSIM_REGION_MASK ((1ULL << VSIM_REGION_SHIFT) - 1)
#define VSIM_VRAM_REGION VFIO_PCI_BAR0_REGION_INDEX
#define VSIM_CONFIG_SIZE 256

/* the display event IRQ (display_irq.c): the first index after vfio-pci's fixed five */
#define VSIM_DISPLAY_IRQ_INDEX VFIO_PCI_NUM_IRQS

/* cached buffer descriptors (dmabuf ids) per instance */
#define VSIM_CACHE_MAX 16

enum vsim_plane_idx { VSIM_PRIMARY, VSIM_CURSOR, VSIM_OVERLAY, VSIM_NPLANES };

struct vsim_type {
	struct mdev_type type;
	u32 vram_mb;
	u32 max_width, max_height;
	bool headless;			/* no display ABI (QUERY_GFX_PLANE: ENOTTY) */
};

/* What the guest programmed into one plane (any values: checked before use). */
struct vsim_plane_cfg {
	bool enabled;
	u32 fourcc;
	u64 modifier;
	u32 width, height, stride;
	u64 offset;
	s32 x, y;
	u32 xhot, yhot;
};

struct vsim_dev;

struct vsim_plane {
	struct vsim_dev *dev;
	int idx;
	struct vsim_plane_cfg cfg;
	bool not_ready;		/* fault: report size 0 although enabled */
	u64 kflips;		/* in-kernel commits that moved host planes (DRM_FB) */
	int kflip_err;		/* last error of such a commit */
	/*
	 * DRM_FB: the in-kernel flip runs in a worker (drmfb.c), never in the guest's write. Every
	 * guest change of the plane is one of: moved host planes (kflips), taken by a flip not made
	 * yet (kflip_coalesced), or found nothing to move (kflip_idle: no host plane shows this
	 * guest plane, or it already shows the buffer).
	 */
	struct work_struct kflip_work;
	bool kflip_event;	/* the display event waits for that flip (host planes show this plane) */
	u64 kflip_coalesced;
	u64 kflip_idle;
};

struct vsim_fault {
	struct vsim_dev *dev;
	int err;		/* positive errno, 0 = none */
	u32 count;		/* remaining failures */
};

/* The display event IRQ of one instance (display_irq.c), under its own spinlock. */
struct vsim_display_irq {
	spinlock_t lock;
	struct hrtimer timer;		/* one-shot, armed for the next vblank boundary */
	ktime_t epoch;			/* vblank 0 */
	u64 period_ns;
	u32 hz;
	struct eventfd_ctx *trigger;	/* SET_IRQS eventfd, NULL: none */
	bool masked, armed, dying;
	u32 held;			/* > 0: a change of several steps is under way (a reset):
					 * events wait, so it is ONE signal at the next vblank */
	u64 pending;			/* event values to deliver at the next vblank */
	u64 next_seq;			/* the boundary the armed timer is for */
	u64 last_signal_seq;		/* the boundary of the last signal (valid if signals) */
	u64 signals;			/* vblank signals delivered */
	u64 events;			/* guest changes noted */
	u64 loopbacks;			/* SET_IRQS loopback triggers delivered */
};

struct vsim_dev {
	struct vfio_device vdev;
	struct mdev_device *mdev;
	const struct vsim_type *type;
	struct mutex lock;		/* guest state, faults, counters: vsim_lock()/mutex_unlock() */
	const char *lock_site;		/* the function that took `lock` last (debugfs "lock") */
	pid_t lock_pid;

	struct page **pages;		/* video memory */
	unsigned int npages;
	u64 vram_size;
	void *vram;			/* kernel mapping of all pages */
	u8 vconfig[VSIM_CONFIG_SIZE];	/* PCI config space (pci.c), under lock */
	u8 vconfig_wmask[VSIM_CONFIG_SIZE];	/* writable bits per byte */
	struct eventfd_ctx *irq_trigger[VFIO_PCI_NUM_IRQS];	/* SET_IRQS eventfds */
	bool intx_masked;
	u64 irq_fired[VFIO_PCI_NUM_IRQS];
	u64 resets;			/* VFIO_DEVICE_RESET calls */
	struct vsim_display_irq irq;	/* display event IRQ (display_irq.c) */

	struct vsim_plane planes[VSIM_NPLANES];
	struct list_head bufs;		/* struct vsim_buf.node, under vsim_buf_lock */
	unsigned int nbufs;
	u32 next_id;
	u64 use_clock;

	u64 flip_count;
	struct vsim_fault fault_query, fault_dmabuf;
	bool fault_new_ids;

	struct dentry *dbg;
	bool open;
	int fb_id_plane;		/* debugfs fb_id: the plane it resolves */
};

/*
 * Take the instance lock and note where (read without the lock through debugfs "lock": a
 * hung reader of any instance file can be traced to the code that holds it).
 */
#define vsim_lock(d)						\
	do {							\
		mutex_lock(&(d)->lock);				\
		(d)->lock_site = __func__;			\
		(d)->lock_pid = task_pid_nr(current);		\
	} while (0)

/*
 * One buffer state of a plane (what a dmabuf_id names): a snapshot of the configuration and
 * its own references on the video-memory pages, so an exported dma-buf or a host framebuffer
 * keeps working after the guest flips away, resets, or the instance is removed.
 */
struct vsim_buf {
	struct kref ref;		/* cache entry + exported dma-buf + host fb import */
	struct list_head node;		/* in dev->bufs while cached */
	struct vsim_dev *dev;		/* NULL once out of the cache */
	u32 id;
	int plane;
	struct vsim_plane_cfg cfg;
	u64 size;			/* page aligned */
	struct page **pages;
	unsigned int npages;
	u64 last_use;

	struct dma_buf *dmabuf;		/* while exported (under vsim_buf_lock) */
	struct mutex vlock;
	void *vaddr;
	unsigned int vmap_count;

	struct drm_framebuffer *fb;	/* DRM_FB: framebuffer on the host device */
	bool fb_removed;		/* that framebuffer was removed: a flip in flight must not show it */
};

extern struct mutex vsim_buf_lock;
extern bool vsim_keep_last_frame;

/* core.c */
const char *vsim_plane_name(int idx);
int vsim_format_cpp(u32 fourcc);
void vsim_fourcc_str(u32 fourcc, char out[5]);
struct vsim_buf *vsim_plane_current(struct vsim_dev *d, int plane);
bool vsim_plane_check(const struct vsim_dev *d, int plane, const struct vsim_plane_cfg *c,
		      u64 *size, char *why, size_t whylen);
void vsim_buf_put(struct vsim_buf *b);
void vsim_guest_changed(struct vsim_dev *d, int plane);
void vsim_guest_reset(struct vsim_dev *d);
int vsim_plane_fb_id(struct vsim_dev *d, int plane, u32 *id, char *why, size_t whylen);

/* pci.c */
void vsim_pci_init_config(struct vsim_dev *d);
void vsim_pci_config_write(struct vsim_dev *d, unsigned int off, const u8 *buf, size_t len);
int vsim_pci_irq_info(struct vsim_dev *d, void __user *arg);
int vsim_pci_set_irqs(struct vsim_dev *d, void __user *arg);
void vsim_pci_irqs_release(struct vsim_dev *d);
void vsim_pci_request(struct vfio_device *vdev, unsigned int count);
int vsim_pci_describe(struct vsim_dev *d, char *buf, size_t len);

/* display_irq.c */
u32 vsim_num_irqs(const struct vsim_dev *d);
bool vsim_has_display_irq(const struct vsim_dev *d);
void vsim_display_irq_init(struct vsim_dev *d);
void vsim_display_irq_event(struct vsim_dev *d, u64 bits);
void vsim_display_irq_plane(struct vsim_dev *d, int plane);
void vsim_display_irq_reset(struct vsim_dev *d);
void vsim_display_irq_hold(struct vsim_dev *d);
void vsim_display_irq_unhold(struct vsim_dev *d, u64 bits);
void vsim_display_irq_release(struct vsim_dev *d);
void vsim_display_irq_shutdown(struct vsim_dev *d);
int vsim_display_irq_info(struct vsim_dev *d, void __user *arg);
int vsim_display_irq_set(struct vsim_dev *d, void __user *arg);
int vsim_display_irq_describe(struct vsim_dev *d, char *buf, size_t len);

/* dmabuf.c */
struct dma_buf *vsim_buf_export(struct vsim_buf *b);
int vsim_buf_get_dmabuf_fd(struct vsim_buf *b);

/* debugfs.c */
int vsim_debugfs_init(void);
void vsim_debugfs_exit(void);
void vsim_debugfs_add(struct vsim_dev *d);
void vsim_debugfs_remove(struct vsim_dev *d);

/* drmfb.c */
int vsim_drm_init(void);
void vsim_drm_exit(void);
bool vsim_drm_available(void);
int vsim_drm_buf_fb(struct vsim_buf *b, u32 *fb_id);
void vsim_drm_buf_release(struct vsim_buf *b);
bool vsim_drm_plane_changed(struct vsim_dev *d, int plane);
void vsim_drm_plane_stop(struct vsim_dev *d);
void vsim_drm_flip_work(struct work_struct *w);
u32 vsim_drm_current_fb_id(struct vsim_dev *d, int plane, char *why, size_t whylen);

#endif
