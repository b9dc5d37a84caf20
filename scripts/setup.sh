#!/usr/bin/env bash
# Install everything awg's build, tests and demo need on a Debian machine (run as root).
# chromium is the browser test/netns/ui.test.ts drives (playwright-core, no browser download).
# systemd provides systemd-analyze (the hardened unit's checks in test/unit/resources/service);
# the tests never start it. binutils provides strip (scripts/build-deb.sh strips the runtime).
# dnsmasq-base (the binary only, no service) is the real resolver of test/netns/domain-rules.test.ts
# and the upstream of the DNS latency in bench/lists-scale.ts.
# dpkg-dev (dpkg-scanpackages) and gnupg build and sign the apt repository of scripts/apt-repo.sh.
# mmdebstrap and systemd-container (systemd-nspawn) make and boot the Debian 12 hosts of
# test/host/; systemd-container is pinned to the machine's systemd version (a newer one would
# upgrade the machine's systemd with it).
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(iproute2 nftables dnsmasq-base age git openssh-client groff-base wireguard-tools wireguard-go iperf3 tcpdump procps util-linux iputils-ping curl netcat-openbsd psmisc openssl microsocks tinyproxy dante-server systemd musl-tools binutils chromium bubblewrap dpkg-dev gnupg mmdebstrap systemd-container)
missing=()
for p in "${PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep 'install ok installed' >/dev/null || missing+=("$p"); done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The proxy servers are test upstreams started inside namespaces: keep the packages from
  # starting system-wide services on install.
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; created_policy=1; fi
  pinned=()
  for p in "${missing[@]}"; do
    v=$(dpkg-query -W -f='${Version}' systemd 2>/dev/null || true)
    if [ "$p" = systemd-container ] && [ -n "$v" ]; then p="$p=$v"; fi
    pinned+=("$p")
  done
  apt-get install -y -qq --no-install-recommends "${pinned[@]}" >/dev/null
  if [ "$created_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<20||(a===20&&b<19)) { console.error(`awg needs Node >= 20.19 (package.json engines); this is ${process.version}`); process.exit(1); }'
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run -s build
