#!/usr/bin/env bash
# Install everything awg's build, tests and demo need on a Debian machine (run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(iproute2 nftables wireguard-tools wireguard-go iperf3 tcpdump procps util-linux iputils-ping curl netcat-openbsd psmisc openssl microsocks tinyproxy dante-server musl-tools)
missing=()
for p in "${PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The proxy servers are test upstreams started inside namespaces: keep the packages from
  # starting system-wide services on install.
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; created_policy=1; fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$created_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run -s build
