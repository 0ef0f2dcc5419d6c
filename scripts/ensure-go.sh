#!/usr/bin/env bash
# Prints the path of a Go toolchain new enough for Switchyard's Go builds
# (switchyard-cni and the lab's Kubernetes, go >= 1.22). The system's go is
# used when it is new enough; otherwise (Debian 12 ships 1.19) the official
# toolchain is fetched once from the Go module proxy into the cache.
set -euo pipefail
want_minor=22
version=1.22.12
cache=${SWITCHYARD_CACHE:-/var/cache/switchyard}/go$version

if command -v go >/dev/null 2>&1; then
  minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
  if [[ "$minor" =~ ^[0-9]+$ ]] && ((minor >= want_minor)); then
    command -v go
    exit 0
  fi
fi
if [ ! -x "$cache/bin/go" ]; then
  case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) echo "ensure-go: unsupported machine $(uname -m)" >&2; exit 1 ;; esac
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "ensure-go: fetching Go $version from the Go module proxy" >&2
  curl -fsSL --retry 3 -o "$tmp/go.zip" "${GOPROXY_URL:-https://proxy.golang.org}/golang.org/toolchain/@v/v0.0.1-go$version.linux-$arch.zip"
  unzip -q "$tmp/go.zip" -d "$tmp/x"
  mkdir -p "$(dirname "$cache")"
  rm -rf "$cache"
  mv "$tmp/x/golang.org/toolchain@v0.0.1-go$version.linux-$arch" "$cache"
  chmod +x "$cache"/bin/* "$cache"/pkg/tool/*/* 2>/dev/null || true
fi
echo "$cache/bin/go"
