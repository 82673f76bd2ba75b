// vgpu-flip native addon: module entry, kernel errors, fd labels, argument checks and the
// generic fd calls (open/close/labels).
#include "common.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <mutex>
#include <unordered_map>

namespace vgpu {

void InitUnixSock(Napi::Env env, Napi::Object exports);  // unixsock.cc

// ---- fd labels ------------------------------------------------------------------------
namespace {
std::mutex g_labels_mu;
std::unordered_map<int, std::string> g_labels;
}  // namespace

void SetFdLabel(int fd, const std::string& label) {
  std::lock_guard<std::mutex> lock(g_labels_mu);
  g_labels[fd] = label;
}

void ForgetFdLabel(int fd) {
  std::lock_guard<std::mutex> lock(g_labels_mu);
  g_labels.erase(fd);
}

std::string FdLabel(int fd) {
  std::lock_guard<std::mutex> lock(g_labels_mu);
  auto it = g_labels.find(fd);
  return it == g_labels.end() ? std::string() : it->second;
}

// ---- errors ---------------------------------------------------------------------------
std::string ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  if (name != nullptr) return name;
  return "E" + std::to_string(err);
}

Napi::Error KernelError(Napi::Env env, const std::string& op, const std::string& path, int err,
                        const std::string& hint) {
  std::string code = ErrnoName(err);
  std::string msg = op;
  if (!path.empty()) msg += " on " + path;
  msg += ": " + code + " (" + std::strerror(err) + ")";
  if (!hint.empty()) msg += ": " + hint;
  Napi::Error e = Napi::Error::New(env, msg);
  Napi::Object o = e.Value();
  o.Set("op", Napi::String::New(env, op));
  o.Set("path", Napi::String::New(env, path));
  o.Set("errno", Napi::Number::New(env, err));
  o.Set("code", Napi::String::New(env, code));
  return e;
}

void ThrowKernel(Napi::Env env, const std::string& op, const std::string& path, int err,
                 const std::string& hint) {
  throw KernelError(env, op, path, err, hint);
}

void ThrowType(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }
void ThrowRange(Napi::Env env, const std::string& msg) { throw Napi::RangeError::New(env, msg); }

// ---- arguments ------------------------------------------------------------------------
static std::string ArgName(const char* fn, const char* name) {
  return std::string(fn) + ": " + name;
}

void CheckArgCount(const Napi::CallbackInfo& info, size_t n, const char* fn) {
  if (info.Length() < n)
    ThrowType(info.Env(), std::string(fn) + ": expected " + std::to_string(n) + " argument(s), got " +
                              std::to_string(info.Length()));
}

static double IntegralNumber(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsNumber()) ThrowType(env, what + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d) ThrowType(env, what + " must be an integer");
  return d;
}

int ArgFd(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  double d = IntegralNumber(info.Env(), info[i], ArgName(fn, name));
  if (d < 0 || d > INT32_MAX) ThrowType(info.Env(), ArgName(fn, name) + " must be a non-negative fd");
  return static_cast<int>(d);
}

uint32_t ValueU32(Napi::Env env, Napi::Value v, const std::string& what) {
  double d = IntegralNumber(env, v, what);
  if (d < 0 || d > 4294967295.0) ThrowRange(env, what + " must be in [0, 2^32)");
  return static_cast<uint32_t>(d);
}

uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  return ValueU32(info.Env(), info[i], ArgName(fn, name));
}

int32_t ArgI32(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  double d = IntegralNumber(info.Env(), info[i], ArgName(fn, name));
  if (d < INT32_MIN || d > INT32_MAX) ThrowRange(info.Env(), ArgName(fn, name) + " must be a 32-bit integer");
  return static_cast<int32_t>(d);
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  if (!info[i].IsString()) ThrowType(info.Env(), ArgName(fn, name) + " must be a string");
  std::string s = info[i].As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) ThrowType(info.Env(), ArgName(fn, name) + " must not contain NUL");
  return s;
}

Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  if (!info[i].IsBuffer()) ThrowType(info.Env(), ArgName(fn, name) + " must be a Buffer");
  return info[i].As<Napi::Buffer<uint8_t>>();
}

bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  if (!info[i].IsBoolean()) ThrowType(info.Env(), ArgName(fn, name) + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

uint64_t ValueU64(Napi::Env env, Napi::Value v, const std::string& what) {
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t u = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) ThrowRange(env, what + " must be in [0, 2^64)");
    return u;
  }
  if (v.IsNumber()) {
    double d = IntegralNumber(env, v, what);
    if (d < 0 || d > 9007199254740991.0) ThrowRange(env, what + " must be a non-negative safe integer");
    return static_cast<uint64_t>(d);
  }
  ThrowType(env, what + " must be a bigint or a number");
}

uint64_t ValueU64Wrapping(Napi::Env env, Napi::Value v, const std::string& what) {
  if (v.IsBigInt()) {
    Napi::BigInt b = v.As<Napi::BigInt>();
    bool lossless = false;
    int64_t s = b.Int64Value(&lossless);
    if (lossless) return static_cast<uint64_t>(s);
    uint64_t u = b.Uint64Value(&lossless);
    if (lossless) return u;
    ThrowRange(env, what + " must fit in 64 bits");
  }
  if (v.IsNumber()) {
    double d = IntegralNumber(env, v, what);
    if (d < -9007199254740991.0 || d > 9007199254740991.0) ThrowRange(env, what + " must be a safe integer");
    return static_cast<uint64_t>(static_cast<int64_t>(d));
  }
  ThrowType(env, what + " must be a bigint or a number");
}

uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  return ValueU64(info.Env(), info[i], ArgName(fn, name));
}

// ---- generic fd calls -----------------------------------------------------------------
static Napi::Value SetFdLabelJs(const Napi::CallbackInfo& info) {
  CheckArgCount(info, 2, "setFdLabel");
  int fd = ArgFd(info, 0, "setFdLabel");
  SetFdLabel(fd, ArgString(info, 1, "setFdLabel", "label"));
  return info.Env().Undefined();
}

static Napi::Value CloseJs(const Napi::CallbackInfo& info) {
  CheckArgCount(info, 1, "close");
  int fd = ArgFd(info, 0, "close");
  std::string label = FdLabel(fd);
  ForgetFdLabel(fd);
  StopPollerForFd(info.Env(), fd);
  // Linux releases the fd even when close reports EINTR: never retry.
  if (close(fd) != 0 && errno != EINTR)
    ThrowKernel(info.Env(), "close", label.empty() ? "fd " + std::to_string(fd) : label, errno);
  return info.Env().Undefined();
}

static Napi::Value OpenPathJs(const Napi::CallbackInfo& info) {
  CheckArgCount(info, 1, "openPath");
  std::string path = ArgString(info, 0, "openPath", "path");
  int flags = O_RDWR;
  if (info.Length() > 1 && !info[1].IsUndefined()) flags = ArgI32(info, 1, "openPath", "flags");
  int fd = open(path.c_str(), flags | O_CLOEXEC, 0600);
  if (fd < 0) ThrowKernel(info.Env(), "open", path, errno);
  SetFdLabel(fd, path);
  return Napi::Number::New(info.Env(), fd);
}

static Napi::Value ErrnoNameJs(const Napi::CallbackInfo& info) {
  CheckArgCount(info, 1, "errnoName");
  int32_t e = ArgI32(info, 0, "errnoName", "errno");
  return Napi::String::New(info.Env(), ErrnoName(e < 0 ? -e : e));
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("setFdLabel", Napi::Function::New(env, SetFdLabelJs, "setFdLabel"));
  exports.Set("close", Napi::Function::New(env, CloseJs, "close"));
  exports.Set("openPath", Napi::Function::New(env, OpenPathJs, "openPath"));
  exports.Set("errnoName", Napi::Function::New(env, ErrnoNameJs, "errnoName"));
  InitDrm(env, exports);
  InitVfio(env, exports);
  InitMemIo(env, exports);
  InitUevent(env, exports);
  InitUnixSock(env, exports);
  InitSockCred(env, exports);
  return exports;
}

}  // namespace vgpu

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return vgpu::Init(env, exports); }

NODE_API_MODULE(vgpu_flip, InitModule)
