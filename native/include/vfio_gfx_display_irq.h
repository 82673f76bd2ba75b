/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * vfio_gfx_display_irq.h - a display event from the vGPU: an IRQ index whose eventfd the vendor
 * driver signals when the guest display changes, so user space needs no polling timer.
 * Shared by the vgpu-sim kernel module and the vgpu-flip native addon (it includes
 * <linux/vfio.h>). Nothing here is in upstream linux/vfio.h (checked: 6.1 has no IRQ
 * capabilities at all, no VFIO_IRQ_INFO_FLAG_CAPS and no cap_offset in struct vfio_irq_info).
 *
 * Origin
 * ------
 * The constants and layouts are those of Intel's series "Deliver vGPU display refresh event to
 * userspace" (Tina Zhang, Kechen Lu; v5 2019-08-16, v6 2019-09-24; never merged):
 *   [PATCH v6 1/6] vfio: Define device specific irq type capability
 *   [PATCH v6 2/6] vfio: Introduce vGPU display irq type
 *   [PATCH v6 3/6] drm/i915/gvt: Register vGPU display event irq
 *   [PATCH v6 4/6] drm/i915/gvt: Deliver vGPU refresh event to userspace
 * v6 numbers the IRQ capabilities from 1 (VFIO_IRQ_INFO_CAP_TYPE 1, VFIO_IRQ_INFO_CAP_DISPLAY 2);
 * v5 used 3 and 4. This header follows v6. The event values are GVT-g's (patch 3/6,
 * DISPLAY_PRI_REFRESH_EVENT_VAL / DISPLAY_CUR_REFRESH_EVENT_VAL).
 *
 * Discovery
 * ---------
 *  - VFIO_DEVICE_GET_INFO: num_irqs counts the device specific IRQ indexes after the fixed
 *    VFIO_PCI_NUM_IRQS (5) of vfio-pci ("IRQ indexes >= 5 use a device specific capability to
 *    define their content", patch 1/6). vgpu-sim: 6 (the display IRQ is index 5); its headless
 *    type has no display and reports 5.
 *  - VFIO_DEVICE_GET_IRQ_INFO for such an index sets VFIO_IRQ_INFO_FLAG_CAPS and, as for regions,
 *    carries a capability chain (struct vfio_info_cap_header: id, version, next = offset of the
 *    next capability from the start of the info, 0 for the last). The info struct then has a
 *    cap_offset after count (struct vfio_irq_info_caps below, 20 bytes). When argsz is too small
 *    for the chain the driver answers argsz = the size needed and cap_offset 0; ask again with
 *    that much room. An argsz of 16 (the 6.1 struct) gets the first 16 bytes only.
 *    Users must follow cap_offset and next: vgpu-sim puts the chain at 24 (8-byte aligned, so the
 *    __u64 members of the display capability are aligned); GVT-g put it at sizeof(info) = 20.
 *  - The chain of the display IRQ:
 *      1. VFIO_IRQ_INFO_CAP_TYPE (1), version 1: type VFIO_IRQ_TYPE_GFX (1), subtype
 *         VFIO_IRQ_SUBTYPE_GFX_DISPLAY_IRQ (1).
 *      2. VFIO_IRQ_INFO_CAP_DISPLAY (2), version 1 (optional per the series): which eventfd
 *         counter values mean "the primary plane changed" and "the cursor plane changed".
 *    flags EVENTFD | MASKABLE | CAPS, count 1 (as GVT-g registered it).
 *    User space finds the display IRQ by walking the indexes >= VFIO_PCI_NUM_IRQS for this type.
 *
 * Semantics (the series' text, sharpened where it was vague)
 * ---------
 *  - The IRQ asks user space for a display refresh: it covers every display update event, so
 *    user space can stop its refresh timer and depend on the notification. After a signal, re-run
 *    VFIO_DEVICE_QUERY_GFX_PLANE for the planes it names.
 *  - One eventfd, a partitioned counter: each signal adds pri_event_val and/or cur_event_val.
 *    A read returns the sum since the last read, so with the GVT-g values below
 *    (value >> 56) is the number of primary signals and ((value >> 48) & 0xff) the number of
 *    cursor signals since the last read, as long as fewer than 256 of each accumulated unread
 *    (the eventfd saturates at 2^64 - 1). A value with other bits set, or one that does not
 *    decompose, means "refresh every plane". Without the display capability a user refreshes
 *    every plane on each signal.
 *  - VFIO_IRQ_SET_ACTION_TRIGGER with DATA_EVENTFD attaches an eventfd (fd -1 detaches);
 *    DATA_NONE count 0 detaches; DATA_NONE count 1 or DATA_BOOL true fires it at once with
 *    pri_event_val | cur_event_val (a loopback, for tests; vgpu-sim: while masked it stays
 *    pending like any change). ACTION_MASK / ACTION_UNMASK with
 *    DATA_NONE or DATA_BOOL (count 1) mask and unmask it (the series' way to switch between
 *    event-driven and timer-driven refresh). The eventfd variant of (un)mask is EINVAL.
 *
 * vgpu-sim's implementation (native/vgpu-sim/display_irq.c)
 * -----------------------------
 *  - Signalled on guest page flip, mode change, plane enable/disable, cursor move or hotspot
 *    change, guest reset (and VFIO_DEVICE_RESET), and when the guest disables its display (plane
 *    disable / reset). pri_event_val stands for every plane other than the cursor (primary and
 *    overlay: the series has no overlay value); reset and display-off signal both values.
 *    Writes into video memory (front-buffer rendering without a flip) are not signalled.
 *  - At most one signal per guest vblank period, on a simulated vblank clock (module parameter
 *    refresh_hz, default 60; period k starts at epoch + k * period, epoch = instance creation):
 *    the first change of a period is signalled at once (no added latency); changes after it in
 *    that period are delivered together at the next boundary. A busy guest cannot flood the host.
 *  - While masked, changes stay pending and are delivered on unmask, at once or at the next
 *    boundary by the same rule (a
 *    level-triggered, maskable interrupt). Without an eventfd nothing is pending. Attaching an
 *    eventfd starts with nothing pending. Close of the device detaches the eventfd and unmasks;
 *    VFIO_DEVICE_RESET keeps the eventfd (as vfio-pci does for its IRQs), unmasks, and signals.
 *  - debugfs <uuid>/display_irq shows: index hz vblank eventfd masked pending signals events
 *    last_signal_vblank loopbacks armed.
 *  - While host planes show a guest plane through DRM_FB, that plane's signal comes from the
 *    in-kernel flip worker (drmfb.c) once it has moved them, not from this clock.
 */
#ifndef VGPU_FLIP_VFIO_GFX_DISPLAY_IRQ_H
#define VGPU_FLIP_VFIO_GFX_DISPLAY_IRQ_H

#include <linux/types.h>
#include <linux/vfio.h>

/* patch 1/6: vfio_irq_info gains capabilities */
#ifndef VFIO_IRQ_INFO_FLAG_CAPS
#define VFIO_IRQ_INFO_FLAG_CAPS (1 << 4)	/* Info supports caps */
#endif

/*
 * struct vfio_irq_info as patch 1/6 extends it: cap_offset after count. The first 16 bytes are
 * the 6.1 struct vfio_irq_info.
 */
struct vfio_irq_info_caps {
	__u32 argsz;
	__u32 flags;
	__u32 index;		/* IRQ index */
	__u32 count;		/* Number of IRQs within this index */
	__u32 cap_offset;	/* Offset within info struct of first cap */
};

#define VFIO_IRQ_INFO_CAPS_SIZE 20

/* patch 1/6: the IRQ type capability (as VFIO_REGION_INFO_CAP_TYPE for regions) */
#ifndef VFIO_IRQ_INFO_CAP_TYPE
#define VFIO_IRQ_INFO_CAP_TYPE 1

struct vfio_irq_info_cap_type {
	struct vfio_info_cap_header header;
	__u32 type;	/* global per bus driver */
	__u32 subtype;	/* type specific */
};
#endif

/* patch 2/6: vGPU IRQ type, and its display refresh sub-type */
#ifndef VFIO_IRQ_TYPE_GFX
#define VFIO_IRQ_TYPE_GFX (1)
#endif
#ifndef VFIO_IRQ_SUBTYPE_GFX_DISPLAY_IRQ
#define VFIO_IRQ_SUBTYPE_GFX_DISPLAY_IRQ (1)
#endif

/*
 * patch 2/6: capability for interpreting the GFX_DISPLAY_IRQ eventfd value.
 * cur_event_val: eventfd counter value for a cursor plane change event.
 * pri_event_val: eventfd counter value for a primary plane change event.
 */
#ifndef VFIO_IRQ_INFO_CAP_DISPLAY
#define VFIO_IRQ_INFO_CAP_DISPLAY 2

struct vfio_irq_info_cap_display_plane_events {
	struct vfio_info_cap_header header;
	__u64 cur_event_val;
	__u64 pri_event_val;
};
#endif

/* the values GVT-g used (patch 3/6) and vgpu-sim uses: an 8-bit counter each at bits 56 and 48 */
#define VFIO_GFX_DISPLAY_PRI_EVENT_VAL (1ULL << 56)
#define VFIO_GFX_DISPLAY_CUR_EVENT_VAL (1ULL << 48)

/* sizes for static checks: header 8 + 8, header 8 + 16 */
#define VFIO_IRQ_INFO_CAP_TYPE_SIZE 16
#define VFIO_IRQ_INFO_CAP_DISPLAY_SIZE 24

#endif /* VGPU_FLIP_VFIO_GFX_DISPLAY_IRQ_H */
