#!/usr/bin/env bash
# The main job: Switchyard on a local single-node Kubernetes cluster. A real
# control plane (built once from the k8s.io/kubernetes Go module, then cached),
# the webhook and the interceptor, and a lab node that plays kubelet on this
# machine's kernel. Two Deployments and a Service in an injected namespace; a
# request from app-a to app-b shown going through both sidecars. Removes
# everything on exit and on Ctrl-C. --keep leaves the lab up until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/lab-build.sh
exec node dist/lab/src/demo.js "$@"
