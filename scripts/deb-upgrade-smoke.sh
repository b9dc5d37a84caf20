#!/usr/bin/env bash
# The daemon survives a package upgrade: `bash scripts/deb-upgrade-smoke.sh [awg_<v>_<arch>.deb]`
# (without an argument it builds one). A client namespace gets the package, a WireGuard tunnel
# with the kill switch on to a wireguard-go peer in a second namespace, and the daemon as the
# shipped unit runs it; pings cross the tunnel every 100 ms while the same package, repacked as
# the next version, is installed over it (dpkg -i). Checked:
# - the new package's postinst restarts the running daemon (try-restart) and only then;
# - pings are lost only between the restart's stop and the new daemon carrying traffic again
#   (one contiguous run), and the tunnel works afterwards on the new version;
# - nothing but WireGuard to the peer's endpoint leaves the client's underlay during the whole
#   upgrade (tcpdump): the kill switch stays closed while no daemon runs;
# - `dpkg -r` stops the daemon and leaves no link, nft table or process; `dpkg -P` purges.
# There is no systemd as PID 1 here: in a private mount namespace /run/systemd/system exists
# (a tmpfs) and a stand-in `systemctl` first in PATH runs awg.service's ExecStart, from the
# unit file the package installed, for the verbs the maintainer scripts use (daemon-reload,
# try-restart, start, stop, disable --now), the way systemd would (SIGTERM to the main process,
# then SIGKILL to what is left; StateDirectory/RuntimeDirectory created). Real systemd's unit
# handling (sandboxing, restart policy) is not exercised.
# Refuses to run where an awg package or awg state is present; cleans up after itself.
set -euo pipefail
self=$(readlink -f "$0")
[ -z "${1:-}" ] || set -- "$(readlink -f "$1")"
cd "$(dirname "$self")/.."
fail() {
  echo "deb-upgrade-smoke: $*" >&2
  exit 1
}
if [ -z "${AWG_UPGRADE_MOUNTNS:-}" ]; then
  dpkg -s awg >/dev/null 2>&1 && fail "an awg package is installed on this machine; not touching it"
  for d in /var/lib/awg /run/awg; do [ -e "$d" ] && fail "$d exists (awg state of this machine)"; done
  [ -d /run/systemd ] || fail "no /run/systemd to cover with a tmpfs"
  # everything below runs in a private mount namespace (the tmpfs on /run/systemd stays in it)
  exec env AWG_UPGRADE_MOUNTNS=1 unshare -m --propagation private bash "$self" "$@"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/awg-deb-upgrade.XXXXXX")
nsC="awgb-upc-$$"
nsP="awgb-upp-$$"
export AWG_SHIM_LOG=$tmp/systemctl.log AWG_SHIM_PID=$tmp/daemon.pid AWG_SHIM_OUT=$tmp/daemon.log
# the test's cgroup subtree (the tests' sweep removes awgt-*), for the daemon and prerm's `awg down`
export AWG_CGROUP_ROOT="awgt-upgrade-$$"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -z "${cfg:-}" ] || rm -f "$cfg"
  if [ -s "$AWG_SHIM_PID" ]; then pkill -KILL -s "$(cat "$AWG_SHIM_PID")" 2>/dev/null || true; fi
  if dpkg -s awg >/dev/null 2>&1; then nsenter --net="/var/run/netns/$nsC" env PATH="$tmp/shim:$PATH" dpkg -P awg >/dev/null 2>&1 || true; fi
  ip netns pids "$nsP" 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del "$nsC" 2>/dev/null || true
  ip netns del "$nsP" 2>/dev/null || true
  # a compile cache an installed awg of this machine made was moved aside for the purge
  if [ -e "$tmp/cache-aside" ]; then rm -rf /var/cache/awg; mv "$tmp/cache-aside" /var/cache/awg; fi
  if [ -n "${AWG_UPGRADE_KEEP:-}" ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
# /var/cache/awg holds only V8's compile cache (disposable); the purge removes it and is checked
# to: one already here goes aside meanwhile
if [ -e /var/cache/awg ]; then mv /var/cache/awg "$tmp/cache-aside"; fi
in_c() { nsenter --net="/var/run/netns/$nsC" "$@"; }
in_p() { nsenter --net="/var/run/netns/$nsP" "$@"; }

deb=${1:-}
if [ -z "$deb" ]; then deb=$(bash scripts/build-deb.sh "$tmp/out" | tail -1); fi
[ -f "$deb" ] || fail "no package: $deb"

# the next version: the same files, package.json and the control file say 0.1.0+up1 style
v1=$(dpkg-deb -f "$deb" Version)
v2="$v1+up1"
dpkg-deb -R "$deb" "$tmp/v2"
sed -i "s/^Version: .*/Version: $v2/" "$tmp/v2/DEBIAN/control"
sed -i "s/\"version\": \"$v1\"/\"version\": \"$v2\"/" "$tmp/v2/usr/lib/awg/app/package.json"
dpkg-deb -Zgzip -z1 -b "$tmp/v2" "$tmp/awg_${v2}.deb" >/dev/null
rm -rf "$tmp/v2"

# a stand-in for systemctl (see the header)
mkdir -p "$tmp/shim"
cat >"$tmp/shim/systemctl" <<'EOF'
#!/bin/sh
echo "$(date +%s.%N) systemctl $*" >>"$AWG_SHIM_LOG"
unit=/usr/lib/systemd/system/awg.service
alive() { st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null); [ -n "$st" ] && [ "$st" != Z ]; }
start() {
  mkdir -p -m 0755 /run/awg
  mkdir -p -m 0700 /var/lib/awg
  cmd=$(sed -n 's/^ExecStart=//p' "$unit")
  [ -n "$cmd" ] || { echo "no ExecStart in $unit" >&2; exit 1; }
  NO_COLOR=1 setsid sh -c "umask 077; exec $cmd" >>"$AWG_SHIM_OUT" 2>&1 </dev/null &
  echo $! >"$AWG_SHIM_PID"
  echo "$(date +%s.%N) started $!" >>"$AWG_SHIM_LOG"
}
stop() {
  [ -s "$AWG_SHIM_PID" ] || return 0
  pid=$(cat "$AWG_SHIM_PID")
  kill -TERM "$pid" 2>/dev/null || true
  i=0 # (an exited daemon is a zombie until PID 1 reaps it, not a running one)
  while alive "$pid" && [ $i -lt 300 ]; do sleep 0.05; i=$((i + 1)); done
  pkill -KILL -s "$pid" 2>/dev/null || true
  rm -f "$AWG_SHIM_PID"
  echo "$(date +%s.%N) stopped $pid" >>"$AWG_SHIM_LOG"
}
running() { [ -s "$AWG_SHIM_PID" ] && alive "$(cat "$AWG_SHIM_PID")"; }
case "$1" in
  daemon-reload) ;;
  start) running || start ;;
  stop) stop ;;
  try-restart) if running; then stop; start; fi ;;
  disable) [ "$2" = --now ] && stop ;;
  *) echo "systemctl stand-in: unsupported: $*" >&2; exit 1 ;;
esac
exit 0
EOF
chmod 0755 "$tmp/shim/systemctl"
mount -t tmpfs -o size=1m,mode=0755 tmpfs /run/systemd
mkdir /run/systemd/system
export PATH="$tmp/shim:$PATH"

# client C (the package, its daemon) and peer P (wireguard-go) on a veth; C's default route
# points at P, so anything the kill switch let through would show on the underlay
ip netns add "$nsC"
ip netns add "$nsP"
in_c ip link set lo up
in_p ip link set lo up
in_c ip link add awgb-u0 type veth peer name awgb-u1
in_c ip link set awgb-u1 netns "$nsP"
in_c sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
in_p sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
in_c ip addr add 10.200.87.1/24 dev awgb-u0
in_p ip addr add 10.200.87.2/24 dev awgb-u1
in_c ip link set awgb-u0 up
in_p ip link set awgb-u1 up
in_c ip route add default via 10.200.87.2
keyC=$(wg genkey)
keyP=$(wg genkey)
echo "$keyP" >"$tmp/p.key"
in_p env WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 wireguard-go awgb-wgp >"$tmp/wg-go.log" 2>&1
in_p wg set awgb-wgp private-key "$tmp/p.key" listen-port 51820 peer "$(echo "$keyC" | wg pubkey)" allowed-ips 10.200.88.1/32
in_p ip addr add 10.200.88.2/24 dev awgb-wgp
in_p ip link set awgb-wgp up

in_c dpkg -i "$deb" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log" >&2; fail "dpkg -i $v1 failed"; }
grep -q 'try-restart' "$AWG_SHIM_LOG" && fail "a fresh install restarted the daemon"
# the config where the shipped unit follows it (awg daemon --config /etc/awg/config.yaml; the
# package made /etc/awg); removed before dpkg -r and in cleanup (/etc/awg then goes with the purge)
cfg=/etc/awg/config.yaml
cat >"$cfg" <<EOC
version: 1
tunnels:
  upgrade:
    type: wireguard
    privateKey: "$keyC"
    addresses: [10.200.88.1/24]
    peers:
      - publicKey: "$(wg pubkey <"$tmp/p.key")"
        endpoint: 10.200.87.2:51820
        allowedIPs: [10.200.88.0/24]
killSwitch: { enabled: true }
EOC
chmod 600 "$cfg"
in_c awg apply -f "$cfg" >"$tmp/apply.log" 2>&1 || { cat "$tmp/apply.log" >&2; fail "awg apply failed"; }
in_c systemctl start awg.service
# ready: the daemon's first run is over (it has adopted the engine `awg apply` started: a
# short gap of its own) and the tunnel carries pings
ok=
for _ in $(seq 100); do
  if grep -q '"type":"reconcile-finished"' "$AWG_SHIM_OUT" && in_c ping -c 1 -W 1 10.200.88.2 >/dev/null 2>&1; then ok=1; break; fi
  sleep 0.2
done
[ -n "$ok" ] || { cat "$AWG_SHIM_OUT" >&2; fail "the daemon did not carry pings before the upgrade"; }
pid1=$(cat "$AWG_SHIM_PID")

# the underlay, minus WireGuard between the two endpoints: must stay empty
# (nsenter, not the in_c function, in the background: $! must be the process itself)
nsenter --net="/var/run/netns/$nsC" tcpdump -U -n -i awgb-u0 -w "$tmp/leak.pcap" "not arp and not (udp and host 10.200.87.2 and port 51820)" >"$tmp/tcpdump.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q 'listening on' "$tmp/tcpdump.log" && break; sleep 0.1; done
grep -q 'listening on' "$tmp/tcpdump.log" || fail "tcpdump did not start"
nsenter --net="/var/run/netns/$nsC" ping -D -i 0.1 -W 1 10.200.88.2 >"$tmp/ping.log" 2>&1 &
ping_pid=$!
pids+=("$ping_pid")
sleep 1

in_c dpkg -i "$tmp/awg_${v2}.deb" >"$tmp/upgrade.log" 2>&1 || { cat "$tmp/upgrade.log" >&2; fail "dpkg -i $v2 (the upgrade) failed"; }
t_stop=$(awk '/systemctl try-restart awg.service/ { print $1; exit }' "$AWG_SHIM_LOG")
[ -n "$t_stop" ] || { cat "$AWG_SHIM_LOG" >&2; fail "the upgrade did not restart the daemon"; }
pid2=$(cat "$AWG_SHIM_PID" 2>/dev/null || true)
[ -n "$pid2" ] && [ "$pid2" != "$pid1" ] || fail "no new daemon after the upgrade"
t_stopped=$(awk -v t="$t_stop" '$2 == "stopped" && $1 > t { print $1; exit }' "$AWG_SHIM_LOG")
t_start=$(awk -v t="$t_stop" '$2 == "started" && $1 > t { print $1; exit }' "$AWG_SHIM_LOG")
back=
for _ in $(seq 300); do
  back=$(awk -v t="$t_start" -F'[][]' '/bytes from/ && $2 > t { print $2; exit }' "$tmp/ping.log")
  [ -n "$back" ] && break
  sleep 0.1
done
[ -n "$back" ] || { tail -20 "$AWG_SHIM_OUT" >&2; fail "pings did not come back within 30 s of the restart"; }
sleep 1
kill -INT "$ping_pid"
for _ in $(seq 50); do kill -0 "$ping_pid" 2>/dev/null || break; sleep 0.1; done
kill -KILL "$ping_pid" 2>/dev/null || true
sleep 0.5
kill "${pids[0]}" 2>/dev/null || true
for _ in $(seq 50); do kill -0 "${pids[0]}" 2>/dev/null || break; sleep 0.1; done
pids=()

# the pings: every lost one in a single run, sent after the restart began and before it ended
report=$(awk -v t_stop="$t_stop" -v back="$back" -F'[][]' '
  /bytes from/ { match($0, /icmp_seq=[0-9]+/); got[substr($0, RSTART + 9, RLENGTH - 9) + 0] = $2 }
  / packets transmitted/ { split($0, a, " "); sent = a[1] + 0 }
  END {
    lost = 0; runs = 0; last_ok = 0; bad = ""
    for (s = 1; s < sent; s++) { # the last one may still have been in flight at the interrupt
      if (s in got) { last_ok = got[s]; continue }
      lost++
      if (s == 1 || (s - 1) in got) { runs++; if (last_ok < t_stop - 0.3) bad = bad " " s }
    }
    printf "%d %d %d %.2f%s\n", sent, lost, runs, back - t_stop, bad
  }' "$tmp/ping.log")
read -r sent lost runs window bad <<<"$report"
[ "$sent" -gt 20 ] || { cat "$tmp/ping.log" >&2; fail "only $sent pings sent"; }
[ "$runs" -le 1 ] || { cat "$tmp/ping.log" "$AWG_SHIM_LOG" >&2; fail "pings were lost in $runs separate runs (only the restart may lose any)"; }
[ -z "$bad" ] || { cat "$tmp/ping.log" >&2; fail "pings lost before the restart began:$bad"; }
leaks=$(tcpdump -n -r "$tmp/leak.pcap" 2>/dev/null | head -5)
[ -z "$leaks" ] || fail "the underlay carried traffic besides WireGuard during the upgrade: $leaks"
[ "$(in_c awg --version)" = "$v2" ] || fail "awg --version is not $v2 after the upgrade"
in_c nft list table inet awg >/dev/null 2>&1 || fail "no kill switch table after the upgrade"
in_c ping -c 3 -i 0.2 -W 1 10.200.88.2 >/dev/null || fail "the tunnel does not carry pings after the upgrade"

rm -f "$cfg"
in_c dpkg -r awg >"$tmp/remove.log" 2>&1 || { cat "$tmp/remove.log" >&2; fail "dpkg -r failed"; }
grep -q 'systemctl disable --now' "$AWG_SHIM_LOG" || fail "dpkg -r did not stop the daemon"
[ -z "$(in_c ip -br link | grep '^awg-' || true)" ] || fail "an awg link left after dpkg -r"
in_c nft list tables 2>/dev/null | grep awg >/dev/null && fail "an nft table left after dpkg -r"
pgrep -f '/usr/lib/awg/app/bin/awg.js' >/dev/null && fail "awg processes left after dpkg -r"
in_c dpkg -P awg >"$tmp/purge.log" 2>&1 || { cat "$tmp/purge.log" >&2; fail "dpkg -P failed"; }
for d in /var/lib/awg /var/cache/awg; do [ -e "$d" ] && fail "dpkg -P left $d"; done
timing=$(awk -v a="$t_stop" -v b="$t_stopped" -v c="$t_start" -v d="$back" 'BEGIN { printf "stop %.2f s, new daemon to first reply %.2f s", b - a, d - c }')
echo "deb-upgrade-smoke: $v1 → $v2 under a running daemon: $lost of $sent pings (100 ms apart) lost, in one run within the restart ($window s from try-restart to the first reply: $timing), nothing but WireGuard on the underlay"
