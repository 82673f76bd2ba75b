// SPDX-License-Identifier: GPL-2.0
/*
 * display-irq-check: raw VFIO_DEVICE_GET_IRQ_INFO / SET_IRQS calls on vgpu-sim's display event
 * IRQ (native/include/vfio_gfx_display_irq.h) that the addon never makes: short argsz (the 6.1
 * struct, the extended struct without room for the chain), odd SET_IRQS combinations.
 * Usage: display-irq-check [FD]   (FD: an open VFIO device fd inherited from the caller, default 3)
 * Prints one JSON object (errno per call, 0 = success).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/vfio.h>

#include "../../include/vfio_gfx_display_irq.h"

#define IDX VFIO_PCI_NUM_IRQS

static int fd;

static int set_irqs(unsigned int index, unsigned int flags, unsigned int count, const void *data,
		    size_t len)
{
	char buf[sizeof(struct vfio_irq_set) + 8];
	struct vfio_irq_set *s = (void *)buf;

	memset(buf, 0, sizeof(buf));
	s->argsz = sizeof(*s) + len;
	s->flags = flags;
	s->index = index;
	s->count = count;
	if (len)
		memcpy(s->data, data, len);
	return ioctl(fd, VFIO_DEVICE_SET_IRQS, s) ? errno : 0;
}

int main(int argc, char **argv)
{
	const unsigned int trig = VFIO_IRQ_SET_ACTION_TRIGGER;
	uint8_t buf[128];
	struct vfio_irq_info_caps *ic = (void *)buf;
	int32_t e, bad = -2;
	uint8_t no = 0;
	uint64_t v = 0;
	int r;

	fd = argc > 1 ? atoi(argv[1]) : 3;
	e = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	/* argsz 16: the 6.1 struct; the driver says how much it needs, writes no cap_offset */
	memset(buf, 0xee, sizeof(buf));
	ic->argsz = 16;
	ic->index = IDX;
	r = ioctl(fd, VFIO_DEVICE_GET_IRQ_INFO, buf) ? errno : 0;
	printf("{\"argsz16\":{\"err\":%d,\"argsz\":%u,\"flags\":%u,\"count\":%u,\"byte16\":%u},", r,
	       ic->argsz, ic->flags, ic->count, buf[16]);

	/* argsz 20: the extended struct, no room for the chain: cap_offset 0 */
	memset(buf, 0xee, sizeof(buf));
	ic->argsz = 20;
	ic->index = IDX;
	r = ioctl(fd, VFIO_DEVICE_GET_IRQ_INFO, buf) ? errno : 0;
	printf("\"argsz20\":{\"err\":%d,\"argsz\":%u,\"cap_offset\":%u,\"byte20\":%u},", r, ic->argsz,
	       ic->cap_offset, buf[20]);

	/* argsz 15: too small for anything */
	ic->argsz = 15;
	ic->index = IDX;
	printf("\"argsz15\":%d,", ioctl(fd, VFIO_DEVICE_GET_IRQ_INFO, buf) ? errno : 0);

	/* the index after the display IRQ does not exist */
	ic->argsz = sizeof(buf);
	ic->index = IDX + 1;
	printf("\"info_past\":%d,", ioctl(fd, VFIO_DEVICE_GET_IRQ_INFO, buf) ? errno : 0);

	printf("\"attach\":%d,", set_irqs(IDX, VFIO_IRQ_SET_DATA_EVENTFD | trig, 1, &e, 4));
	printf("\"fire_bool_false\":%d,", set_irqs(IDX, VFIO_IRQ_SET_DATA_BOOL | trig, 1, &no, 1));
	printf("\"signalled_false\":%d,", read(e, &v, 8) == 8 ? 1 : 0);
	printf("\"bad_fd_negative\":%d,", set_irqs(IDX, VFIO_IRQ_SET_DATA_EVENTFD | trig, 1, &bad, 4));
	printf("\"bad_fd\":%d,", set_irqs(IDX, VFIO_IRQ_SET_DATA_EVENTFD | trig, 1, &(int32_t){ 0x7ffffff0 }, 4));
	printf("\"not_eventfd\":%d,", set_irqs(IDX, VFIO_IRQ_SET_DATA_EVENTFD | trig, 1, &(int32_t){ 0 }, 4));
	printf("\"unmask_eventfd\":%d,", set_irqs(IDX, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK, 1, &e, 4));
	printf("\"two_actions\":%d,", set_irqs(IDX, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK, 1, NULL, 0));
	printf("\"count2\":%d,", set_irqs(IDX, VFIO_IRQ_SET_DATA_NONE | trig, 2, NULL, 0));
	printf("\"short_data\":%d,", set_irqs(IDX, VFIO_IRQ_SET_DATA_EVENTFD | trig, 1, NULL, 0));
	printf("\"set_past\":%d,", set_irqs(IDX + 1, VFIO_IRQ_SET_DATA_NONE | trig, 0, NULL, 0));
	printf("\"detach\":%d}\n", set_irqs(IDX, VFIO_IRQ_SET_DATA_NONE | trig, 0, NULL, 0));
	close(e);
	return 0;
}
