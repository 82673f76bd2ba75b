#!/usr/bin/env python3
# Send one udev-style "change" event (libudev monitor format, netlink group 2) for a DRM card,
# as udevd would re-broadcast the kernel's uevent: the rig has no udevd, and wlroots listens only
# to the udev group. Usage: wayland-fake-udev.py /sys/class/drm/card1 KEY=VAL...
# Used by test/kernel/wayland-helpers.ts (fakeUdevChange). Root only (multicast send on NETLINK_KOBJECT_UEVENT).
import os, socket, struct, sys

def murmur2(data: bytes, seed: int = 0) -> int:
    m = 0x5bd1e995; r = 24; h = (seed ^ len(data)) & 0xffffffff
    i = 0
    while len(data) - i >= 4:
        k = struct.unpack_from('<I', data, i)[0]
        k = (k * m) & 0xffffffff; k ^= k >> r; k = (k * m) & 0xffffffff
        h = (h * m) & 0xffffffff; h ^= k
        i += 4
    rest = len(data) - i
    if rest == 3: h ^= data[i + 2] << 16
    if rest >= 2: h ^= data[i + 1] << 8
    if rest >= 1:
        h ^= data[i]; h = (h * m) & 0xffffffff
    h ^= h >> 13; h = (h * m) & 0xffffffff; h ^= h >> 15
    return h

sysdir = os.path.realpath(sys.argv[1])
devpath = sysdir[len('/sys'):]
name = os.path.basename(sysdir)
major, minor = open(os.path.join(sysdir, 'dev')).read().strip().split(':')
props = [('ACTION', 'change'), ('DEVPATH', devpath), ('SUBSYSTEM', 'drm'), ('DEVNAME', '/dev/dri/' + name),
         ('DEVTYPE', 'drm_minor'), ('MAJOR', major), ('MINOR', minor), ('SEQNUM', str(900000 + os.getpid()))]
props += [tuple(a.split('=', 1)) for a in sys.argv[2:]]
body = b''.join(f'{k}={v}'.encode() + b'\0' for k, v in props)
hdr = struct.pack('=8sIIIIIIII', b'libudev\0', socket.htonl(0xfeedcafe), 40, 40, len(body), socket.htonl(murmur2(b'drm')), socket.htonl(murmur2(b'drm_minor')), 0, 0)
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 15)  # NETLINK_KOBJECT_UEVENT
s.bind((0, 0))
s.sendto(hdr + body, (0, 2))
print('sent', props)
