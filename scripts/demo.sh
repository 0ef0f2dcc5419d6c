#!/usr/bin/env bash
# The main job: Switchyard installed with kubectl apply -k on a local
# two-node Kubernetes cluster: a real control plane, kubelet and kube-proxy
# (built once from the k8s.io/kubernetes Go module, then cached), Debian's
# containerd and runc, and the images built here (images/, cached). Two
# Deployments and a Service in an injected namespace; requests from app-a to
# app-b on the same node and across, shown going through both sidecars.
# Removes everything on exit and on Ctrl-C. --keep leaves the lab up until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/lab-build.sh
exec node dist/lab/src/demo.js "$@"
