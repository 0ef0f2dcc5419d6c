#!/usr/bin/env bash
# The benchmark: dataplane scenarios a a' b c d interleaved (sockperf, wrk,
# iperf3), the webhook and pod registration. Writes bench/results/<date>.*.
# Takes about 17 minutes with the defaults; pass --rounds/--seconds to change.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node dist/bench/run.js "$@"
