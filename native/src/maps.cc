// Map access by pin: open, info, lookup, update, delete, keys. Per-CPU
// values come back as possibleCpus() x 8-byte slots; sizes are checked.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <string>

#include "common.h"

namespace switchyard {
namespace {

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

}  // namespace

void RegisterMaps(Napi::Env env, Napi::Object exports) {
  exports.Set("mapOpen", Napi::Function::New(env, MapOpen, "mapOpen"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  exports.Set("mapInfo", Napi::Function::New(env, MapInfo, "mapInfo"));
  exports.Set("mapLookup", Napi::Function::New(env, MapLookup, "mapLookup"));
  exports.Set("mapUpdate", Napi::Function::New(env, MapUpdate, "mapUpdate"));
  exports.Set("mapDelete", Napi::Function::New(env, MapDelete, "mapDelete"));
  exports.Set("mapKeys", Napi::Function::New(env, MapKeys, "mapKeys"));
  exports.Set("possibleCpus", Napi::Function::New(env, PossibleCpus, "possibleCpus"));
}

}  // namespace switchyard
