// Identities the programs see, read from user space: a netns's cookie, a
// cgroup's id. (The sidecar's SO_ORIGINAL_DST is its own addon: origdst/.)
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

}  // namespace

void RegisterSockets(Napi::Env env, Napi::Object exports) {
  exports.Set("netnsCookie", Napi::Function::New(env, NetnsCookie, "netnsCookie"));
  exports.Set("cgroupId", Napi::Function::New(env, CgroupId, "cgroupId"));
}

}  // namespace switchyard
