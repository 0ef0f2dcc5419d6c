// Identities the programs see, read from user space (a netns's cookie, a
// cgroup's id), and the sidecar's SO_ORIGINAL_DST.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <string>

#include "common.h"
#include "netns.h"

namespace switchyard {
namespace {

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif

// --------------------------------------------------------------- identities
// netnsCookie(path): the kernel's 64-bit id for a network namespace, the key
// the BPF programs see through bpf_get_netns_cookie().
Napi::Value NetnsCookie(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = Str(info[0], "netnsPath");
  uint64_t cookie = 0;
  {
    NetnsGuard in_netns(env, path);
    Fd sock(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (sock.get() < 0) ThrowErrno(env, errno, "socket", "cannot create a probe socket in " + path);
    socklen_t len = sizeof(cookie);
    if (getsockopt(sock.get(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) < 0)
      ThrowErrno(env, errno, "getsockopt", "cannot read the netns cookie of " + path,
                 errno == ENOPROTOOPT ? "This kernel lacks SO_NETNS_COOKIE (Linux 5.14+)" : "");
  }
  return Napi::BigInt::New(env, cookie);
}

// cgroupId(path): the cgroup2 id that bpf_get_current_ancestor_cgroup_id() returns.
Napi::Value CgroupId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = Str(info[0], "cgroupPath");
  struct {
    struct file_handle fh;
    uint64_t id;
  } handle{};
  handle.fh.handle_bytes = sizeof(uint64_t);
  int mount_id;
  if (name_to_handle_at(AT_FDCWD, path.c_str(), &handle.fh, &mount_id, 0) < 0)
    ThrowErrno(env, errno, "name_to_handle_at", "cannot read the cgroup id of " + path,
               errno == ENOENT ? "The pod's cgroup does not exist (yet)" : "Is it a cgroup2 directory?");
  return Napi::BigInt::New(env, handle.id);
}

// -------------------------------------------------------------- the sidecar
// originalDst(fd, family) -> { address, port } | null: SO_ORIGINAL_DST for an
// accepted socket, answered by netfilter or by our cgroup/getsockopt program.
Napi::Value OriginalDst(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = U32(info[0], "fd");
  uint32_t family = U32(info[1], "family");
  char text[INET6_ADDRSTRLEN] = {};
  Napi::Object out = Napi::Object::New(env);
  if (family == 4) {
    struct sockaddr_in sa {};
    socklen_t len = sizeof(sa);
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &sa, &len) < 0) {
      if (errno == ENOENT || errno == ENOPROTOOPT) return env.Null();
      ThrowErrno(env, errno, "getsockopt", "SO_ORIGINAL_DST failed");
    }
    inet_ntop(AF_INET, &sa.sin_addr, text, sizeof(text));
    out.Set("port", ntohs(sa.sin_port));
  } else {
    struct sockaddr_in6 sa {};
    socklen_t len = sizeof(sa);
    if (getsockopt(fd, SOL_IPV6, SO_ORIGINAL_DST, &sa, &len) < 0) {
      if (errno == ENOENT || errno == ENOPROTOOPT) return env.Null();
      ThrowErrno(env, errno, "getsockopt", "IP6T_SO_ORIGINAL_DST failed");
    }
    inet_ntop(AF_INET6, &sa.sin6_addr, text, sizeof(text));
    out.Set("port", ntohs(sa.sin6_port));
  }
  out.Set("address", text);
  return out;
}

}  // namespace

void RegisterSockets(Napi::Env env, Napi::Object exports) {
  exports.Set("netnsCookie", Napi::Function::New(env, NetnsCookie, "netnsCookie"));
  exports.Set("cgroupId", Napi::Function::New(env, CgroupId, "cgroupId"));
  exports.Set("originalDst", Napi::Function::New(env, OriginalDst, "originalDst"));
}

}  // namespace switchyard
