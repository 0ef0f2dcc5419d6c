// switchyard.node: the agent's only door into the kernel. A thin, synchronous
// binding over libbpf and a few syscalls; policy lives in TypeScript.
// Each file registers its own functions (common.h lists them).
#include <bpf/libbpf.h>

#include "common.h"

namespace switchyard {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InstallLibbpfLog();
  for (auto reg : {RegisterLoad, RegisterAttach, RegisterTc, RegisterMaps, RegisterIntrospect, RegisterSockets, RegisterPins, RegisterRingbuf, RegisterTestRun})
    reg(env, exports);
  return exports;
}

}  // namespace switchyard

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return switchyard::Init(env, exports); }
NODE_API_MODULE(switchyard, InitModule)
