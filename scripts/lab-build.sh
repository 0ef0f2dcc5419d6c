#!/usr/bin/env bash
# Builds the local lab's Kubernetes control plane (kube-apiserver,
# kube-controller-manager, kube-scheduler), the kubelet and kube-proxy for its nodes and
# kubectl from the k8s.io/kubernetes Go
# module, pinned in lab/k8s/go.mod (staging modules replaced by their
# published v0.X.Y versions). Binaries are cached outside the repository, so
# the second run takes seconds. Cold: about 5 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(grep -o 'k8s.io/kubernetes v[0-9][0-9.]*' lab/k8s/go.mod | head -1 | cut -d' ' -f2)
cache=${SWITCHYARD_CACHE:-/var/cache/switchyard}/k8s-$version
bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
have=1
for b in "${bins[@]}"; do [ -x "$cache/bin/$b" ] || have=0; done
# Helm, for the chart's tests (charts/switchyard), from its own pinned module.
helm_version=$(grep -o 'helm.sh/helm/v3 v[0-9][0-9.]*' lab/helm/go.mod | head -1 | cut -d' ' -f2)
helm_dir=${SWITCHYARD_CACHE:-/var/cache/switchyard}/helm-$helm_version
if [ -x "$helm_dir/helm" ]; then
  echo "lab: helm $helm_version cached in $helm_dir"
else
  echo "lab: building helm $helm_version into $helm_dir (first run only)"
  mkdir -p "$helm_dir"
  go=$(bash scripts/ensure-go.sh)
  (cd lab/helm && CGO_ENABLED=0 GOTOOLCHAIN=local "$go" build -trimpath -ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version" \
    -o "$helm_dir/helm" helm.sh/helm/v3/cmd/helm)
fi
if ((have)); then
  echo "lab: Kubernetes $version binaries cached in $cache/bin"
  exit 0
fi
echo "lab: building Kubernetes $version (control plane, kubelet, kube-proxy, kubectl) into $cache/bin (first run only)"
mkdir -p "$cache/bin"
go=$(bash scripts/ensure-go.sh)
# Without the version stamped in, every component reports v0.0.0-master.
minor=$(echo "$version" | cut -d. -f2)
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$version -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor -X $vpkg.gitTreeState=clean"
(cd lab/k8s && CGO_ENABLED=0 GOTOOLCHAIN=local "$go" build -trimpath -ldflags="$ldflags" -o "$cache/bin/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy)
echo "lab: built ${bins[*]}"
