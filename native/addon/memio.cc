// Memory and fd I/O: mmap as external ArrayBuffers, pread/pwrite, dma-buf CPU access sync,
// and event-loop integration (uv_poll readability callbacks, blocking poll(2) waits).
#include "common.h"

#include <fcntl.h>
#include <linux/dma-buf.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

namespace vgpu {

// ---- mappings -------------------------------------------------------------------------
namespace {

struct MapState {
  void* addr = nullptr;
  size_t len = 0;
  bool unmapped = false;
  napi_env env = nullptr;
  napi_ref buffer = nullptr;  // weak reference to the ArrayBuffer, for detaching
  ~MapState() {
    if (buffer != nullptr) napi_delete_reference(env, buffer);
  }
};

void FinalizeMapping(napi_env /*env*/, void* /*data*/, void* hint) {
  auto* holder = static_cast<std::shared_ptr<MapState>*>(hint);
  MapState& s = **holder;
  if (!s.unmapped) {
    s.unmapped = true;
    munmap(s.addr, s.len);
  }
  delete holder;
}

}  // namespace

Napi::Object MapToJs(Napi::Env env, int fd, uint64_t offset, size_t length, bool writable,
                     const std::string& op) {
  if (length == 0) ThrowRange(env, op + ": length must be positive");
  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  void* addr = mmap(nullptr, length, prot, MAP_SHARED, fd, static_cast<off_t>(offset));
  if (addr == MAP_FAILED) {
    int e = errno;
    ThrowFd(env, op, fd, e, "offset " + std::to_string(offset) + " length " + std::to_string(length));
  }
  auto state = std::make_shared<MapState>();
  state->addr = addr;
  state->len = length;
  state->env = env;
  auto* holder = new std::shared_ptr<MapState>(state);
  napi_value ab;
  napi_status st = napi_create_external_arraybuffer(env, addr, length, FinalizeMapping, holder, &ab);
  if (st != napi_ok) {
    delete holder;
    munmap(addr, length);
    throw Napi::Error::New(env, op + ": could not create an external ArrayBuffer over the mapping");
  }
  if (napi_create_reference(env, ab, 0, &state->buffer) != napi_ok) state->buffer = nullptr;

  Napi::Object o = Napi::Object::New(env);
  o.Set("buffer", Napi::Value(env, ab));
  o.Set("length", Napi::Number::New(env, static_cast<double>(length)));
  o.Set("unmap", Napi::Function::New(
                     env,
                     [state](const Napi::CallbackInfo& info) -> Napi::Value {
                       Napi::Env env = info.Env();
                       if (state->unmapped) return env.Undefined();
                       // detach first so JS can never touch the pages after munmap
                       state->unmapped = true;
                       if (state->buffer != nullptr) {
                         napi_value v = nullptr;
                         if (napi_get_reference_value(env, state->buffer, &v) == napi_ok && v != nullptr)
                           napi_detach_arraybuffer(env, v);
                       }
                       if (munmap(state->addr, state->len) != 0)
                         ThrowKernel(env, "munmap", "", errno);
                       return env.Undefined();
                     },
                     "unmap"));
  return o;
}

namespace {

Napi::Value MmapJs(const Napi::CallbackInfo& info) {
  CheckArgCount(info, 4, "mmap");
  int fd = ArgFd(info, 0, "mmap");
  uint64_t offset = ArgU64(info, 1, "mmap", "offset");
  uint64_t length = ArgU64(info, 2, "mmap", "length");
  bool writable = ArgBool(info, 3, "mmap", "writable");
  if (offset > static_cast<uint64_t>(INT64_MAX)) ThrowRange(info.Env(), "mmap: offset too large");
  return MapToJs(info.Env(), fd, offset, static_cast<size_t>(length), writable, "mmap");
}

Napi::Value PreadJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 3, "pread");
  int fd = ArgFd(info, 0, "pread");
  if (!info[1].IsBigInt()) ThrowType(env, "pread: offset must be a bigint");
  uint64_t offset = ArgU64(info, 1, "pread", "offset");
  uint32_t length = ArgU32(info, 2, "pread", "length");
  if (offset > static_cast<uint64_t>(INT64_MAX)) ThrowRange(env, "pread: offset too large");
  if (length > (1u << 30)) ThrowRange(env, "pread: length must be at most 1 GiB");
  Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::New(env, length);
  ssize_t r;
  do {
    r = pread(fd, buf.Data(), length, static_cast<off_t>(offset));
  } while (r < 0 && errno == EINTR);
  if (r < 0) ThrowFd(env, "pread", fd, errno, "offset 0x" + [&] { char b[24]; snprintf(b, sizeof b, "%llx", (unsigned long long)offset); return std::string(b); }());
  if (static_cast<size_t>(r) == length) return buf;
  return Napi::Buffer<uint8_t>::Copy(env, buf.Data(), static_cast<size_t>(r));
}

Napi::Value PwriteJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 3, "pwrite");
  int fd = ArgFd(info, 0, "pwrite");
  if (!info[1].IsBigInt()) ThrowType(env, "pwrite: offset must be a bigint");
  uint64_t offset = ArgU64(info, 1, "pwrite", "offset");
  Napi::Buffer<uint8_t> data = ArgBuffer(info, 2, "pwrite", "data");
  if (offset > static_cast<uint64_t>(INT64_MAX)) ThrowRange(env, "pwrite: offset too large");
  ssize_t r;
  do {
    r = pwrite(fd, data.Data(), data.Length(), static_cast<off_t>(offset));
  } while (r < 0 && errno == EINTR);
  if (r < 0) ThrowFd(env, "pwrite", fd, errno, "offset 0x" + [&] { char b[24]; snprintf(b, sizeof b, "%llx", (unsigned long long)offset); return std::string(b); }());
  return Napi::Number::New(env, static_cast<double>(r));
}

Napi::Value DmabufSyncJs(const Napi::CallbackInfo& info) {
  CheckArgCount(info, 2, "dmabufSync");
  int fd = ArgFd(info, 0, "dmabufSync");
  dma_buf_sync s{};
  s.flags = ArgU32(info, 1, "dmabufSync", "flags");
  int r;
  do {
    r = ioctl(fd, DMA_BUF_IOCTL_SYNC, &s);
  } while (r < 0 && (errno == EINTR || errno == EAGAIN));
  if (r < 0) ThrowFd(info.Env(), "DMA_BUF_IOCTL_SYNC", fd, errno);
  return info.Env().Undefined();
}

// ---- event loop -----------------------------------------------------------------------
struct Poller {
  uv_poll_t handle;
  napi_env env = nullptr;
  int fd = -1;
  bool stopped = false;
  int events = UV_READABLE;
  Napi::FunctionReference cb;
  // set while the owner waits for the fd to become writable (onWritable)
  Napi::FunctionReference wcb;
  std::unique_ptr<Napi::AsyncContext> ctx;
  std::shared_ptr<Poller> self;  // keeps the poller alive until uv_close completes
};

// active pollers by (loop, fd): libuv supports one poll handle per fd, and close() must stop it
std::mutex g_pollers_mu;
std::map<std::pair<uv_loop_t*, int>, Poller*> g_pollers;

void OnPollClosed(uv_handle_t* h) {
  auto* p = static_cast<Poller*>(h->data);
  std::shared_ptr<Poller> keep = std::move(p->self);
  p->cb.Reset();
  p->wcb.Reset();
  p->ctx.reset();
}

void CleanupHook(void* arg);

void StopPoller(Poller* p, bool fromCleanupHook) {
  if (p->stopped) return;
  p->stopped = true;
  {
    std::lock_guard<std::mutex> lock(g_pollers_mu);
    auto it = g_pollers.find({p->handle.loop, p->fd});
    if (it != g_pollers.end() && it->second == p) g_pollers.erase(it);
  }
  if (!fromCleanupHook) {
    napi_remove_env_cleanup_hook(p->env, CleanupHook, p);
  } else {
    // the env is going away: release JS state now, the close callback may run after teardown
    p->cb.Reset();
    p->wcb.Reset();
    p->ctx.reset();
  }
  uv_poll_stop(&p->handle);
  uv_close(reinterpret_cast<uv_handle_t*>(&p->handle), OnPollClosed);
}

void CleanupHook(void* arg) { StopPoller(static_cast<Poller*>(arg), true); }

void OnPollEvent(uv_poll_t* h, int status, int events) {
  auto* p = static_cast<Poller*>(h->data);
  if (p->stopped) return;
  // an error (e.g. EBADF after the fd was closed) would fire forever: stop, then tell JS once
  if (status < 0) StopPoller(p, false);
  std::shared_ptr<Poller> keep = p->self;  // stop() from inside the callback must not free p
  Napi::Env env(p->env);
  Napi::HandleScope scope(env);
  try {
    // writable first: queued bytes go out before the reply to them is read
    if (status >= 0 && (events & UV_WRITABLE) && !p->wcb.IsEmpty()) {
      // one shot: the owner asks again when its next write would block
      Napi::Function w = p->wcb.Value();
      p->wcb.Reset();
      p->events = UV_READABLE;
      if (!p->stopped) uv_poll_start(&p->handle, p->events, OnPollEvent);
      w.MakeCallback(env.Global(), {}, *p->ctx);
    }
    if (p->stopped) return;
    if (status < 0 || (events & UV_READABLE) || (events & UV_DISCONNECT)) p->cb.MakeCallback(env.Global(), {}, *p->ctx);
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env, e.Value());
  }
}

Napi::Value PollReadableJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 2, "pollReadable");
  int fd = ArgFd(info, 0, "pollReadable");
  if (!info[1].IsFunction()) ThrowType(env, "pollReadable: onReadable must be a function");
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr)
    throw Napi::Error::New(env, "pollReadable: no libuv event loop");
  {
    std::lock_guard<std::mutex> lock(g_pollers_mu);
    if (g_pollers.count({loop, fd}))
      ThrowFd(env, "pollReadable", fd, EBUSY, "this fd already has an active poller; stop it first");
  }
  auto p = std::make_shared<Poller>();
  p->env = env;
  p->fd = fd;
  int r = uv_poll_init(loop, &p->handle, fd);
  if (r != 0) ThrowFd(env, "uv_poll_init", fd, -r);
  p->handle.data = p.get();
  p->self = p;
  p->cb = Napi::Persistent(info[1].As<Napi::Function>());
  p->ctx = std::make_unique<Napi::AsyncContext>(env, "vgpu-flip:pollReadable");
  r = uv_poll_start(&p->handle, UV_READABLE, OnPollEvent);
  if (r != 0) {
    p->stopped = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&p->handle), OnPollClosed);
    ThrowFd(env, "uv_poll_start", fd, -r);
  }
  napi_add_env_cleanup_hook(env, CleanupHook, p.get());
  {
    std::lock_guard<std::mutex> lock(g_pollers_mu);
    g_pollers[{loop, fd}] = p.get();
  }
  Napi::Object o = Napi::Object::New(env);
  std::weak_ptr<Poller> weak = p;
  o.Set("stop", Napi::Function::New(
                    env,
                    [weak](const Napi::CallbackInfo& info) -> Napi::Value {
                      if (auto q = weak.lock()) StopPoller(q.get(), false);
                      return info.Env().Undefined();
                    },
                    "stop"));
  // onWritable(cb): call cb once when the fd can be written (the socket buffer has room again);
  // onWritable(null) cancels. Same handle as the readable watch (libuv: one poll handle per fd).
  o.Set("onWritable", Napi::Function::New(
                          env,
                          [weak](const Napi::CallbackInfo& info) -> Napi::Value {
                            Napi::Env env = info.Env();
                            auto q = weak.lock();
                            if (!q || q->stopped) ThrowType(env, "onWritable: the poller is stopped");
                            if (info.Length() < 1 || !(info[0].IsFunction() || info[0].IsNull()))
                              ThrowType(env, "onWritable: expected a function or null");
                            if (info[0].IsNull()) {
                              q->wcb.Reset();
                              q->events = UV_READABLE;
                            } else {
                              q->wcb = Napi::Persistent(info[0].As<Napi::Function>());
                              q->events = UV_READABLE | UV_WRITABLE;
                            }
                            int r = uv_poll_start(&q->handle, q->events, OnPollEvent);
                            if (r != 0) ThrowFd(env, "uv_poll_start", q->fd, -r);
                            return env.Undefined();
                          },
                          "onWritable"));
  return o;
}

Napi::Value PollWaitJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 2, "pollWait");
  int fd = ArgFd(info, 0, "pollWait");
  int32_t timeout = ArgI32(info, 1, "pollWait", "timeoutMs");
  timespec start{};
  clock_gettime(CLOCK_MONOTONIC, &start);
  int remaining = timeout;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, remaining < 0 ? -1 : remaining);
    if (r < 0) {
      if (errno != EINTR) ThrowFd(env, "poll", fd, errno);
      if (timeout >= 0) {
        timespec now{};
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long elapsed = (now.tv_sec - start.tv_sec) * 1000LL + (now.tv_nsec - start.tv_nsec) / 1000000;
        remaining = elapsed >= timeout ? 0 : static_cast<int>(timeout - elapsed);
      }
      continue;
    }
    if (r == 0) return Napi::Boolean::New(env, false);
    if (p.revents & POLLNVAL) ThrowFd(env, "poll", fd, EBADF);
    // POLLHUP/POLLERR: a read would not block either
    return Napi::Boolean::New(env, (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0);
  }
}

}  // namespace

void StopPollerForFd(napi_env env, int fd) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) return;
  Poller* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_pollers_mu);
    auto it = g_pollers.find({loop, fd});
    if (it != g_pollers.end()) p = it->second;
  }
  if (p != nullptr) StopPoller(p, false);
}

void InitMemIo(Napi::Env env, Napi::Object exports) {
  exports.Set("mmap", Napi::Function::New(env, MmapJs, "mmap"));
  exports.Set("pread", Napi::Function::New(env, PreadJs, "pread"));
  exports.Set("pwrite", Napi::Function::New(env, PwriteJs, "pwrite"));
  exports.Set("dmabufSync", Napi::Function::New(env, DmabufSyncJs, "dmabufSync"));
  exports.Set("pollReadable", Napi::Function::New(env, PollReadableJs, "pollReadable"));
  exports.Set("pollWait", Napi::Function::New(env, PollWaitJs, "pollWait"));
}

}  // namespace vgpu
