// tc on a pod's interface, from inside its network namespace: clsact and a
// direct-action cls_bpf filter per direction.
#include <bpf/libbpf.h>
#include <net/if.h>

#include <string>

#include "common.h"
#include "netns.h"

namespace switchyard {
namespace {

// ---------------------------------------------------------------------- tc
struct TcTarget {
  std::string netns, ifname;
  enum bpf_tc_attach_point point;
  uint32_t priority, handle;
};

TcTarget ParseTc(const Napi::CallbackInfo& info, size_t first) {
  Napi::Env env = info.Env();
  TcTarget t;
  t.netns = Str(info[first], "netnsPath");
  t.ifname = Str(info[first + 1], "ifname");
  std::string dir = Str(info[first + 2], "direction");
  if (dir != "ingress" && dir != "egress") throw Napi::TypeError::New(env, "direction must be 'ingress' or 'egress'");
  t.point = dir == "ingress" ? BPF_TC_INGRESS : BPF_TC_EGRESS;
  t.priority = U32(info[first + 3], "priority");
  t.handle = U32(info[first + 4], "handle");
  return t;
}

int IfIndex(Napi::Env env, const TcTarget& t) {
  int ifindex = if_nametoindex(t.ifname.c_str());
  if (!ifindex) ThrowErrno(env, errno, "if_nametoindex", "no interface " + t.ifname + " in " + t.netns);
  return ifindex;
}

// tcAttach(progPin, netns, ifname, direction, priority, handle) -> { createdQdisc }
Napi::Value TcAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Fd prog(ObjGet(env, Str(info[0], "progPin"), "program"));
  TcTarget t = ParseTc(info, 1);
  NetnsGuard in_netns(env, t.netns);
  int ifindex = IfIndex(env, t);

  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = t.point);
  int err = bpf_tc_hook_create(&hook);
  bool created = err == 0;
  if (err && err != -EEXIST)
    ThrowErrno(env, -err, "bpf_tc_hook_create", "cannot create clsact qdisc on " + t.ifname,
               -err == EOPNOTSUPP ? "This kernel lacks clsact/cls_bpf (CONFIG_NET_CLS_BPF)" : "");

  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog.get(), .flags = BPF_TC_F_REPLACE, .handle = t.handle,
              .priority = t.priority);
  err = bpf_tc_attach(&hook, &opts);
  if (err) ThrowErrno(env, -err, "bpf_tc_attach", "cannot attach tc program to " + t.ifname);

  Napi::Object result = Napi::Object::New(env);
  result.Set("createdQdisc", created);
  return result;
}

// tcDetach(netns, ifname, direction, priority, handle) -> whether a filter was removed
Napi::Value TcDetach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TcTarget t = ParseTc(info, 0);
  NetnsGuard in_netns(env, t.netns);
  int ifindex = if_nametoindex(t.ifname.c_str());
  if (!ifindex) return Napi::Boolean::New(env, false);  // interface gone: nothing to detach
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = t.point);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = t.handle, .priority = t.priority);
  int err = bpf_tc_detach(&hook, &opts);
  if (err == -ENOENT || err == -EINVAL) return Napi::Boolean::New(env, false);
  if (err) ThrowErrno(env, -err, "bpf_tc_detach", "cannot detach tc program from " + t.ifname);
  return Napi::Boolean::New(env, true);
}

// tcQuery(netns, ifname, direction, priority, handle) -> program id or null
Napi::Value TcQuery(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TcTarget t = ParseTc(info, 0);
  NetnsGuard in_netns(env, t.netns);
  int ifindex = IfIndex(env, t);
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = t.point);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = t.handle, .priority = t.priority);
  int err = bpf_tc_query(&hook, &opts);
  if (err == -ENOENT || err == -EINVAL) return env.Null();
  if (err) ThrowErrno(env, -err, "bpf_tc_query", "cannot query tc on " + t.ifname);
  return Napi::Number::New(env, opts.prog_id);
}

// tcDestroyClsact(netns, ifname): remove the clsact qdisc (and every filter on it).
Napi::Value TcDestroyClsact(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string netns = Str(info[0], "netnsPath");
  std::string ifname = Str(info[1], "ifname");
  NetnsGuard in_netns(env, netns);
  int ifindex = if_nametoindex(ifname.c_str());
  if (!ifindex) return Napi::Boolean::New(env, false);
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = (enum bpf_tc_attach_point)(BPF_TC_INGRESS | BPF_TC_EGRESS));
  int err = bpf_tc_hook_destroy(&hook);
  if (err == -ENOENT || err == -EINVAL) return Napi::Boolean::New(env, false);
  if (err) ThrowErrno(env, -err, "bpf_tc_hook_destroy", "cannot remove clsact from " + ifname);
  return Napi::Boolean::New(env, true);
}

}  // namespace

void RegisterTc(Napi::Env env, Napi::Object exports) {
  exports.Set("tcAttach", Napi::Function::New(env, TcAttach, "tcAttach"));
  exports.Set("tcDetach", Napi::Function::New(env, TcDetach, "tcDetach"));
  exports.Set("tcQuery", Napi::Function::New(env, TcQuery, "tcQuery"));
  exports.Set("tcDestroyClsact", Napi::Function::New(env, TcDestroyClsact, "tcDestroyClsact"));
}

}  // namespace switchyard
