// Small helpers every binding file shares: argument conversion, an owning
// fd, and opening pinned objects with an error that says what to do.
#pragma once

#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <napi.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <string>

#include "errors.h"

namespace switchyard {

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

inline std::string Str(const Napi::Value& v, const char* what) {
  if (!v.IsString()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

inline uint32_t U32(const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a number");
  return v.As<Napi::Number>().Uint32Value();
}

inline Napi::Buffer<uint8_t> Buf(const Napi::Value& v, const char* what) {
  if (!v.IsBuffer()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a Buffer");
  return v.As<Napi::Buffer<uint8_t>>();
}

inline bool IsBpffs(const std::string& path) {
  struct statfs st {};
  return statfs(path.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC;
}

inline void RequireBpffs(Napi::Env env, const std::string& path) {
  if (!IsBpffs(path))
    Throw(env, OsError{ENOTSUP, "statfs",
                       "bpffs is not mounted at " + path +
                           ": mount it with 'mount -t bpf bpf /sys/fs/bpf' (the agent does this at start-up when it "
                           "runs with CAP_SYS_ADMIN)"});
}

inline int ObjGet(Napi::Env env, const std::string& pin, const char* what) {
  int fd = bpf_obj_get(pin.c_str());
  if (fd < 0)
    ThrowErrno(env, errno, "bpf_obj_get", std::string("cannot open pinned ") + what + " " + pin,
               errno == ENOENT ? "Is the Switchyard dataplane loaded? ('switchyard-interceptor' loads it)" : "");
  return fd;
}

inline struct bpf_map_info MapInfoOf(Napi::Env env, int fd) {
  struct bpf_map_info mi {};
  uint32_t len = sizeof(mi);
  if (bpf_obj_get_info_by_fd(fd, &mi, &len) < 0) ThrowErrno(env, errno, "bpf_obj_get_info_by_fd", "cannot read map info");
  return mi;
}

inline bool IsPerCpu(uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_ARRAY || type == BPF_MAP_TYPE_PERCPU_HASH ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

// One file per concern, each registering its functions on the addon's exports.
void InstallLibbpfLog();                                    // load.cc: libbpf's log goes into the errors
void RegisterLoad(Napi::Env env, Napi::Object exports);       // load.cc: loadObject
void RegisterAttach(Napi::Env env, Napi::Object exports);     // attach.cc: cgroup links, sk_msg
void RegisterTc(Napi::Env env, Napi::Object exports);         // tc.cc: clsact and cls_bpf in a netns
void RegisterMaps(Napi::Env env, Napi::Object exports);       // maps.cc: map access by pin
void RegisterIntrospect(Napi::Env env, Napi::Object exports); // introspect.cc: prog stats, probes, bpffs, BTF
void RegisterSockets(Napi::Env env, Napi::Object exports);    // sockets.cc: netns cookie, cgroup id

// pins.cc: second names for pinned objects, link updates, map creation and
// an object's map definitions (the upgrade path, interceptor/src/dataplane/upgrade.ts).
void RegisterPins(Napi::Env env, Napi::Object exports);

// ringbuf.cc: reading a pinned ring buffer (the decision monitor).
void RegisterRingbuf(Napi::Env env, Napi::Object exports);

// testrun.cc: BPF_PROG_TEST_RUN on a crafted packet (the kernel tests of tc programs).
void RegisterTestRun(Napi::Env env, Napi::Object exports);

}  // namespace switchyard
