// Attaching programs: cgroup hooks as pinned bpf_links (multi-attach), and
// the sk_msg verdict program on the sockhash.

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <map>
#include <string>

#include "common.h"

namespace switchyard {
namespace {

struct HookInfo {
  enum bpf_attach_type type;
  const char* kernel;  // first kernel with the hook, for the error message
  const char* what;
};

const std::map<std::string, HookInfo>& CgroupHooks() {
  static const std::map<std::string, HookInfo> hooks = {
      {"connect4", {BPF_CGROUP_INET4_CONNECT, "4.17", "cgroup connect4"}},
      {"connect6", {BPF_CGROUP_INET6_CONNECT, "4.17", "cgroup connect6"}},
      {"sock_ops", {BPF_CGROUP_SOCK_OPS, "4.13", "cgroup sock_ops"}},
      {"getsockopt", {BPF_CGROUP_GETSOCKOPT, "5.3", "cgroup getsockopt"}},
      {"sendmsg4", {BPF_CGROUP_UDP4_SENDMSG, "4.18", "cgroup sendmsg4"}},
      {"sendmsg6", {BPF_CGROUP_UDP6_SENDMSG, "4.18", "cgroup sendmsg6"}},
      {"recvmsg4", {BPF_CGROUP_UDP4_RECVMSG, "5.2", "cgroup recvmsg4"}},
      {"recvmsg6", {BPF_CGROUP_UDP6_RECVMSG, "5.2", "cgroup recvmsg6"}},
      {"getpeername4", {BPF_CGROUP_INET4_GETPEERNAME, "5.8", "cgroup getpeername4"}},
      {"getpeername6", {BPF_CGROUP_INET6_GETPEERNAME, "5.8", "cgroup getpeername6"}},
  };
  return hooks;
}

const HookInfo& Hook(Napi::Env env, const std::string& name) {
  auto it = CgroupHooks().find(name);
  if (it == CgroupHooks().end())
    throw Napi::TypeError::New(env, "unknown cgroup hook '" + name + "' (connect4/6, sock_ops, getsockopt, sendmsg4/6, recvmsg4/6, getpeername4/6)");
  return it->second;
}

// cgroupHookAttachType(hook) -> the bpf_attach_type this addon attaches the
// hook with (test/abi.test.ts holds it to each program's own, from libbpf).
Napi::Value CgroupHookAttachType(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::Number::New(env, static_cast<uint32_t>(Hook(env, Str(info[0], "hook")).type));
}

// ------------------------------------------------------------ cgroup hooks
// attachCgroup(progPin, cgroupPath, hook, linkPin): a bpf_link (multi-attach,
// so Cilium's or anyone's programs on the same cgroup keep running) pinned in
// bpffs so that it outlives the agent.
Napi::Value AttachCgroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string prog_pin = Str(info[0], "progPin");
  std::string cgroup = Str(info[1], "cgroupPath");
  const HookInfo& hook = Hook(env, Str(info[2], "hook"));
  std::string link_pin = Str(info[3], "linkPin");

  Fd prog(ObjGet(env, prog_pin, "program"));
  Fd cg(open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (cg.get() < 0) ThrowErrno(env, errno, "open", "cannot open cgroup " + cgroup);

  Fd link(bpf_link_create(prog.get(), cg.get(), hook.type, nullptr));
  if (link.get() < 0) {
    int e = errno;
    std::string hint = (e == EINVAL || e == EOPNOTSUPP || e == 524 /* ENOTSUPP */)
                           ? std::string("This kernel lacks the ") + hook.what + " hook or bpf_link support for it (Linux " +
                                 hook.kernel + "+, links 5.7+)"
                           : "";
    ThrowErrno(env, e, "bpf_link_create", std::string("cannot attach ") + hook.what + " to " + cgroup, hint);
  }
  if (bpf_obj_pin(link.get(), link_pin.c_str()) < 0)
    ThrowErrno(env, errno, "bpf_obj_pin", "cannot pin link at " + link_pin);
  return env.Undefined();
}

// detachLink(linkPin): detach a pinned link now. Unpinning alone drops the
// last reference, but the kernel releases links from a workqueue, so the
// program may still run for a moment; BPF_LINK_DETACH is synchronous.
Napi::Value DetachLink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string pin = Str(info[0], "linkPin");
  Fd link(ObjGet(env, pin, "link"));
  if (bpf_link_detach(link.get()) < 0 && errno != ENOLINK)
    ThrowErrno(env, errno, "bpf_link_detach", "cannot detach link " + pin,
               errno == EINVAL ? "This kernel lacks BPF_LINK_DETACH (Linux 5.9+)" : "");
  return env.Undefined();
}

// cgroupPrograms(cgroupPath, hook) -> ids of programs attached directly there.
Napi::Value CgroupPrograms(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string cgroup = Str(info[0], "cgroupPath");
  const HookInfo& hook = Hook(env, Str(info[1], "hook"));
  Fd cg(open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (cg.get() < 0) ThrowErrno(env, errno, "open", "cannot open cgroup " + cgroup);
  uint32_t ids[64];
  uint32_t count = 64;
  uint32_t flags = 0;
  if (bpf_prog_query(cg.get(), hook.type, 0, &flags, ids, &count) < 0)
    ThrowErrno(env, errno, "bpf_prog_query", "cannot query cgroup " + cgroup);
  Napi::Array out = Napi::Array::New(env, count);
  for (uint32_t i = 0; i < count; i++) out.Set(i, Napi::Number::New(env, ids[i]));
  return out;
}

// ------------------------------------------------------------------ sk_msg
Napi::Value SkMsg(const Napi::CallbackInfo& info, bool attach) {
  Napi::Env env = info.Env();
  Fd prog(ObjGet(env, Str(info[0], "progPin"), "program"));
  Fd map(ObjGet(env, Str(info[1], "mapPin"), "map"));
  int rc = attach ? bpf_prog_attach(prog.get(), map.get(), BPF_SK_MSG_VERDICT, 0)
                  : bpf_prog_detach2(prog.get(), map.get(), BPF_SK_MSG_VERDICT);
  if (rc < 0 && !(errno == ENOENT && !attach))
    ThrowErrno(env, errno, attach ? "bpf_prog_attach" : "bpf_prog_detach2",
               std::string(attach ? "cannot attach" : "cannot detach") + " sk_msg verdict program");
  return env.Undefined();
}
Napi::Value AttachSkMsg(const Napi::CallbackInfo& info) { return SkMsg(info, true); }
Napi::Value DetachSkMsg(const Napi::CallbackInfo& info) { return SkMsg(info, false); }

}  // namespace

void RegisterAttach(Napi::Env env, Napi::Object exports) {
  exports.Set("cgroupHookAttachType", Napi::Function::New(env, CgroupHookAttachType, "cgroupHookAttachType"));
  exports.Set("attachCgroup", Napi::Function::New(env, AttachCgroup, "attachCgroup"));
  exports.Set("detachLink", Napi::Function::New(env, DetachLink, "detachLink"));
  exports.Set("cgroupPrograms", Napi::Function::New(env, CgroupPrograms, "cgroupPrograms"));
  exports.Set("attachSkMsg", Napi::Function::New(env, AttachSkMsg, "attachSkMsg"));
  exports.Set("detachSkMsg", Napi::Function::New(env, DetachSkMsg, "detachSkMsg"));
}

}  // namespace switchyard
