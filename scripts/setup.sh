#!/usr/bin/env bash
# Install everything awg's build, tests and demo need on a Debian machine (run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(iproute2 nftables wireguard-tools wireguard-go iperf3 tcpdump procps util-linux iputils-ping curl netcat-openbsd psmisc)
missing=()
for p in "${PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run -s build
