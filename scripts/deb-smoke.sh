#!/usr/bin/env bash
# The Debian package as users get it (scripts/build-deb.sh): build it (or take the one given:
# `bash scripts/deb-smoke.sh [awg_<v>_<arch>.deb]`), install it with dpkg,
# use it, remove it, purge it — and the host is as before. dpkg and the package's maintainer
# scripts run inside a fresh network namespace (nsenter), so the tunnel the test applies and
# the `awg down` of the removal act there, never on this machine's network. Checked:
# - the package holds the runtime, the app, the units, completions, man page, schemas, and no
#   sources, tests, or node_modules packages the bundle holds;
# - `awg` runs on the runtime it carries (not the machine's node), validates, applies a tunnel;
# - `dpkg -r` leaves no awg link, route table, nft table or engine process, and no file of the
#   package; `dpkg -P` removes the state directory; the file tree (outside dpkg's and apt's own
#   records) is the one before install.
# Refuses to run where an awg package or awg state (/var/lib/awg, /run/awg) is present. Cleans
# up after itself.
set -euo pipefail
[ -z "${1:-}" ] || set -- "$(readlink -f "$1")" # a package built already (else this builds one)
cd "$(dirname "$0")/.."
fail() {
  echo "deb-smoke: $*" >&2
  exit 1
}
dpkg -s awg >/dev/null 2>&1 && fail "an awg package is installed on this machine; not touching it"
for d in /var/lib/awg /run/awg; do [ -e "$d" ] && fail "$d exists (awg state of this machine); the purge would delete it"; done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/awg-deb-smoke.XXXXXX")
ns="awgb-deb-$$"
cleanup() {
  if dpkg -s awg >/dev/null 2>&1; then nsenter --net="/var/run/netns/$ns" dpkg -P awg >/dev/null 2>&1 || true; fi
  ip netns del "$ns" 2>/dev/null || true
  # a compile cache an installed awg of this machine made was moved aside for the purge
  if [ -e "$tmp/cache-aside" ]; then rm -rf /var/cache/awg; mv "$tmp/cache-aside" /var/cache/awg; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
# /var/cache/awg holds only V8's compile cache (disposable, unlike the state above); the purge
# removes it and the checks below expect it made afresh: one already here goes aside meanwhile
if [ -e /var/cache/awg ]; then mv /var/cache/awg "$tmp/cache-aside"; fi
in_ns() { nsenter --net="/var/run/netns/$ns" "$@"; }

deb=${1:-}
if [ -z "$deb" ]; then deb=$(bash scripts/build-deb.sh "$tmp/out" | tail -1); fi
[ -f "$deb" ] || fail "no package built"
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's#^\./#/#' | sort >"$tmp/contents"
for f in /usr/bin/awg /usr/lib/awg/node /usr/lib/awg/app/bin/awg.js /usr/lib/awg/app/dist/bundle/main.js \
  /usr/lib/awg/app/proto/awg.proto /usr/lib/awg/app/schema/config.schema.json /usr/lib/awg/app/node_modules/koffi/package.json \
  /usr/lib/systemd/system/awg.service /usr/lib/systemd/system/awg-killswitch.service \
  /usr/lib/NetworkManager/conf.d/awg-unmanaged.conf /etc/awg/ \
  /usr/share/bash-completion/completions/awg /usr/share/zsh/vendor-completions/_awg \
  /usr/share/fish/vendor_completions.d/awg.fish /usr/share/man/man1/awg.1.gz; do
  grep -qxF "$f" "$tmp/contents" || fail "the package lacks $f"
done
# no dev dependencies, and none of what the bundle holds (scripts/prune-bundled.ts)
unwanted=$(grep -E '^/usr/lib/awg/app/(src|test|bench|scripts)/|^/usr/lib/awg/app/dist/.*\.map$|/node_modules/(vitest|typescript|eslint|tsx|fast-check)/|/node_modules/(zod|yaml|xstate|commander|@types/node)/' "$tmp/contents" || true)
[ -z "$unwanted" ] || fail "the package must not contain: $(echo "$unwanted" | head -5)"
dpkg-deb -f "$deb" Depends | grep nftables >/dev/null || fail "Depends lacks nftables"
# the shipped unit follows the well-known config (and waits for it). (No `grep -q` after a pipe
# in these scripts: it exits at the first match, the writer dies of SIGPIPE and pipefail fails
# the pipeline — this check failed 7 times in 20 that way.)
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/lib/systemd/system/awg.service | grep '^ExecStart=.* daemon --config /etc/awg/config.yaml$' >/dev/null ||
  fail "the shipped awg.service does not follow /etc/awg/config.yaml"

# the file tree outside dpkg's and apt's own records, before and after
snapshot() {
  { find /usr /etc /var/lib /opt /run/awg -xdev \( -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/lib/systemd \
    -o -path /etc/ld.so.cache \) -prune -o -print 2>/dev/null || true; } | sort
}
snapshot >"$tmp/before"

ip netns add "$ns"
in_ns ip link set lo up
in_ns ip link add awgb-d0 type veth peer name awgb-d1
in_ns ip addr add 10.200.77.1/24 dev awgb-d0
in_ns ip link set awgb-d0 up
in_ns ip link set awgb-d1 up
in_ns dpkg -i "$deb" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log" >&2; fail "dpkg -i failed"; }

# the runtime the package carries, whatever node the machine has
plain="env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin"
want=$(node -p "require('./package.json').version")
[ "$($plain awg --version)" = "$want" ] || fail "awg --version is not $want"
node_used=$($plain awg version --json | node -p "JSON.parse(require('fs').readFileSync(0, 'utf8')).node")
[ "$node_used" = "$(/usr/lib/awg/node --version)" ] || fail "awg runs on $node_used, not the runtime it carries"
$plain awg validate -f /usr/lib/awg/app/examples/minimal.yaml --skip-secrets >/dev/null || fail "the shipped example does not validate"
# `version --check` knows it came as a Debian package and asks apt's local lists (no network)
kind=$($plain awg version --check --json 2>/dev/null | node -p "JSON.parse(require('fs').readFileSync(0, 'utf8')).installedWith" || true)
[ "$kind" = deb ] || fail "awg version --check does not see a Debian install (got '$kind')"
# the bundled CLI keeps V8's compile cache where only root can write (bin/awg.js)
[ "$(stat -c '%U %a' /var/cache/awg/compile 2>/dev/null)" = "root 700" ] || fail "no root-only compile cache in /var/cache/awg/compile"

# a tunnel, applied in the namespace (its endpoint behind a veth pair inside it)
key=$(wg genkey)
peer=$(wg genkey | wg pubkey)
cat >"$tmp/config.yaml" <<EOC
version: 1
tunnels:
  debsmoke:
    type: wireguard
    privateKey: "$key"
    addresses: [10.200.78.1/24]
    peers:
      - publicKey: "$peer"
        endpoint: 10.200.77.2:51820
        allowedIPs: [10.200.78.0/24]
EOC
chmod 600 "$tmp/config.yaml"
in_ns $plain awg apply -f "$tmp/config.yaml" >"$tmp/apply.log" 2>&1 || { cat "$tmp/apply.log" >&2; fail "awg apply failed"; }
in_ns ip -br link | grep '^awg-debsmoke' >/dev/null || fail "apply created no link"

in_ns dpkg -r awg >"$tmp/remove.log" 2>&1 || { cat "$tmp/remove.log" >&2; fail "dpkg -r failed"; }
left=$(in_ns ip -br link | grep '^awg-' || true)
[ -z "$left" ] || fail "links left after dpkg -r: $left"
in_ns nft list tables 2>/dev/null | grep 'awg' >/dev/null && fail "an nft table left after dpkg -r"
pgrep -f '/usr/lib/awg/app/bin/awg.js' >/dev/null && fail "awg processes left after dpkg -r"
[ -e /usr/bin/awg ] || [ -e /usr/lib/awg ] && fail "package files left after dpkg -r"
in_ns dpkg -P awg >"$tmp/purge.log" 2>&1 || { cat "$tmp/purge.log" >&2; fail "dpkg -P failed"; }
for d in /var/lib/awg /var/cache/awg; do [ -e "$d" ] && fail "dpkg -P left $d"; done
snapshot >"$tmp/after"
if ! diff -u "$tmp/before" "$tmp/after" >"$tmp/diff"; then cat "$tmp/diff" >&2; fail "the file tree differs after purge"; fi
echo "deb-smoke: $(basename "$deb") ($(du -h "$deb" | cut -f1)) installs, runs on $node_used, applies a tunnel, removes and purges cleanly"
