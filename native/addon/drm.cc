// DRM/KMS calls: open + verify, caps, enumeration, properties and blobs, atomic commit,
// PRIME, framebuffers, dumb buffers, master, events. Marshalling only, no policy.
#include "common.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <xf86drm.h>
#include <xf86drmMode.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <unordered_map>
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

template <typename T, void (*Free)(T*)>
struct DrmPtr {
  T* p;
  explicit DrmPtr(T* ptr) : p(ptr) {}
  ~DrmPtr() { if (p) Free(p); }
  DrmPtr(const DrmPtr&) = delete;
  DrmPtr& operator=(const DrmPtr&) = delete;
  T* operator->() const { return p; }
  explicit operator bool() const { return p != nullptr; }
};

Napi::Array U32Array(Napi::Env env, const uint32_t* v, int n) {
  Napi::Array a = Napi::Array::New(env, n > 0 ? n : 0);
  for (int i = 0; i < n; i++) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, v[i]));
  return a;
}

std::vector<uint32_t> U32Vector(Napi::Env env, Napi::Value v, const std::string& what, size_t maxLen) {
  if (!v.IsArray()) ThrowType(env, what + " must be an array of numbers");
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() > maxLen) ThrowRange(env, what + " has more than " + std::to_string(maxLen) + " entries");
  std::vector<uint32_t> out;
  for (uint32_t i = 0; i < a.Length(); i++)
    out.push_back(ValueU32(env, a.Get(i), what + "[" + std::to_string(i) + "]"));
  return out;
}

Napi::Object ModeToJs(Napi::Env env, const drmModeModeInfo& m) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("clock", m.clock);
  o.Set("hdisplay", m.hdisplay);
  o.Set("hsyncStart", m.hsync_start);
  o.Set("hsyncEnd", m.hsync_end);
  o.Set("htotal", m.htotal);
  o.Set("hskew", m.hskew);
  o.Set("vdisplay", m.vdisplay);
  o.Set("vsyncStart", m.vsync_start);
  o.Set("vsyncEnd", m.vsync_end);
  o.Set("vtotal", m.vtotal);
  o.Set("vscan", m.vscan);
  o.Set("vrefresh", m.vrefresh);
  o.Set("flags", m.flags);
  o.Set("type", m.type);
  o.Set("name", Napi::String::New(env, std::string(m.name, strnlen(m.name, sizeof m.name))));
  return o;
}

// ---- open / caps / version ------------------------------------------------------------
Napi::Value DrmOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 1, "drmOpen");
  std::string path = ArgString(info, 0, "drmOpen", "path");
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    std::string hint;
    if (e == EACCES || e == EPERM) hint = "run as root or join the group that owns the device (video/render)";
    if (e == ENOENT) hint = "no such DRM node; is a KMS driver loaded (ls /dev/dri)?";
    ThrowKernel(env, "open", path, e, hint);
  }
  drmVersionPtr v = drmGetVersion(fd);
  if (v == nullptr) {
    int e = LastErrno();
    close(fd);
    ThrowKernel(env, "DRM_IOCTL_VERSION", path, e, path + " is not a DRM device");
  }
  drmFreeVersion(v);
  SetFdLabel(fd, path);
  return Napi::Number::New(env, fd);
}

Napi::Value DrmSetClientCap(const Napi::CallbackInfo& info) {
  CheckArgCount(info, 3, "drmSetClientCap");
  int fd = ArgFd(info, 0, "drmSetClientCap");
  drm_set_client_cap c{};
  c.capability = ArgU32(info, 1, "drmSetClientCap", "cap");
  c.value = ArgU64(info, 2, "drmSetClientCap", "value");
  if (Xioctl(fd, DRM_IOCTL_SET_CLIENT_CAP, &c) != 0)
    ThrowFd(info.Env(), "DRM_IOCTL_SET_CLIENT_CAP", fd, errno, "client cap " + std::to_string(c.capability));
  return info.Env().Undefined();
}

Napi::Value DrmGetCap(const Napi::CallbackInfo& info) {
  CheckArgCount(info, 2, "drmGetCap");
  int fd = ArgFd(info, 0, "drmGetCap");
  drm_get_cap c{};
  c.capability = ArgU32(info, 1, "drmGetCap", "cap");
  if (Xioctl(fd, DRM_IOCTL_GET_CAP, &c) != 0)
    ThrowFd(info.Env(), "DRM_IOCTL_GET_CAP", fd, errno, "cap " + std::to_string(c.capability));
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(c.value));
}

Napi::Value DrmGetVersionJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 1, "drmGetVersion");
  int fd = ArgFd(info, 0, "drmGetVersion");
  errno = 0;
  DrmPtr<drmVersion, drmFreeVersion> v(drmGetVersion(fd));
  if (!v) ThrowFd(env, "DRM_IOCTL_VERSION", fd, LastErrno());
  Napi::Object o = Napi::Object::New(env);
  o.Set("major", v->version_major);
  o.Set("minor", v->version_minor);
  o.Set("patch", v->version_patchlevel);
  o.Set("name", Napi::String::New(env, v->name ? std::string(v->name, v->name_len) : ""));
  o.Set("date", Napi::String::New(env, v->date ? std::string(v->date, v->date_len) : ""));
  o.Set("desc", Napi::String::New(env, v->desc ? std::string(v->desc, v->desc_len) : ""));
  return o;
}

// ---- enumeration ----------------------------------------------------------------------
Napi::Value DrmGetResources(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 1, "drmGetResources");
  int fd = ArgFd(info, 0, "drmGetResources");
  errno = 0;
  DrmPtr<drmModeRes, drmModeFreeResources> r(drmModeGetResources(fd));
  if (!r) ThrowFd(env, "DRM_IOCTL_MODE_GETRESOURCES", fd, LastErrno());
  Napi::Object o = Napi::Object::New(env);
  o.Set("fbs", U32Array(env, r->fbs, r->count_fbs));
  o.Set("crtcs", U32Array(env, r->crtcs, r->count_crtcs));
  o.Set("connectors", U32Array(env, r->connectors, r->count_connectors));
  o.Set("encoders", U32Array(env, r->encoders, r->count_encoders));
  o.Set("minWidth", r->min_width);
  o.Set("maxWidth", r->max_width);
  o.Set("minHeight", r->min_height);
  o.Set("maxHeight", r->max_height);
  return o;
}

Napi::Value DrmGetConnector(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 2, "drmGetConnector");
  int fd = ArgFd(info, 0, "drmGetConnector");
  uint32_t id = ArgU32(info, 1, "drmGetConnector", "id");
  errno = 0;
  DrmPtr<drmModeConnector, drmModeFreeConnector> c(drmModeGetConnector(fd, id));
  if (!c) ThrowFd(env, "DRM_IOCTL_MODE_GETCONNECTOR", fd, LastErrno(), "connector " + std::to_string(id));
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", c->connector_id);
  o.Set("type", c->connector_type);
  o.Set("typeId", c->connector_type_id);
  o.Set("status", static_cast<uint32_t>(c->connection));
  o.Set("mmWidth", c->mmWidth);
  o.Set("mmHeight", c->mmHeight);
  o.Set("subpixel", static_cast<uint32_t>(c->subpixel));
  o.Set("encoderId", c->encoder_id);
  o.Set("encoders", U32Array(env, c->encoders, c->count_encoders));
  Napi::Array modes = Napi::Array::New(env, c->count_modes > 0 ? c->count_modes : 0);
  for (int i = 0; i < c->count_modes; i++) modes.Set(static_cast<uint32_t>(i), ModeToJs(env, c->modes[i]));
  o.Set("modes", modes);
  return o;
}

Napi::Value DrmGetEncoder(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 2, "drmGetEncoder");
  int fd = ArgFd(info, 0, "drmGetEncoder");
  uint32_t id = ArgU32(info, 1, "drmGetEncoder", "id");
  errno = 0;
  DrmPtr<drmModeEncoder, drmModeFreeEncoder> e(drmModeGetEncoder(fd, id));
  if (!e) ThrowFd(env, "DRM_IOCTL_MODE_GETENCODER", fd, LastErrno(), "encoder " + std::to_string(id));
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", e->encoder_id);
  o.Set("type", e->encoder_type);
  o.Set("crtcId", e->crtc_id);
  o.Set("possibleCrtcs", e->possible_crtcs);
  o.Set("possibleClones", e->possible_clones);
  return o;
}

Napi::Value DrmGetCrtc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 2, "drmGetCrtc");
  int fd = ArgFd(info, 0, "drmGetCrtc");
  uint32_t id = ArgU32(info, 1, "drmGetCrtc", "id");
  errno = 0;
  DrmPtr<drmModeCrtc, drmModeFreeCrtc> c(drmModeGetCrtc(fd, id));
  if (!c) ThrowFd(env, "DRM_IOCTL_MODE_GETCRTC", fd, LastErrno(), "crtc " + std::to_string(id));
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", c->crtc_id);
  o.Set("bufferId", c->buffer_id);
  o.Set("x", c->x);
  o.Set("y", c->y);
  o.Set("width", c->width);
  o.Set("height", c->height);
  o.Set("modeValid", Napi::Boolean::New(env, c->mode_valid != 0));
  o.Set("mode", c->mode_valid ? Napi::Value(ModeToJs(env, c->mode)) : env.Null());
  o.Set("gammaSize", c->gamma_size);
  return o;
}

Napi::Value DrmGetPlaneResources(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 1, "drmGetPlaneResources");
  int fd = ArgFd(info, 0, "drmGetPlaneResources");
  errno = 0;
  DrmPtr<drmModePlaneRes, drmModeFreePlaneResources> r(drmModeGetPlaneResources(fd));
  if (!r) ThrowFd(env, "DRM_IOCTL_MODE_GETPLANERESOURCES", fd, LastErrno());
  return U32Array(env, r->planes, static_cast<int>(r->count_planes));
}

Napi::Value DrmGetPlane(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 2, "drmGetPlane");
  int fd = ArgFd(info, 0, "drmGetPlane");
  uint32_t id = ArgU32(info, 1, "drmGetPlane", "id");
  errno = 0;
  DrmPtr<drmModePlane, drmModeFreePlane> p(drmModeGetPlane(fd, id));
  if (!p) ThrowFd(env, "DRM_IOCTL_MODE_GETPLANE", fd, LastErrno(), "plane " + std::to_string(id));
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", p->plane_id);
  o.Set("crtcId", p->crtc_id);
  o.Set("fbId", p->fb_id);
  o.Set("crtcX", p->crtc_x);
  o.Set("crtcY", p->crtc_y);
  o.Set("x", p->x);
  o.Set("y", p->y);
  o.Set("possibleCrtcs", p->possible_crtcs);
  o.Set("gammaSize", p->gamma_size);
  o.Set("formats", U32Array(env, p->formats, static_cast<int>(p->count_formats)));
  return o;
}

// DRM_IOCTL_MODE_GETFB2: what a framebuffer is (for inspect / drm_info's "fb"). The kernel
// hands a master or root caller new GEM handles for the buffer: they are closed here at once
// (each distinct one once), so nothing leaks; the result carries no handles.
Napi::Value DrmGetFb2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 2, "drmGetFb2");
  int fd = ArgFd(info, 0, "drmGetFb2");
  uint32_t id = ArgU32(info, 1, "drmGetFb2", "fbId");
  errno = 0;
  DrmPtr<drmModeFB2, drmModeFreeFB2> fb(drmModeGetFB2(fd, id));
  if (!fb) ThrowFd(env, "DRM_IOCTL_MODE_GETFB2", fd, LastErrno(), "framebuffer " + std::to_string(id));
  for (int i = 0; i < 4; i++) {
    uint32_t h = fb->handles[i];
    if (h == 0) continue;
    bool seen = false;
    for (int j = 0; j < i; j++) seen = seen || fb->handles[j] == h;
    if (!seen) {
      drm_gem_close c{};
      c.handle = h;
      Xioctl(fd, DRM_IOCTL_GEM_CLOSE, &c);
    }
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", fb->fb_id);
  o.Set("width", fb->width);
  o.Set("height", fb->height);
  o.Set("format", fb->pixel_format);
  o.Set("flags", fb->flags);
  if (fb->flags & DRM_MODE_FB_MODIFIERS)
    o.Set("modifier", Napi::BigInt::New(env, static_cast<uint64_t>(fb->modifier)));
  else
    o.Set("modifier", env.Null());
  Napi::Array pitches = Napi::Array::New(env);
  Napi::Array offsets = Napi::Array::New(env);
  for (uint32_t i = 0; i < 4 && fb->pitches[i] != 0; i++) {
    pitches.Set(i, fb->pitches[i]);
    offsets.Set(i, fb->offsets[i]);
  }
  o.Set("pitches", pitches);
  o.Set("offsets", offsets);
  return o;
}

// ---- properties and blobs -------------------------------------------------------------
Napi::Value DrmGetProperties(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 3, "drmGetProperties");
  int fd = ArgFd(info, 0, "drmGetProperties");
  uint32_t objId = ArgU32(info, 1, "drmGetProperties", "objectId");
  uint32_t objType = ArgU32(info, 2, "drmGetProperties", "objectType");
  errno = 0;
  DrmPtr<drmModeObjectProperties, drmModeFreeObjectProperties> props(
      drmModeObjectGetProperties(fd, objId, objType));
  if (!props) ThrowFd(env, "DRM_IOCTL_MODE_OBJ_GETPROPERTIES", fd, LastErrno(), "object " + std::to_string(objId));
  Napi::Array out = Napi::Array::New(env, props->count_props);
  for (uint32_t i = 0; i < props->count_props; i++) {
    errno = 0;
    DrmPtr<drmModePropertyRes, drmModeFreeProperty> p(drmModeGetProperty(fd, props->props[i]));
    if (!p)
      ThrowFd(env, "DRM_IOCTL_MODE_GETPROPERTY", fd, LastErrno(), "property " + std::to_string(props->props[i]));
    Napi::Object o = Napi::Object::New(env);
    o.Set("id", p->prop_id);
    o.Set("name", Napi::String::New(env, std::string(p->name, strnlen(p->name, sizeof p->name))));
    o.Set("flags", p->flags);
    o.Set("value", Napi::BigInt::New(env, static_cast<uint64_t>(props->prop_values[i])));
    const char* kind = "range";
    if (drm_property_type_is(p.p, DRM_MODE_PROP_SIGNED_RANGE)) {
      kind = "signed_range";
      if (p->count_values >= 2) {
        Napi::Array r = Napi::Array::New(env, 2);
        r.Set(0u, Napi::BigInt::New(env, static_cast<int64_t>(p->values[0])));
        r.Set(1u, Napi::BigInt::New(env, static_cast<int64_t>(p->values[1])));
        o.Set("range", r);
      }
    } else if (drm_property_type_is(p.p, DRM_MODE_PROP_RANGE)) {
      kind = "range";
      if (p->count_values >= 2) {
        Napi::Array r = Napi::Array::New(env, 2);
        r.Set(0u, Napi::BigInt::New(env, static_cast<uint64_t>(p->values[0])));
        r.Set(1u, Napi::BigInt::New(env, static_cast<uint64_t>(p->values[1])));
        o.Set("range", r);
      }
    } else if (drm_property_type_is(p.p, DRM_MODE_PROP_ENUM) || drm_property_type_is(p.p, DRM_MODE_PROP_BITMASK)) {
      kind = drm_property_type_is(p.p, DRM_MODE_PROP_ENUM) ? "enum" : "bitmask";
      Napi::Array en = Napi::Array::New(env, p->count_enums > 0 ? p->count_enums : 0);
      for (int j = 0; j < p->count_enums; j++) {
        Napi::Object e = Napi::Object::New(env);
        e.Set("name", Napi::String::New(env, std::string(p->enums[j].name,
                                                         strnlen(p->enums[j].name, sizeof p->enums[j].name))));
        e.Set("value", Napi::BigInt::New(env, static_cast<uint64_t>(p->enums[j].value)));
        en.Set(static_cast<uint32_t>(j), e);
      }
      o.Set("enums", en);
    } else if (drm_property_type_is(p.p, DRM_MODE_PROP_BLOB)) {
      kind = "blob";
    } else if (drm_property_type_is(p.p, DRM_MODE_PROP_OBJECT)) {
      kind = "object";
      if (p->count_values >= 1) o.Set("objectType", Napi::Number::New(env, static_cast<uint32_t>(p->values[0])));
    }
    o.Set("kind", kind);
    out.Set(i, o);
  }
  return out;
}

Napi::Value DrmGetPropertyBlob(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 2, "drmGetPropertyBlob");
  int fd = ArgFd(info, 0, "drmGetPropertyBlob");
  uint32_t id = ArgU32(info, 1, "drmGetPropertyBlob", "blobId");
  if (id == 0) return env.Null();
  drm_mode_get_blob g{};
  g.blob_id = id;
  if (Xioctl(fd, DRM_IOCTL_MODE_GETPROPBLOB, &g) != 0) {
    if (errno == ENOENT) return env.Null();
    ThrowFd(env, "DRM_IOCTL_MODE_GETPROPBLOB", fd, errno, "blob " + std::to_string(id));
  }
  std::vector<uint8_t> data(g.length);
  if (g.length > 0) {
    g.data = reinterpret_cast<uintptr_t>(data.data());
    if (Xioctl(fd, DRM_IOCTL_MODE_GETPROPBLOB, &g) != 0) {
      if (errno == ENOENT) return env.Null();
      ThrowFd(env, "DRM_IOCTL_MODE_GETPROPBLOB", fd, errno, "blob " + std::to_string(id));
    }
  }
  size_t n = g.length < data.size() ? g.length : data.size();
  return Napi::Buffer<uint8_t>::Copy(env, data.data(), n);
}

Napi::Value DrmCreatePropertyBlob(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 2, "drmCreatePropertyBlob");
  int fd = ArgFd(info, 0, "drmCreatePropertyBlob");
  Napi::Buffer<uint8_t> b = ArgBuffer(info, 1, "drmCreatePropertyBlob", "data");
  if (b.Length() > UINT32_MAX) ThrowRange(env, "drmCreatePropertyBlob: data too large");
  drm_mode_create_blob c{};
  c.data = reinterpret_cast<uintptr_t>(b.Data());
  c.length = static_cast<uint32_t>(b.Length());
  if (Xioctl(fd, DRM_IOCTL_MODE_CREATEPROPBLOB, &c) != 0) ThrowFd(env, "DRM_IOCTL_MODE_CREATEPROPBLOB", fd, errno);
  return Napi::Number::New(env, c.blob_id);
}

Napi::Value DrmDestroyPropertyBlob(const Napi::CallbackInfo& info) {
  CheckArgCount(info, 2, "drmDestroyPropertyBlob");
  int fd = ArgFd(info, 0, "drmDestroyPropertyBlob");
  drm_mode_destroy_blob d{};
  d.blob_id = ArgU32(info, 1, "drmDestroyPropertyBlob", "blobId");
  if (Xioctl(fd, DRM_IOCTL_MODE_DESTROYPROPBLOB, &d) != 0)
    ThrowFd(info.Env(), "DRM_IOCTL_MODE_DESTROYPROPBLOB", fd, errno, "blob " + std::to_string(d.blob_id));
  return info.Env().Undefined();
}

Napi::Value DrmDecodeInFormats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 1, "drmDecodeInFormats");
  Napi::Buffer<uint8_t> b = ArgBuffer(info, 0, "drmDecodeInFormats", "blob");
  const uint8_t* d = b.Data();
  const uint64_t len = b.Length();
  drm_format_modifier_blob h;
  if (len < sizeof h)
    ThrowRange(env, "drmDecodeInFormats: blob of " + std::to_string(len) +
                        " bytes is shorter than struct drm_format_modifier_blob (" + std::to_string(sizeof h) + ")");
  std::memcpy(&h, d, sizeof h);
  const uint64_t fEnd = uint64_t(h.formats_offset) + uint64_t(h.count_formats) * 4;
  const uint64_t mEnd = uint64_t(h.modifiers_offset) + uint64_t(h.count_modifiers) * sizeof(drm_format_modifier);
  if (fEnd > len)
    ThrowRange(env, "drmDecodeInFormats: " + std::to_string(h.count_formats) + " formats at offset " +
                        std::to_string(h.formats_offset) + " overrun the " + std::to_string(len) + "-byte blob");
  if (mEnd > len)
    ThrowRange(env, "drmDecodeInFormats: " + std::to_string(h.count_modifiers) + " modifiers at offset " +
                        std::to_string(h.modifiers_offset) + " overrun the " + std::to_string(len) + "-byte blob");
  std::vector<uint32_t> formats(h.count_formats);
  if (!formats.empty()) std::memcpy(formats.data(), d + h.formats_offset, formats.size() * 4);
  std::vector<drm_format_modifier> mods(h.count_modifiers);
  if (!mods.empty()) std::memcpy(mods.data(), d + h.modifiers_offset, mods.size() * sizeof(drm_format_modifier));
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  // grouped by format (blob order), then modifiers in blob order
  for (uint64_t fi = 0; fi < formats.size(); fi++) {
    for (const auto& m : mods) {
      if (fi < m.offset || fi - m.offset >= 64) continue;
      if (!((m.formats >> (fi - m.offset)) & 1)) continue;
      Napi::Object o = Napi::Object::New(env);
      o.Set("format", Napi::Number::New(env, formats[fi]));
      o.Set("modifier", Napi::BigInt::New(env, static_cast<uint64_t>(m.modifier)));
      out.Set(n++, o);
    }
  }
  return out;
}

// ---- atomic ---------------------------------------------------------------------------
Napi::Value DrmAtomicCommit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 3, "drmAtomicCommit");
  int fd = ArgFd(info, 0, "drmAtomicCommit");
  if (!info[1].IsArray()) ThrowType(env, "drmAtomicCommit: props must be an array of [objectId, propertyId, value]");
  uint32_t flags = ArgU32(info, 2, "drmAtomicCommit", "flags");
  uint64_t userData = 0;
  if (info.Length() > 3 && !info[3].IsUndefined()) {
    if (!info[3].IsBigInt()) ThrowType(env, "drmAtomicCommit: userData must be a bigint");
    userData = ValueU64(env, info[3], "drmAtomicCommit: userData");
  }
  Napi::Array arr = info[1].As<Napi::Array>();
  const uint32_t n = arr.Length();

  struct Item { uint32_t obj, prop; uint64_t value; int fence; };
  std::vector<Item> items;
  items.reserve(n);
  int numFences = 0;
  for (uint32_t i = 0; i < n; i++) {
    std::string what = "drmAtomicCommit: props[" + std::to_string(i) + "]";
    Napi::Value t = arr.Get(i);
    if (!t.IsArray() || t.As<Napi::Array>().Length() != 3)
      ThrowType(env, what + " must be [objectId, propertyId, value]");
    Napi::Array ta = t.As<Napi::Array>();
    Item it{};
    it.obj = ValueU32(env, ta.Get(0u), what + "[0] (objectId)");
    it.prop = ValueU32(env, ta.Get(1u), what + "[1] (propertyId)");
    it.fence = -1;
    Napi::Value v = ta.Get(2u);
    if (v.IsObject() && !v.IsArray()) {
      Napi::Value of = v.As<Napi::Object>().Get("outFence");
      if (!of.IsBoolean() || !of.As<Napi::Boolean>().Value())
        ThrowType(env, what + "[2] must be a bigint, a number or { outFence: true }");
      it.fence = numFences++;
    } else {
      it.value = ValueU64Wrapping(env, v, what + "[2] (value)");
    }
    items.push_back(it);
  }

  std::vector<int32_t> fences(numFences, -1);
  // group by object, in order of first appearance; props keep their relative order
  std::vector<uint32_t> objs, counts;
  std::unordered_map<uint32_t, size_t> objIndex;
  std::vector<std::vector<const Item*>> groups;
  for (const Item& it : items) {
    auto f = objIndex.find(it.obj);
    size_t gi;
    if (f == objIndex.end()) {
      gi = objs.size();
      objIndex.emplace(it.obj, gi);
      objs.push_back(it.obj);
      groups.emplace_back();
    } else {
      gi = f->second;
    }
    groups[gi].push_back(&it);
  }
  std::vector<uint32_t> propIds;
  std::vector<uint64_t> values;
  propIds.reserve(n);
  values.reserve(n);
  for (const auto& g : groups) {
    counts.push_back(static_cast<uint32_t>(g.size()));
    for (const Item* it : g) {
      propIds.push_back(it->prop);
      values.push_back(it->fence >= 0 ? static_cast<uint64_t>(reinterpret_cast<uintptr_t>(&fences[it->fence]))
                                      : it->value);
    }
  }

  drm_mode_atomic a{};
  a.flags = flags;
  a.count_objs = static_cast<uint32_t>(objs.size());
  a.objs_ptr = reinterpret_cast<uintptr_t>(objs.data());
  a.count_props_ptr = reinterpret_cast<uintptr_t>(counts.data());
  a.props_ptr = reinterpret_cast<uintptr_t>(propIds.data());
  a.prop_values_ptr = reinterpret_cast<uintptr_t>(values.data());
  a.user_data = userData;
  if (Xioctl(fd, DRM_IOCTL_MODE_ATOMIC, &a) != 0) ThrowFd(env, "DRM_IOCTL_MODE_ATOMIC", fd, errno);
  Napi::Array out = Napi::Array::New(env, fences.size());
  std::string dev = FdLabel(fd);
  for (size_t i = 0; i < fences.size(); i++) {
    if (fences[i] >= 0) SetFdLabel(fences[i], "out-fence of " + (dev.empty() ? "fd " + std::to_string(fd) : dev));
    out.Set(static_cast<uint32_t>(i), Napi::Number::New(env, fences[i]));
  }
  return out;
}

// ---- PRIME / GEM / framebuffers ---------------------------------------------------------
Napi::Value DrmPrimeFdToHandle(const Napi::CallbackInfo& info) {
  CheckArgCount(info, 2, "drmPrimeFdToHandle");
  int fd = ArgFd(info, 0, "drmPrimeFdToHandle");
  drm_prime_handle p{};
  p.fd = ArgFd(info, 1, "drmPrimeFdToHandle", "dmabufFd");
  if (Xioctl(fd, DRM_IOCTL_PRIME_FD_TO_HANDLE, &p) != 0)
    ThrowFd(info.Env(), "DRM_IOCTL_PRIME_FD_TO_HANDLE", fd, errno, "dma-buf fd " + std::to_string(p.fd));
  return Napi::Number::New(info.Env(), p.handle);
}

Napi::Value DrmPrimeHandleToFd(const Napi::CallbackInfo& info) {
  CheckArgCount(info, 3, "drmPrimeHandleToFd");
  int fd = ArgFd(info, 0, "drmPrimeHandleToFd");
  drm_prime_handle p{};
  p.handle = ArgU32(info, 1, "drmPrimeHandleToFd", "handle");
  p.flags = ArgU32(info, 2, "drmPrimeHandleToFd", "flags");
  p.fd = -1;
  if (Xioctl(fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, &p) != 0)
    ThrowFd(info.Env(), "DRM_IOCTL_PRIME_HANDLE_TO_FD", fd, errno, "handle " + std::to_string(p.handle));
  std::string dev = FdLabel(fd);
  SetFdLabel(p.fd, "dma-buf of " + (dev.empty() ? "fd " + std::to_string(fd) : dev) + " handle " +
                       std::to_string(p.handle));
  return Napi::Number::New(info.Env(), p.fd);
}

Napi::Value DrmGemClose(const Napi::CallbackInfo& info) {
  CheckArgCount(info, 2, "drmGemClose");
  int fd = ArgFd(info, 0, "drmGemClose");
  drm_gem_close c{};
  c.handle = ArgU32(info, 1, "drmGemClose", "handle");
  if (Xioctl(fd, DRM_IOCTL_GEM_CLOSE, &c) != 0)
    ThrowFd(info.Env(), "DRM_IOCTL_GEM_CLOSE", fd, errno, "handle " + std::to_string(c.handle));
  return info.Env().Undefined();
}

Napi::Value DrmAddFb2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 2, "drmAddFb2");
  int fd = ArgFd(info, 0, "drmAddFb2");
  if (!info[1].IsObject()) ThrowType(env, "drmAddFb2: args must be an object");
  Napi::Object a = info[1].As<Napi::Object>();
  drm_mode_fb_cmd2 c{};
  c.width = ValueU32(env, a.Get("width"), "drmAddFb2: width");
  c.height = ValueU32(env, a.Get("height"), "drmAddFb2: height");
  c.pixel_format = ValueU32(env, a.Get("format"), "drmAddFb2: format");
  std::vector<uint32_t> handles = U32Vector(env, a.Get("handles"), "drmAddFb2: handles", 4);
  std::vector<uint32_t> pitches = U32Vector(env, a.Get("pitches"), "drmAddFb2: pitches", 4);
  std::vector<uint32_t> offsets = U32Vector(env, a.Get("offsets"), "drmAddFb2: offsets", 4);
  for (size_t i = 0; i < handles.size(); i++) c.handles[i] = handles[i];
  for (size_t i = 0; i < pitches.size(); i++) c.pitches[i] = pitches[i];
  for (size_t i = 0; i < offsets.size(); i++) c.offsets[i] = offsets[i];
  Napi::Value mv = a.Get("modifiers");
  if (!mv.IsUndefined() && !mv.IsNull()) {
    if (!mv.IsArray()) ThrowType(env, "drmAddFb2: modifiers must be an array of bigints");
    Napi::Array m = mv.As<Napi::Array>();
    if (m.Length() > 4) ThrowRange(env, "drmAddFb2: modifiers has more than 4 entries");
    for (uint32_t i = 0; i < m.Length(); i++) {
      Napi::Value v = m.Get(i);
      if (!v.IsBigInt()) ThrowType(env, "drmAddFb2: modifiers[" + std::to_string(i) + "] must be a bigint");
      c.modifier[i] = ValueU64(env, v, "drmAddFb2: modifiers[" + std::to_string(i) + "]");
    }
    c.flags |= DRM_MODE_FB_MODIFIERS;
  }
  if (Xioctl(fd, DRM_IOCTL_MODE_ADDFB2, &c) != 0) {
    char fcc[5] = {char(c.pixel_format & 0xff), char((c.pixel_format >> 8) & 0xff),
                   char((c.pixel_format >> 16) & 0xff), char((c.pixel_format >> 24) & 0xff), 0};
    for (int i = 0; i < 4; i++) if (fcc[i] < 32 || fcc[i] > 126) fcc[i] = '?';
    ThrowFd(env, "DRM_IOCTL_MODE_ADDFB2", fd, errno,
            std::to_string(c.width) + "x" + std::to_string(c.height) + " " + fcc +
                ((c.flags & DRM_MODE_FB_MODIFIERS) ? " with modifiers" : ""));
  }
  return Napi::Number::New(env, c.fb_id);
}

Napi::Value DrmRmFb(const Napi::CallbackInfo& info) {
  CheckArgCount(info, 2, "drmRmFb");
  int fd = ArgFd(info, 0, "drmRmFb");
  uint32_t id = ArgU32(info, 1, "drmRmFb", "fbId");
  if (Xioctl(fd, DRM_IOCTL_MODE_RMFB, &id) != 0)
    ThrowFd(info.Env(), "DRM_IOCTL_MODE_RMFB", fd, errno, "fb " + std::to_string(id));
  return info.Env().Undefined();
}

// ---- dumb buffers ---------------------------------------------------------------------
Napi::Value DrmCreateDumb(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 4, "drmCreateDumb");
  int fd = ArgFd(info, 0, "drmCreateDumb");
  drm_mode_create_dumb c{};
  c.width = ArgU32(info, 1, "drmCreateDumb", "width");
  c.height = ArgU32(info, 2, "drmCreateDumb", "height");
  c.bpp = ArgU32(info, 3, "drmCreateDumb", "bpp");
  if (Xioctl(fd, DRM_IOCTL_MODE_CREATE_DUMB, &c) != 0)
    ThrowFd(env, "DRM_IOCTL_MODE_CREATE_DUMB", fd, errno,
            std::to_string(c.width) + "x" + std::to_string(c.height) + " bpp " + std::to_string(c.bpp));
  Napi::Object o = Napi::Object::New(env);
  o.Set("handle", c.handle);
  o.Set("pitch", c.pitch);
  o.Set("size", Napi::Number::New(env, static_cast<double>(c.size)));
  return o;
}

Napi::Value DrmMapDumb(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 3, "drmMapDumb");
  int fd = ArgFd(info, 0, "drmMapDumb");
  drm_mode_map_dumb m{};
  m.handle = ArgU32(info, 1, "drmMapDumb", "handle");
  uint64_t size = ArgU64(info, 2, "drmMapDumb", "size");
  if (Xioctl(fd, DRM_IOCTL_MODE_MAP_DUMB, &m) != 0)
    ThrowFd(env, "DRM_IOCTL_MODE_MAP_DUMB", fd, errno, "handle " + std::to_string(m.handle));
  return MapToJs(env, fd, m.offset, static_cast<size_t>(size), true, "mmap (dumb buffer)");
}

Napi::Value DrmDestroyDumb(const Napi::CallbackInfo& info) {
  CheckArgCount(info, 2, "drmDestroyDumb");
  int fd = ArgFd(info, 0, "drmDestroyDumb");
  drm_mode_destroy_dumb d{};
  d.handle = ArgU32(info, 1, "drmDestroyDumb", "handle");
  if (Xioctl(fd, DRM_IOCTL_MODE_DESTROY_DUMB, &d) != 0)
    ThrowFd(info.Env(), "DRM_IOCTL_MODE_DESTROY_DUMB", fd, errno, "handle " + std::to_string(d.handle));
  return info.Env().Undefined();
}

// ---- master ---------------------------------------------------------------------------
Napi::Value DrmSetMaster(const Napi::CallbackInfo& info) {
  CheckArgCount(info, 1, "drmSetMaster");
  int fd = ArgFd(info, 0, "drmSetMaster");
  if (Xioctl(fd, DRM_IOCTL_SET_MASTER, nullptr) != 0) {
    int e = errno;
    ThrowFd(info.Env(), "DRM_IOCTL_SET_MASTER", fd, e,
            e == EBUSY || e == EINVAL || e == EACCES
                ? "another process (a compositor or display server?) is DRM master"
                : "");
  }
  return info.Env().Undefined();
}

Napi::Value DrmDropMaster(const Napi::CallbackInfo& info) {
  CheckArgCount(info, 1, "drmDropMaster");
  int fd = ArgFd(info, 0, "drmDropMaster");
  if (Xioctl(fd, DRM_IOCTL_DROP_MASTER, nullptr) != 0) ThrowFd(info.Env(), "DRM_IOCTL_DROP_MASTER", fd, errno);
  return info.Env().Undefined();
}

// drmIsMaster's test: DRM_IOCTL_AUTH_MAGIC needs master (EACCES otherwise) and magic 0 is never
// valid (EINVAL for a master). Unlike libdrm, errors other than EACCES/EINVAL throw (EBADF,
// ENOTTY for a non-DRM fd) instead of reading as "master".
Napi::Value DrmIsMaster(const Napi::CallbackInfo& info) {
  CheckArgCount(info, 1, "drmIsMaster");
  int fd = ArgFd(info, 0, "drmIsMaster");
  drm_auth a{};
  a.magic = 0;
  if (Xioctl(fd, DRM_IOCTL_AUTH_MAGIC, &a) == 0) return Napi::Boolean::New(info.Env(), true);
  int e = errno;
  if (e == EACCES) return Napi::Boolean::New(info.Env(), false);
  if (e == EINVAL) return Napi::Boolean::New(info.Env(), true);
  ThrowFd(info.Env(), "DRM_IOCTL_AUTH_MAGIC", fd, e, "master test (magic 0)");
}

// ---- events ---------------------------------------------------------------------------
Napi::Value DrmReadEvents(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckArgCount(info, 1, "drmReadEvents");
  int fd = ArgFd(info, 0, "drmReadEvents");
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  alignas(8) uint8_t buf[4096];
  // bounded: a DRM fd runs dry quickly; anything that stays readable forever is not one
  for (int reads = 0; reads < 256; reads++) {
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      ThrowFd(env, "poll", fd, errno);
    }
    if (r == 0 || !(p.revents & POLLIN)) {
      if (p.revents & POLLNVAL) ThrowFd(env, "poll", fd, EBADF);
      break;
    }
    ssize_t len = read(fd, buf, sizeof buf);
    if (len < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      ThrowFd(env, "read (DRM events)", fd, errno);
    }
    if (len == 0) break;
    size_t off = 0;
    while (off + sizeof(drm_event) <= static_cast<size_t>(len)) {
      drm_event ev;
      std::memcpy(&ev, buf + off, sizeof ev);
      if (ev.length < sizeof ev || off + ev.length > static_cast<size_t>(len))
        ThrowFd(env, "read (DRM events)", fd, EPROTO, "malformed event stream: is this a DRM fd?");
      Napi::Object o;
      if ((ev.type == DRM_EVENT_VBLANK || ev.type == DRM_EVENT_FLIP_COMPLETE) &&
          ev.length >= sizeof(drm_event_vblank)) {
        drm_event_vblank v;
        std::memcpy(&v, buf + off, sizeof v);
        o = Napi::Object::New(env);
        o.Set("type", ev.type == DRM_EVENT_VBLANK ? "vblank" : "flip");
        o.Set("sequence", Napi::Number::New(env, v.sequence));
        o.Set("timeUs", Napi::Number::New(env, double(v.tv_sec) * 1e6 + double(v.tv_usec)));
        o.Set("crtcId", Napi::Number::New(env, v.crtc_id));
        o.Set("userData", Napi::BigInt::New(env, static_cast<uint64_t>(v.user_data)));
      } else if (ev.type == DRM_EVENT_CRTC_SEQUENCE && ev.length >= sizeof(drm_event_crtc_sequence)) {
        drm_event_crtc_sequence s;
        std::memcpy(&s, buf + off, sizeof s);
        o = Napi::Object::New(env);
        o.Set("type", "sequence");
        o.Set("sequence", Napi::Number::New(env, static_cast<double>(s.sequence)));
        o.Set("timeUs", Napi::Number::New(env, static_cast<double>(s.time_ns / 1000)));
        o.Set("crtcId", Napi::Number::New(env, 0));
        o.Set("userData", Napi::BigInt::New(env, static_cast<uint64_t>(s.user_data)));
      }
      if (!o.IsEmpty()) out.Set(n++, o);
      off += ev.length;
    }
    // drm_read() fills the buffer while events are queued and fit: room left for the largest
    // event means the queue was empty (no second poll; the fd's poller fires again for later ones)
    if (static_cast<size_t>(len) + sizeof(drm_event_vblank) <= sizeof buf) break;
  }
  return out;
}

Napi::Value DrmWaitVblank(const Napi::CallbackInfo& info) {
  CheckArgCount(info, 2, "drmWaitVblank");
  int fd = ArgFd(info, 0, "drmWaitVblank");
  uint32_t idx = ArgU32(info, 1, "drmWaitVblank", "crtcIndex");
  if (idx > 31) ThrowRange(info.Env(), "drmWaitVblank: crtcIndex must be < 32");
  // optional third argument: user data of a vblank event to queue for the next vblank
  // (_DRM_VBLANK_EVENT: the ioctl returns at once, the event is read with drmReadEvents)
  const bool event = info.Length() > 2 && !info[2].IsUndefined();
  uint64_t userData = event ? ArgU64(info, 2, "drmWaitVblank", "eventUserData") : 0;
  drm_wait_vblank_t w{};
  uint32_t type = _DRM_VBLANK_RELATIVE;
  if (event) type |= _DRM_VBLANK_EVENT;
  if (idx == 1) type |= _DRM_VBLANK_SECONDARY;
  else if (idx > 1) type |= (idx << _DRM_VBLANK_HIGH_CRTC_SHIFT) & _DRM_VBLANK_HIGH_CRTC_MASK;
  w.request.type = static_cast<drm_vblank_seq_type>(type);
  w.request.sequence = event ? 1 : 0;
  w.request.signal = static_cast<unsigned long>(userData);
  if (Xioctl(fd, DRM_IOCTL_WAIT_VBLANK, &w) != 0)
    ThrowFd(info.Env(), "DRM_IOCTL_WAIT_VBLANK", fd, errno,
            "crtc index " + std::to_string(idx) + (event ? " (event)" : ""));
  return Napi::Number::New(info.Env(), w.reply.sequence);
}

}  // namespace

void InitDrm(Napi::Env env, Napi::Object exports) {
  struct Fn { const char* name; Napi::Value (*fn)(const Napi::CallbackInfo&); };
  static const Fn fns[] = {
      {"drmOpen", DrmOpen},
      {"drmSetClientCap", DrmSetClientCap},
      {"drmGetCap", DrmGetCap},
      {"drmGetVersion", DrmGetVersionJs},
      {"drmGetResources", DrmGetResources},
      {"drmGetConnector", DrmGetConnector},
      {"drmGetEncoder", DrmGetEncoder},
      {"drmGetCrtc", DrmGetCrtc},
      {"drmGetPlaneResources", DrmGetPlaneResources},
      {"drmGetPlane", DrmGetPlane},
      {"drmGetFb2", DrmGetFb2},
      {"drmGetProperties", DrmGetProperties},
      {"drmGetPropertyBlob", DrmGetPropertyBlob},
      {"drmCreatePropertyBlob", DrmCreatePropertyBlob},
      {"drmDestroyPropertyBlob", DrmDestroyPropertyBlob},
      {"drmDecodeInFormats", DrmDecodeInFormats},
      {"drmAtomicCommit", DrmAtomicCommit},
      {"drmPrimeFdToHandle", DrmPrimeFdToHandle},
      {"drmPrimeHandleToFd", DrmPrimeHandleToFd},
      {"drmGemClose", DrmGemClose},
      {"drmAddFb2", DrmAddFb2},
      {"drmRmFb", DrmRmFb},
      {"drmCreateDumb", DrmCreateDumb},
      {"drmMapDumb", DrmMapDumb},
      {"drmDestroyDumb", DrmDestroyDumb},
      {"drmSetMaster", DrmSetMaster},
      {"drmDropMaster", DrmDropMaster},
      {"drmIsMaster", DrmIsMaster},
      {"drmReadEvents", DrmReadEvents},
      {"drmWaitVblank", DrmWaitVblank},
  };
  for (const Fn& f : fns) exports.Set(f.name, Napi::Function::New(env, f.fn, f.name));
}

}  // namespace vgpu
