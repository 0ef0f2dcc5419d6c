// What the kernel and the objects offer: program run statistics, feature
// probes run before anything is loaded, bpffs detection, and BTF layouts.
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <map>
#include <string>

#include "common.h"

namespace switchyard {
namespace {

// ---------------------------------------------------------------- programs
Napi::Value ProgInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Fd fd(ObjGet(env, Str(info[0], "progPin"), "program"));
  struct bpf_prog_info pi {};
  uint32_t len = sizeof(pi);
  if (bpf_obj_get_info_by_fd(fd.get(), &pi, &len) < 0)
    ThrowErrno(env, errno, "bpf_obj_get_info_by_fd", "cannot read program info");
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", pi.id);
  o.Set("name", pi.name);
  o.Set("type", pi.type);
  o.Set("runTimeNs", Napi::BigInt::New(env, static_cast<uint64_t>(pi.run_time_ns)));
  o.Set("runCount", Napi::BigInt::New(env, static_cast<uint64_t>(pi.run_cnt)));
  return o;
}

// ------------------------------------------------------------------ probes
// probeProgType(name) / probeHelper(progType, helper): feature checks that
// run before anything is loaded, so a missing hook is reported by name.
const std::map<std::string, enum bpf_prog_type>& ProgTypes() {
  static const std::map<std::string, enum bpf_prog_type> types = {
      {"cgroup_sock_addr", BPF_PROG_TYPE_CGROUP_SOCK_ADDR}, {"sock_ops", BPF_PROG_TYPE_SOCK_OPS},
      {"sk_msg", BPF_PROG_TYPE_SK_MSG},                     {"cgroup_sockopt", BPF_PROG_TYPE_CGROUP_SOCKOPT},
      {"sched_cls", BPF_PROG_TYPE_SCHED_CLS},
  };
  return types;
}

enum bpf_prog_type ProgType(Napi::Env env, const std::string& name) {
  auto it = ProgTypes().find(name);
  if (it == ProgTypes().end()) throw Napi::TypeError::New(env, "unknown program type " + name);
  return it->second;
}

Napi::Value ProbeProgType(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::Boolean::New(env, libbpf_probe_bpf_prog_type(ProgType(env, Str(info[0], "progType")), nullptr) == 1);
}

Napi::Value ProbeHelper(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  static const std::map<std::string, enum bpf_func_id> helpers = {
      {"get_netns_cookie", BPF_FUNC_get_netns_cookie},
      {"get_socket_cookie", BPF_FUNC_get_socket_cookie},
      {"get_current_ancestor_cgroup_id", BPF_FUNC_get_current_ancestor_cgroup_id},
      {"msg_redirect_hash", BPF_FUNC_msg_redirect_hash},
      {"sock_hash_update", BPF_FUNC_sock_hash_update},
      {"task_storage_get", BPF_FUNC_task_storage_get},
      {"get_current_task_btf", BPF_FUNC_get_current_task_btf},
  };
  auto it = helpers.find(Str(info[1], "helper"));
  if (it == helpers.end()) throw Napi::TypeError::New(env, "unknown helper");
  return Napi::Boolean::New(env, libbpf_probe_bpf_helper(ProgType(env, Str(info[0], "progType")), it->second, nullptr) == 1);
}

Napi::Value IsBpffsPath(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), IsBpffs(Str(info[0], "path")));
}

// --------------------------------------------------------------------- BTF
// btfDescribe(objPath, name): the compiled layout of a struct or enum, used
// by the ABI test to hold the TypeScript codecs to the C definitions.
Napi::Value BtfDescribe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = Str(info[0], "objPath");
  std::string name = Str(info[1], "typeName");
  struct btf* btf = btf__parse(path.c_str(), nullptr);
  if (!btf) ThrowErrno(env, errno, "btf__parse", "cannot read BTF from " + path);
  std::unique_ptr<struct btf, void (*)(struct btf*)> guard(btf, btf__free);

  Napi::Object out = Napi::Object::New(env);
  int id = btf__find_by_name_kind(btf, name.c_str(), BTF_KIND_STRUCT);
  if (id > 0) {
    const struct btf_type* t = btf__type_by_id(btf, id);
    out.Set("kind", "struct");
    out.Set("size", t->size);
    Napi::Array members = Napi::Array::New(env);
    const struct btf_member* m = btf_members(t);
    for (uint16_t i = 0; i < btf_vlen(t); i++, m++) {
      Napi::Object mo = Napi::Object::New(env);
      mo.Set("name", btf__name_by_offset(btf, m->name_off));
      mo.Set("offset", btf_member_bit_offset(t, i) / 8);
      mo.Set("size", static_cast<double>(btf__resolve_size(btf, m->type)));
      members.Set(i, mo);
    }
    out.Set("members", members);
    return out;
  }
  id = btf__find_by_name_kind(btf, name.c_str(), BTF_KIND_ENUM);
  if (id > 0) {
    const struct btf_type* t = btf__type_by_id(btf, id);
    out.Set("kind", "enum");
    out.Set("size", t->size);
    Napi::Object values = Napi::Object::New(env);
    const struct btf_enum* e = btf_enum(t);
    for (uint16_t i = 0; i < btf_vlen(t); i++, e++) values.Set(btf__name_by_offset(btf, e->name_off), e->val);
    out.Set("values", values);
    return out;
  }
  return env.Null();
}

}  // namespace

void RegisterIntrospect(Napi::Env env, Napi::Object exports) {
  exports.Set("progInfo", Napi::Function::New(env, ProgInfo, "progInfo"));
  exports.Set("probeProgType", Napi::Function::New(env, ProbeProgType, "probeProgType"));
  exports.Set("probeHelper", Napi::Function::New(env, ProbeHelper, "probeHelper"));
  exports.Set("isBpffs", Napi::Function::New(env, IsBpffsPath, "isBpffs"));
  exports.Set("btfDescribe", Napi::Function::New(env, BtfDescribe, "btfDescribe"));
}

}  // namespace switchyard
