#!/usr/bin/env bash
# Runs every test: unit, ABI, and kernel tests on real netns/veth/cgroup2.
# Under CI=true a kernel test that cannot run fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/lab-build.sh   # the real kube-apiserver for the e2e tests (cached after the first run)

results=build/test-results.json
rm -f "$results"
status=0
npx jest --runInBand --ci --json --outputFile="$results" "$@" || status=$?

# One plain summary line that any CI can read.
if [ -f "$results" ]; then
  node -e '
    const r = require(process.argv[1]);
    console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped`);
  ' "$PWD/$results"
else
  echo "tests: jest wrote no results (configuration error above)"
fi
exit $status
