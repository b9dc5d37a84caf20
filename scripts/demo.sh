#!/usr/bin/env bash
# The main job, end to end, on one machine: two network namespaces joined by a veth pair,
# an awg peer (our own engine) in one, `awg apply` of a WireGuard client config in the
# other, and HTTP + ping through the tunnel. Everything is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root (network namespaces)" >&2; exit 1; }
# AWG_SETUP_DONE=1: scripts/test.sh ran setup.sh already (and runs the demo beside processes
# that run from dist/, which setup.sh's build would rewrite under them)
[ "${AWG_SETUP_DONE:-}" = 1 ] || bash scripts/setup.sh

WORK=$(mktemp -d /tmp/awg-demo.XXXXXX)
CLIENT=awgdemo-client
PEER=awgdemo-peer
export AWG_CGROUP_ROOT=awgdemo
AWG="node $PWD/bin/awg.js"
# UAPI sockets live in the file system, which namespaces share: one directory per instance
in_ns() { local ns=$1; shift; AWG_UAPI_DIR="$WORK/uapi-$ns" nsenter --net=/var/run/netns/"$ns" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
  set +e
  [ -n "${DAEMON_PID:-}" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
  in_ns "$CLIENT" $AWG down --direct --state-dir "$WORK/client" >/dev/null 2>&1
  in_ns "$PEER" $AWG down --state-dir "$WORK/peer" >/dev/null 2>&1
  for ns in "$CLIENT" "$PEER"; do
    pids=$(ip netns pids "$ns" 2>/dev/null); [ -n "$pids" ] && kill $pids 2>/dev/null
    ip netns del "$ns" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

step "network: two namespaces and a veth (10.200.77.0/24), nothing else"
for ns in "$CLIENT" "$PEER"; do ip netns del "$ns" 2>/dev/null || true; ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add awgdemo0 netns "$CLIENT" type veth peer name awgdemo1 netns "$PEER"
ip -n "$CLIENT" addr add 10.200.77.1/24 dev awgdemo0 && ip -n "$CLIENT" link set awgdemo0 up
ip -n "$PEER" addr add 10.200.77.2/24 dev awgdemo1 && ip -n "$PEER" link set awgdemo1 up

step "keys (demo only)"
for n in client peer; do
  (umask 077; $AWG genkey > "$WORK/$n.key")
  $AWG pubkey < "$WORK/$n.key" > "$WORK/$n.pub"
done
CLIENT_PUB=$(cat "$WORK/client.pub"); PEER_PUB=$(cat "$WORK/peer.pub")

cat > "$WORK/peer.yaml" <<YAML
version: 1
tunnels:
  demo:
    type: wireguard
    privateKey: {file: peer.key}
    addresses: [10.99.77.2/24]
    listenPort: 51820
    peers:
      - publicKey: $CLIENT_PUB
        allowedIPs: [10.99.77.1/32]
YAML
cat > "$WORK/client.yaml" <<YAML
# yaml-language-server: \$schema=$PWD/schema/config.schema.json
version: 1
tunnels:
  demo:
    type: wireguard
    privateKey: {file: client.key}
    addresses: [10.99.77.1/24]
    peers:
      - publicKey: $PEER_PUB
        endpoint: 10.200.77.2:51820
        allowedIPs: [10.99.77.0/24]
        persistentKeepalive: 10
YAML

step "peer namespace: awg apply (the embedded engine is the peer)"
in_ns "$PEER" $AWG apply -f "$WORK/peer.yaml" --state-dir "$WORK/peer"
in_ns "$PEER" node -e "
require('node:http').createServer((q, r) => r.end('hello from the peer; you came from ' + q.socket.remoteAddress + '\n')).listen(8080, '10.99.77.2');
" >/dev/null 2>&1 &

step "client: awg validate"
$AWG validate -f "$WORK/client.yaml"

step "client namespace: start the awg daemon (API on a private socket)"
export AWG_SOCKET="$WORK/client.sock"
in_ns "$CLIENT" $AWG daemon --state-dir "$WORK/client" --socket "$AWG_SOCKET" >"$WORK/daemon.log" 2>&1 &
DAEMON_PID=$!
for i in $(seq 1 100); do [ -S "$AWG_SOCKET" ] && break; sleep 0.1; done
[ -S "$AWG_SOCKET" ] || { echo "demo: the daemon did not start"; cat "$WORK/daemon.log"; exit 1; }

step "client: awg diff through the daemon (exit code 2 = changes)"
set +e; in_ns "$CLIENT" $AWG diff -f "$WORK/client.yaml"; echo "exit code: $?"; set -e

step "client: awg apply through the daemon"
in_ns "$CLIENT" $AWG apply -f "$WORK/client.yaml"

step "client: a second apply changes nothing"
in_ns "$CLIENT" $AWG apply -f "$WORK/client.yaml"

step "traffic through the tunnel"
in_ns "$CLIENT" ping -c 3 -W 2 10.99.77.2
for i in 1 2 3 4 5; do in_ns "$CLIENT" curl -s --max-time 3 http://10.99.77.2:8080/ && break; sleep 0.5; done

step "client: awg status (from the daemon: live handshake and counters)"
in_ns "$CLIENT" $AWG status

step "client: awg down through the daemon (the namespace returns to what it was)"
in_ns "$CLIENT" $AWG down
kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true; DAEMON_PID=
in_ns "$CLIENT" ip -br link
echo; echo "demo: OK"
