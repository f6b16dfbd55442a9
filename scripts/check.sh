#!/usr/bin/env bash
# The static checks of `npm test`: the type check and the linter, side by side (each is single-threaded; the
# machine has two cores). Both run to the end; it fails when either does, after printing what each said.
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
npx --no-install tsc --noEmit > "$out/typecheck" 2>&1 &
tsc=$!
npx --no-install eslint --max-warnings 0 . > "$out/lint" 2>&1 &
lint=$!
wait $tsc; tsc_rc=$?
wait $lint; lint_rc=$?
cat "$out/typecheck" "$out/lint"
[ $tsc_rc -eq 0 ] && [ $lint_rc -eq 0 ]
