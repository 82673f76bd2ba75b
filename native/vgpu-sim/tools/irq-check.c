// SPDX-License-Identifier: GPL-2.0
/*
 * irq-check: vgpu-sim's VFIO IRQ indexes as a VMM's vfio-pci uses them (GET_IRQ_INFO, SET_IRQS
 * with eventfds, INTx loopback triggers, automask and unmask), for the kernel tests.
 * Usage: irq-check [FD] [reset]   (FD: an open VFIO device fd inherited from the caller,
 * default 3; "reset": only VFIO_DEVICE_RESET, as QEMU does at machine reset)
 * Prints one JSON object.
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

static int fd;

static int set_irqs(unsigned int index, unsigned int flags, unsigned int count, int32_t *efd)
{
	char buf[sizeof(struct vfio_irq_set) + sizeof(int32_t)];
	struct vfio_irq_set *s = (void *)buf;

	memset(buf, 0, sizeof(buf));
	s->argsz = sizeof(*s) + (efd ? sizeof(int32_t) : 0);
	s->flags = flags;
	s->index = index;
	s->start = 0;
	s->count = count;
	if (efd)
		memcpy(s->data, efd, sizeof(*efd));
	return ioctl(fd, VFIO_DEVICE_SET_IRQS, s) ? errno : 0;
}

/* how often the eventfd was signalled since the last call (0: not at all) */
static long long drain(int e)
{
	uint64_t v = 0;

	return read(e, &v, sizeof(v)) == sizeof(v) ? (long long)v : 0;
}

int main(int argc, char **argv)
{
	const unsigned int trig = VFIO_IRQ_SET_ACTION_TRIGGER;
	int32_t e, none = -1;
	unsigned int i;

	fd = argc > 1 ? atoi(argv[1]) : 3;
	if (argc > 2 && !strcmp(argv[2], "reset")) {
		printf("{\"reset\":%d}\n", ioctl(fd, VFIO_DEVICE_RESET) ? errno : 0);
		return 0;
	}
	e = eventfd(0, EFD_NONBLOCK);
	printf("{\"info\":[");
	for (i = 0; i < VFIO_PCI_NUM_IRQS; i++) {
		struct vfio_irq_info info = { .argsz = sizeof(info), .index = i };
		int r = ioctl(fd, VFIO_DEVICE_GET_IRQ_INFO, &info) ? errno : 0;

		printf("%s{\"index\":%u,\"err\":%d,\"flags\":%u,\"count\":%u}", i ? "," : "", i, r,
		       info.flags, info.count);
	}
	printf("],");
	printf("\"intx_set\":%d,", set_irqs(VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_DATA_EVENTFD | trig, 1, &e));
	printf("\"intx_fire\":%d,", set_irqs(VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_DATA_NONE | trig, 1, NULL));
	printf("\"intx_signalled\":%lld,", drain(e));
	set_irqs(VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_DATA_NONE | trig, 1, NULL);
	printf("\"intx_signalled_automasked\":%lld,", drain(e));
	printf("\"intx_unmask\":%d,", set_irqs(VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 1, NULL));
	set_irqs(VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_DATA_NONE | trig, 1, NULL);
	printf("\"intx_signalled_unmasked\":%lld,", drain(e));
	printf("\"intx_mask\":%d,", set_irqs(VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, 1, NULL));
	set_irqs(VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_DATA_NONE | trig, 1, NULL);
	printf("\"intx_signalled_masked\":%lld,", drain(e));
	printf("\"intx_unmask_eventfd\":%d,", set_irqs(VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK, 1, &e));
	printf("\"intx_disable\":%d,", set_irqs(VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_DATA_NONE | trig, 0, NULL));
	printf("\"err_set\":%d,", set_irqs(VFIO_PCI_ERR_IRQ_INDEX, VFIO_IRQ_SET_DATA_EVENTFD | trig, 1, &e));
	printf("\"err_clear\":%d,", set_irqs(VFIO_PCI_ERR_IRQ_INDEX, VFIO_IRQ_SET_DATA_EVENTFD | trig, 1, &none));
	printf("\"req_set\":%d,", set_irqs(VFIO_PCI_REQ_IRQ_INDEX, VFIO_IRQ_SET_DATA_EVENTFD | trig, 1, &e));
	printf("\"msi_set\":%d,", set_irqs(VFIO_PCI_MSI_IRQ_INDEX, VFIO_IRQ_SET_DATA_EVENTFD | trig, 1, &e));
	printf("\"msix_disable\":%d,", set_irqs(VFIO_PCI_MSIX_IRQ_INDEX, VFIO_IRQ_SET_DATA_NONE | trig, 0, NULL));
	printf("\"bad_eventfd\":%d,", set_irqs(VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_DATA_EVENTFD | trig, 1, &(int32_t){ 0x7ffffff0 }));
	{
		/* the first index past what the device reports (5 is the display event IRQ, if any) */
		struct vfio_device_info di = { .argsz = sizeof(di) };
		unsigned int past = ioctl(fd, VFIO_DEVICE_GET_INFO, &di) ? VFIO_PCI_NUM_IRQS + 1 : di.num_irqs;

		printf("\"bad_index\":%d}\n", set_irqs(past, VFIO_IRQ_SET_DATA_NONE | trig, 0, NULL));
	}
	return 0;
}
