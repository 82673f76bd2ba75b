// SPDX-License-Identifier: GPL-2.0
/*
 * vgpu-sim debugfs.c: the "guest" interface, /sys/kernel/debug/vgpu_sim/<uuid>/ (README.md).
 * Every value written here is only stored; it is checked (vsim_plane_check) before any use.
 */
#include <linux/ctype.h>
#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <drm/drm_fourcc.h>

#include "vgpu_sim.h"

static struct dentry *vsim_dbg_root;

#define VSIM_WRITE_MAX 512

/* copy a user write into a NUL-terminated, trimmed kernel string */
static char *vsim_get_text(const char __user *ubuf, size_t len)
{
	char *s;

	if (len > VSIM_WRITE_MAX)
		return ERR_PTR(-E2BIG);
	s = memdup_user_nul(ubuf, len);
	if (IS_ERR(s))
		return s;
	strim(s);
	return s;
}

static ssize_t vsim_read_text(char __user *ubuf, size_t len, loff_t *ppos, char *text)
{
	ssize_t ret;

	if (!text)
		return -ENOMEM;
	ret = simple_read_from_buffer(ubuf, len, ppos, text, strlen(text));
	kfree(text);
	return ret;
}

/* ------------------------------------------------------------------ per plane */

static int vsim_parse_fourcc(const char *v, u32 *out)
{
	if (strlen(v) == 4 && !(v[0] == '0' && (v[1] == 'x' || v[1] == 'X'))) {
		*out = fourcc_code(v[0], v[1], v[2], v[3]);
		return 0;
	}
	return kstrtou32(v, 0, out);
}

/* "key=value ..." onto a copy of the plane's configuration; unknown keys are an error */
static int vsim_parse_mode(char *s, struct vsim_plane_cfg *c)
{
	bool stride_given = false, geometry_given = false, buffer_given = false;
	char *tok;
	int ret = 0;

	while ((tok = strsep(&s, " \t\n,")) != NULL) {
		char *val;

		if (!*tok)
			continue;
		val = strchr(tok, '=');
		if (!val)
			return -EINVAL;
		*val++ = 0;
		if (!strcmp(tok, "fourcc") || !strcmp(tok, "format")) {
			ret = vsim_parse_fourcc(val, &c->fourcc);
			geometry_given = true;
		} else if (!strcmp(tok, "modifier")) {
			ret = kstrtou64(val, 0, &c->modifier);
		} else if (!strcmp(tok, "width")) {
			ret = kstrtou32(val, 0, &c->width);
			geometry_given = true;
		} else if (!strcmp(tok, "height")) {
			ret = kstrtou32(val, 0, &c->height);
		} else if (!strcmp(tok, "stride")) {
			ret = kstrtou32(val, 0, &c->stride);
			stride_given = true;
		} else if (!strcmp(tok, "offset")) {
			ret = kstrtou64(val, 0, &c->offset);
		} else if (!strcmp(tok, "x")) {
			ret = kstrtos32(val, 0, &c->x);
		} else if (!strcmp(tok, "y")) {
			ret = kstrtos32(val, 0, &c->y);
		} else if (!strcmp(tok, "xhot")) {
			ret = kstrtou32(val, 0, &c->xhot);
		} else if (!strcmp(tok, "yhot")) {
			ret = kstrtou32(val, 0, &c->yhot);
		} else {
			return -EINVAL;
		}
		if (ret)
			return ret;
		if (strcmp(tok, "x") && strcmp(tok, "y") && strcmp(tok, "xhot") && strcmp(tok, "yhot"))
			buffer_given = true;
	}
	/* stride defaults to a packed line when the geometry changes without one */
	if (geometry_given && !stride_given) {
		int cpp = vsim_format_cpp(c->fourcc);

		c->stride = cpp ? c->width * cpp : 0;
	}
	/* a mode enables the plane; only moving it (x, y, hotspot) does not */
	if (buffer_given)
		c->enabled = true;
	return 0;
}

static char *vsim_plane_describe(struct vsim_dev *d, int plane, bool with_reason)
{
	struct vsim_plane *p = &d->planes[plane];
	const struct vsim_plane_cfg *c = &p->cfg;
	char why[160], fcc[5];
	bool ok;
	u64 size;

	ok = vsim_plane_check(d, plane, c, &size, why, sizeof(why));
	if (ok && p->not_ready) {
		ok = false;
		size = 0;
		snprintf(why, sizeof(why), "not ready (fault injected)");
	}
	vsim_fourcc_str(c->fourcc, fcc);
	if (!with_reason)
		return kasprintf(GFP_KERNEL,
				 "fourcc=%s width=%u height=%u stride=%u offset=0x%llx x=%d y=%d xhot=%u yhot=%u modifier=0x%llx enabled=%d\n",
				 fcc, c->width, c->height, c->stride, c->offset, c->x, c->y,
				 c->xhot, c->yhot, c->modifier, c->enabled);
	return kasprintf(GFP_KERNEL,
			 "plane=%s ready=%d size=%llu enabled=%d fourcc=%s width=%u height=%u stride=%u offset=0x%llx x=%d y=%d xhot=%u yhot=%u modifier=0x%llx region_ok=%d kflips=%llu kflip_err=%d kflip_coalesced=%llu kflip_idle=%llu kflip_pending=%d\nreason=%s\n",
			 vsim_plane_name(plane), ok, size, c->enabled, fcc, c->width, c->height,
			 c->stride, c->offset, c->x, c->y, c->xhot, c->yhot, c->modifier,
			 ok && c->offset == 0, p->kflips, p->kflip_err, p->kflip_coalesced,
			 p->kflip_idle, work_busy(&p->kflip_work) ? 1 : 0, why);
}

static ssize_t vsim_mode_read(struct file *f, char __user *ubuf, size_t len, loff_t *ppos)
{
	struct vsim_plane *p = file_inode(f)->i_private;
	char *text;

	vsim_lock(p->dev);
	text = vsim_plane_describe(p->dev, p->idx, false);
	mutex_unlock(&p->dev->lock);
	return vsim_read_text(ubuf, len, ppos, text);
}

static ssize_t vsim_mode_write(struct file *f, const char __user *ubuf, size_t len,
			       loff_t *ppos)
{
	struct vsim_plane *p = file_inode(f)->i_private;
	struct vsim_plane_cfg c;
	char *s = vsim_get_text(ubuf, len);
	int ret;

	if (IS_ERR(s))
		return PTR_ERR(s);
	vsim_lock(p->dev);
	c = p->cfg;
	ret = vsim_parse_mode(s, &c);
	if (!ret) {
		p->cfg = c;
		vsim_guest_changed(p->dev, p->idx);
	}
	mutex_unlock(&p->dev->lock);
	kfree(s);
	return ret ? ret : len;
}

static const struct file_operations vsim_mode_fops = {
	.owner = THIS_MODULE,
	.read = vsim_mode_read,
	.write = vsim_mode_write,
	.llseek = default_llseek,
};

/* flip: "<offset>" or "offset=<offset>" - switch the plane to another buffer atomically */
static ssize_t vsim_flip_write(struct file *f, const char __user *ubuf, size_t len,
			       loff_t *ppos)
{
	struct vsim_plane *p = file_inode(f)->i_private;
	char *s = vsim_get_text(ubuf, len);
	const char *v;
	u64 off;
	int ret;

	if (IS_ERR(s))
		return PTR_ERR(s);
	v = strncmp(s, "offset=", 7) ? s : s + 7;
	ret = kstrtou64(v, 0, &off);
	if (!ret) {
		vsim_lock(p->dev);
		if (!p->cfg.enabled) {
			ret = -ENODATA;	/* flip on a disabled plane: set a mode first */
		} else {
			p->cfg.offset = off;
			p->dev->flip_count++;
			vsim_guest_changed(p->dev, p->idx);
		}
		mutex_unlock(&p->dev->lock);
	}
	kfree(s);
	return ret ? ret : len;
}

/*
 * kflip_wait (write anything): returns once the in-kernel flip of every change made so far is
 * done (DRM_FB). For tests that look at the host plane right after a change; a guest never
 * waits (its flip write returns at once, the flip follows in a worker).
 */
static ssize_t vsim_kflip_wait_write(struct file *f, const char __user *ubuf, size_t len,
				     loff_t *ppos)
{
	struct vsim_plane *p = file_inode(f)->i_private;

	flush_work(&p->kflip_work);
	return len;
}

static const struct file_operations vsim_kflip_wait_fops = {
	.owner = THIS_MODULE,
	.write = vsim_kflip_wait_write,
	.llseek = no_llseek,
};

static const struct file_operations vsim_flip_fops = {
	.owner = THIS_MODULE,
	.write = vsim_flip_write,
	.llseek = no_llseek,
};

static ssize_t vsim_disable_write(struct file *f, const char __user *ubuf, size_t len,
				  loff_t *ppos)
{
	struct vsim_plane *p = file_inode(f)->i_private;

	vsim_lock(p->dev);
	if (p->cfg.enabled) {
		p->cfg.enabled = false;
		vsim_guest_changed(p->dev, p->idx);
	}
	mutex_unlock(&p->dev->lock);
	return len;
}

static const struct file_operations vsim_disable_fops = {
	.owner = THIS_MODULE,
	.write = vsim_disable_write,
	.llseek = no_llseek,
};

static ssize_t vsim_status_read(struct file *f, char __user *ubuf, size_t len, loff_t *ppos)
{
	struct vsim_plane *p = file_inode(f)->i_private;
	char *text;

	vsim_lock(p->dev);
	text = vsim_plane_describe(p->dev, p->idx, true);
	mutex_unlock(&p->dev->lock);
	return vsim_read_text(ubuf, len, ppos, text);
}

static const struct file_operations vsim_status_fops = {
	.owner = THIS_MODULE,
	.read = vsim_status_read,
	.llseek = default_llseek,
};

/* fb_id (per plane, read): the DRM_FB framebuffer id of the plane's current buffer, 0 if none */
static ssize_t vsim_plane_fb_read(struct file *f, char __user *ubuf, size_t len, loff_t *ppos)
{
	struct vsim_plane *p = file_inode(f)->i_private;
	char why[128];
	u32 id;

	vsim_lock(p->dev);
	id = vsim_drm_current_fb_id(p->dev, p->idx, why, sizeof(why));
	mutex_unlock(&p->dev->lock);
	return vsim_read_text(ubuf, len, ppos, kasprintf(GFP_KERNEL, "%u\n", id));
}

static const struct file_operations vsim_plane_fb_fops = {
	.owner = THIS_MODULE,
	.read = vsim_plane_fb_read,
	.llseek = default_llseek,
};

/* ------------------------------------------------------------------ per instance */

static ssize_t vsim_reset_write(struct file *f, const char __user *ubuf, size_t len,
				loff_t *ppos)
{
	struct vsim_dev *d = file_inode(f)->i_private;

	vsim_lock(d);
	vsim_guest_reset(d);
	mutex_unlock(&d->lock);
	return len;
}

static const struct file_operations vsim_reset_fops = {
	.owner = THIS_MODULE,
	.write = vsim_reset_write,
	.llseek = no_llseek,
};

static ssize_t vsim_flip_count_read(struct file *f, char __user *ubuf, size_t len,
				    loff_t *ppos)
{
	struct vsim_dev *d = file_inode(f)->i_private;
	u64 n;

	vsim_lock(d);
	n = d->flip_count;
	mutex_unlock(&d->lock);
	return vsim_read_text(ubuf, len, ppos, kasprintf(GFP_KERNEL, "%llu\n", n));
}

static const struct file_operations vsim_flip_count_fops = {
	.owner = THIS_MODULE,
	.read = vsim_flip_count_read,
	.llseek = default_llseek,
};

static ssize_t vsim_info_read(struct file *f, char __user *ubuf, size_t len, loff_t *ppos)
{
	struct vsim_dev *d = file_inode(f)->i_private;
	char pci[256];
	char *text;

	vsim_lock(d);
	vsim_pci_describe(d, pci, sizeof(pci));
	text = kasprintf(GFP_KERNEL,
			 "type=%s vram_size=%llu max_width=%u max_height=%u open=%d cached_buffers=%u next_id=%u drm_fb=%d %s\n",
			 d->type->type.sysfs_name, d->vram_size, d->type->max_width,
			 d->type->max_height, d->open, d->nbufs, d->next_id,
			 !d->type->headless && vsim_drm_available(), pci);
	mutex_unlock(&d->lock);
	return vsim_read_text(ubuf, len, ppos, text);
}

static const struct file_operations vsim_info_fops = {
	.owner = THIS_MODULE,
	.read = vsim_info_read,
	.llseek = default_llseek,
};

/*
 * lock (read): who holds the instance lock, read without taking it. "free", or "held since
 * <function> by pid <n>" (the last taker: the holder while it is held). For diagnosing a reader
 * that hangs in an instance file.
 */
static ssize_t vsim_lock_read(struct file *f, char __user *ubuf, size_t len, loff_t *ppos)
{
	struct vsim_dev *d = file_inode(f)->i_private;
	const char *site = READ_ONCE(d->lock_site);
	pid_t pid = READ_ONCE(d->lock_pid);
	char buf[160];
	int n;

	if (mutex_is_locked(&d->lock))
		n = scnprintf(buf, sizeof(buf), "held since %s by pid %d\n", site ? site : "?", pid);
	else
		n = scnprintf(buf, sizeof(buf), "free (last %s by pid %d)\n", site ? site : "-", pid);
	return simple_read_from_buffer(ubuf, len, ppos, buf, n);
}

static const struct file_operations vsim_lock_fops = {
	.owner = THIS_MODULE,
	.read = vsim_lock_read,
	.llseek = default_llseek,
};

/* display_irq: the display event IRQ's state and counters (display_irq.c) */
static ssize_t vsim_display_irq_read(struct file *f, char __user *ubuf, size_t len, loff_t *ppos)
{
	struct vsim_dev *d = file_inode(f)->i_private;
	char buf[384];
	int n = vsim_display_irq_describe(d, buf, sizeof(buf));

	return simple_read_from_buffer(ubuf, len, ppos, buf, n);
}

static const struct file_operations vsim_display_irq_fops = {
	.owner = THIS_MODULE,
	.read = vsim_display_irq_read,
	.llseek = default_llseek,
};

/*
 * fb_id (instance): write a plane name (primary, cursor, overlay), then read that plane's
 * DRM_FB framebuffer id: what a host compositor uses when a VMM owns the VFIO group.
 * Reads "0" when there is none (not bound, plane disabled or not showable).
 */
static int vsim_plane_by_name(const char *s)
{
	int i;

	for (i = 0; i < VSIM_NPLANES; i++)
		if (!strcmp(s, vsim_plane_name(i)))
			return i;
	return -1;
}

static ssize_t vsim_fb_id_read(struct file *f, char __user *ubuf, size_t len, loff_t *ppos)
{
	struct vsim_dev *d = file_inode(f)->i_private;
	char why[128];
	u32 id;

	vsim_lock(d);
	id = vsim_drm_current_fb_id(d, d->fb_id_plane, why, sizeof(why));
	mutex_unlock(&d->lock);
	return vsim_read_text(ubuf, len, ppos, kasprintf(GFP_KERNEL, "%u\n", id));
}

static ssize_t vsim_fb_id_write(struct file *f, const char __user *ubuf, size_t len,
				loff_t *ppos)
{
	struct vsim_dev *d = file_inode(f)->i_private;
	char *s = vsim_get_text(ubuf, len);
	int plane;

	if (IS_ERR(s))
		return PTR_ERR(s);
	plane = vsim_plane_by_name(s);
	kfree(s);
	if (plane < 0)
		return -EINVAL;
	vsim_lock(d);
	d->fb_id_plane = plane;
	mutex_unlock(&d->lock);
	return len;
}

static const struct file_operations vsim_fb_id_fops = {
	.owner = THIS_MODULE,
	.read = vsim_fb_id_read,
	.write = vsim_fb_id_write,
	.llseek = default_llseek,
};

/* vram: pread/pwrite the video memory (offset = file position) */
static ssize_t vsim_vram_read(struct file *f, char __user *ubuf, size_t len, loff_t *ppos)
{
	struct vsim_dev *d = file_inode(f)->i_private;

	if (*ppos < 0)
		return -EINVAL;
	return simple_read_from_buffer(ubuf, len, ppos, d->vram, d->vram_size);
}

static ssize_t vsim_vram_write(struct file *f, const char __user *ubuf, size_t len,
			       loff_t *ppos)
{
	struct vsim_dev *d = file_inode(f)->i_private;
	loff_t pos = *ppos;

	if (pos < 0)
		return -EINVAL;
	if (pos >= d->vram_size)
		return len ? -ENOSPC : 0;
	len = min_t(u64, len, d->vram_size - pos);
	if (copy_from_user((u8 *)d->vram + pos, ubuf, len))
		return -EFAULT;
	*ppos = pos + len;
	return len;
}

static const struct file_operations vsim_vram_fops = {
	.owner = THIS_MODULE,
	.read = vsim_vram_read,
	.write = vsim_vram_write,
	.llseek = default_llseek,
};

/* fault/query, fault/dmabuf: "ENOMEM [count]", "EIO 3", "5 2" (errno number), "none" */
static const struct { const char *name; int err; } vsim_errnos[] = {
	{ "ENOMEM", ENOMEM }, { "EBUSY", EBUSY }, { "EINVAL", EINVAL }, { "EIO", EIO },
	{ "EAGAIN", EAGAIN }, { "ENODEV", ENODEV }, { "ENOSPC", ENOSPC }, { "EFAULT", EFAULT },
	{ "ENOENT", ENOENT }, { "EPERM", EPERM },
};

static const char *vsim_errno_name(int err)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(vsim_errnos); i++)
		if (vsim_errnos[i].err == err)
			return vsim_errnos[i].name;
	return NULL;
}

static ssize_t vsim_fault_read(struct file *f, char __user *ubuf, size_t len, loff_t *ppos)
{
	struct vsim_fault *ft = file_inode(f)->i_private;
	struct vsim_dev *d = ft->dev;
	const char *name;
	char *text;

	vsim_lock(d);
	name = vsim_errno_name(ft->err);
	if (!ft->count)
		text = kasprintf(GFP_KERNEL, "none\n");
	else if (name)
		text = kasprintf(GFP_KERNEL, "%s %u\n", name, ft->count);
	else
		text = kasprintf(GFP_KERNEL, "%d %u\n", ft->err, ft->count);
	mutex_unlock(&d->lock);
	return vsim_read_text(ubuf, len, ppos, text);
}

static ssize_t vsim_fault_write(struct file *f, const char __user *ubuf, size_t len,
				loff_t *ppos)
{
	struct vsim_fault *ft = file_inode(f)->i_private;
	struct vsim_dev *d = ft->dev;
	char *s = vsim_get_text(ubuf, len), *name, *rest;
	int err = 0, i, ret = 0;
	u32 count = 1;

	if (IS_ERR(s))
		return PTR_ERR(s);
	rest = s;
	name = strsep(&rest, " \t");
	if (!strcmp(name, "none") || !strcmp(name, "0")) {
		count = 0;
	} else {
		for (i = 0; i < ARRAY_SIZE(vsim_errnos); i++)
			if (!strcasecmp(name, vsim_errnos[i].name))
				err = vsim_errnos[i].err;
		if (!err && (kstrtoint(name, 0, &err) || err <= 0 || err >= MAX_ERRNO))
			ret = -EINVAL;
		if (!ret && rest && *skip_spaces(rest))
			ret = kstrtou32(skip_spaces(rest), 0, &count);
	}
	if (!ret) {
		vsim_lock(d);
		ft->err = err;
		ft->count = count;
		mutex_unlock(&d->lock);
	}
	kfree(s);
	return ret ? ret : len;
}

static const struct file_operations vsim_fault_fops = {
	.owner = THIS_MODULE,
	.read = vsim_fault_read,
	.write = vsim_fault_write,
	.llseek = default_llseek,
};

void vsim_debugfs_add(struct vsim_dev *d)
{
	struct dentry *dir, *fault;
	char name[UUID_STRING_LEN + 1];
	int i;

	snprintf(name, sizeof(name), "%pUl", &d->mdev->uuid);
	dir = debugfs_create_dir(name, vsim_dbg_root);
	if (IS_ERR(dir))
		return;
	d->dbg = dir;
	debugfs_create_file("info", 0444, dir, d, &vsim_info_fops);
	debugfs_create_file("reset", 0200, dir, d, &vsim_reset_fops);
	debugfs_create_file("flip_count", 0444, dir, d, &vsim_flip_count_fops);
	debugfs_create_file("display_irq", 0444, dir, d, &vsim_display_irq_fops);
	debugfs_create_file("lock", 0444, dir, d, &vsim_lock_fops);
	debugfs_create_file("fb_id", 0600, dir, d, &vsim_fb_id_fops);
	debugfs_create_file_size("vram", 0600, dir, d, &vsim_vram_fops, d->vram_size);
	fault = debugfs_create_dir("fault", dir);
	debugfs_create_file("query", 0600, fault, &d->fault_query, &vsim_fault_fops);
	debugfs_create_file("dmabuf", 0600, fault, &d->fault_dmabuf, &vsim_fault_fops);
	debugfs_create_bool("new_ids", 0600, fault, &d->fault_new_ids);
	for (i = 0; i < VSIM_NPLANES; i++) {
		struct vsim_plane *p = &d->planes[i];
		struct dentry *pd = debugfs_create_dir(vsim_plane_name(i), dir);

		debugfs_create_file("mode", 0600, pd, p, &vsim_mode_fops);
		debugfs_create_file("flip", 0200, pd, p, &vsim_flip_fops);
		debugfs_create_file("kflip_wait", 0200, pd, p, &vsim_kflip_wait_fops);
		debugfs_create_file("disable", 0200, pd, p, &vsim_disable_fops);
		debugfs_create_file("status", 0444, pd, p, &vsim_status_fops);
		debugfs_create_file("fb_id", 0444, pd, p, &vsim_plane_fb_fops);
		debugfs_create_bool("not_ready", 0600, pd, &p->not_ready);
	}
}

void vsim_debugfs_remove(struct vsim_dev *d)
{
	debugfs_remove_recursive(d->dbg);
	d->dbg = NULL;
}

int vsim_debugfs_init(void)
{
	vsim_dbg_root = debugfs_create_dir(VSIM_NAME, NULL);
	return 0;
}

void vsim_debugfs_exit(void)
{
	debugfs_remove_recursive(vsim_dbg_root);
}
