#!/usr/bin/env bash
# Refreshes include/blight_socket.h from the exports: tools/gen-header runs cbindgen (the
# version pinned there) over the crate, and this copies its output into the tree (the
# CMake target `blight_header` runs it). With --check, changes nothing and fails if the
# checked-in header differs from the generated one (CI's drift check). The library's own
# build does not generate the header.
#   CARGO             cargo to use (default: cargo on PATH)
#   CARGO_TARGET_DIR  as for cargo
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
[ "${1:-}" = "--check" ] && check=1
cargo="${CARGO:-cargo}"
generated=$(mktemp --suffix=.h)
trap 'rm -f "$generated"' EXIT
if ! "$cargo" run --quiet --locked -p blight_socket_gen_header -- "$generated" || [ ! -s "$generated" ]; then
  echo "gen-header: cbindgen did not generate the header (see above)" >&2
  exit 1
fi
if [ "$check" = 1 ]; then
  if ! diff -u include/blight_socket.h "$generated"; then
    echo "include/blight_socket.h differs from the generated header: run scripts/gen-header.sh and commit it" >&2
    exit 1
  fi
  echo "include/blight_socket.h is up to date"
else
  cp "$generated" include/blight_socket.h
  echo "include/blight_socket.h regenerated"
fi
