#!/usr/bin/env bash
# Refreshes include/blight_socket.h from the exports: cargo's build script generates it
# with cbindgen into its OUT_DIR, and this copies it into the tree (the CMake target
# `blight_header` runs it). With --check, changes nothing and fails if the checked-in
# header differs from the generated one (CI's drift check).
#   CARGO             cargo to use (default: cargo on PATH)
#   CARGO_TARGET_DIR  as for cargo
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
[ "${1:-}" = "--check" ] && check=1
cargo="${CARGO:-cargo}"
out_dir=$("$cargo" build --release --lib --locked --message-format=json 2>/dev/null \
  | grep '"reason":"build-script-executed"' | grep '#blight_socket@' \
  | sed -n 's/.*"out_dir":"\([^"]*\)".*/\1/p' | tail -n 1)
generated="$out_dir/blight_socket.h"
if [ -z "$out_dir" ] || [ ! -f "$generated" ]; then
  echo "gen-header: cargo build did not report the generated header (run cargo build to see why)" >&2
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
