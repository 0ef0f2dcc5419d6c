// BPF_PROG_TEST_RUN for the kernel tests: a pinned program runs once on a
// crafted packet, and the test reads its verdict and the packet it left.
#include <bpf/bpf.h>

#include <vector>

#include "common.h"

namespace switchyard {
namespace {

// progTestRun(progPin, packet, ifindex?) -> { retval, packet }
// ifindex is the skb's ifindex and ingress_ifindex (tc programs that look up the FIB need one).
Napi::Value ProgTestRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Fd prog(ObjGet(env, Str(info[0], "progPin"), "program"));
  Napi::Buffer<uint8_t> in = Buf(info[1], "packet");
  uint32_t ifindex = info.Length() > 2 && !info[2].IsUndefined() ? U32(info[2], "ifindex") : 0;
  std::vector<uint8_t> out(in.Length() + 256);
  struct __sk_buff ctx = {};
  ctx.ifindex = ifindex;
  ctx.ingress_ifindex = ifindex;
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in.Data(), .data_out = out.data(), .data_size_in = (uint32_t)in.Length(),
              .data_size_out = (uint32_t)out.size(), .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = 1);
  int err = bpf_prog_test_run_opts(prog.get(), &opts);
  if (err) ThrowErrno(env, -err, "bpf_prog_test_run", "cannot test-run " + Str(info[0], "progPin"));
  Napi::Object result = Napi::Object::New(env);
  result.Set("retval", Napi::Number::New(env, opts.retval));
  result.Set("packet", Napi::Buffer<uint8_t>::Copy(env, out.data(), opts.data_size_out));
  return result;
}

}  // namespace

void RegisterTestRun(Napi::Env env, Napi::Object exports) {
  exports.Set("progTestRun", Napi::Function::New(env, ProgTestRun, "progTestRun"));
}

}  // namespace switchyard
