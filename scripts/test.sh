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
npm run -s typecheck
npm run -s lint
npm run -s format:check  # Prettier on the code (.prettierignore: docs, YAML and JSON keep their hand layout)
phase 'typecheck, lint, format'
mkdir -p .test-results
status=0
npx vitest run --reporter=default --reporter=json --outputFile=.test-results/vitest.json || status=$?
phase vitest
# the daemon's 5-minute soak under churn (bench/soak.bench.ts --ci; the hour-long one is a bench)
if npm run -s soak:ci > .test-results/soak.log 2>&1; then
  awk '/^\[soak\] duration /{p=1} p' .test-results/soak.log  # its figures and verdict
else
  status=1; echo "soak failed:"; tail -60 .test-results/soak.log
fi
phase soak
# Node 22 and 24 (official builds, what users run; 24 is the Debian package's runtime): the
# whole unit project again (the full suite above ran on the machine's Node 20)
# Both at once (nothing else runs now; the 2-core machine's second core would idle), each
# into its own log, printed in turn
pids=()
for node in $(bash scripts/runtimes.sh); do
  log=".test-results/unit-$("$node" --version).log"
  (PATH="$(dirname "$node"):$PATH" "$node" node_modules/vitest/vitest.mjs run --project unit > "$log" 2>&1) &
  pids+=("$!:$node:$log")
done
for p in "${pids[@]}"; do
  IFS=: read -r pid node log <<< "$p"
  s=0; wait "$pid" || s=$?
  echo "== $("$node" --version): unit tests"
  cat "$log"
  [ "$s" -eq 0 ] || status=$s
done
phase 'unit tests on Node 22 and 24'
npm run -s bench:smoke || status=$?
phase 'bench smoke'
# the README's main job must stay green too
bash scripts/demo.sh > .test-results/demo.log 2>&1 || { status=1; echo "demo failed:"; tail -40 .test-results/demo.log; }
phase demo
bash scripts/pack-smoke.sh || status=$?  # the packed tarball installs and runs (npm pack → npm i -g → awg)
phase 'pack smoke'
# the Debian package (dist/ fresh from pack-smoke's prepack): installs, runs, removes and purges
# cleanly; a running daemon survives its upgrade with the kill switch closed
if deb=$(AWG_DEB_PREBUILT=1 AWG_DEB_COMPRESS=gzip:1 bash scripts/build-deb.sh .test-results/deb | tail -1) && [ -f "$deb" ]; then
  bash scripts/deb-smoke.sh "$deb" || status=$?
  bash scripts/deb-upgrade-smoke.sh "$deb" || status=$?
else
  echo "build-deb failed"; status=1
fi
phase 'Debian package'
node scripts/summarize-tests.mjs .test-results/vitest.json || status=$?
echo "== wall time per phase (total $SECONDS s):"; printf '   %s\n' "${phases[@]}"
exit "$status"
