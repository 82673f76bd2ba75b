// SPDX-License-Identifier: GPL-2.0
/*
 * vgpu-sim dmabuf.c: the dma-buf exporter for buffer states (VFIO_DEVICE_GET_GFX_DMABUF).
 * A buffer's pages are its own references on video-memory pages, so it stays valid after the
 * guest flips away, resets, or the instance is removed, until the last fd / import is gone.
 */
#include <linux/dma-buf.h>
#include <linux/dma-mapping.h>
#include <linux/dma-resv.h>
#include <linux/file.h>
#include <linux/iosys-map.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#include "vgpu_sim.h"

struct vsim_attach {
	struct sg_table *sgt;	/* while mapped */
	enum dma_data_direction dir;
};

static int vsim_dmabuf_attach(struct dma_buf *dmabuf, struct dma_buf_attachment *at)
{
	struct vsim_attach *a = kzalloc(sizeof(*a), GFP_KERNEL);

	if (!a)
		return -ENOMEM;
	at->priv = a;
	return 0;
}

static void vsim_dmabuf_detach(struct dma_buf *dmabuf, struct dma_buf_attachment *at)
{
	kfree(at->priv);
	at->priv = NULL;
}

static struct sg_table *vsim_dmabuf_map(struct dma_buf_attachment *at,
					enum dma_data_direction dir)
{
	struct vsim_buf *b = at->dmabuf->priv;
	struct vsim_attach *a = at->priv;
	struct sg_table *sgt;
	int ret;

	sgt = kzalloc(sizeof(*sgt), GFP_KERNEL);
	if (!sgt)
		return ERR_PTR(-ENOMEM);
	ret = sg_alloc_table_from_pages(sgt, b->pages, b->npages, 0, b->size, GFP_KERNEL);
	if (ret)
		goto err_free;
	ret = dma_map_sgtable(at->dev, sgt, dir, 0);
	if (ret)
		goto err_table;
	if (a) {
		a->sgt = sgt;
		a->dir = dir;
	}
	return sgt;

err_table:
	sg_free_table(sgt);
err_free:
	kfree(sgt);
	return ERR_PTR(ret);
}

static void vsim_dmabuf_unmap(struct dma_buf_attachment *at, struct sg_table *sgt,
			      enum dma_data_direction dir)
{
	struct vsim_attach *a = at->priv;

	if (a && a->sgt == sgt)
		a->sgt = NULL;
	dma_unmap_sgtable(at->dev, sgt, dir, 0);
	sg_free_table(sgt);
	kfree(sgt);
}

static void vsim_dmabuf_sync(struct dma_buf *dmabuf, bool for_cpu)
{
	struct dma_buf_attachment *at;

	dma_resv_lock(dmabuf->resv, NULL);
	list_for_each_entry(at, &dmabuf->attachments, node) {
		struct vsim_attach *a = at->priv;

		if (!a || !a->sgt)
			continue;
		if (for_cpu)
			dma_sync_sgtable_for_cpu(at->dev, a->sgt, a->dir);
		else
			dma_sync_sgtable_for_device(at->dev, a->sgt, a->dir);
	}
	dma_resv_unlock(dmabuf->resv);
}

static int vsim_dmabuf_begin_cpu(struct dma_buf *dmabuf, enum dma_data_direction dir)
{
	vsim_dmabuf_sync(dmabuf, true);
	return 0;
}

static int vsim_dmabuf_end_cpu(struct dma_buf *dmabuf, enum dma_data_direction dir)
{
	vsim_dmabuf_sync(dmabuf, false);
	return 0;
}

static int vsim_dmabuf_vmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	struct vsim_buf *b = dmabuf->priv;
	int ret = 0;

	mutex_lock(&b->vlock);
	if (!b->vaddr) {
		b->vaddr = vmap(b->pages, b->npages, VM_MAP, PAGE_KERNEL);
		if (!b->vaddr)
			ret = -ENOMEM;
	}
	if (!ret) {
		b->vmap_count++;
		iosys_map_set_vaddr(map, b->vaddr);
	}
	mutex_unlock(&b->vlock);
	return ret;
}

static void vsim_dmabuf_vunmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	struct vsim_buf *b = dmabuf->priv;

	mutex_lock(&b->vlock);
	if (!WARN_ON(!b->vmap_count) && --b->vmap_count == 0) {
		vunmap(b->vaddr);
		b->vaddr = NULL;
	}
	mutex_unlock(&b->vlock);
}

static vm_fault_t vsim_dmabuf_fault(struct vm_fault *vmf)
{
	struct vsim_buf *b = vmf->vma->vm_private_data;

	if (vmf->pgoff >= b->npages)
		return VM_FAULT_SIGBUS;
	vmf->page = b->pages[vmf->pgoff];
	get_page(vmf->page);
	return 0;
}

static const struct vm_operations_struct vsim_dmabuf_vm_ops = {
	.fault = vsim_dmabuf_fault,
};

static int vsim_dmabuf_mmap(struct dma_buf *dmabuf, struct vm_area_struct *vma)
{
	struct vsim_buf *b = dmabuf->priv;

	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	if (vma->vm_pgoff >= b->npages ||
	    vma_pages(vma) > b->npages - vma->vm_pgoff)
		return -EINVAL;
	vma->vm_flags |= VM_DONTEXPAND | VM_DONTDUMP;
	vma->vm_ops = &vsim_dmabuf_vm_ops;
	vma->vm_private_data = b;
	return 0;
}

static void vsim_dmabuf_release(struct dma_buf *dmabuf)
{
	struct vsim_buf *b = dmabuf->priv;

	mutex_lock(&vsim_buf_lock);
	if (b->dmabuf == dmabuf)
		b->dmabuf = NULL;
	mutex_unlock(&vsim_buf_lock);
	vsim_buf_put(b);
}

static const struct dma_buf_ops vsim_dmabuf_ops = {
	.attach = vsim_dmabuf_attach,
	.detach = vsim_dmabuf_detach,
	.map_dma_buf = vsim_dmabuf_map,
	.unmap_dma_buf = vsim_dmabuf_unmap,
	.release = vsim_dmabuf_release,
	.begin_cpu_access = vsim_dmabuf_begin_cpu,
	.end_cpu_access = vsim_dmabuf_end_cpu,
	.mmap = vsim_dmabuf_mmap,
	.vmap = vsim_dmabuf_vmap,
	.vunmap = vsim_dmabuf_vunmap,
};

/*
 * A reference to the buffer's dma-buf, exporting it if it is not exported (or its last
 * reference is just going away). Caller holds the instance lock (the buffer is cached).
 */
struct dma_buf *vsim_buf_export(struct vsim_buf *b)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp);
	struct dma_buf *dmabuf;

	mutex_lock(&vsim_buf_lock);
	dmabuf = b->dmabuf;
	/* the release callback clears b->dmabuf under vsim_buf_lock, so the file is still there */
	if (dmabuf && get_file_rcu(dmabuf->file)) {
		mutex_unlock(&vsim_buf_lock);
		return dmabuf;
	}
	mutex_unlock(&vsim_buf_lock);

	exp.ops = &vsim_dmabuf_ops;
	exp.size = b->size;
	exp.flags = O_RDWR;
	exp.priv = b;
	kref_get(&b->ref);
	dmabuf = dma_buf_export(&exp);
	if (IS_ERR(dmabuf)) {
		vsim_buf_put(b);
		return dmabuf;
	}
	mutex_lock(&vsim_buf_lock);
	b->dmabuf = dmabuf;
	mutex_unlock(&vsim_buf_lock);
	return dmabuf;
}

int vsim_buf_get_dmabuf_fd(struct vsim_buf *b)
{
	struct dma_buf *dmabuf = vsim_buf_export(b);
	int fd;

	if (IS_ERR(dmabuf))
		return PTR_ERR(dmabuf);
	fd = dma_buf_fd(dmabuf, O_CLOEXEC);
	if (fd < 0)
		dma_buf_put(dmabuf);
	return fd;
}
