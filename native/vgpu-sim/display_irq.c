// SPDX-License-Identifier: GPL-2.0
/*
 * vgpu-sim display_irq.c: the display event IRQ (native/include/vfio_gfx_display_irq.h): an IRQ
 * index after vfio-pci's fixed five whose eventfd is signalled when the guest display changes,
 * coalesced to at most one signal per guest vblank.
 *
 * The guest's vblank clock is simulated: boundaries at epoch + k * period (period = 1 s /
 * refresh_hz, epoch = instance creation), period k = [epoch + k * period, epoch + (k+1) * period).
 * A change marks event bits pending. The first change of a period is signalled at once (no
 * latency added: the consumer can make the host's next vblank); a change in a period that has
 * had its signal arms a one-shot hrtimer for the next boundary, which delivers everything
 * pending meanwhile in one eventfd_signal(). Each signal is recorded with its period and a
 * period is never used twice, so there are at most as many signals as vblank periods, whatever
 * the guest does.
 *
 * Locking: d->irq.lock (a spinlock, also taken by the hrtimer callback in hard interrupt
 * context) protects everything in struct vsim_display_irq. Guest changes arrive with d->lock
 * (a mutex) held; SET_IRQS for this index takes only the spinlock. The eventfd reference is
 * dropped outside the spinlock, after the timer is cancelled.
 */
#include <linux/eventfd.h>
#include <linux/hrtimer.h>
#include <linux/math64.h>
#include <linux/module.h>
#include <linux/uaccess.h>

#include "vfio_gfx_display_irq.h"
#include "vgpu_sim.h"

static unsigned int refresh_hz = 60;
module_param(refresh_hz, uint, 0644);
MODULE_PARM_DESC(refresh_hz,
		 "guest vblank rate of new instances in Hz (1..1000, default 60): display IRQ signals are coalesced to at most one per vblank");

#define VSIM_DISP_ALL (VFIO_GFX_DISPLAY_PRI_EVENT_VAL | VFIO_GFX_DISPLAY_CUR_EVENT_VAL)
/* where the capability chain starts: after struct vfio_irq_info_caps, 8-byte aligned */
#define VSIM_DISP_CAP_OFFSET 24

struct vsim_disp_caps {
	struct vfio_irq_info_cap_type type;
	struct vfio_irq_info_cap_display_plane_events disp;
};

static_assert(sizeof(struct vfio_irq_info_caps) == VFIO_IRQ_INFO_CAPS_SIZE);
static_assert(sizeof(struct vfio_irq_info_cap_type) == VFIO_IRQ_INFO_CAP_TYPE_SIZE);
static_assert(sizeof(struct vfio_irq_info_cap_display_plane_events) == VFIO_IRQ_INFO_CAP_DISPLAY_SIZE);
static_assert(sizeof(struct vsim_disp_caps) == 40);

u32 vsim_num_irqs(const struct vsim_dev *d)
{
	return d->type->headless ? VFIO_PCI_NUM_IRQS : VSIM_DISPLAY_IRQ_INDEX + 1;
}

bool vsim_has_display_irq(const struct vsim_dev *d)
{
	return !d->type->headless;
}

/* the vblank sequence number at `now` (boundaries passed since the epoch) */
static u64 vsim_vblank_seq(const struct vsim_display_irq *q, ktime_t now)
{
	s64 ns = ktime_to_ns(ktime_sub(now, q->epoch));

	return ns <= 0 ? 0 : div64_u64((u64)ns, q->period_ns);
}

/* q->lock held: deliver everything pending now, as the signal of vblank period `seq` */
static void vsim_disp_signal(struct vsim_display_irq *q, u64 seq)
{
	eventfd_signal(q->trigger, q->pending);
	q->pending = 0;
	q->signals++;
	q->last_signal_seq = seq;
}

/*
 * q->lock held: a change is pending. If no signal was sent in the current vblank period it is
 * signalled at once (the consumer can still make the host's next vblank); else the timer is
 * armed for the next boundary not yet used by a signal, where everything pending meanwhile
 * goes out in one signal. Either way: at most one signal per guest vblank period.
 */
static void vsim_disp_arm(struct vsim_display_irq *q)
{
	u64 now, k;

	if (q->armed || q->dying || q->held || !q->trigger || !q->pending)
		return;
	now = vsim_vblank_seq(q, ktime_get());
	if (!q->signals || now > q->last_signal_seq) {
		vsim_disp_signal(q, now);
		return;
	}
	k = q->last_signal_seq + 1;
	q->next_seq = k;
	q->armed = true;
	hrtimer_start(&q->timer, ktime_add_ns(q->epoch, k * q->period_ns), HRTIMER_MODE_ABS);
}

static enum hrtimer_restart vsim_disp_vblank(struct hrtimer *t)
{
	struct vsim_display_irq *q = container_of(t, struct vsim_display_irq, timer);
	unsigned long flags;

	spin_lock_irqsave(&q->lock, flags);
	q->armed = false;
	if (!q->dying && q->trigger && !q->masked && !q->held && q->pending)
		vsim_disp_signal(q, q->next_seq);
	spin_unlock_irqrestore(&q->lock, flags);
	return HRTIMER_NORESTART;
}

void vsim_display_irq_init(struct vsim_dev *d)
{
	struct vsim_display_irq *q = &d->irq;
	unsigned int hz = clamp_t(unsigned int, READ_ONCE(refresh_hz), 1, 1000);

	spin_lock_init(&q->lock);
	hrtimer_init(&q->timer, CLOCK_MONOTONIC, HRTIMER_MODE_ABS);
	q->timer.function = vsim_disp_vblank;
	q->hz = hz;
	q->period_ns = div_u64(NSEC_PER_SEC, hz);
	q->epoch = ktime_get();
}

/* the guest changed something on screen (any context that may sleep; d->lock may be held) */
void vsim_display_irq_event(struct vsim_dev *d, u64 bits)
{
	struct vsim_display_irq *q = &d->irq;
	unsigned long flags;

	spin_lock_irqsave(&q->lock, flags);
	q->events++;
	if (q->trigger && !q->dying) {	/* nobody listening: nothing to deliver later */
		q->pending |= bits;
		if (!q->masked)
			vsim_disp_arm(q);
	}
	spin_unlock_irqrestore(&q->lock, flags);
}

void vsim_display_irq_plane(struct vsim_dev *d, int plane)
{
	vsim_display_irq_event(d, plane == VSIM_CURSOR ? VFIO_GFX_DISPLAY_CUR_EVENT_VAL
						       : VFIO_GFX_DISPLAY_PRI_EVENT_VAL);
}

/* swap the eventfd (NULL detaches); pending events are dropped either way */
static void vsim_disp_set_trigger(struct vsim_display_irq *q, struct eventfd_ctx *ctx)
{
	struct eventfd_ctx *old;
	unsigned long flags;

	spin_lock_irqsave(&q->lock, flags);
	old = q->trigger;
	q->trigger = q->dying ? NULL : ctx;
	q->pending = 0;
	spin_unlock_irqrestore(&q->lock, flags);
	if (ctx && q->dying)
		eventfd_ctx_put(ctx);
	if (old)
		eventfd_ctx_put(old);
}

/* detach the eventfd, cancel the timer (close of the device, removal) */
static void vsim_disp_stop(struct vsim_display_irq *q, bool dying)
{
	struct eventfd_ctx *old;
	unsigned long flags;

	spin_lock_irqsave(&q->lock, flags);
	old = q->trigger;
	q->trigger = NULL;
	q->pending = 0;
	q->masked = false;
	if (dying)
		q->dying = true;
	spin_unlock_irqrestore(&q->lock, flags);
	/* not under q->lock: the callback takes it. Nothing re-arms without an eventfd. */
	hrtimer_cancel(&q->timer);
	spin_lock_irqsave(&q->lock, flags);
	q->armed = false;
	spin_unlock_irqrestore(&q->lock, flags);
	if (old)
		eventfd_ctx_put(old);
}

void vsim_display_irq_release(struct vsim_dev *d)
{
	vsim_disp_stop(&d->irq, false);
}

void vsim_display_irq_shutdown(struct vsim_dev *d)
{
	vsim_disp_stop(&d->irq, true);
}

/* VFIO_DEVICE_RESET: unmasked again (the eventfd stays); the reset itself is an event */
void vsim_display_irq_reset(struct vsim_dev *d)
{
	struct vsim_display_irq *q = &d->irq;
	unsigned long flags;

	spin_lock_irqsave(&q->lock, flags);
	q->masked = false;
	spin_unlock_irqrestore(&q->lock, flags);
	vsim_display_irq_event(d, VSIM_DISP_ALL);
}

/*
 * A change of several steps (a guest or device reset: each plane goes off, then the reset
 * itself) is one display event: events noted meanwhile wait, and unhold() arms the timer once,
 * so a vblank boundary in the middle (TCG is slow) cannot split it into two signals. Nestable.
 */
void vsim_display_irq_hold(struct vsim_dev *d)
{
	struct vsim_display_irq *q = &d->irq;
	unsigned long flags;

	spin_lock_irqsave(&q->lock, flags);
	q->held++;
	spin_unlock_irqrestore(&q->lock, flags);
}

void vsim_display_irq_unhold(struct vsim_dev *d, u64 bits)
{
	struct vsim_display_irq *q = &d->irq;
	unsigned long flags;

	spin_lock_irqsave(&q->lock, flags);
	if (!WARN_ON(!q->held))
		q->held--;
	if (bits)
		q->events++;
	if (q->trigger && !q->dying) {
		q->pending |= bits;
		if (!q->masked && q->pending)
			vsim_disp_arm(q);	/* no-op while still held (nested) */
	}
	spin_unlock_irqrestore(&q->lock, flags);
}

int vsim_display_irq_info(struct vsim_dev *d, void __user *arg)
{
	const size_t minsz = offsetofend(struct vfio_irq_info, count);
	const u32 need = VSIM_DISP_CAP_OFFSET + sizeof(struct vsim_disp_caps);
	struct vfio_irq_info_caps info;
	struct vsim_disp_caps caps;
	u32 argsz;

	memset(&info, 0, sizeof(info));
	if (copy_from_user(&info, arg, minsz))
		return -EFAULT;
	argsz = info.argsz;
	if (argsz < minsz)
		return -EINVAL;
	info.flags = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_FLAG_CAPS;
	info.count = 1;
	info.cap_offset = 0;
	if (argsz < need) {
		info.argsz = need;	/* tell the caller how much room the chain needs */
	} else {
		memset(&caps, 0, sizeof(caps));
		caps.type.header.id = VFIO_IRQ_INFO_CAP_TYPE;
		caps.type.header.version = 1;
		caps.type.header.next = VSIM_DISP_CAP_OFFSET + sizeof(caps.type);
		caps.type.type = VFIO_IRQ_TYPE_GFX;
		caps.type.subtype = VFIO_IRQ_SUBTYPE_GFX_DISPLAY_IRQ;
		caps.disp.header.id = VFIO_IRQ_INFO_CAP_DISPLAY;
		caps.disp.header.version = 1;
		caps.disp.header.next = 0;	/* the last capability */
		caps.disp.cur_event_val = VFIO_GFX_DISPLAY_CUR_EVENT_VAL;
		caps.disp.pri_event_val = VFIO_GFX_DISPLAY_PRI_EVENT_VAL;
		if (clear_user(arg + sizeof(info), VSIM_DISP_CAP_OFFSET - sizeof(info)) ||
		    copy_to_user(arg + VSIM_DISP_CAP_OFFSET, &caps, sizeof(caps)))
			return -EFAULT;
		info.cap_offset = VSIM_DISP_CAP_OFFSET;
	}
	/* a caller with the 6.1 struct (16 bytes) gets no cap_offset field */
	return copy_to_user(arg, &info, argsz >= sizeof(info) ? sizeof(info) : minsz) ? -EFAULT : 0;
}

int vsim_display_irq_set(struct vsim_dev *d, void __user *arg)
{
	const size_t minsz = offsetofend(struct vfio_irq_set, count);
	struct vsim_display_irq *q = &d->irq;
	struct vfio_irq_set hdr;
	size_t data_size = 0;
	unsigned long flags;
	u32 action, type;
	s32 fd = -1;
	u8 flag = 1;
	int ret;

	if (copy_from_user(&hdr, arg, minsz))
		return -EFAULT;
	ret = vfio_set_irqs_validate_and_prepare(&hdr, 1, vsim_num_irqs(d), &data_size);
	if (ret)
		return ret;
	action = hdr.flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
	type = hdr.flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
	if (hweight32(action) != 1)
		return -EINVAL;
	if (data_size) {	/* one vector: one s32 or one u8 */
		if (type == VFIO_IRQ_SET_DATA_EVENTFD) {
			if (get_user(fd, (s32 __user *)(arg + minsz)))
				return -EFAULT;
		} else if (get_user(flag, (u8 __user *)(arg + minsz))) {
			return -EFAULT;
		}
	}

	switch (action) {
	case VFIO_IRQ_SET_ACTION_TRIGGER:
		if (type == VFIO_IRQ_SET_DATA_NONE && hdr.count == 0) {
			vsim_disp_set_trigger(q, NULL);
		} else if (type == VFIO_IRQ_SET_DATA_EVENTFD) {
			struct eventfd_ctx *ctx = NULL;

			if (fd >= 0) {
				ctx = eventfd_ctx_fdget(fd);
				if (IS_ERR(ctx))
					return PTR_ERR(ctx);
			} else if (fd != -1) {
				return -EINVAL;
			}
			vsim_disp_set_trigger(q, ctx);
		} else if (flag) {	/* DATA_NONE count 1 or DATA_BOOL true: loopback */
			spin_lock_irqsave(&q->lock, flags);
			if (q->trigger && !q->dying) {
				q->loopbacks++;
				if (q->masked)
					q->pending |= VSIM_DISP_ALL;
				else
					eventfd_signal(q->trigger, VSIM_DISP_ALL);
			}
			spin_unlock_irqrestore(&q->lock, flags);
		}
		return 0;
	case VFIO_IRQ_SET_ACTION_MASK:
	case VFIO_IRQ_SET_ACTION_UNMASK:
		if (type == VFIO_IRQ_SET_DATA_EVENTFD)
			return -EINVAL;	/* no irqfd-style (un)mask */
		if (!hdr.count || !flag)
			return 0;
		spin_lock_irqsave(&q->lock, flags);
		q->masked = action == VFIO_IRQ_SET_ACTION_MASK;
		if (!q->masked && q->pending && q->trigger)
			vsim_disp_arm(q);	/* what came in while masked: at the next vblank */
		spin_unlock_irqrestore(&q->lock, flags);
		return 0;
	}
	return -EINVAL;
}

/* debugfs "display_irq" */
int vsim_display_irq_describe(struct vsim_dev *d, char *buf, size_t len)
{
	struct vsim_display_irq *q = &d->irq;
	unsigned long flags;
	int n;

	spin_lock_irqsave(&q->lock, flags);
	if (!vsim_has_display_irq(d))
		n = scnprintf(buf, len, "index=none hz=%u vblank=%llu\n", q->hz,
			      vsim_vblank_seq(q, ktime_get()));
	else
		n = scnprintf(buf, len,
			      "index=%u hz=%u vblank=%llu eventfd=%d masked=%d pending=0x%llx signals=%llu events=%llu last_signal_vblank=%lld loopbacks=%llu armed=%d\n",
			      VSIM_DISPLAY_IRQ_INDEX, q->hz, vsim_vblank_seq(q, ktime_get()),
			      !!q->trigger, q->masked, q->pending, q->signals, q->events,
			      q->signals ? (long long)q->last_signal_seq : -1LL, q->loopbacks,
			      q->armed);
	spin_unlock_irqrestore(&q->lock, flags);
	return n;
}
