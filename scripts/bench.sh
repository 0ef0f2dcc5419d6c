#!/usr/bin/env bash
# The benchmark: dataplane scenarios a a' b c d interleaved (sockperf, wrk,
# iperf3), Service load balancing (also against the real kube-proxy at 1,
# 1,000 and 10,000 Services), the webhook and pod registration, after a
# fuzzing run of switchyard-cni (SWITCHYARD_FUZZ_TIME, 60s by default).
# Writes bench/results/<date>.*. Takes about 25 minutes with the defaults;
# pass --rounds/--seconds to change, or --quick for a few minutes' check.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/lab-build.sh   # kube-apiserver and kube-proxy for the kube-proxy comparison (cached)
# switchyard-cni under generated stdin, environment and agent behaviour, past the seed corpus the tests run.
go=$(bash scripts/ensure-go.sh)
(cd interceptor/cni && GOTOOLCHAIN=local "$go" test -run '^$' -fuzz FuzzPlugin -fuzztime "${SWITCHYARD_FUZZ_TIME:-60s}" .)
exec node dist/bench/run.js "$@"
