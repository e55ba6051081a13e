#!/usr/bin/env bash
# The oxide end-to-end step (integrations/oxide/e2e.sh): oxide's display server (blight)
# and its clients, built on upstream's socket.cpp and on this library, in five
# combinations against a fresh blight each; then the negative control: the same checks
# with one client send in 50 corrupted must fail, in the C suite and in the libblight
# client, in both socket layers (upstream's and ours). Reuses the kit's builds
# (65-oxide.sh, $BUILD_ROOT/oxide).
# OXIDE_SRC (default ../shared/oxide) is the oxide tree; it is only read.
set -euo pipefail
OXIDE_SRC="${OXIDE_SRC:-$PWD/../shared/oxide}"
if [ ! -d "$OXIDE_SRC" ]; then
  echo "no oxide tree at $OXIDE_SRC: set OXIDE_SRC to an oxide checkout" >&2
  exit 1
fi
export OXIDE_SRC OXIDE_WORK="$BUILD_ROOT/oxide" E2E_WORK="$BUILD_ROOT/oxide-e2e" BLIGHT_CARGO_TARGET_DIR="$BUILD_ROOT/cargo"
integrations/oxide/e2e.sh

# Negative control: an expected failure. Each of the four checks named below must fail.
log="$E2E_WORK/logs/negative-control.out"
if integrations/oxide/e2e.sh --negative-control >"$log" 2>&1; then
  tail -n 20 "$log"
  echo "negative control: the step PASSED with corrupted sends: its checks cannot fail" >&2
  exit 1
fi
missing=0
for combo in "combo 1 (upstream)" "combo 2 (ours)"; do
  for check in "upstream C suite" "libblight client"; do
    if grep -qF "FAIL  $combo: $check" "$log"; then
      echo "negative control: $combo: $check failed, as it must"
    else
      echo "negative control: $combo: $check did NOT fail with corrupted sends" >&2
      missing=$((missing + 1))
    fi
  done
done
grep -E '^e2e: ' "$log" | sed 's/^/negative control: /'
[ "$missing" -eq 0 ] || { tail -n 30 "$log"; exit 1; }
echo "negative control: failed as expected (log: $log)"
