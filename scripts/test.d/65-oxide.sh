#!/usr/bin/env bash
# The oxide integration kit (integrations/oxide/run.sh): oxide's libblight_protocol,
# libblight and tests/libblight built on this library with oxide's own qmake files (plus
# integrations/oxide/oxide-build.patch), upstream's C socket tests and tests/libblight run
# on it, and binaries built from the untouched oxide tree run against it unchanged.
# Then the optional sendv patch (integrations/oxide/sendv.sh, never part of the drop-in):
# the tree with sendv-message.patch must build and pass the same tests plus its own.
# OXIDE_SRC (default ../shared/oxide) is the oxide tree; it is only read.
set -euo pipefail
OXIDE_SRC="${OXIDE_SRC:-$PWD/../shared/oxide}"
if [ ! -d "$OXIDE_SRC" ]; then
  echo "no oxide tree at $OXIDE_SRC: set OXIDE_SRC to an oxide checkout" >&2
  exit 1
fi
OXIDE_SRC="$OXIDE_SRC" OXIDE_WORK="$BUILD_ROOT/oxide" BLIGHT_CARGO_TARGET_DIR="$BUILD_ROOT/cargo" \
  integrations/oxide/run.sh
OXIDE_WORK="$BUILD_ROOT/oxide" integrations/oxide/sendv.sh
