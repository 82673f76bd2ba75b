// UNIX socket helpers Node does not have (issue 9, the kiosk's control socket and systemd):
//   socketPeerCred(fd)   -> { pid, uid, gid }   getsockopt(SO_PEERCRED) of a connected socket
//   socketPeerGroups(fd) -> number[]            getsockopt(SO_PEERGROUPS): the peer's supplementary
//                                               groups at connect() (Linux >= 4.13)
//   sdNotify(path, msg)  -> bytes sent          one datagram to a systemd-style notify socket
//                                               (a path, or an abstract name written "@name")
// Marshalling and syscalls only: who may connect and what is sent is decided in src/kiosk/.
#include "common.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

namespace vgpu {
namespace {

Napi::Value SocketPeerCred(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 1, "socketPeerCred");
  int fd = ArgFd(info, 0, "socketPeerCred");
  struct ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    ThrowFd(env, "getsockopt(SO_PEERCRED)", fd, errno, "is it a connected UNIX socket?");
  Napi::Object o = Napi::Object::New(env);
  o.Set("pid", Napi::Number::New(env, cred.pid));
  o.Set("uid", Napi::Number::New(env, cred.uid));
  o.Set("gid", Napi::Number::New(env, cred.gid));
  return o;
}

Napi::Value SocketPeerGroups(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 1, "socketPeerGroups");
  int fd = ArgFd(info, 0, "socketPeerGroups");
  std::vector<gid_t> groups(64);
  for (;;) {
    socklen_t len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
      groups.resize(len / sizeof(gid_t));
      break;
    }
    // ERANGE: len says how much is needed
    if (errno == ERANGE && len > groups.size() * sizeof(gid_t) && len <= 65536 * sizeof(gid_t)) {
      groups.resize(len / sizeof(gid_t));
      continue;
    }
    ThrowFd(env, "getsockopt(SO_PEERGROUPS)", fd, errno, "is it a connected UNIX socket (Linux >= 4.13)?");
  }
  Napi::Array a = Napi::Array::New(env, groups.size());
  for (size_t i = 0; i < groups.size(); i++) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, groups[i]));
  return a;
}

Napi::Value SdNotify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 2, "sdNotify");
  std::string path = ArgString(info, 0, "sdNotify", "path");
  std::string msg;
  if (!info[1].IsString()) ThrowType(env, "sdNotify: message must be a string");
  msg = info[1].As<Napi::String>().Utf8Value();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || (path[0] != '/' && path[0] != '@'))
    ThrowType(env, "sdNotify: path must be absolute or an abstract name starting with @, got \"" + path + "\"");
  if (path.size() >= sizeof addr.sun_path)
    ThrowRange(env, "sdNotify: socket path \"" + path + "\" is longer than " + std::to_string(sizeof addr.sun_path - 1) + " bytes");
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace: no trailing NUL in the length
  socklen_t alen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '@' ? 0 : 1));
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowKernel(env, "socket(AF_UNIX, SOCK_DGRAM)", "notify socket " + path, errno);
  ssize_t n = sendto(fd, msg.data(), msg.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), alen);
  int e = errno;
  close(fd);
  if (n < 0) ThrowKernel(env, "sendto", "notify socket " + path, e, "is $NOTIFY_SOCKET the service manager's socket?");
  return Napi::Number::New(env, static_cast<double>(n));
}

}  // namespace

void InitSockCred(Napi::Env env, Napi::Object exports) {
  exports.Set("socketPeerCred", Napi::Function::New(env, SocketPeerCred, "socketPeerCred"));
  exports.Set("socketPeerGroups", Napi::Function::New(env, SocketPeerGroups, "socketPeerGroups"));
  exports.Set("sdNotify", Napi::Function::New(env, SdNotify, "sdNotify"));
}

}  // namespace vgpu
