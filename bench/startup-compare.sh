#!/usr/bin/env bash
# Start-up of the CLI, this checkout against a base commit, alternating in one loop:
#   bash bench/startup-compare.sh <base-commit> [runs]
# Builds the base in a temporary git worktree (sharing node_modules), then times
# `awg --version`, `awg validate -f examples/minimal.yaml` and `awg diff -f examples/minimal.yaml`
# (the diff runs in a fresh network namespace with an empty state dir: it plans from nothing,
# reads the namespace, changes nothing) for each build in turn; prints the medians in ms.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: startup-compare.sh <base-commit> [runs]}
runs=${2:-11}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/awg-startup.XXXXXX")
ns="awgb-start-$$"
cleanup() { ip netns del "$ns" 2>/dev/null || true; git worktree remove --force "$tmp/base" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
git worktree add -q --detach "$tmp/base" "$base"
ln -s "$PWD/node_modules" "$tmp/base/node_modules"
(cd "$tmp/base" && npx tsc -p tsconfig.build.json) && npm run -s build
ip netns add "$ns"
ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s%N); echo $(((e - s) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for build in base new; do for c in version validate diff; do : >"$tmp/$build.$c"; done; done
for ((i = 0; i < runs; i++)); do
  for build in base new; do
    bin="$PWD/bin/awg.js"; [ "$build" = base ] && bin="$tmp/base/bin/awg.js"
    st=$(mktemp -d "$tmp/state.XXXXXX")
    ms node "$bin" --version >>"$tmp/$build.version"
    ms node "$bin" validate -f examples/minimal.yaml >>"$tmp/$build.validate"
    ms nsenter --net=/var/run/netns/"$ns" node "$bin" diff -f examples/minimal.yaml --state-dir "$st" >>"$tmp/$build.diff"
  done
done
floor=$(for ((i = 0; i < runs; i++)); do ms node -e 0; done | median)
echo "runs: $runs (alternating), load: $(cut -d' ' -f1-3 /proc/loadavg), node -e 0: ${floor} ms"
printf '%-10s %10s %10s\n' command "base" "this"
for c in version validate diff; do
  printf '%-10s %8s ms %8s ms\n' "$c" "$(median <"$tmp/base.$c")" "$(median <"$tmp/new.$c")"
done
