#!/usr/bin/env bash
# Builds Seine's Go binaries (standard library only, static, so they run on any node whatever its libc) into
# dist/bin: seine-cni, the CNI plugin (cmd/seine-cni), and seine-exec, the agent's command runner
# (cmd/seine-exec). With arguments OUT [CMD], only CMD (default seine-cni), to OUT. Incremental: Go's build cache makes a
# rebuild of an unchanged tree take well under a second.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build() { # build CMD OUT
  mkdir -p "$(dirname "$2")"
  (cd "$root/cmd/$1" && CGO_ENABLED=0 GOFLAGS=-mod=mod GOPROXY=off go build -trimpath -ldflags='-s -w' -o "$2" .)
}
if [ $# -gt 0 ]; then
  build "${2:-seine-cni}" "$(realpath -m "$1")"
else
  build seine-cni "$root/dist/bin/seine-cni"
  build seine-exec "$root/dist/bin/seine-exec"
fi
