#!/usr/bin/env bash
# Runs every test: unit, ABI, and kernel tests on real netns/veth/cgroup2.
# Under CI=true a kernel test that cannot run fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/lab-build.sh   # the real kube-apiserver for the e2e tests (cached after the first run)

status=0
# switchyard-cni (Go): unit tests and the fuzz target's seed corpus, run as the runtime runs the plugin.
go=$(bash scripts/ensure-go.sh)
gotests=build/go-test.log
(cd interceptor/cni && GOTOOLCHAIN=local "$go" test -v -count=1 ./...) >"$gotests" 2>&1 || status=$?
grep -E '^\s*--- FAIL' -A20 "$gotests" || true
go_passed=$(grep -cE '^\s*--- PASS' "$gotests" || true)
go_failed=$(grep -cE '^\s*--- FAIL' "$gotests" || true)
go_skipped=$(grep -cE '^\s*--- SKIP' "$gotests" || true)
echo "go test (interceptor/cni): $go_passed passed, $go_failed failed, $go_skipped skipped"
if ((status != 0 && go_failed == 0)); then tail -30 "$gotests"; go_failed=1; fi

results=build/test-results.json
rm -f "$results"
npx jest --runInBand --ci --json --outputFile="$results" "$@" || status=$?

# One plain summary line that any CI can read.
if [ -f "$results" ]; then
  node -e '
    const r = require(process.argv[1]);
    const [gp, gf, gs] = process.argv.slice(2).map(Number);
    console.log(`tests: ${r.numPassedTests + gp} passed, ${r.numFailedTests + gf} failed, ${r.numPendingTests + gs} skipped`);
  ' "$PWD/$results" "$go_passed" "$go_failed" "$go_skipped"
else
  echo "tests: jest wrote no results (configuration error above)"
fi
exit $status
