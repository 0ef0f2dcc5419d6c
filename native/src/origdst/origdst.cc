// origdst.node: the sidecar's whole kernel interface, one call.
//
//   originalDst(fd, family) -> { address, port } | null
//
// getsockopt(SO_ORIGINAL_DST) (IPv4) or IP6T_SO_ORIGINAL_DST (IPv6) on an
// accepted socket, answered by Switchyard's cgroup/getsockopt program or by
// netfilter alike; null when neither knows the socket. It links nothing but
// libc, so the proxy image needs no libbpf (the agent's addon is
// native/src/*.cc).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "../errors.h"

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif

namespace {

Napi::Value OriginalDst(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsNumber()) throw Napi::TypeError::New(env, "originalDst(fd, family): both are numbers");
  int fd = info[0].As<Napi::Number>().Int32Value();
  uint32_t family = info[1].As<Napi::Number>().Uint32Value();
  char text[INET6_ADDRSTRLEN] = {};
  Napi::Object out = Napi::Object::New(env);
  if (family == 4) {
    struct sockaddr_in sa {};
    socklen_t len = sizeof(sa);
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &sa, &len) < 0) {
      if (errno == ENOENT || errno == ENOPROTOOPT) return env.Null();
      switchyard::ThrowErrno(env, errno, "getsockopt", "SO_ORIGINAL_DST failed");
    }
    inet_ntop(AF_INET, &sa.sin_addr, text, sizeof(text));
    out.Set("port", ntohs(sa.sin_port));
  } else {
    struct sockaddr_in6 sa {};
    socklen_t len = sizeof(sa);
    if (getsockopt(fd, SOL_IPV6, SO_ORIGINAL_DST, &sa, &len) < 0) {
      if (errno == ENOENT || errno == ENOPROTOOPT) return env.Null();
      switchyard::ThrowErrno(env, errno, "getsockopt", "IP6T_SO_ORIGINAL_DST failed");
    }
    inet_ntop(AF_INET6, &sa.sin6_addr, text, sizeof(text));
    out.Set("port", ntohs(sa.sin6_port));
  }
  out.Set("address", text);
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("originalDst", Napi::Function::New(env, OriginalDst, "originalDst"));
  return exports;
}

}  // namespace

NODE_API_MODULE(origdst, Init)
