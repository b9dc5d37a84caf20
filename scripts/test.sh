#!/usr/bin/env bash
# Install what is needed, then run the whole test suite: type check, lint, format, unit tests,
# root + network-namespace tests against the real kernel (those that time nothing two files at
# a time), then at once: the daemon's 5-minute soak; the host tests (once test/host exists), the
# Debian package's smokes and the README's demo; the rest of a short benchmark smoke and the pack
# smoke. The closing line (scripts/summarize-tests.mjs) counts every one of them, and the exit
# status agrees with it.
set -euo pipefail
cd "$(dirname "$0")/.."
# each phase's wall time, printed at the end (CI must stay under 45 minutes on 2 cores)
phases=(); t0=$SECONDS
phase() { phases+=("$1 $((SECONDS - t0)) s"); t0=$SECONDS; }
mkdir -p .test-results
# the official Node 22 and 24 builds (scripts/runtimes.sh) download while setup.sh installs: both
# wait on the network most of the time
bash scripts/runtimes.sh > .test-results/runtimes.txt 2> .test-results/runtimes.log &
runtimes_job=$!
bash scripts/setup.sh
phase setup
# every pass and check appends a row to checks.tsv; scripts/summarize-tests.mjs counts them all
# and its closing line is the run's verdict (the exit status agrees with it). This run's rows and
# reports only: one an earlier run left must not count.
checks=.test-results/checks.tsv
rm -f "$checks" .test-results/vitest*.json
# record NAME EXIT-STATUS [REPORT]: NAME passed or failed; REPORT is its vitest JSON report
record() { printf '%s\t%s\t%s\n' "$1" "$([ "$2" = 0 ] && echo pass || echo fail)" "${3:--}" >>"$checks"; }
# whether the machine had awg state before the tests (the package smokes refuse to run where
# it does; below, what the tests themselves left in /run/awg is removed before them)
run_awg_before=0; [ -e /run/awg ] && run_awg_before=1
# The CPU-bound checks that time nothing run beside the netns tests, in a CPU cgroup the
# kernel schedules as idle (cpu.idle 1, Linux 5.15+; scripts/idle-cgroup.sh): they get only
# CPU nobody else wants — the netns tests leave much of it (load ≈ 1 on 2 cores while one file
# runs, more while two do) — and a task of the netns tests that wakes preempts them at once:
# - type check, lint, format (Prettier on the code; .prettierignore: docs, YAML and JSON keep
#   their hand layout);
# - the unit and fuzz projects on the machine's Node 20;
# - Node 22 and 24 (official builds, what users run; 24 is the Debian package's runtime): the
#   whole unit project again.
# The unit runs get longer timeouts there, since a test may wait out a busy stretch. Without an
# idle cgroup everything runs one after the other, as before. Each background job writes its
# own log, printed after the netns tests.
runtimes=""
if wait "$runtimes_job"; then runtimes=$(cat .test-results/runtimes.txt); else
  echo "scripts/runtimes.sh failed: no unit pass on Node 22 and 24"; cat .test-results/runtimes.log
  record 'Node 22 and 24 runtimes (scripts/runtimes.sh)' 1
fi
idle_cg=$(bash scripts/idle-cgroup.sh create awg-ci-idle) || idle_cg=""
trap '[ -z "$idle_cg" ] || bash scripts/idle-cgroup.sh remove "$idle_cg"' EXIT
jobs_=()
# background NAME LOG REPORT|- CMD…: CMD (a command or a function of this script) into LOG, in the
# idle cgroup when there is one, in the background; recorded as NAME when waited for (NAME -: a
# function that records its own checks)
background() {
  local name=$1 log=$2 report=$3; shift 3
  (
    if [ -n "$idle_cg" ]; then echo "$BASHPID" > "$idle_cg/cgroup.procs"; fi
    "$@" > "$log" 2>&1
  ) &
  jobs_+=("$!"$'\t'"$name"$'\t'"$log"$'\t'"$report")
}
wait_background() {
  for j in "${jobs_[@]}"; do
    IFS=$'\t' read -r pid name log report <<< "$j"
    s=0; wait "$pid" || s=$?
    echo "== $log${idle_cg:+ (in the idle cgroup)}"
    cat "$log"
    [ "$name" = - ] || record "$name" "$s" "$report"
  done
  jobs_=()
}
major() { "$1" -p 'process.versions.node.split(".")[0]'; }
# expect.poll's too (1 s by default): a netns test that runs iperf3 at full speed holds both cores
# for seconds, and the idle cgroup gets nothing meanwhile
slow=(--testTimeout=120000 --hookTimeout=120000 --expect.poll.timeout=30000)
background 'static checks (typecheck, lint, format)' .test-results/static.log - bash -c \
  'set -e; npm run -s typecheck; npm run -s lint; npm run -s format:check; echo "typecheck, lint, format: ok"'
[ -n "$idle_cg" ] || { wait_background; phase 'typecheck, lint, format'; }
# each unit run holds a shared lock on units_lock while it runs (the bench smoke's idle part,
# below, waits for all of them: it would take their CPU)
units_lock=.test-results/units.lock
n=$(major node)
background "unit and fuzz (Node $n)" ".test-results/unit-node$n.log" ".test-results/vitest-unit-node$n.json" \
  flock -s "$units_lock" npx vitest run --project unit --project fuzz "${slow[@]}" \
  --reporter=default --reporter=json --outputFile=".test-results/vitest-unit-node$n.json"
[ -n "$idle_cg" ] || { wait_background; phase 'unit and fuzz tests'; }
for node in $runtimes; do
  n=$(major "$node")
  background "unit (Node $n)" ".test-results/unit-node$n.log" ".test-results/vitest-unit-node$n.json" \
    flock -s "$units_lock" env PATH="$(dirname "$node"):$PATH" "$node" node_modules/vitest/vitest.mjs run --project unit "${slow[@]}" \
    --reporter=default --reporter=json --outputFile=".test-results/vitest-unit-node$n.json"
done
[ -n "$idle_cg" ] || { wait_background; phase 'unit tests on Node 22 and 24'; }
# the Debian package (for the host tests and the package smokes) from setup.sh's dist/ and its
# bundle: the files npm pack takes, as the pack smoke's prepack builds them again later
# (no test runs dist/bundle/; a failed build is the package smokes' failure, recorded there)
rm -f .test-results/deb.path
build_deb() {
  npm run -s bundle && AWG_DEB_PREBUILT=1 AWG_DEB_COMPRESS=gzip:1 bash scripts/build-deb.sh .test-results/deb | tail -1 > .test-results/deb.path
}
background - .test-results/build-deb.log - build_deb
[ -n "$idle_cg" ] || { wait_background; phase 'Debian package build'; }
deb() { local d; d=$(cat .test-results/deb.path 2>/dev/null) && [ -f "$d" ] && readlink -f "$d"; }
# the booted hosts' Debian 12 root (mmdebstrap from the Debian mirror, cached by its recipe in
# /var/cache/awg-test), made while the netns tests run: it waits on the network and dpkg
if [ -d test/host ]; then
  background 'host root (mmdebstrap)' .test-results/host-root.log - npx tsx test/host/make-root.ts
fi
# The netns tests run the CLI, its engines and its daemon as a package installs them: the bundle
# of setup.sh's dist/ in a package layout (scripts/bundle-layout.mjs; what `npm i -g` and the
# .deb run). Its commands start with ≈ 18 % less CPU than dist/'s (two CLI-heavy files: 126 →
# 104 s of CPU), and the netns phases keep both cores busy. test/helpers/awg.ts reads
# AWGT_AWG_BIN; without it (a developer's run) the tests run dist/.
bundle_bin=$(node scripts/bundle-layout.mjs .test-results/bundle-layout) || {
  echo "scripts/bundle-layout.mjs failed: the netns tests run dist/"; bundle_bin=""; record 'bundle layout' 1; }
# the netns files that wait on events and time nothing two at a time (vitest.config.ts,
# NETNS_PAIRED), then the rest one at a time: what measures rates or our timing runs alone
s=0; AWGT_AWG_BIN=$bundle_bin AWG_NETNS_SET=paired npx vitest run --project netns --reporter=default --reporter=json --outputFile=.test-results/vitest-netns-paired.json || s=$?
record 'netns (two files at a time)' "$s" .test-results/vitest-netns-paired.json
phase 'netns tests, two files at a time'
# The benchmark smoke's suites that push no traffic, take no real-time priority (a task in a
# cgroup with the cpu controller may not: EPERM) and leave dist/ as it is: beside the netns files
# that run one at a time, once the unit runs have ended (the idle cgroup's CPU is theirs first:
# beside them, the Node 24 run took 1,821 s instead of 1,422 and a test hit its timeout; the
# paired files keep both cores busy, and the unit runs end ~10 minutes before the netns tests).
# They time nothing they assert (bench/run.ts); the rest of the smoke runs beside the host
# tests, below. A suite added to bench/run.ts runs there unless it is named here.
bench_idle=plan,apply,diff,daemon-api,positions,aead,handshake,startup,crypto-pool,sse,lists,lists-fetch,set-delta,nft-notify,crash-points
background 'bench smoke (beside the netns tests)' .test-results/bench-smoke-idle.log - \
  flock -x "$units_lock" npm run -s bench:smoke -- --only="$bench_idle" --part=idle
[ -n "$idle_cg" ] || { wait_background; phase 'bench smoke: the suites that push no traffic'; }
s=0; AWGT_AWG_BIN=$bundle_bin AWG_NETNS_SET=alone npx vitest run --project netns --reporter=default --reporter=json --outputFile=.test-results/vitest-netns.json || s=$?
record 'netns (one file at a time)' "$s" .test-results/vitest-netns.json
phase 'netns tests, one file at a time'
wait_background
phase "${idle_cg:+what ran beside the netns tests: }the rest"
if [ "$run_awg_before" = 0 ] && [ -e /run/awg ]; then
  echo "note: the tests left /run/awg (owner locks: $(ls /run/awg | tr '\n' ' ')); removed before the package smokes"
  rm -rf /run/awg
fi
# After the netns tests, three things at once, at normal priority (outside the idle cgroup: the
# bench smoke's suites and the soak's placer take real-time priorities, which a task in a cgroup
# with the cpu controller may not: EPERM):
# - the daemon's 5-minute soak under churn (bench/soak.bench.ts --ci; the hour-long one is a
#   bench). Its churn spends what CPU the others leave (alone, it keeps both cores busy), and
#   what it asserts holds beside them: an edit converged within 30 s (p99 ≈ 15 s beside them,
#   5 s alone with both cores busy: local CI runs 11–13), a matched program in its rule's cgroup 100 ms after it started (the placer runs
#   SCHED_FIFO), no failed RPC, no leaked packet, nothing grown;
# - the booted Debian hosts (vitest project 'host', once test/host exists), which wait on their
#   containers most of the time (≈ 0.65 cores busy on average); then the Debian package's smokes
#   (it installs, runs, removes and purges cleanly; its running daemon survives its upgrade with
#   the kill switch closed) and the README's demo, its setup done and its owner locks in a run
#   directory of its own (the package smokes refuse to run where /run/awg exists);
# - the rest of the bench smoke (it times nothing it asserts), then the pack smoke: the packed
#   tarball installs and runs (npm pack in a copy of the checkout → npm i -g → awg).
# The pack smoke and the Debian package's smokes install into the system and compare its files
# before and after: one at a time (flock on system_lock). Nothing here rebuilds dist/, which the
# soak, the bench smoke and the demo run from; the host tests run the Debian package built beside
# the netns tests.
system_lock=.test-results/system.lock
soak_ci() {
  if npm run -s soak:ci > .test-results/soak.log 2>&1; then
    awk '/^\[soak\] duration /{p=1} p' .test-results/soak.log  # its figures and verdict
    record soak 0
  else
    record soak 1; echo "soak failed:"; tail -60 .test-results/soak.log
  fi
}
soak_ci > .test-results/soak-verdict.log 2>&1 &
soak_pid=$!
bench_then_pack() {
  local s=0
  npm run -s bench:smoke -- --skip="soak,$bench_idle" --part=rest > .test-results/bench-smoke.log 2>&1 || s=$?
  [ "$s" = 0 ] || { echo "bench smoke failed:"; tail -60 .test-results/bench-smoke.log; }
  record 'bench smoke' "$s"
  s=0; flock -x "$system_lock" bash scripts/pack-smoke.sh || s=$?
  record 'pack smoke' "$s"
}
bench_then_pack > .test-results/bench-pack.log 2>&1 &
bench_pid=$!
if [ -d test/host ]; then
  s=0; AWG_HOST_DEB=$(deb || true) npx vitest run --project host --reporter=default --reporter=json --outputFile=.test-results/vitest-host.json || s=$?
  record host "$s" .test-results/vitest-host.json
  phase 'host tests (the soak and the bench smoke beside them)'
fi
package_smokes_and_demo() {
  local s deb run_dir
  if deb=$(deb); then
    s=0; flock -x "$system_lock" bash scripts/deb-smoke.sh "$deb" || s=$?
    record 'deb smoke' "$s"
    s=0; flock -x "$system_lock" bash scripts/deb-upgrade-smoke.sh "$deb" || s=$?
    record 'deb upgrade smoke' "$s"
  else
    echo "build-deb failed (.test-results/build-deb.log): neither Debian package smoke ran"; record 'deb smoke' 1; record 'deb upgrade smoke' 1
  fi
  run_dir=$(mktemp -d "${TMPDIR:-/tmp}/awg-demo-run.XXXXXX")
  s=0; AWG_SETUP_DONE=1 AWG_RUN_DIR="$run_dir" bash scripts/demo.sh > .test-results/demo.log 2>&1 || { s=1; echo "demo failed:"; tail -40 .test-results/demo.log; }
  rm -rf "$run_dir"
  record demo "$s"
}
package_smokes_and_demo
phase 'Debian package smokes, demo'
wait "$bench_pid" || true
echo "== .test-results/bench-pack.log"; cat .test-results/bench-pack.log
phase 'bench smoke and pack smoke: the rest'
wait "$soak_pid" || true
echo "== .test-results/soak-verdict.log"; cat .test-results/soak-verdict.log
phase 'soak: the rest'
echo "== wall time per phase (total $SECONDS s):"; printf '   %s\n' "${phases[@]}"
# the closing line, and the exit status that agrees with it
s=0; node scripts/summarize-tests.mjs --checks "$checks" || s=$?
exit "$s"
