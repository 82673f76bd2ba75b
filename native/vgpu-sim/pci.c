// SPDX-License-Identifier: GPL-2.0
/*
 * vgpu-sim pci.c: what a VMM's vfio-pci (QEMU hw/vfio/pci.c) needs to realize the instance as a
 * PCI device: an emulated type 0 config space with per-byte write masks (BAR0 sized by writing
 * all ones, command register, interrupt line), interrupt pin A, and the VFIO IRQ indexes
 * (INTx, ERR, REQ with eventfds; no MSI/MSI-X capability, so those have no vectors).
 * The simulated device never raises INTx or ERR by itself; REQ is signalled when the instance is
 * removed while a user holds it open (the kernel asks the user to let go). See README.md.
 * Index 5 (after the fixed five) is the display event IRQ, handled in display_irq.c.
 */
#include <linux/eventfd.h>
#include <linux/pci_regs.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <asm/unaligned.h>

#include "vgpu_sim.h"

#define VSIM_PCI_VENDOR 0x1b36		/* a test vendor id, no real device */
#define VSIM_PCI_DEVICE 0x10f0
#define VSIM_PCI_REVISION 0x01

static void vsim_wmask32(struct vsim_dev *d, unsigned int off, u32 mask)
{
	put_unaligned_le32(mask, d->vconfig_wmask + off);
}

/* power-on state of config space (also after VFIO_DEVICE_RESET) */
void vsim_pci_init_config(struct vsim_dev *d)
{
	u8 *c = d->vconfig;

	memset(d->vconfig, 0, sizeof(d->vconfig));
	memset(d->vconfig_wmask, 0, sizeof(d->vconfig_wmask));
	put_unaligned_le16(VSIM_PCI_VENDOR, c + PCI_VENDOR_ID);
	put_unaligned_le16(VSIM_PCI_DEVICE, c + PCI_DEVICE_ID);
	/* command: 0 after reset; I/O space stays 0 (no I/O BAR), the rest is the user's */
	put_unaligned_le16(PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE,
			   d->vconfig_wmask + PCI_COMMAND);
	/* status: no capability list (PCI_STATUS_CAP_LIST clear), nothing pending */
	c[PCI_REVISION_ID] = VSIM_PCI_REVISION;
	/* display controller, other; a headless (compute) instance: 3D controller */
	put_unaligned_le16(d->type->headless ? 0x0302 : 0x0380, c + PCI_CLASS_DEVICE);
	d->vconfig_wmask[PCI_CACHE_LINE_SIZE] = 0xff;
	d->vconfig_wmask[PCI_LATENCY_TIMER] = 0xff;
	c[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_NORMAL;		/* type 0, single function */
	/* BAR0: the video memory, 32-bit prefetchable memory; sized like hardware (write ~0) */
	put_unaligned_le32(PCI_BASE_ADDRESS_SPACE_MEMORY | PCI_BASE_ADDRESS_MEM_TYPE_32 |
			   PCI_BASE_ADDRESS_MEM_PREFETCH, c + PCI_BASE_ADDRESS_0);
	vsim_wmask32(d, PCI_BASE_ADDRESS_0, ~(u32)(d->vram_size - 1) & PCI_BASE_ADDRESS_MEM_MASK);
	/* BAR1-5 and the expansion ROM: not implemented (read 0, writes ignored) */
	put_unaligned_le16(VSIM_PCI_VENDOR, c + PCI_SUBSYSTEM_VENDOR_ID);
	put_unaligned_le16(VSIM_PCI_DEVICE, c + PCI_SUBSYSTEM_ID);
	c[PCI_CAPABILITY_LIST] = 0;
	d->vconfig_wmask[PCI_INTERRUPT_LINE] = 0xff;
	c[PCI_INTERRUPT_PIN] = 1;				/* INTA# */
}

/* d->lock held: a config space write of `len` bytes at `off` (within the 256 bytes) */
void vsim_pci_config_write(struct vsim_dev *d, unsigned int off, const u8 *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		u8 m = d->vconfig_wmask[off + i];

		d->vconfig[off + i] = (d->vconfig[off + i] & ~m) | (buf[i] & m);
	}
}

/* ------------------------------------------------------------------ IRQs */

static u32 vsim_irq_count(unsigned int index)
{
	switch (index) {
	case VFIO_PCI_INTX_IRQ_INDEX:
	case VFIO_PCI_ERR_IRQ_INDEX:
	case VFIO_PCI_REQ_IRQ_INDEX:
		return 1;
	default:		/* MSI, MSI-X: no capability in config space, no vectors */
		return 0;
	}
}

int vsim_pci_irq_info(struct vsim_dev *d, void __user *arg)
{
	const size_t minsz = offsetofend(struct vfio_irq_info, count);
	struct vfio_irq_info info;

	if (copy_from_user(&info, arg, minsz))
		return -EFAULT;
	if (info.argsz >= minsz && info.index == VSIM_DISPLAY_IRQ_INDEX && vsim_has_display_irq(d))
		return vsim_display_irq_info(d, arg);	/* display_irq.c */
	if (info.argsz < minsz || info.index >= VFIO_PCI_NUM_IRQS)
		return -EINVAL;
	info.count = vsim_irq_count(info.index);
	info.flags = VFIO_IRQ_INFO_EVENTFD;
	if (info.index == VFIO_PCI_INTX_IRQ_INDEX)
		info.flags |= VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
	else if (info.index == VFIO_PCI_MSI_IRQ_INDEX)
		info.flags |= VFIO_IRQ_INFO_NORESIZE;
	return copy_to_user(arg, &info, minsz) ? -EFAULT : 0;
}

/* d->lock held */
static void vsim_irq_set_trigger(struct vsim_dev *d, unsigned int index, struct eventfd_ctx *ctx)
{
	if (d->irq_trigger[index])
		eventfd_ctx_put(d->irq_trigger[index]);
	d->irq_trigger[index] = ctx;
}

/* d->lock held: the interrupt fires (a loopback trigger through SET_IRQS, or REQ) */
static void vsim_irq_fire(struct vsim_dev *d, unsigned int index)
{
	if (index == VFIO_PCI_INTX_IRQ_INDEX) {
		if (d->intx_masked ||
		    (get_unaligned_le16(d->vconfig + PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE))
			return;
		d->intx_masked = true;		/* automasked: the user unmasks after handling it */
	}
	d->irq_fired[index]++;
	if (d->irq_trigger[index])
		eventfd_signal(d->irq_trigger[index], 1);
}

int vsim_pci_set_irqs(struct vsim_dev *d, void __user *arg)
{
	const size_t minsz = offsetofend(struct vfio_irq_set, count);
	struct vfio_irq_set hdr;
	size_t data_size = 0;
	u32 action, type;
	s32 fd = -1;
	u8 flag = 1;
	int ret;

	if (copy_from_user(&hdr, arg, minsz))
		return -EFAULT;
	if (hdr.index == VSIM_DISPLAY_IRQ_INDEX && vsim_has_display_irq(d))
		return vsim_display_irq_set(d, arg);	/* display_irq.c */
	if (hdr.index >= VFIO_PCI_NUM_IRQS)
		return -EINVAL;
	ret = vfio_set_irqs_validate_and_prepare(&hdr, vsim_irq_count(hdr.index), VFIO_PCI_NUM_IRQS,
						 &data_size);
	if (ret)
		return ret;
	/* every index has at most one vector: data is one s32 or one u8 */
	if (data_size) {
		if (hdr.flags & VFIO_IRQ_SET_DATA_EVENTFD) {
			if (get_user(fd, (s32 __user *)(arg + minsz)))
				return -EFAULT;
		} else if (get_user(flag, (u8 __user *)(arg + minsz))) {
			return -EFAULT;
		}
	}
	action = hdr.flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
	type = hdr.flags & VFIO_IRQ_SET_DATA_TYPE_MASK;

	vsim_lock(d);
	switch (action) {
	case VFIO_IRQ_SET_ACTION_TRIGGER:
		if (type == VFIO_IRQ_SET_DATA_NONE && hdr.count == 0) {
			vsim_irq_set_trigger(d, hdr.index, NULL);	/* disable the index */
			if (hdr.index == VFIO_PCI_INTX_IRQ_INDEX)
				d->intx_masked = false;
		} else if (type == VFIO_IRQ_SET_DATA_EVENTFD) {
			struct eventfd_ctx *ctx = NULL;

			if (fd >= 0) {
				ctx = eventfd_ctx_fdget(fd);
				if (IS_ERR(ctx)) {
					ret = PTR_ERR(ctx);
					break;
				}
			} else if (fd != -1) {
				ret = -EINVAL;
				break;
			}
			vsim_irq_set_trigger(d, hdr.index, ctx);
		} else if (flag) {		/* DATA_NONE count 1 or DATA_BOOL true: fire */
			vsim_irq_fire(d, hdr.index);
		}
		break;
	case VFIO_IRQ_SET_ACTION_MASK:
	case VFIO_IRQ_SET_ACTION_UNMASK:
		/* only INTx is maskable; no eventfd (irqfd) variant: QEMU then unmasks by ioctl */
		if (hdr.index != VFIO_PCI_INTX_IRQ_INDEX || type == VFIO_IRQ_SET_DATA_EVENTFD) {
			ret = -EINVAL;
			break;
		}
		if (hdr.count && flag)
			d->intx_masked = action == VFIO_IRQ_SET_ACTION_MASK;
		break;
	default:
		ret = -EINVAL;
	}
	mutex_unlock(&d->lock);
	return ret;
}

/* d->lock held: device closed or reset: INTx unmasked and de-asserted */
void vsim_pci_irqs_release(struct vsim_dev *d)
{
	unsigned int i;

	for (i = 0; i < VFIO_PCI_NUM_IRQS; i++)
		vsim_irq_set_trigger(d, i, NULL);
	d->intx_masked = false;
}

/* vfio core: the instance is being removed while open; ask the user to release it (REQ) */
void vsim_pci_request(struct vfio_device *vdev, unsigned int count)
{
	struct vsim_dev *d = container_of(vdev, struct vsim_dev, vdev);

	vsim_lock(d);
	if (d->irq_trigger[VFIO_PCI_REQ_IRQ_INDEX]) {
		d->irq_fired[VFIO_PCI_REQ_IRQ_INDEX]++;
		eventfd_signal(d->irq_trigger[VFIO_PCI_REQ_IRQ_INDEX], 1);
		if (count == 0)
			dev_info(&d->mdev->dev, "asking the user to release the device (REQ)\n");
	} else if (count == 0) {
		dev_info(&d->mdev->dev, "removal waits for the user to close the device\n");
	}
	mutex_unlock(&d->lock);
}

/* for debugfs "info": the PCI side of the instance (d->lock held) */
int vsim_pci_describe(struct vsim_dev *d, char *buf, size_t len)
{
	return scnprintf(buf, len,
			 "resets=%llu pci_command=0x%04x bar0=0x%08x intx=%s intx_masked=%d err=%s req=%s intx_fired=%llu req_fired=%llu",
			 d->resets, get_unaligned_le16(d->vconfig + PCI_COMMAND),
			 get_unaligned_le32(d->vconfig + PCI_BASE_ADDRESS_0),
			 d->irq_trigger[VFIO_PCI_INTX_IRQ_INDEX] ? "eventfd" : "none", d->intx_masked,
			 d->irq_trigger[VFIO_PCI_ERR_IRQ_INDEX] ? "eventfd" : "none",
			 d->irq_trigger[VFIO_PCI_REQ_IRQ_INDEX] ? "eventfd" : "none",
			 d->irq_fired[VFIO_PCI_INTX_IRQ_INDEX], d->irq_fired[VFIO_PCI_REQ_IRQ_INDEX]);
}
