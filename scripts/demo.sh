#!/usr/bin/env bash
# The main job, end to end, on one machine: two network namespaces joined by a veth pair,
# an awg peer (our own engine) in one, `awg apply` of a WireGuard client config in the
# other, and HTTP + ping through the tunnel. Everything is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root (network namespaces)" >&2; exit 1; }
bash scripts/setup.sh

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
  in_ns "$CLIENT" $AWG down --state-dir "$WORK/client" >/dev/null 2>&1
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

step "client: awg diff (exit code 2 = changes)"
set +e; in_ns "$CLIENT" $AWG diff -f "$WORK/client.yaml" --state-dir "$WORK/client"; echo "exit code: $?"; set -e

step "client: awg apply"
in_ns "$CLIENT" $AWG apply -f "$WORK/client.yaml" --state-dir "$WORK/client"

step "client: a second apply changes nothing"
in_ns "$CLIENT" $AWG apply -f "$WORK/client.yaml" --state-dir "$WORK/client"

step "traffic through the tunnel"
in_ns "$CLIENT" ping -c 3 -W 2 10.99.77.2
for i in 1 2 3 4 5; do in_ns "$CLIENT" curl -s --max-time 3 http://10.99.77.2:8080/ && break; sleep 0.5; done

step "client: awg status"
in_ns "$CLIENT" $AWG status --state-dir "$WORK/client"

step "client: awg down (the namespace returns to what it was)"
in_ns "$CLIENT" $AWG down --state-dir "$WORK/client"
in_ns "$CLIENT" ip -br link
echo; echo "demo: OK"
