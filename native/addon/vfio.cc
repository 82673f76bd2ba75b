// VFIO calls: legacy group/container open of an mdev, pidfd fd adoption, device and region
// info, the mdev display ABI (QUERY_GFX_PLANE, GET_GFX_DMABUF). Marshalling only.
#include "common.h"

#include <fcntl.h>
#include <linux/vfio.h>
#include <sys/ioctl.h>
// the DRM_FB plane type (bit 3) and the drm_fb_id union member: the uapi-style header shared
// with the vgpu-sim kernel module
#include "../include/vfio_gfx_drm_fb.h"
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

}  // namespace

void InitVfio(Napi::Env env, Napi::Object exports) {
  exports.Set("vfioOpenMdev", Napi::Function::New(env, VfioOpenMdev, "vfioOpenMdev"));
  exports.Set("pidfdGetFd", Napi::Function::New(env, PidfdGetFd, "pidfdGetFd"));
  exports.Set("pidfdOpen", Napi::Function::New(env, PidfdOpen, "pidfdOpen"));
  exports.Set("vfioDeviceInfo", Napi::Function::New(env, VfioDeviceInfo, "vfioDeviceInfo"));
  exports.Set("vfioRegionInfo", Napi::Function::New(env, VfioRegionInfo, "vfioRegionInfo"));
  exports.Set("vfioQueryGfxPlane", Napi::Function::New(env, VfioQueryGfxPlane, "vfioQueryGfxPlane"));
  exports.Set("vfioGetGfxDmabuf", Napi::Function::New(env, VfioGetGfxDmabuf, "vfioGetGfxDmabuf"));
}

}  // namespace vgpu
