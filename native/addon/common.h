// Shared helpers of the vgpu-flip native addon: kernel errors, fd labels, argument checks.
// The addon only marshals arguments and makes syscalls; it holds no policy.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace vgpu {

// ---- fd labels ------------------------------------------------------------------------
void SetFdLabel(int fd, const std::string& label);
void ForgetFdLabel(int fd);
// the label of an fd ('/dev/dri/card0'), or '' when none was set
std::string FdLabel(int fd);

// ---- errors ---------------------------------------------------------------------------
std::string ErrnoName(int err);

// Build a JS Error with op/path/errno/code; message "OP on PATH: CODE (strerror)[: hint]".
Napi::Error KernelError(Napi::Env env, const std::string& op, const std::string& path, int err,
                        const std::string& hint = "");
[[noreturn]] void ThrowKernel(Napi::Env env, const std::string& op, const std::string& path, int err,
                              const std::string& hint = "");
[[noreturn]] inline void ThrowFd(Napi::Env env, const std::string& op, int fd, int err,
                                 const std::string& hint = "") {
  ThrowKernel(env, op, FdLabel(fd).empty() ? "fd " + std::to_string(fd) : FdLabel(fd), err, hint);
}
[[noreturn]] void ThrowType(Napi::Env env, const std::string& msg);
[[noreturn]] void ThrowRange(Napi::Env env, const std::string& msg);

// errno after a failed call, never 0 (libdrm can return NULL without setting errno on ENOMEM)
inline int LastErrno() { int e = errno; return e ? e : ENOMEM; }

// ---- arguments ------------------------------------------------------------------------
void CheckArgCount(const Napi::CallbackInfo& info, size_t n, const char* fn);
int ArgFd(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name = "fd");
uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name);
int32_t ArgI32(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name);
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name);
Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name);
bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name);
// non-negative bigint (or a safe non-negative integer number)
uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name);
uint32_t ValueU32(Napi::Env env, Napi::Value v, const std::string& what);
// a u64 from a bigint or integral number; negative values become two's complement
uint64_t ValueU64Wrapping(Napi::Env env, Napi::Value v, const std::string& what);
// non-negative bigint or safe integer
uint64_t ValueU64(Napi::Env env, Napi::Value v, const std::string& what);

// ---- mappings -------------------------------------------------------------------------
// mmap(MAP_SHARED) fd at offset and wrap it as a Mapping { buffer, length, unmap() }.
Napi::Object MapToJs(Napi::Env env, int fd, uint64_t offset, size_t length, bool writable,
                     const std::string& op);

// ---- event loop ----------------------------------------------------------------------
// stop the active poller on fd (of this env's loop), if any: libuv must never watch a closed fd
void StopPollerForFd(napi_env env, int fd);

// ---- module parts ---------------------------------------------------------------------
void InitDrm(Napi::Env env, Napi::Object exports);
void InitVfio(Napi::Env env, Napi::Object exports);
void InitMemIo(Napi::Env env, Napi::Object exports);
void InitUevent(Napi::Env env, Napi::Object exports);
void InitSockCred(Napi::Env env, Napi::Object exports);

}  // namespace vgpu
