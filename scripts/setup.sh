#!/usr/bin/env bash
# Installs what Switchyard needs on Debian 12 (as root) and builds it:
# apt packages, npm dependencies, the BPF objects, the addon and the TypeScript.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool   # BPF build
  make g++ pkg-config                                   # addon build
  iproute2 util-linux procps                            # netns, veth, tc, setpriv, sysctl
  containernetworking-plugins                           # real CNI peers
  etcd-server openssl curl unzip ca-certificates        # the lab control plane; fetching a Go toolchain
  iptables conntrack wrk sockperf iperf3 ethtool        # bench baselines and load tools (ethtool: the NodePort bench's NAPI threads)
  python3 nftables tcpdump                              # test peers (splice readers, SYN flood), nft and RST capture inside test netns
  containerd runc mmdebstrap                            # the lab's real nodes, and the images' Debian base
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # Packages install their daemons (containerd) without starting them: the lab
  # runs its own containerd per node, and this machine's stays as it was.
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made_policy=1
  fi
  apt-get install -y -q --no-install-recommends "${missing[@]}" || { ((made_policy)) && rm -f /usr/sbin/policy-rc.d; exit 1; }
  ((made_policy)) && rm -f /usr/sbin/policy-rc.d
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 20)); then
  echo "setup: Node.js $(node --version) is too old; Switchyard needs Node.js 20 or later" >&2
  exit 1
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

make all

# The agent mounts bpffs itself; tests and the demo expect it too.
if ! grep -q " /sys/fs/bpf bpf " /proc/self/mounts; then
  mount -t bpf bpf /sys/fs/bpf
fi
