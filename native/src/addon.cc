// switchyard.node: the agent's only door into the kernel. A thin, synchronous
// binding over libbpf and a few syscalls; policy lives in TypeScript.
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "errors.h"
#include "netns.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif

namespace switchyard {
namespace {

// ---------------------------------------------------------------- libbpf log
// libbpf's messages (the verifier log above all) are collected per call and
// attached to the error, instead of being sprayed on stderr.
std::string g_libbpf_log;
bool g_libbpf_debug = getenv("SWITCHYARD_LIBBPF_DEBUG") != nullptr;

int LibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG && !g_libbpf_debug) return 0;
  char buf[4096];
  int n = vsnprintf(buf, sizeof(buf), fmt, args);
  if (g_libbpf_debug) fputs(buf, stderr);
  if (g_libbpf_log.size() < (1 << 20)) g_libbpf_log.append(buf);
  return n;
}

std::string LogTail(size_t max_chars = 4000) {
  if (g_libbpf_log.size() <= max_chars) return g_libbpf_log;
  return "..." + g_libbpf_log.substr(g_libbpf_log.size() - max_chars);
}

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

// ------------------------------------------------------------ object loading
// loadObject(objPath, pinRoot, progPinDir, mapSizes) -> { programs, maps }
// Maps are pinned by name under pinRoot (so separately loaded objects share
// them); every program is pinned as progPinDir/<name>. The object is closed
// before returning: from here on the kernel objects live in bpffs.
Napi::Value LoadObject(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string obj_path = Str(info[0], "objPath");
  std::string pin_root = Str(info[1], "pinRoot");
  std::string prog_dir = Str(info[2], "progPinDir");
  Napi::Object sizes = info[3].IsObject() ? info[3].As<Napi::Object>() : Napi::Object::New(env);

  RequireBpffs(env, pin_root);
  g_libbpf_log.clear();

  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_root.c_str());
  struct bpf_object* obj = bpf_object__open_file(obj_path.c_str(), &opts);
  if (!obj)
    ThrowErrno(env, errno, "bpf_object__open_file", "cannot open BPF object " + obj_path,
               errno == ENOENT ? "Build it first: make bpf" : LogTail());
  std::unique_ptr<struct bpf_object, void (*)(struct bpf_object*)> guard(obj, bpf_object__close);

  Napi::Array maps = Napi::Array::New(env);
  struct bpf_map* map;
  uint32_t mi = 0;
  bpf_object__for_each_map(map, obj) {
    const char* name = bpf_map__name(map);
    if (name[0] == '.') continue;  // .rodata/.bss etc.
    if (sizes.Has(name)) {
      uint32_t n = U32(sizes.Get(name), "map size");
      int err = bpf_map__set_max_entries(map, n);
      if (err) ThrowErrno(env, -err, "bpf_map__set_max_entries", std::string("cannot size map ") + name);
    }
    maps.Set(mi++, Napi::String::New(env, name));
  }

  int err = bpf_object__load(obj);
  if (err) {
    int e = -err;
    std::string hint;
    if (e == EPERM)
      hint = "Loading BPF needs CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN (or root), and a large enough memlock limit";
    else if (e == EINVAL && g_libbpf_log.find("incompatible") != std::string::npos)
      hint = "A map pinned under " + pin_root + " has a different shape (left by another version). Run cleanup first";
    else
      hint = "libbpf said:\n" + LogTail();
    ThrowErrno(env, e, "bpf_object__load", "cannot load " + obj_path, hint);
  }

  Napi::Array programs = Napi::Array::New(env);
  struct bpf_program* prog;
  uint32_t pi = 0;
  bpf_object__for_each_program(prog, obj) {
    std::string name = bpf_program__name(prog);
    std::string pin = prog_dir + "/" + name;
    err = bpf_program__pin(prog, pin.c_str());
    if (err)
      ThrowErrno(env, -err, "bpf_program__pin", "cannot pin program " + name + " at " + pin,
                 -err == EEXIST ? "A previous load left it there; unload first" : "");
    Napi::Object p = Napi::Object::New(env);
    p.Set("name", name);
    p.Set("section", bpf_program__section_name(prog));
    p.Set("pinPath", pin);
    programs.Set(pi++, p);
  }

  Napi::Object result = Napi::Object::New(env);
  result.Set("programs", programs);
  result.Set("maps", maps);
  return result;
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

// -------------------------------------------------------------------- maps
Napi::Value MapOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::Number::New(env, ObjGet(env, Str(info[0], "mapPin"), "map"));
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  close(static_cast<int>(U32(info[0], "fd")));
  return info.Env().Undefined();
}

size_t ValueBytes(const struct bpf_map_info& mi) {
  if (!IsPerCpu(mi.type)) return mi.value_size;
  return ((mi.value_size + 7) / 8) * 8 * static_cast<size_t>(libbpf_num_possible_cpus());
}

Napi::Value MapInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct bpf_map_info mi = MapInfoOf(env, U32(info[0], "fd"));
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", mi.id);
  o.Set("name", mi.name);
  o.Set("type", mi.type);
  o.Set("keySize", mi.key_size);
  o.Set("valueSize", mi.value_size);
  o.Set("maxEntries", mi.max_entries);
  o.Set("flags", mi.map_flags);
  o.Set("perCpu", IsPerCpu(mi.type));
  return o;
}

void CheckKey(Napi::Env env, const struct bpf_map_info& mi, const Napi::Buffer<uint8_t>& key) {
  if (key.Length() != mi.key_size)
    throw Napi::RangeError::New(env, std::string("key for map ") + mi.name + " must be " + std::to_string(mi.key_size) +
                                         " bytes, got " + std::to_string(key.Length()));
}

Napi::Value MapLookup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = U32(info[0], "fd");
  auto key = Buf(info[1], "key");
  struct bpf_map_info mi = MapInfoOf(env, fd);
  CheckKey(env, mi, key);
  auto value = Napi::Buffer<uint8_t>::New(env, ValueBytes(mi));
  if (bpf_map_lookup_elem(fd, key.Data(), value.Data()) < 0) {
    if (errno == ENOENT) return env.Null();
    ThrowErrno(env, errno, "bpf_map_lookup_elem", std::string("lookup in map ") + mi.name + " failed");
  }
  return value;
}

Napi::Value MapUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = U32(info[0], "fd");
  auto key = Buf(info[1], "key");
  auto value = Buf(info[2], "value");
  uint64_t flags = info.Length() > 3 ? U32(info[3], "flags") : static_cast<uint32_t>(BPF_ANY);
  struct bpf_map_info mi = MapInfoOf(env, fd);
  CheckKey(env, mi, key);
  if (value.Length() != ValueBytes(mi))
    throw Napi::RangeError::New(env, std::string("value for map ") + mi.name + " must be " +
                                         std::to_string(ValueBytes(mi)) + " bytes, got " + std::to_string(value.Length()));
  if (bpf_map_update_elem(fd, key.Data(), value.Data(), flags) < 0) {
    int e = errno;
    std::string hint = e == E2BIG || e == ENOMEM
                           ? std::string("Map ") + mi.name + " is full (" + std::to_string(mi.max_entries) +
                                 " entries); raise its size in the interceptor configuration"
                           : "";
    ThrowErrno(env, e, "bpf_map_update_elem", std::string("update of map ") + mi.name + " failed", hint);
  }
  return env.Undefined();
}

Napi::Value MapDelete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = U32(info[0], "fd");
  auto key = Buf(info[1], "key");
  if (bpf_map_delete_elem(fd, key.Data()) < 0) {
    if (errno == ENOENT) return Napi::Boolean::New(env, false);
    ThrowErrno(env, errno, "bpf_map_delete_elem", "map delete failed");
  }
  return Napi::Boolean::New(env, true);
}

Napi::Value MapKeys(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = U32(info[0], "fd");
  struct bpf_map_info mi = MapInfoOf(env, fd);
  Napi::Array out = Napi::Array::New(env);
  std::vector<uint8_t> cur(mi.key_size), next(mi.key_size);
  const void* prev = nullptr;
  uint32_t i = 0;
  while (bpf_map_get_next_key(fd, prev, next.data()) == 0) {
    out.Set(i++, Napi::Buffer<uint8_t>::Copy(env, next.data(), next.size()));
    cur.swap(next);
    prev = cur.data();
  }
  if (errno != ENOENT) ThrowErrno(env, errno, "bpf_map_get_next_key", std::string("cannot iterate map ") + mi.name);
  return out;
}

Napi::Value PossibleCpus(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), libbpf_num_possible_cpus());
}

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

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  libbpf_set_print(LibbpfPrint);
  struct {
    const char* name;
    Napi::Value (*fn)(const Napi::CallbackInfo&);
  } fns[] = {
      {"loadObject", LoadObject},     {"attachCgroup", AttachCgroup}, {"cgroupPrograms", CgroupPrograms}, {"detachLink", DetachLink},
      {"attachSkMsg", AttachSkMsg},   {"detachSkMsg", DetachSkMsg},   {"tcAttach", TcAttach},
      {"tcDetach", TcDetach},         {"tcQuery", TcQuery},           {"tcDestroyClsact", TcDestroyClsact},
      {"mapOpen", MapOpen},           {"closeFd", CloseFd},           {"mapInfo", MapInfo},
      {"mapLookup", MapLookup},       {"mapUpdate", MapUpdate},       {"mapDelete", MapDelete},
      {"mapKeys", MapKeys},           {"possibleCpus", PossibleCpus}, {"progInfo", ProgInfo},
      {"netnsCookie", NetnsCookie},   {"cgroupId", CgroupId},         {"originalDst", OriginalDst},
      {"probeProgType", ProbeProgType}, {"probeHelper", ProbeHelper}, {"isBpffs", IsBpffsPath},
      {"btfDescribe", BtfDescribe},   {"cgroupHookAttachType", CgroupHookAttachType},
  };
  for (auto& f : fns) exports.Set(f.name, Napi::Function::New(env, f.fn, f.name));
  RegisterPins(env, exports);
  RegisterRingbuf(env, exports);
  return exports;
}

}  // namespace
}  // namespace switchyard

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return switchyard::Init(env, exports); }
NODE_API_MODULE(switchyard, InitModule)
