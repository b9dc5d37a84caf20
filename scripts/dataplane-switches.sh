#!/usr/bin/env bash
# The data plane's tests with each fast path switched off (src/dataplane/README.md, "Every fast
# path has an off switch"): interop with wireguard-go (handshakes, 16 MiB transfers, rekey,
# roaming, keepalive, the reply from the reached address), AmneziaWG obfuscation on the wire,
# TUN offloads, marks, drift, the kill switch, the crypto pool, the idle release, the handshake boost and the UDP senders, once per switch (and once with each opt-in sender on). Not part of
# CI (about 1.5 min per switch on 2 cores): `npm run test:switches`, as root; the last run's
# results are in bench/RESULTS.md. Exits non-zero when any run failed.
#
#   scripts/dataplane-switches.sh                 every switch
#   scripts/dataplane-switches.sh AWG_UDP_GSO=0   only the ones named
set -uo pipefail
cd "$(dirname "$0")/.."
files=(
  test/netns/interop-wireguard-go.test.ts
  test/netns/awg-awg-obfuscation.test.ts
  test/netns/tun-offload.test.ts
  test/netns/udpbatch-mark.test.ts
  test/netns/e2e-engine-drift.test.ts
  test/netns/daemon-killswitch.test.ts
  test/netns/dataplane-crypto-pool.test.ts
  test/netns/dataplane-idle-release.test.ts
  test/netns/dataplane-boost.test.ts
  test/netns/dataplane-send-thread.test.ts
)
switches=("$@")
if [ ${#switches[@]} -eq 0 ]; then
  switches=(
    AWG_CRYPTO_THREADS=0 AWG_TUN_OFFLOAD=0 AWG_TUN_OFFLOAD=gro AWG_UDP_NATIVE=0
    "AWG_UDP_NATIVE=0 AWG_UDP_BATCH=0" AWG_UDP_GSO=0 AWG_UDP_GRO=0 AWG_AEAD=node AWG_X25519=node
    AWG_BLAKE2=node AWG_BUFFER_REUSE=0 AWG_HANDSHAKE_PREPARE=0 AWG_WARMUP=0 AWG_IDLE_RELEASE=0
    AWG_HANDSHAKE_BOOST=0 AWG_ENGINE_SLICE_US=0 AWG_ENGINE_NICE=0 AWG_UDP_SEND_THREAD=pool AWG_UDP_SEND_THREAD=auto
    AWG_UDP_SEND_THREAD=1
  )
fi
failed=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for s in "${switches[@]}"; do
  start=$(date +%s)
  # shellcheck disable=SC2086 # each entry is one or more NAME=value words
  if env $s CI="${CI:-}" npx vitest run --project netns "${files[@]}" > "$log" 2>&1; then r=passed; else r=FAILED; failed+=("$s"); fi
  tests=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^ +Tests ' | tr -s ' ' | sed 's/^ //')
  echo "$s: $r ($tests; $(( $(date +%s) - start )) s)"
  [ "$r" = passed ] || tail -40 "$log"
done
if [ ${#failed[@]} -gt 0 ]; then echo "failed with: ${failed[*]}" >&2; exit 1; fi
