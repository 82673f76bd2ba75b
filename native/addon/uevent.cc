// Kernel uevents from the NETLINK_KOBJECT_UEVENT socket (hotplug, connector changes, leases):
// open a non-blocking socket bound to the kernel's multicast group, drain and parse datagrams.
// Only messages sent by the kernel itself are returned (netlink sender port 0, SCM_CREDENTIALS
// of uid 0); udevd's re-broadcasts ("libudev" header, group 2) are skipped. Marshalling only.
#include "common.h"

#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace vgpu {
namespace {

constexpr int kRecvBufBytes = 4 << 20;   // what udevd asks for: hotplug storms come in bursts
constexpr size_t kMsgBytes = 16384;       // > UEVENT_BUFFER_SIZE (2048) + "ACTION@DEVPATH"
constexpr int kMaxPerRead = 1024;         // bounded drain: the poller fires again if more wait

Napi::Value UeventOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT);
  if (fd < 0) ThrowKernel(env, "socket(AF_NETLINK, NETLINK_KOBJECT_UEVENT)", "", errno);
  // a big queue, beyond rmem_max when privileged (FORCE needs CAP_NET_ADMIN)
  int size = kRecvBufBytes;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  int on = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0) {
    int e = errno;
    close(fd);
    ThrowKernel(env, "setsockopt(SO_PASSCRED)", "uevent socket", e);
  }
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  addr.nl_pid = 0;     // the kernel assigns a port id
  addr.nl_groups = 1;  // group 1: kernel events (udevd re-broadcasts on group 2)
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    close(fd);
    ThrowKernel(env, "bind(NETLINK_KOBJECT_UEVENT, group 1)", "uevent socket", e);
  }
  SetFdLabel(fd, "uevent socket");
  return Napi::Number::New(env, fd);
}

// "ACTION@DEVPATH\0KEY=VAL\0..." -> { action, devpath, props }; empty object when malformed
Napi::Value ParseUevent(Napi::Env env, const char* buf, size_t len) {
  size_t headLen = strnlen(buf, len);
  std::string head(buf, headLen);
  size_t at = head.find('@');
  if (at == std::string::npos || at == 0 || headLen == len) return env.Undefined();
  Napi::Object o = Napi::Object::New(env);
  o.Set("action", Napi::String::New(env, head.substr(0, at)));
  o.Set("devpath", Napi::String::New(env, head.substr(at + 1)));
  Napi::Object props = Napi::Object::New(env);
  size_t off = headLen + 1;
  while (off < len) {
    size_t n = strnlen(buf + off, len - off);
    std::string kv(buf + off, n);
    size_t eq = kv.find('=');
    if (eq != std::string::npos && eq > 0) props.Set(kv.substr(0, eq), Napi::String::New(env, kv.substr(eq + 1)));
    off += n + 1;
  }
  o.Set("props", props);
  return o;
}

Napi::Object Overrun(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("action", "overrun");
  o.Set("devpath", "");
  o.Set("props", Napi::Object::New(env));
  return o;
}

Napi::Value UeventRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 1, "ueventRead");
  int fd = ArgFd(info, 0, "ueventRead");
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  static thread_local char buf[kMsgBytes + 1];
  for (int i = 0; i < kMaxPerRead; i++) {
    sockaddr_nl from{};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    iovec iov{buf, kMsgBytes};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t len = recvmsg(fd, &msg, MSG_DONTWAIT);
    if (len < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      // the queue overflowed and the kernel dropped messages: report it in order, keep reading
      if (errno == ENOBUFS) {
        out.Set(n++, Overrun(env));
        continue;
      }
      ThrowFd(env, "recvmsg (uevents)", fd, errno);
    }
    if (len == 0 || (msg.msg_flags & MSG_TRUNC)) continue;
    // the kernel sends from port 0; anything else is a user-space process on the group
    if (msg.msg_namelen < sizeof from || from.nl_family != AF_NETLINK || from.nl_pid != 0) continue;
    bool kernelCreds = false;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof(ucred))) {
        ucred cred;
        std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
        kernelCreds = cred.uid == 0;  // as udev checks; the sender port was checked above
      }
    }
    if (!kernelCreds) continue;
    buf[len] = '\0';
    if (static_cast<size_t>(len) >= 8 && std::memcmp(buf, "libudev", 8) == 0) continue;  // "libudev\0" header
    Napi::Value ev = ParseUevent(env, buf, static_cast<size_t>(len));
    if (!ev.IsUndefined()) out.Set(n++, ev);
  }
  return out;
}

}  // namespace

void InitUevent(Napi::Env env, Napi::Object exports) {
  exports.Set("ueventOpen", Napi::Function::New(env, UeventOpen, "ueventOpen"));
  exports.Set("ueventRead", Napi::Function::New(env, UeventRead, "ueventRead"));
}

}  // namespace vgpu
