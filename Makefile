# Build-time compilation of everything native: BPF objects (clang) and the
# Node-API addon (g++ against libbpf). Nodes only ever load these artefacts.
BUILD      := build
ARCH       := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')
MULTIARCH  := $(shell gcc -print-multiarch 2>/dev/null)
CLANG      ?= clang
CXX        ?= g++
# Go >= 1.22: the system's, or the official toolchain fetched once from the module proxy.
GO         ?= $(shell bash scripts/ensure-go.sh)

BPF_SRC    := $(wildcard bpf/sy_*.c)
BPF_OBJ    := $(patsubst bpf/%.c,$(BUILD)/bpf/%.bpf.o,$(BPF_SRC))
# The socket-cookie hand-off for kernels without task storage in these hooks (bpf/headers/handoff.h).
BPF_OBJ    += $(BUILD)/bpf/sy_connect.cookie.bpf.o $(BUILD)/bpf/sy_sockops.cookie.bpf.o
BPF_HDR    := $(wildcard bpf/headers/*.h)
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror \
              -I bpf/headers -I /usr/include/$(MULTIARCH)

ADDON      := $(BUILD)/native/switchyard.node
ADDON_SRC  := $(wildcard native/src/*.cc)
ADDON_HDR  := $(wildcard native/src/*.h)
ORIGDST    := $(BUILD)/native/origdst.node
NAPI_INC   := -I node_modules/node-addon-api -I node_modules/node-api-headers/include
CXXFLAGS   := -std=c++17 -O2 -g -fPIC -Wall -Wextra -Werror -fvisibility=hidden \
              -DNAPI_VERSION=8 -DNODE_ADDON_API_DISABLE_DEPRECATED -DNAPI_CPP_EXCEPTIONS \
              $(NAPI_INC) -I bpf/headers

CNI        := $(BUILD)/cni/switchyard-cni
CNI_SRC    := $(wildcard interceptor/cni/*.go) interceptor/cni/go.mod interceptor/cni/go.sum

.PHONY: all bpf bpf-abi1 bpf-alt native cni ts bench-tools lab-tools images clean
all: bpf bpf-abi1 bpf-alt native cni ts bench-tools lab-tools

bpf: $(BPF_OBJ)
$(BUILD)/bpf/%.bpf.o: bpf/%.c $(BPF_HDR)
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@
$(BUILD)/bpf/%.cookie.bpf.o: bpf/%.c $(BPF_HDR)
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -DSY_HANDOFF_COOKIE -c $< -o $@

# The objects of BPF ABI version 1 (the sources as main had them before the
# first ABI change), for the upgrade test: an agent must upgrade their pins in place.
ABI1_DIR   := test/fixtures/abi-v1/bpf
ABI1_SRC   := $(wildcard $(ABI1_DIR)/sy_*.c)
ABI1_OBJ   := $(patsubst $(ABI1_DIR)/%.c,$(BUILD)/bpf-abi1/%.bpf.o,$(ABI1_SRC))
ABI1_OBJ   += $(BUILD)/bpf-abi1/sy_connect.cookie.bpf.o $(BUILD)/bpf-abi1/sy_sockops.cookie.bpf.o
ABI1_CFLAGS := $(subst -I bpf/headers,-I $(ABI1_DIR)/headers,$(BPF_CFLAGS))
bpf-abi1: $(ABI1_OBJ)
$(BUILD)/bpf-abi1/%.bpf.o: $(ABI1_DIR)/%.c $(wildcard $(ABI1_DIR)/headers/*.h)
	@mkdir -p $(@D)
	$(CLANG) $(ABI1_CFLAGS) -c $< -o $@
$(BUILD)/bpf-abi1/%.cookie.bpf.o: $(ABI1_DIR)/%.c $(wildcard $(ABI1_DIR)/headers/*.h)
	@mkdir -p $(@D)
	$(CLANG) $(ABI1_CFLAGS) -DSY_HANDOFF_COOKIE -c $< -o $@

# The same programs as build/bpf in other bytes (only the debug info's directory
# names differ): another build of this ABI version, for upgrades between builds.
ALT_OBJ    := $(patsubst $(BUILD)/bpf/%,$(BUILD)/bpf-alt/%,$(BPF_OBJ))
ALT_CFLAGS := $(BPF_CFLAGS) -fdebug-compilation-dir=/switchyard-alt
bpf-alt: $(ALT_OBJ)
$(BUILD)/bpf-alt/%.bpf.o: bpf/%.c $(BPF_HDR)
	@mkdir -p $(@D)
	$(CLANG) $(ALT_CFLAGS) -c $< -o $@
$(BUILD)/bpf-alt/%.cookie.bpf.o: bpf/%.c $(BPF_HDR)
	@mkdir -p $(@D)
	$(CLANG) $(ALT_CFLAGS) -DSY_HANDOFF_COOKIE -c $< -o $@

native: $(ADDON) $(ORIGDST)
# Node-API symbols resolve against the running node binary at dlopen time.
$(ADDON): $(ADDON_SRC) $(ADDON_HDR)
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -shared -o $@ $(ADDON_SRC) -lbpf -lelf -lz
# The sidecar's own addon: SO_ORIGINAL_DST only, no libbpf (native/origdst.ts).
$(ORIGDST): native/src/origdst/origdst.cc native/src/errors.h
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -shared -o $@ $<

cni: $(CNI)
# Static, so it runs from /opt/cni/bin on any node.
$(CNI): $(CNI_SRC)
	@mkdir -p $(@D)
	cd interceptor/cni && CGO_ENABLED=0 GOTOOLCHAIN=local $(GO) build -trimpath -ldflags='-s -w' -o ../../$@ .

# The benchmark's lean proxy and HTTP server (bench/ only).
LEAN       := $(BUILD)/bench/lean
CNI_EXEC   := $(BUILD)/bench/cni-exec
# The same programs with the decision monitor compiled out (bench/monitor.ts: what the monitor costs while off).
NOMON_OBJ  := $(patsubst $(BUILD)/bpf/%,$(BUILD)/bench/bpf-nomonitor/%,$(BPF_OBJ))
bench-tools: $(LEAN) $(CNI_EXEC) $(NOMON_OBJ)
$(BUILD)/bench/bpf-nomonitor/%.bpf.o: bpf/%.c $(BPF_HDR)
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -DSY_MONITOR_COMPILED_OUT -c $< -o $@
$(BUILD)/bench/bpf-nomonitor/%.cookie.bpf.o: bpf/%.c $(BPF_HDR)
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -DSY_MONITOR_COMPILED_OUT -DSY_HANDOFF_COOKIE -c $< -o $@
$(LEAN): bench/tools/lean.c
	@mkdir -p $(@D)
	$(CC) -O2 -g -Wall -Wextra -Werror -pthread -o $@ $<
$(CNI_EXEC): bench/tools/cni-exec.c
	@mkdir -p $(@D)
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $<

# The lab's namespace relay (lab/ only): the nodes reach the apiserver through it.
RELAY      := $(BUILD)/lab/sylab-relay
lab-tools: $(RELAY)
$(RELAY): lab/relay/main.go lab/relay/go.mod
	@mkdir -p $(@D)
	cd lab/relay && CGO_ENABLED=0 GOTOOLCHAIN=local $(GO) build -trimpath -ldflags='-s -w' -o ../../$@ .

ts:
	npx tsc -p tsconfig.json

# Every image, into one OCI archive (images/README.md); needs mmdebstrap.
images: bpf native cni ts
	node dist/images/src/build.js

clean:
	rm -rf $(BUILD) dist
