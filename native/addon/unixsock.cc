// UNIX stream sockets with descriptor passing (SCM_RIGHTS), for the Wayland client
// (src/wayland/unix-transport.ts): connect, socketpair (tests), non-blocking sendmsg with
// descriptors and recvmsg collecting them. Marshalling and syscalls only: framing, queueing and
// when to call are TypeScript's. Received descriptors are O_CLOEXEC (MSG_CMSG_CLOEXEC).
#include "common.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace vgpu {
namespace {

// the kernel's SCM_MAX_FD: at most this many descriptors in one message
constexpr size_t kMaxFds = 253;

std::string SockLabel(int fd) {
  std::string l = FdLabel(fd);
  return l.empty() ? "socket fd " + std::to_string(fd) : l;
}

int SetNonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return -1;
  return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

// unixConnect(path): a connected, non-blocking, close-on-exec AF_UNIX stream socket
Napi::Value UnixConnect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 1, "unixConnect");
  std::string path = ArgString(info, 0, "unixConnect", "path");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path)
    ThrowKernel(env, "connect(AF_UNIX)", path, ENAMETOOLONG,
                "a UNIX socket path has 1.." + std::to_string(sizeof addr.sun_path - 1) + " bytes");
  std::memcpy(addr.sun_path, path.data(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowKernel(env, "socket(AF_UNIX, SOCK_STREAM)", path, errno);
  // connected while blocking (a UNIX connect only waits when the listener's backlog is full),
  // then non-blocking for sendmsg/recvmsg
  int r;
  do r = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  while (r != 0 && errno == EINTR);
  if (r != 0 || SetNonblock(fd) != 0) {
    int e = errno;
    close(fd);
    ThrowKernel(env, r != 0 ? "connect(AF_UNIX)" : "fcntl(O_NONBLOCK)", path, e);
  }
  SetFdLabel(fd, "socket " + path);
  return Napi::Number::New(env, fd);
}

// unixSocketpair(): two connected non-blocking AF_UNIX stream sockets (tests, helpers)
Napi::Value UnixSocketpair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0)
    ThrowKernel(env, "socketpair(AF_UNIX, SOCK_STREAM)", "", errno);
  SetFdLabel(sv[0], "socketpair end 0");
  SetFdLabel(sv[1], "socketpair end 1");
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::Number::New(env, sv[0]));
  out.Set(1u, Napi::Number::New(env, sv[1]));
  return out;
}

// unixSend(fd, data, fds): one sendmsg (MSG_DONTWAIT | MSG_NOSIGNAL), the descriptors as
// SCM_RIGHTS with the first byte. Returns the bytes written (maybe fewer than data.length; the
// descriptors went with them when > 0), or -1 when the socket buffer is full (EAGAIN).
Napi::Value UnixSend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 3, "unixSend");
  int fd = ArgFd(info, 0, "unixSend");
  Napi::Buffer<uint8_t> data = ArgBuffer(info, 1, "unixSend", "data");
  if (!info[2].IsArray()) ThrowType(env, "unixSend: fds must be an array of descriptors");
  Napi::Array arr = info[2].As<Napi::Array>();
  if (arr.Length() > kMaxFds) ThrowRange(env, "unixSend: at most " + std::to_string(kMaxFds) + " descriptors per message");
  std::vector<int> fds;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    uint32_t v = ValueU32(env, arr.Get(i), "unixSend: fds[" + std::to_string(i) + "]");
    if (v > INT32_MAX) ThrowRange(env, "unixSend: fds[" + std::to_string(i) + "] is not a descriptor");
    fds.push_back(static_cast<int>(v));
  }
  if (data.Length() == 0 && !fds.empty()) ThrowRange(env, "unixSend: descriptors need at least one byte to travel with");
  iovec iov{data.Data(), data.Length()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control;
  if (!fds.empty()) {
    control.assign(CMSG_SPACE(sizeof(int) * fds.size()), 0);
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Number::New(env, -1);
    int e = errno;
    ThrowKernel(env, fds.empty() ? "sendmsg" : "sendmsg(SCM_RIGHTS x" + std::to_string(fds.size()) + ")", SockLabel(fd), e,
                e == EPIPE || e == ECONNRESET ? "the peer closed the connection" : e == EBADF && !fds.empty() ? "a descriptor to pass is not open" : "");
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

// unixRecv(fd, maxBytes): one recvmsg (MSG_DONTWAIT | MSG_CMSG_CLOEXEC).
// -> { data: Buffer, fds: number[], eof: boolean, fdsTruncated: boolean }, or null on EAGAIN.
// eof: the peer closed (data empty). fdsTruncated: MSG_CTRUNC, descriptors were lost (the
// received ones are still returned, for the caller to close).
Napi::Value UnixRecv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 2, "unixRecv");
  int fd = ArgFd(info, 0, "unixRecv");
  uint32_t max = ArgU32(info, 1, "unixRecv", "maxBytes");
  if (max == 0 || max > (16u << 20)) ThrowRange(env, "unixRecv: maxBytes must be in 1..16 MiB");
  std::vector<uint8_t> buf(max);
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  iovec iov{buf.data(), buf.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return env.Null();
    ThrowKernel(env, "recvmsg", SockLabel(fd), errno, errno == ECONNRESET ? "the peer closed the connection" : "");
  }
  Napi::Array fds = Napi::Array::New(env);
  uint32_t nf = 0;
  std::string from = SockLabel(fd);
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int got;
      std::memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
      SetFdLabel(got, "descriptor received on " + from);
      fds.Set(nf++, Napi::Number::New(env, got));
    }
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("data", Napi::Buffer<uint8_t>::Copy(env, buf.data(), static_cast<size_t>(n)));
  o.Set("fds", fds);
  o.Set("eof", Napi::Boolean::New(env, n == 0 && nf == 0));
  o.Set("fdsTruncated", Napi::Boolean::New(env, (msg.msg_flags & MSG_CTRUNC) != 0));
  return o;
}

}  // namespace

void InitUnixSock(Napi::Env env, Napi::Object exports) {
  exports.Set("unixConnect", Napi::Function::New(env, UnixConnect, "unixConnect"));
  exports.Set("unixSocketpair", Napi::Function::New(env, UnixSocketpair, "unixSocketpair"));
  exports.Set("unixSend", Napi::Function::New(env, UnixSend, "unixSend"));
  exports.Set("unixRecv", Napi::Function::New(env, UnixRecv, "unixRecv"));
}

}  // namespace vgpu
