#!/usr/bin/env bash
# Installs what Seine needs on a Debian machine (run as root): the apt packages, node_modules, the build.
# Idempotent and quiet when everything is already present.
set -euo pipefail
cd "$(dirname "$0")/.."

# golang-go: the seine-cni plugin is Go (cmd/seine-cni). golang-github-appc-cni-dev (a libcni client) and
# podman + runc + busybox-static (a real runtime): what the end-to-end tests drive Seine through besides the
# lab's own runtime.
APT_PACKAGES=(openvswitch-switch iproute2 ethtool iputils-ping iputils-arping iperf3 tcpdump conntrack nftables iptables
  containernetworking-plugins netcat-openbsd util-linux procps golang-go golang-github-appc-cni-dev
  podman runc busybox-static curl jq)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages (${missing[*]}); run as root to install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The Debian service scripts are not used: Seine starts its own ovsdb-server/ovs-vswitchd per node.
fi

# node_modules is stale when the lockfile changed after the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi

# Incremental build: a no-op when nothing changed.
npx --no-install tsc -p tsconfig.build.json
bash scripts/build-go.sh
