// Loading an object: libbpf opens it with the pin root (maps pinned or
// reused by name), sizes its maps, loads it and pins every program; the
// verifier's log, which libbpf prints, is caught per call and put in the error.
#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common.h"

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

}  // namespace

void InstallLibbpfLog() { libbpf_set_print(LibbpfPrint); }

void RegisterLoad(Napi::Env env, Napi::Object exports) {
  exports.Set("loadObject", Napi::Function::New(env, LoadObject, "loadObject"));
}

}  // namespace switchyard
