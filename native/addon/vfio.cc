// VFIO calls: legacy group/container open of an mdev, pidfd fd adoption, device, region and IRQ
// info, SET_IRQS, eventfds, the mdev display ABI (QUERY_GFX_PLANE, GET_GFX_DMABUF). Marshalling only.
#include "common.h"

#include <fcntl.h>
#include <linux/vfio.h>
#include <sys/ioctl.h>
// the DRM_FB plane type (bit 3) and the drm_fb_id union member: the uapi-style header shared
// with the vgpu-sim kernel module
#include "../include/vfio_gfx_drm_fb.h"
// IRQ capabilities (cap_offset, VFIO_IRQ_INFO_FLAG_CAPS): the display event IRQ proposal
#include "../include/vfio_gfx_display_irq.h"
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace vgpu {
namespace {

int Xioctl(int fd, unsigned long req, void* arg) {
  int r;
  do {
    r = ioctl(fd, req, arg);
  } while (r == -1 && errno == EINTR);
  return r;
}

// closes the fds it holds unless released
struct FdGuard {
  std::vector<int> fds;
  ~FdGuard() {
    for (int fd : fds) {
      ForgetFdLabel(fd);
      close(fd);
    }
  }
  void release() { fds.clear(); }
};

Napi::Value VfioOpenMdev(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 2, "vfioOpenMdev");
  uint32_t groupId = ArgU32(info, 0, "vfioOpenMdev", "groupId");
  std::string name = ArgString(info, 1, "vfioOpenMdev", "deviceName");
  const std::string containerPath = "/dev/vfio/vfio";
  const std::string groupPath = "/dev/vfio/" + std::to_string(groupId);
  FdGuard guard;

  int container = open(containerPath.c_str(), O_RDWR | O_CLOEXEC);
  if (container < 0) {
    int e = errno;
    ThrowKernel(env, "open", containerPath, e,
                e == ENOENT ? "the vfio module is not loaded (modprobe vfio vfio_iommu_type1 mdev)" : "");
  }
  guard.fds.push_back(container);
  int api = Xioctl(container, VFIO_GET_API_VERSION, nullptr);
  if (api < 0) ThrowKernel(env, "VFIO_GET_API_VERSION", containerPath, errno);
  if (api != VFIO_API_VERSION)
    ThrowKernel(env, "VFIO_GET_API_VERSION", containerPath, EINVAL,
                "kernel VFIO API version " + std::to_string(api) + ", expected " + std::to_string(VFIO_API_VERSION));

  int group = open(groupPath.c_str(), O_RDWR | O_CLOEXEC);
  if (group < 0) {
    int e = errno;
    std::string hint;
    if (e == EBUSY)
      hint = "the group is held by another process (e.g. a VMM such as QEMU); adopt its device fd instead "
             "with --pid <vmm pid> (pidfd_getfd, needs root)";
    else if (e == ENOENT)
      hint = "no such VFIO group; check /sys/bus/mdev/devices/" + name + "/iommu_group";
    else if (e == EACCES || e == EPERM)
      hint = "permission denied; run as root or grant access to " + groupPath;
    ThrowKernel(env, "open", groupPath, e, hint);
  }
  guard.fds.push_back(group);

  vfio_group_status st{};
  st.argsz = sizeof st;
  if (Xioctl(group, VFIO_GROUP_GET_STATUS, &st) != 0) ThrowKernel(env, "VFIO_GROUP_GET_STATUS", groupPath, errno);
  if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE))
    ThrowKernel(env, "VFIO_GROUP_GET_STATUS", groupPath, EINVAL,
                "group " + std::to_string(groupId) + " is not viable: bind every device of the group to a vfio driver");

  if (Xioctl(group, VFIO_GROUP_SET_CONTAINER, &container) != 0)
    ThrowKernel(env, "VFIO_GROUP_SET_CONTAINER", groupPath, errno);

  if (Xioctl(container, VFIO_SET_IOMMU, reinterpret_cast<void*>(uintptr_t(VFIO_TYPE1v2_IOMMU))) != 0) {
    int e2 = errno;
    if (Xioctl(container, VFIO_SET_IOMMU, reinterpret_cast<void*>(uintptr_t(VFIO_TYPE1_IOMMU))) != 0)
      ThrowKernel(env, "VFIO_SET_IOMMU", containerPath, errno,
                  "neither type1v2 (" + ErrnoName(e2) + ") nor type1 IOMMU could be set; is vfio_iommu_type1 loaded?");
  }

  int device = Xioctl(group, VFIO_GROUP_GET_DEVICE_FD, const_cast<char*>(name.c_str()));
  if (device < 0) {
    int e = errno;
    ThrowKernel(env, "VFIO_GROUP_GET_DEVICE_FD", groupPath, e,
                "device " + name + (e == EINVAL || e == ENODEV ? " is not in this group" : ""));
  }
  // VFIO_GROUP_GET_DEVICE_FD returns an O_CLOEXEC fd already
  guard.release();
  SetFdLabel(container, containerPath);
  SetFdLabel(group, groupPath);
  SetFdLabel(device, "vfio-device " + name);
  Napi::Object o = Napi::Object::New(env);
  o.Set("container", container);
  o.Set("group", group);
  o.Set("device", device);
  o.Set("groupId", groupId);
  return o;
}

Napi::Value PidfdGetFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 2, "pidfdGetFd");
  int32_t pid = ArgI32(info, 0, "pidfdGetFd", "pid");
  int target = ArgFd(info, 1, "pidfdGetFd", "targetFd");
  if (pid <= 0) ThrowRange(env, "pidfdGetFd: pid must be positive");
  const std::string who = "pid " + std::to_string(pid);
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    int e = errno;
    ThrowKernel(env, "pidfd_open", who, e, e == ESRCH ? "no such process" : "");
  }
  int fd = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, target, 0));
  int e = errno;
  close(pidfd);
  if (fd < 0)
    ThrowKernel(env, "pidfd_getfd", who + " fd " + std::to_string(target), e,
                e == EPERM ? "needs root (CAP_SYS_PTRACE) over the target process"
                           : (e == EBADF ? "the process has no such fd" : ""));
  SetFdLabel(fd, who + " fd " + std::to_string(target));
  return Napi::Number::New(env, fd);
}

Napi::Value PidfdOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 1, "pidfdOpen");
  int32_t pid = ArgI32(info, 0, "pidfdOpen", "pid");
  if (pid <= 0) ThrowRange(env, "pidfdOpen: pid must be positive");
  const std::string who = "pid " + std::to_string(pid);
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    int e = errno;
    ThrowKernel(env, "pidfd_open", who, e, e == ESRCH ? "no such process" : "");
  }
  fcntl(pidfd, F_SETFD, fcntl(pidfd, F_GETFD) | FD_CLOEXEC);
  SetFdLabel(pidfd, "pidfd of " + who);
  return Napi::Number::New(env, pidfd);
}

Napi::Value VfioDeviceInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 1, "vfioDeviceInfo");
  int fd = ArgFd(info, 0, "vfioDeviceInfo", "deviceFd");
  vfio_device_info d{};
  d.argsz = sizeof d;
  if (Xioctl(fd, VFIO_DEVICE_GET_INFO, &d) != 0) ThrowFd(env, "VFIO_DEVICE_GET_INFO", fd, errno);
  Napi::Object o = Napi::Object::New(env);
  o.Set("flags", d.flags);
  o.Set("numRegions", d.num_regions);
  o.Set("numIrqs", d.num_irqs);
  return o;
}

Napi::Value VfioRegionInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 2, "vfioRegionInfo");
  int fd = ArgFd(info, 0, "vfioRegionInfo", "deviceFd");
  uint32_t index = ArgU32(info, 1, "vfioRegionInfo", "index");
  std::vector<uint8_t> buf(sizeof(vfio_region_info));
  auto query = [&]() {
    vfio_region_info ri{};
    ri.argsz = static_cast<uint32_t>(buf.size());
    ri.index = index;
    std::memset(buf.data(), 0, buf.size());
    std::memcpy(buf.data(), &ri, sizeof ri);
    if (Xioctl(fd, VFIO_DEVICE_GET_REGION_INFO, buf.data()) != 0)
      ThrowFd(env, "VFIO_DEVICE_GET_REGION_INFO", fd, errno, "region " + std::to_string(index));
    std::memcpy(&ri, buf.data(), sizeof ri);
    return ri;
  };
  vfio_region_info ri = query();
  // the kernel reports the size it needs for the capability chain in argsz
  if (ri.argsz > buf.size()) {
    if (ri.argsz > (1u << 20)) ThrowFd(env, "VFIO_DEVICE_GET_REGION_INFO", fd, EOVERFLOW, "capability chain too large");
    buf.resize(ri.argsz);
    ri = query();
  }
  Napi::Array caps = Napi::Array::New(env);
  if ((ri.flags & VFIO_REGION_INFO_FLAG_CAPS) && ri.cap_offset != 0) {
    const size_t end = ri.argsz < buf.size() ? ri.argsz : buf.size();
    uint32_t off = ri.cap_offset;
    uint32_t n = 0;
    while (off != 0 && n < 64) {
      if (off < sizeof(vfio_region_info) || off + sizeof(vfio_info_cap_header) > end) break;
      vfio_info_cap_header h;
      std::memcpy(&h, buf.data() + off, sizeof h);
      size_t capEnd = (h.next > off && h.next <= end) ? h.next : end;
      Napi::Object c = Napi::Object::New(env);
      c.Set("id", h.id);
      c.Set("version", h.version);
      c.Set("data", Napi::Buffer<uint8_t>::Copy(env, buf.data() + off, capEnd - off));
      caps.Set(n++, c);
      if (h.next <= off) break;  // chains only go forward; stop on a loop
      off = h.next;
    }
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("index", ri.index);
  o.Set("flags", ri.flags);
  o.Set("size", Napi::BigInt::New(env, static_cast<uint64_t>(ri.size)));
  o.Set("offset", Napi::BigInt::New(env, static_cast<uint64_t>(ri.offset)));
  o.Set("caps", caps);
  return o;
}

Napi::Value VfioQueryGfxPlane(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 3, "vfioQueryGfxPlane");
  int fd = ArgFd(info, 0, "vfioQueryGfxPlane", "deviceFd");
  static_assert(sizeof(vfio_device_gfx_plane_info_drm_fb) == sizeof(vfio_device_gfx_plane_info) &&
                    sizeof(vfio_device_gfx_plane_info_drm_fb) == VFIO_GFX_PLANE_INFO_DRM_FB_SIZE,
                "vfio_gfx_drm_fb.h: the DRM_FB view must have the layout of vfio_device_gfx_plane_info");
  vfio_device_gfx_plane_info_drm_fb p{};
  p.argsz = sizeof p;
  p.flags = ArgU32(info, 1, "vfioQueryGfxPlane", "flags");
  p.drm_plane_type = ArgU32(info, 2, "vfioQueryGfxPlane", "drmPlaneType");
  if (Xioctl(fd, VFIO_DEVICE_QUERY_GFX_PLANE, &p) != 0)
    ThrowFd(env, "VFIO_DEVICE_QUERY_GFX_PLANE", fd, errno,
            "flags 0x" + [](uint32_t v) { char b[16]; snprintf(b, sizeof b, "%x", v); return std::string(b); }(p.flags) +
                " plane type " + std::to_string(p.drm_plane_type));
  Napi::Object o = Napi::Object::New(env);
  o.Set("flags", p.flags);
  o.Set("drmPlaneType", p.drm_plane_type);
  o.Set("drmFormat", p.drm_format);
  o.Set("drmFormatMod", Napi::BigInt::New(env, static_cast<uint64_t>(p.drm_format_mod)));
  o.Set("width", p.width);
  o.Set("height", p.height);
  o.Set("stride", p.stride);
  o.Set("size", p.size);
  o.Set("xPos", static_cast<int32_t>(p.x_pos));
  o.Set("yPos", static_cast<int32_t>(p.y_pos));
  o.Set("xHot", p.x_hot);
  o.Set("yHot", p.y_hot);
  // the union: drm_fb_id (DRM_FB), dmabuf_id (DMABUF), region_index (REGION)
  o.Set("id", (p.flags & VFIO_GFX_PLANE_TYPE_DRM_FB) ? p.drm_fb_id : p.dmabuf_id);
  return o;
}

Napi::Value VfioGetGfxDmabuf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 2, "vfioGetGfxDmabuf");
  int fd = ArgFd(info, 0, "vfioGetGfxDmabuf", "deviceFd");
  uint32_t id = ArgU32(info, 1, "vfioGetGfxDmabuf", "dmabufId");
  int r = Xioctl(fd, VFIO_DEVICE_GET_GFX_DMABUF, &id);
  if (r < 0) ThrowFd(env, "VFIO_DEVICE_GET_GFX_DMABUF", fd, errno, "dmabuf id " + std::to_string(id));
  // some vendor drivers export without O_CLOEXEC; never leak the dma-buf into children
  fcntl(r, F_SETFD, fcntl(r, F_GETFD) | FD_CLOEXEC);
  std::string dev = FdLabel(fd);
  SetFdLabel(r, "dma-buf " + std::to_string(id) + " of " + (dev.empty() ? "fd " + std::to_string(fd) : dev));
  return Napi::Number::New(env, r);
}

// VFIO_DEVICE_GET_IRQ_INFO, growing argsz for a capability chain as the kernel asks (the
// extended struct of vfio_gfx_display_irq.h; drivers without IRQ caps fill only 16 bytes).
// Capabilities are returned raw (header walk only), as for regions.
Napi::Value VfioIrqInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 2, "vfioIrqInfo");
  int fd = ArgFd(info, 0, "vfioIrqInfo", "deviceFd");
  uint32_t index = ArgU32(info, 1, "vfioIrqInfo", "index");
  static_assert(sizeof(vfio_irq_info_caps) == VFIO_IRQ_INFO_CAPS_SIZE, "vfio_gfx_display_irq.h layout");
  std::vector<uint8_t> buf(sizeof(vfio_irq_info_caps));
  auto query = [&]() {
    vfio_irq_info_caps ii{};
    ii.argsz = static_cast<uint32_t>(buf.size());
    ii.index = index;
    std::memset(buf.data(), 0, buf.size());
    std::memcpy(buf.data(), &ii, sizeof ii);
    if (Xioctl(fd, VFIO_DEVICE_GET_IRQ_INFO, buf.data()) != 0)
      ThrowFd(env, "VFIO_DEVICE_GET_IRQ_INFO", fd, errno, "irq index " + std::to_string(index));
    std::memcpy(&ii, buf.data(), sizeof ii);
    return ii;
  };
  vfio_irq_info_caps ii = query();
  if ((ii.flags & VFIO_IRQ_INFO_FLAG_CAPS) && ii.argsz > buf.size()) {
    if (ii.argsz > (1u << 20)) ThrowFd(env, "VFIO_DEVICE_GET_IRQ_INFO", fd, EOVERFLOW, "capability chain too large");
    buf.resize(ii.argsz);
    ii = query();
  }
  const bool withCaps = (ii.flags & VFIO_IRQ_INFO_FLAG_CAPS) != 0;
  Napi::Array caps = Napi::Array::New(env);
  if (withCaps && ii.cap_offset != 0) {
    const size_t end = ii.argsz < buf.size() ? ii.argsz : buf.size();
    uint32_t off = ii.cap_offset;
    uint32_t n = 0;
    while (off != 0 && n < 64) {
      if (off < sizeof(vfio_irq_info_caps) || off + sizeof(vfio_info_cap_header) > end) break;
      vfio_info_cap_header h;
      std::memcpy(&h, buf.data() + off, sizeof h);
      size_t capEnd = (h.next > off && h.next <= end) ? h.next : end;
      Napi::Object c = Napi::Object::New(env);
      c.Set("id", h.id);
      c.Set("version", h.version);
      c.Set("offset", off);
      c.Set("data", Napi::Buffer<uint8_t>::Copy(env, buf.data() + off, capEnd - off));
      caps.Set(n++, c);
      if (h.next <= off) break;  // chains only go forward; stop on a loop
      off = h.next;
    }
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("index", ii.index);
  o.Set("flags", ii.flags);
  o.Set("count", ii.count);
  o.Set("argsz", ii.argsz);
  o.Set("capOffset", withCaps ? ii.cap_offset : 0);
  o.Set("caps", caps);
  // the whole answer as the kernel wrote it (info struct + chain), for recording and tests
  o.Set("raw", Napi::Buffer<uint8_t>::Copy(env, buf.data(), withCaps ? buf.size() : offsetof(vfio_irq_info_caps, cap_offset)));
  return o;
}

// VFIO_DEVICE_SET_IRQS: flags = VFIO_IRQ_SET_DATA_* | VFIO_IRQ_SET_ACTION_*; data per vector:
// DATA_EVENTFD s32 fds (-1 = none), DATA_BOOL 0/1, DATA_NONE none (omit or []).
Napi::Value VfioSetIrqs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 5, "vfioSetIrqs");
  int fd = ArgFd(info, 0, "vfioSetIrqs", "deviceFd");
  uint32_t index = ArgU32(info, 1, "vfioSetIrqs", "index");
  uint32_t flags = ArgU32(info, 2, "vfioSetIrqs", "flags");
  uint32_t start = ArgU32(info, 3, "vfioSetIrqs", "start");
  uint32_t count = ArgU32(info, 4, "vfioSetIrqs", "count");
  const uint32_t dataType = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
  size_t elem = dataType == VFIO_IRQ_SET_DATA_EVENTFD ? 4 : dataType == VFIO_IRQ_SET_DATA_BOOL ? 1 : 0;
  std::vector<uint8_t> data;
  if (info.Length() > 5 && !info[5].IsUndefined() && !info[5].IsNull()) {
    if (!info[5].IsArray()) ThrowType(env, "vfioSetIrqs: data must be an array of numbers");
    Napi::Array a = info[5].As<Napi::Array>();
    if (elem == 0 && a.Length() != 0) ThrowType(env, "vfioSetIrqs: DATA_NONE takes no data");
    if (a.Length() > 4096) ThrowRange(env, "vfioSetIrqs: too many vectors");
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value v = a.Get(i);
      if (elem == 4) {
        if (!v.IsNumber()) ThrowType(env, "vfioSetIrqs: data[" + std::to_string(i) + "] must be an fd number");
        int32_t x = v.As<Napi::Number>().Int32Value();
        uint8_t b[4];
        std::memcpy(b, &x, 4);
        data.insert(data.end(), b, b + 4);
      } else {
        bool x = v.IsBoolean() ? v.As<Napi::Boolean>().Value() : ValueU32(env, v, "vfioSetIrqs: data") != 0;
        data.push_back(x ? 1 : 0);
      }
    }
  }
  if (elem && data.size() != elem * count)
    ThrowType(env, "vfioSetIrqs: data must have `count` entries for DATA_EVENTFD / DATA_BOOL");
  std::vector<uint8_t> buf(sizeof(vfio_irq_set) + data.size());
  vfio_irq_set s{};
  s.argsz = static_cast<uint32_t>(buf.size());
  s.flags = flags;
  s.index = index;
  s.start = start;
  s.count = count;
  std::memcpy(buf.data(), &s, sizeof s);
  if (!data.empty()) std::memcpy(buf.data() + sizeof s, data.data(), data.size());
  if (Xioctl(fd, VFIO_DEVICE_SET_IRQS, buf.data()) != 0) {
    char h[64];
    snprintf(h, sizeof h, "irq index %u flags 0x%x count %u", index, flags, count);
    ThrowFd(env, "VFIO_DEVICE_SET_IRQS", fd, errno, h);
  }
  return env.Undefined();
}

// eventfd2(initval, EFD_CLOEXEC | EFD_NONBLOCK)
Napi::Value EventfdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t init = info.Length() > 0 && !info[0].IsUndefined() ? ArgU32(info, 0, "eventfdCreate", "initval") : 0;
  int e = eventfd(init, EFD_CLOEXEC | EFD_NONBLOCK);
  if (e < 0) ThrowKernel(env, "eventfd2", "", errno);
  SetFdLabel(e, "eventfd");
  return Napi::Number::New(env, e);
}

// read(2) of an eventfd's counter (resets it): a bigint, or null when it is 0 (EAGAIN)
Napi::Value EventfdRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 1, "eventfdRead");
  int fd = ArgFd(info, 0, "eventfdRead", "fd");
  uint64_t v = 0;
  ssize_t n;
  do {
    n = read(fd, &v, sizeof v);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return env.Null();
  if (n < 0) ThrowFd(env, "read", fd, errno, "eventfd counter");
  if (n != sizeof v) ThrowFd(env, "read", fd, EINVAL, "short read of an eventfd counter (not an eventfd?)");
  return Napi::BigInt::New(env, v);
}

}  // namespace

void InitVfio(Napi::Env env, Napi::Object exports) {
  exports.Set("vfioOpenMdev", Napi::Function::New(env, VfioOpenMdev, "vfioOpenMdev"));
  exports.Set("pidfdGetFd", Napi::Function::New(env, PidfdGetFd, "pidfdGetFd"));
  exports.Set("pidfdOpen", Napi::Function::New(env, PidfdOpen, "pidfdOpen"));
  exports.Set("vfioDeviceInfo", Napi::Function::New(env, VfioDeviceInfo, "vfioDeviceInfo"));
  exports.Set("vfioRegionInfo", Napi::Function::New(env, VfioRegionInfo, "vfioRegionInfo"));
  exports.Set("vfioQueryGfxPlane", Napi::Function::New(env, VfioQueryGfxPlane, "vfioQueryGfxPlane"));
  exports.Set("vfioGetGfxDmabuf", Napi::Function::New(env, VfioGetGfxDmabuf, "vfioGetGfxDmabuf"));
  exports.Set("vfioIrqInfo", Napi::Function::New(env, VfioIrqInfo, "vfioIrqInfo"));
  exports.Set("vfioSetIrqs", Napi::Function::New(env, VfioSetIrqs, "vfioSetIrqs"));
  exports.Set("eventfdCreate", Napi::Function::New(env, EventfdCreate, "eventfdCreate"));
  exports.Set("eventfdRead", Napi::Function::New(env, EventfdRead, "eventfdRead"));
}

}  // namespace vgpu
