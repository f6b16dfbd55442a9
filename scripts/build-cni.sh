#!/usr/bin/env bash
# Builds the seine-cni plugin (cmd/seine-cni, Go, standard library only) into dist/bin/seine-cni (or the path
# given): a static
# binary, so it runs on any node whatever its libc. Incremental: Go's build cache makes a rebuild of an
# unchanged tree take well under a second.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$(realpath -m "${1:-$root/dist/bin/seine-cni}")"
mkdir -p "$(dirname "$out")"
cd "$root/cmd/seine-cni"
CGO_ENABLED=0 GOFLAGS=-mod=mod GOPROXY=off go build -trimpath -ldflags='-s -w' -o "$out" .
