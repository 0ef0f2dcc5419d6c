#!/usr/bin/env bash
# The main job: a local dataplane demo on this machine's kernel. Two mesh
# "pods" (netns + veth + cgroup2), their sidecars, and a request from app-a
# to app-b shown going through both sidecars. Cleans up on exit and Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node dist/test/demo/dataplane-demo.js "$@"
