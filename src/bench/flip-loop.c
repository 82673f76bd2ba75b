// SPDX-License-Identifier: MIT
/*
 * flip-loop: the bench's C side (src/bench/cbin.ts builds it inside the rig's VM with gcc and
 * libdrm's headers, and runs it beside the tool). Raw ioctls only, no library.
 *
 *   flip-loop loop   VFIO_FD DRM_FD PLANE CRTC FRAMES WARMUP FLIPFILE OFF[,OFF...]
 *       the reference loop: exactly the DMABUF path's per-frame work (VFIO_DEVICE_QUERY_GFX_PLANE,
 *       a framebuffer cached per dmabuf_id, one nonblocking atomic commit of FB_ID with a
 *       page-flip event, read the event), then the guest flips (writes the next offset to the
 *       vgpu-sim debugfs FLIPFILE; its CPU time is not counted, as the tool's bench does)
 *   flip-loop poll30 VFIO_FD DRM_FD PLANE CRTC SECONDS PERIOD_MS
 *       a QEMU-like consumer (hw/vfio/display.c on its 30 ms UI timer): every PERIOD_MS one
 *       query, and a commit when the dmabuf_id changed and no flip is pending
 *   flip-loop guest  FLIPFILE OFF[,OFF...] FPS COUNT [wait=KFLIPWAIT] [VRAMFILE STRIDE HEIGHT]
 *       a guest flipping at FPS (absolute deadlines); with VRAMFILE it draws 16 new rows into
 *       video memory before each flip (a REGION guest must change to be shown); with wait= it
 *       writes vgpu-sim's kflip_wait after each flip, which returns once the in-kernel DRM_FB
 *       flip is made (on screen), and reports that time too
 *   flip-loop hog
 *       a CPU hog (spins until killed)
 *
 * FDs are inherited from the caller (the tool's own DRM master fd and VFIO device fd). Every
 * mode but hog prints one JSON object on stdout. Framebuffers and GEM handles are left to the
 * caller (listed in "fbs" and "handles"): it restores the display first, then removes them.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include <linux/vfio.h>
#include <drm.h>
#include <drm_mode.h>

#define MAX_FB 32
#define MAX_OFF 16

static int vfio = -1, drm = -1;
static long ioctls;

static uint64_t clock_us(clockid_t c)
{
	struct timespec t;

	clock_gettime(c, &t);
	return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}
#define now_us() clock_us(CLOCK_MONOTONIC)
#define cpu_us() clock_us(CLOCK_PROCESS_CPUTIME_ID)

static void die(const char *what)
{
	fprintf(stderr, "flip-loop: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* an ioctl as libdrm's drmIoctl makes it (EINTR/EAGAIN retried), counted */
static int xioctl(int fd, unsigned long req, void *arg)
{
	int r;

	ioctls++;
	do
		r = ioctl(fd, req, arg);
	while (r == -1 && (errno == EINTR || errno == EAGAIN));
	return r;
}

static int parse_offsets(const char *s, uint64_t *off)
{
	int n = 0;

	while (*s && n < MAX_OFF) {
		char *end;

		off[n++] = strtoull(s, &end, 0);
		s = *end == ',' ? end + 1 : end;
	}
	return n;
}

/* property id of `name` on object obj (setup only, not per frame) */
static uint32_t prop_id(uint32_t obj, uint32_t type, const char *name)
{
	struct drm_mode_obj_get_properties gp = { .obj_id = obj, .obj_type = type };
	uint32_t ids[64];
	uint64_t vals[64];

	if (xioctl(drm, DRM_IOCTL_MODE_OBJ_GETPROPERTIES, &gp) || gp.count_props > 64)
		die("OBJ_GETPROPERTIES");
	gp.props_ptr = (uintptr_t)ids;
	gp.prop_values_ptr = (uintptr_t)vals;
	if (xioctl(drm, DRM_IOCTL_MODE_OBJ_GETPROPERTIES, &gp))
		die("OBJ_GETPROPERTIES");
	for (uint32_t i = 0; i < gp.count_props; i++) {
		struct drm_mode_get_property p = { .prop_id = ids[i] };

		if (xioctl(drm, DRM_IOCTL_MODE_GETPROPERTY, &p) == 0 && strcmp(p.name, name) == 0)
			return ids[i];
	}
	fprintf(stderr, "flip-loop: object %u has no property %s\n", obj, name);
	exit(1);
}

static int commit(uint32_t obj, uint32_t n, const uint32_t *props, const uint64_t *vals, uint32_t flags)
{
	uint32_t objs[1] = { obj }, counts[1] = { n };
	struct drm_mode_atomic a = {
		.flags = flags, .count_objs = 1, .objs_ptr = (uintptr_t)objs, .count_props_ptr = (uintptr_t)counts,
		.props_ptr = (uintptr_t)props, .prop_values_ptr = (uintptr_t)vals, .user_data = 1,
	};

	return xioctl(drm, DRM_IOCTL_MODE_ATOMIC, &a) ? -errno : 0;
}

/* the page-flip event: its vblank time (us, CLOCK_MONOTONIC); 0 when none came within timeout_ms */
static uint64_t read_flip(int timeout_ms)
{
	struct pollfd p = { .fd = drm, .events = POLLIN };
	char buf[1024];

	for (;;) {
		ssize_t n, i;

		if (poll(&p, 1, timeout_ms) <= 0)
			return 0;
		n = read(drm, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			die("read(drm)");
		}
		for (i = 0; i + (ssize_t)sizeof(struct drm_event) <= n;) {
			struct drm_event *e = (void *)(buf + i);

			if (e->type == DRM_EVENT_FLIP_COMPLETE) {
				struct drm_event_vblank *v = (void *)e;

				return (uint64_t)v->tv_sec * 1000000u + v->tv_usec;
			}
			i += e->length;
		}
	}
}

struct fb { uint32_t id, fb, handle; };
static struct fb cache[MAX_FB];
static int ncache;

static int query(struct vfio_device_gfx_plane_info *q)
{
	memset(q, 0, sizeof(*q));
	q->argsz = sizeof(*q);
	q->flags = VFIO_GFX_PLANE_TYPE_DMABUF;
	q->drm_plane_type = 1; /* DRM_PLANE_TYPE_PRIMARY (a kernel-internal enum) */
	return xioctl(vfio, VFIO_DEVICE_QUERY_GFX_PLANE, q);
}

/* the framebuffer of a dmabuf_id: cached, else GET_GFX_DMABUF + PRIME import + ADDFB2 */
static uint32_t fb_of(const struct vfio_device_gfx_plane_info *q)
{
	struct drm_prime_handle h = { .flags = 0 };
	struct drm_mode_fb_cmd2 f = { .width = q->width, .height = q->height, .pixel_format = q->drm_format };
	uint32_t id = q->dmabuf_id;
	int i, dfd;

	for (i = 0; i < ncache; i++)
		if (cache[i].id == id)
			return cache[i].fb;
	if (ncache == MAX_FB) {
		fprintf(stderr, "flip-loop: more than %d buffers\n", MAX_FB);
		exit(1);
	}
	dfd = xioctl(vfio, VFIO_DEVICE_GET_GFX_DMABUF, &id);
	if (dfd < 0)
		die("VFIO_DEVICE_GET_GFX_DMABUF");
	h.fd = dfd;
	if (xioctl(drm, DRM_IOCTL_PRIME_FD_TO_HANDLE, &h))
		die("PRIME_FD_TO_HANDLE");
	close(dfd);
	f.handles[0] = h.handle;
	f.pitches[0] = q->stride;
	if (xioctl(drm, DRM_IOCTL_MODE_ADDFB2, &f))
		die("ADDFB2");
	cache[ncache++] = (struct fb){ .id = q->dmabuf_id, .fb = f.fb_id, .handle = h.handle };
	return f.fb_id;
}

static void print_fbs(void)
{
	int i;

	printf("\"fbs\":[");
	for (i = 0; i < ncache; i++)
		printf("%s%u", i ? "," : "", cache[i].fb);
	printf("],\"handles\":[");
	for (i = 0; i < ncache; i++)
		printf("%s%u", i ? "," : "", cache[i].handle);
	printf("]");
}

static uint32_t plane, crtc, p_fb;

/* the first frame: the whole plane (blocking, no event), as the tool's assignment does */
static void place(const struct vfio_device_gfx_plane_info *q)
{
	static const char *names[] = { "FB_ID", "CRTC_ID", "SRC_X", "SRC_Y", "SRC_W", "SRC_H", "CRTC_X", "CRTC_Y", "CRTC_W", "CRTC_H" };
	uint64_t vals[10] = { fb_of(q), crtc, 0, 0, (uint64_t)q->width << 16, (uint64_t)q->height << 16, 0, 0, q->width, q->height };
	uint32_t props[10];
	int i, r;

	for (i = 0; i < 10; i++)
		props[i] = prop_id(plane, DRM_MODE_OBJECT_PLANE, names[i]);
	p_fb = props[0];
	r = commit(plane, 10, props, vals, 0);
	if (r) {
		errno = -r;
		die("placing the plane (atomic commit)");
	}
}

static void open_common(char **argv)
{
	struct vfio_device_gfx_plane_info q;

	vfio = atoi(argv[0]);
	drm = atoi(argv[1]);
	plane = strtoul(argv[2], NULL, 0);
	crtc = strtoul(argv[3], NULL, 0);
	if (query(&q) || q.size == 0)
		die("the first VFIO_DEVICE_QUERY_GFX_PLANE (guest plane not ready?)");
	place(&q);
}

static int flip_fd;

static void guest_flip(uint64_t off)
{
	char s[32];
	int n = snprintf(s, sizeof(s), "%llu", (unsigned long long)off);

	if (pwrite(flip_fd, s, n, 0) != n)
		die("writing the guest's flip file");
}

static int mode_loop(int argc, char **argv)
{
	struct vfio_device_gfx_plane_info q;
	uint64_t off[MAX_OFF], t0 = 0, c0 = 0, g = 0;
	long frames, warmup, i, io0 = 0;
	int noff;

	if (argc != 8)
		return 2;
	open_common(argv);
	frames = atol(argv[4]);
	warmup = atol(argv[5]);
	flip_fd = open(argv[6], O_WRONLY);
	if (flip_fd < 0)
		die(argv[6]);
	noff = parse_offsets(argv[7], off);
	guest_flip(off[1 % noff]);
	for (i = 0; i < warmup + frames; i++) {
		uint64_t g0;
		int r;

		if (i == warmup) {
			t0 = now_us();
			c0 = cpu_us();
			io0 = ioctls;
			g = 0;
		}
		if (query(&q))
			die("VFIO_DEVICE_QUERY_GFX_PLANE");
		{
			uint64_t v = fb_of(&q);

			r = commit(plane, 1, &p_fb, &v, DRM_MODE_ATOMIC_NONBLOCK | DRM_MODE_PAGE_FLIP_EVENT);
		}
		if (r) {
			errno = -r;
			die("atomic commit");
		}
		if (!read_flip(2000)) {
			fprintf(stderr, "flip-loop: no page-flip event within 2 s\n");
			return 1;
		}
		g0 = cpu_us();
		guest_flip(off[(i + 2) % noff]);
		g += cpu_us() - g0;
	}
	{
		double s = (now_us() - t0) / 1e6;
		double cpu = (double)(cpu_us() - c0 - g);

		printf("{\"frames\":%ld,\"seconds\":%.3f,\"fps\":%.1f,\"cpu_us_per_frame\":%.1f,\"guest_cpu_us_per_frame\":%.1f,\"ioctls_per_frame\":%.2f,",
		       frames, s, frames / s, cpu / frames, (double)g / frames, (double)(ioctls - io0) / frames);
	}
	print_fbs();
	printf("}\n");
	return 0;
}

static int mode_poll30(int argc, char **argv)
{
	struct vfio_device_gfx_plane_info q;
	uint64_t start, end, next, c0, commit_us = 0, period;
	uint32_t shown = 0, pend_id = 0;
	long io0, ticks = 0, nframes = 0;
	int pending = 0, first = 1;

	if (argc != 6)
		return 2;
	open_common(argv);
	period = (uint64_t)atol(argv[5]) * 1000u;
	start = now_us();
	end = start + (uint64_t)(atof(argv[4]) * 1e6);
	c0 = cpu_us();
	io0 = ioctls;
	next = start + period;
	printf("{\"frames\":[");
	while (now_us() < end) {
		uint64_t t = now_us();

		if (t < next) {
			uint64_t vbl = read_flip((int)((next - t + 999) / 1000));

			if (vbl && pending) {
				printf("%s[%llu,%llu,%u]", first ? "" : ",", (unsigned long long)commit_us, (unsigned long long)vbl, pend_id);
				first = 0;
				pending = 0;
				nframes++;
			}
			continue;
		}
		next += period;
		ticks++;
		if (query(&q) || q.size == 0 || q.dmabuf_id == shown || pending)
			continue;
		{
			uint64_t v = fb_of(&q);

			commit_us = now_us();
			if (commit(plane, 1, &p_fb, &v, DRM_MODE_ATOMIC_NONBLOCK | DRM_MODE_PAGE_FLIP_EVENT) == 0) {
				pending = 1;
				pend_id = shown = q.dmabuf_id;
			}
		}
	}
	{
		double s = (now_us() - start) / 1e6;

		printf("],\"seconds\":%.3f,\"ticks\":%ld,\"commits\":%ld,\"ioctls_per_second\":%.2f,\"cpu_us_per_second\":%.1f,",
		       s, ticks, nframes, (ioctls - io0) / s, (cpu_us() - c0) / s);
	}
	if (pending)
		read_flip(500);
	print_fbs();
	printf("}\n");
	return 0;
}

static int mode_guest(int argc, char **argv)
{
	uint64_t off[MAX_OFF], period, next;
	long count, k, stride = 0, height = 0;
	int noff, vram = -1, kwait = -1;
	char *rows = NULL;
	double fps;

	if (argc >= 5 && strncmp(argv[4], "wait=", 5) == 0) {
		kwait = open(argv[4] + 5, O_WRONLY);
		if (kwait < 0)
			die(argv[4] + 5);
		argv[4] = argv[3], argv[3] = argv[2], argv[2] = argv[1], argv[1] = argv[0];
		argv++, argc--;
	}
	if (argc != 4 && argc != 7)
		return 2;
	flip_fd = open(argv[0], O_WRONLY);
	if (flip_fd < 0)
		die(argv[0]);
	noff = parse_offsets(argv[1], off);
	fps = atof(argv[2]);
	count = atol(argv[3]);
	if (argc == 7) {
		vram = open(argv[4], O_WRONLY);
		if (vram < 0)
			die(argv[4]);
		stride = atol(argv[5]);
		height = atol(argv[6]);
		rows = malloc(16 * stride);
	}
	period = (uint64_t)(1e6 / fps);
	next = now_us() + period;
	printf("{\"flips\":[");
	for (k = 0; k < count; k++) {
		struct timespec ts = { .tv_sec = next / 1000000u, .tv_nsec = (next % 1000000u) * 1000u };
		uint64_t t0, t1, t2 = 0;

		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		if (rows) {
			memset(rows, (int)(k * 37 + 1), 16 * stride);
			if (pwrite(vram, rows, 16 * stride, (off_t)(((k * 16) % (height - 15)) * stride + off[0])) != 16 * stride)
				die("writing video memory");
		}
		t0 = now_us();
		guest_flip(off[k % noff]);
		t1 = now_us();
		if (kwait >= 0) {
			if (pwrite(kwait, "1", 1, 0) != 1)
				die("writing kflip_wait");
			t2 = now_us();
		}
		printf("%s[%llu,%llu,%d,%llu]", k ? "," : "", (unsigned long long)t0, (unsigned long long)t1, (int)(k % noff),
		       (unsigned long long)t2);
		next += period;
		if (next + period < t1) /* more than a frame late: a real guest does not catch up in a burst */
			next = t1;
	}
	printf("]}\n");
	return 0;
}

int main(int argc, char **argv)
{
	int r = 2;

	if (argc >= 2 && strcmp(argv[1], "hog") == 0)
		for (volatile unsigned long n = 0;; n++)
			;
	if (argc >= 2 && strcmp(argv[1], "loop") == 0)
		r = mode_loop(argc - 2, argv + 2);
	else if (argc >= 2 && strcmp(argv[1], "poll30") == 0)
		r = mode_poll30(argc - 2, argv + 2);
	else if (argc >= 2 && strcmp(argv[1], "guest") == 0)
		r = mode_guest(argc - 2, argv + 2);
	if (r == 2)
		fprintf(stderr, "usage: see the header of src/bench/flip-loop.c\n");
	return r;
}
