// Reading a pinned BPF ring buffer (the decision monitor's sy_events,
// bpf/headers/monitor.h) from JavaScript:
//
//   ringbufOpen(pin)          -> handle   (one consumer; the ring is mapped read-only)
//   ringbufConsume(handle, n) -> Buffer[] (at most n records, without blocking)
//   ringbufClose(handle)
//
// The agent polls while someone watches (interceptor/src/agent/monitor.ts),
// so nothing here blocks the event loop or needs a thread.
#include <bpf/libbpf.h>

#include <string>
#include <vector>

#include "common.h"

namespace switchyard {
namespace {

struct Reader {
  struct ring_buffer* rb = nullptr;
  int map_fd = -1;
  std::vector<std::string> batch;
  size_t limit = 0;
};

int OnRecord(void* ctx, void* data, size_t size) {
  auto* r = static_cast<Reader*>(ctx);
  r->batch.emplace_back(static_cast<const char*>(data), size);
  // A negative return stops ring_buffer__consume after this record; the rest
  // stay in the ring for the next call.
  return r->batch.size() >= r->limit ? -1 : 0;
}

void Free(Napi::Env, Reader* r) {
  if (r->rb) ring_buffer__free(r->rb);
  if (r->map_fd >= 0) close(r->map_fd);
  delete r;
}

Reader* Get(const Napi::Value& v) {
  if (!v.IsExternal()) throw Napi::TypeError::New(v.Env(), "handle must come from ringbufOpen");
  auto* r = v.As<Napi::External<Reader>>().Data();
  if (!r->rb) throw Napi::Error::New(v.Env(), "the ring buffer reader is closed");
  return r;
}

Napi::Value RingbufOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string pin = Str(info[0], "pin");
  auto* r = new Reader();
  r->map_fd = bpf_obj_get(pin.c_str());
  if (r->map_fd < 0) {
    int e = errno;
    Free(env, r);
    ThrowErrno(env, e, "bpf_obj_get", "cannot open the ring buffer pinned at " + pin,
               e == ENOENT ? "Is the Switchyard dataplane of this version loaded?" : "");
  }
  r->rb = ring_buffer__new(r->map_fd, OnRecord, r, nullptr);
  if (!r->rb) {
    int e = errno;
    Free(env, r);
    ThrowErrno(env, e, "ring_buffer__new", "cannot map the ring buffer pinned at " + pin);
  }
  return Napi::External<Reader>::New(env, r, Free);
}

Napi::Value RingbufConsume(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Reader* r = Get(info[0]);
  r->limit = U32(info[1], "max");
  r->batch.clear();
  if (r->limit > 0 && ring_buffer__consume(r->rb) < 0 && r->batch.empty() && errno != EINTR)
    ThrowErrno(env, errno, "ring_buffer__consume", "cannot read the ring buffer");
  Napi::Array out = Napi::Array::New(env, r->batch.size());
  for (size_t i = 0; i < r->batch.size(); i++)
    out.Set(i, Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(r->batch[i].data()), r->batch[i].size()));
  r->batch.clear();
  return out;
}

Napi::Value RingbufClose(const Napi::CallbackInfo& info) {
  Reader* r = Get(info[0]);
  ring_buffer__free(r->rb);
  r->rb = nullptr;
  close(r->map_fd);
  r->map_fd = -1;
  return info.Env().Undefined();
}

}  // namespace

void RegisterRingbuf(Napi::Env env, Napi::Object exports) {
  exports.Set("ringbufOpen", Napi::Function::New(env, RingbufOpen, "ringbufOpen"));
  exports.Set("ringbufConsume", Napi::Function::New(env, RingbufConsume, "ringbufConsume"));
  exports.Set("ringbufClose", Napi::Function::New(env, RingbufClose, "ringbufClose"));
}

}  // namespace switchyard
