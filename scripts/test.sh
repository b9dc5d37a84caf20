#!/usr/bin/env bash
# Install what is needed, then run the whole test suite: type check, lint, format, unit tests,
# root + network-namespace tests against the real kernel, the daemon's 5-minute soak, a short
# benchmark smoke, and the README's demo.
set -euo pipefail
cd "$(dirname "$0")/.."
# each phase's wall time, printed at the end (CI must stay under 40 minutes on 2 cores)
phases=(); t0=$SECONDS
phase() { phases+=("$1 $((SECONDS - t0)) s"); t0=$SECONDS; }
bash scripts/setup.sh
phase setup
mkdir -p .test-results
status=0
# whether the machine had awg state before the tests (the package smokes refuse to run where
# it does; below, what the tests themselves left in /run/awg is removed before them)
run_awg_before=0; [ -e /run/awg ] && run_awg_before=1
# The CPU-bound checks that time nothing run beside the netns tests, in a CPU cgroup the
# kernel schedules as idle (cpu.idle 1, Linux 5.15+; scripts/idle-cgroup.sh): they get only
# CPU nobody else wants — the netns tests leave most of it (load ≈ 1 on 2 cores while they
# run) — and a task of the netns tests that wakes preempts them at once:
# - type check, lint, format (Prettier on the code; .prettierignore: docs, YAML and JSON keep
#   their hand layout);
# - the unit and fuzz projects on the machine's Node 20;
# - Node 22 and 24 (official builds, what users run; 24 is the Debian package's runtime): the
#   whole unit project again.
# The unit runs get longer timeouts there, since a test may wait out a busy stretch. Without an
# idle cgroup everything runs one after the other, as before. Each background job writes its
# own log, printed after the netns tests.
runtimes=$(bash scripts/runtimes.sh)
idle_cg=$(bash scripts/idle-cgroup.sh create awg-ci-idle) || idle_cg=""
trap '[ -z "$idle_cg" ] || bash scripts/idle-cgroup.sh remove "$idle_cg"' EXIT
jobs_=()
# run "$@" into log $1 (in the idle cgroup when there is one, in the background)
background() {
  local log=$1; shift
  (
    if [ -n "$idle_cg" ]; then echo "$BASHPID" > "$idle_cg/cgroup.procs"; fi
    exec "$@" > "$log" 2>&1
  ) &
  jobs_+=("$!:$log")
}
wait_background() {
  for j in "${jobs_[@]}"; do
    IFS=: read -r pid log <<< "$j"
    s=0; wait "$pid" || s=$?
    echo "== $log${idle_cg:+ (idle cgroup, beside the netns tests)}"
    cat "$log"
    [ "$s" -eq 0 ] || status=$s
  done
  jobs_=()
}
slow=(--testTimeout=120000 --hookTimeout=120000)
background .test-results/static.log bash -c \
  'set -e; npm run -s typecheck; npm run -s lint; npm run -s format:check; echo "typecheck, lint, format: ok"'
[ -n "$idle_cg" ] || { wait_background; phase 'typecheck, lint, format'; }
background .test-results/unit-node20.log npx vitest run --project unit --project fuzz "${slow[@]}" \
  --reporter=default --reporter=json --outputFile=.test-results/vitest-unit.json
[ -n "$idle_cg" ] || { wait_background; phase 'unit and fuzz tests'; }
for node in $runtimes; do
  background ".test-results/unit-$("$node" --version).log" env PATH="$(dirname "$node"):$PATH" \
    "$node" node_modules/vitest/vitest.mjs run --project unit "${slow[@]}"
done
[ -n "$idle_cg" ] || { wait_background; phase 'unit tests on Node 22 and 24'; }
npx vitest run --project netns --reporter=default --reporter=json --outputFile=.test-results/vitest.json || status=$?
phase 'netns tests'
wait_background
phase "${idle_cg:+what ran beside the netns tests: }the rest"
# the daemon's 5-minute soak under churn (bench/soak.bench.ts --ci; the hour-long one is a bench)
if npm run -s soak:ci > .test-results/soak.log 2>&1; then
  awk '/^\[soak\] duration /{p=1} p' .test-results/soak.log  # its figures and verdict
else
  status=1; echo "soak failed:"; tail -60 .test-results/soak.log
fi
phase soak
npm run -s bench:smoke -- --skip=soak || status=$?  # the soak ran above (soak:ci)
phase 'bench smoke'
# the README's main job must stay green too
bash scripts/demo.sh > .test-results/demo.log 2>&1 || { status=1; echo "demo failed:"; tail -40 .test-results/demo.log; }
phase demo
bash scripts/pack-smoke.sh || status=$?  # the packed tarball installs and runs (npm pack → npm i -g → awg)
phase 'pack smoke'
if [ "$run_awg_before" = 0 ] && [ -e /run/awg ]; then
  echo "note: the tests left /run/awg (owner locks: $(ls /run/awg | tr '\n' ' ')); removed before the package smokes"
  rm -rf /run/awg
fi
# the Debian package (dist/ fresh from pack-smoke's prepack): installs, runs, removes and purges
# cleanly; a running daemon survives its upgrade with the kill switch closed
if deb=$(AWG_DEB_PREBUILT=1 AWG_DEB_COMPRESS=gzip:1 bash scripts/build-deb.sh .test-results/deb | tail -1) && [ -f "$deb" ]; then
  bash scripts/deb-smoke.sh "$deb" || status=$?
  bash scripts/deb-upgrade-smoke.sh "$deb" || status=$?
else
  echo "build-deb failed"; status=1
fi
phase 'Debian package'
node scripts/summarize-tests.mjs .test-results/vitest.json .test-results/vitest-unit.json || status=$?
echo "== wall time per phase (total $SECONDS s):"; printf '   %s\n' "${phases[@]}"
exit "$status"
