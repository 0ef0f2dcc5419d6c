// The upgrade path's kernel operations (interceptor/src/dataplane/upgrade.ts):
// give a pinned object a second name, swap a link's program in place, create
// a plain map, and read an object file's map and program definitions without
// loading it (also what test/abi.test.ts holds the TypeScript tables to).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <memory>
#include <string>

#include "common.h"

namespace switchyard {
namespace {

// objPin(fromPin, toPin): the object pinned at fromPin gets a second name.
// Both names hold a reference; removing one leaves the object alive.
Napi::Value ObjPin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string from = Str(info[0], "fromPin");
  std::string to = Str(info[1], "toPin");
  Fd fd(ObjGet(env, from, "object"));
  if (bpf_obj_pin(fd.get(), to.c_str()) < 0) ThrowErrno(env, errno, "bpf_obj_pin", "cannot pin " + from + " again at " + to);
  return env.Undefined();
}

// linkUpdate(linkPin, progPin): the link runs the new program from now on.
// The kernel swaps the program pointer under RCU: every hook invocation runs
// either the old program or the new one, and the attachment never lapses.
Napi::Value LinkUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string link_pin = Str(info[0], "linkPin");
  std::string prog_pin = Str(info[1], "progPin");
  Fd link(ObjGet(env, link_pin, "link"));
  Fd prog(ObjGet(env, prog_pin, "program"));
  if (bpf_link_update(link.get(), prog.get(), nullptr) < 0) {
    int e = errno;
    ThrowErrno(env, e, "bpf_link_update", "cannot point link " + link_pin + " at " + prog_pin,
               e == EINVAL ? "The program's type or expected attach type differs from the link's" : "");
  }
  return env.Undefined();
}

// linkProgId(linkPin) -> the id of the program the link runs.
Napi::Value LinkProgId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string pin = Str(info[0], "linkPin");
  Fd link(ObjGet(env, pin, "link"));
  struct bpf_link_info li {};
  uint32_t len = sizeof(li);
  if (bpf_obj_get_info_by_fd(link.get(), &li, &len) < 0)
    ThrowErrno(env, errno, "bpf_obj_get_info_by_fd", "cannot read link info of " + pin);
  return Napi::Number::New(env, li.prog_id);
}

// mapCreate(pin, type, keySize, valueSize, maxEntries, name): a map made and
// pinned by the agent itself, not by a BPF object (the ABI version record).
Napi::Value MapCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string pin = Str(info[0], "pin");
  uint32_t type = U32(info[1], "type");
  uint32_t key_size = U32(info[2], "keySize");
  uint32_t value_size = U32(info[3], "valueSize");
  uint32_t max_entries = U32(info[4], "maxEntries");
  std::string name = Str(info[5], "name");
  Fd fd(bpf_map_create(static_cast<enum bpf_map_type>(type), name.c_str(), key_size, value_size, max_entries, nullptr));
  if (fd.get() < 0) ThrowErrno(env, errno, "bpf_map_create", "cannot create map " + name);
  if (bpf_obj_pin(fd.get(), pin.c_str()) < 0) ThrowErrno(env, errno, "bpf_obj_pin", "cannot pin map " + name + " at " + pin);
  return env.Undefined();
}

// objectMaps(objPath, mapSizes) -> [{ name, type, keySize, valueSize,
// maxEntries, flags, pinned }]: the maps an object would create, with the
// sizes the agent would give them, read without loading anything.
Napi::Value ObjectMaps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string obj_path = Str(info[0], "objPath");
  Napi::Object sizes = info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
  // A pin root makes libbpf resolve LIBBPF_PIN_BY_NAME maps to a pin path at open time.
  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = "/nonexistent");
  struct bpf_object* obj = bpf_object__open_file(obj_path.c_str(), &opts);
  if (!obj) ThrowErrno(env, errno, "bpf_object__open_file", "cannot open BPF object " + obj_path);
  std::unique_ptr<struct bpf_object, void (*)(struct bpf_object*)> guard(obj, bpf_object__close);
  Napi::Array out = Napi::Array::New(env);
  uint32_t i = 0;
  struct bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    const char* name = bpf_map__name(map);
    if (name[0] == '.') continue;
    uint32_t max_entries = sizes.Has(name) ? U32(sizes.Get(name), "map size") : bpf_map__max_entries(map);
    Napi::Object m = Napi::Object::New(env);
    m.Set("name", name);
    m.Set("type", static_cast<uint32_t>(bpf_map__type(map)));
    m.Set("keySize", bpf_map__key_size(map));
    m.Set("valueSize", bpf_map__value_size(map));
    m.Set("maxEntries", max_entries);
    m.Set("flags", bpf_map__map_flags(map));
    m.Set("pinned", bpf_map__pin_path(map) != nullptr);
    out.Set(i++, m);
  }
  return out;
}

// objectPrograms(objPath) -> [{ name, section, type, attachType }]: the
// programs an object holds, with the attach type libbpf derives from each
// one's SEC() name, read without loading anything.
Napi::Value ObjectPrograms(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string obj_path = Str(info[0], "objPath");
  struct bpf_object* obj = bpf_object__open_file(obj_path.c_str(), nullptr);
  if (!obj) ThrowErrno(env, errno, "bpf_object__open_file", "cannot open BPF object " + obj_path);
  std::unique_ptr<struct bpf_object, void (*)(struct bpf_object*)> guard(obj, bpf_object__close);
  Napi::Array out = Napi::Array::New(env);
  uint32_t i = 0;
  struct bpf_program* prog;
  bpf_object__for_each_program(prog, obj) {
    Napi::Object p = Napi::Object::New(env);
    p.Set("name", bpf_program__name(prog));
    p.Set("section", bpf_program__section_name(prog));
    p.Set("type", static_cast<uint32_t>(bpf_program__type(prog)));
    p.Set("attachType", static_cast<uint32_t>(bpf_program__expected_attach_type(prog)));
    out.Set(i++, p);
  }
  return out;
}

}  // namespace

void RegisterPins(Napi::Env env, Napi::Object exports) {
  exports.Set("objPin", Napi::Function::New(env, ObjPin, "objPin"));
  exports.Set("linkUpdate", Napi::Function::New(env, LinkUpdate, "linkUpdate"));
  exports.Set("linkProgId", Napi::Function::New(env, LinkProgId, "linkProgId"));
  exports.Set("mapCreate", Napi::Function::New(env, MapCreate, "mapCreate"));
  exports.Set("objectMaps", Napi::Function::New(env, ObjectMaps, "objectMaps"));
  exports.Set("objectPrograms", Napi::Function::New(env, ObjectPrograms, "objectPrograms"));
}

}  // namespace switchyard
