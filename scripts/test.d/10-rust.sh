#!/usr/bin/env bash
# Rust unit tests, and the checked-in header must equal the one cbindgen generates.
set -euo pipefail
cargo test --release
if ! git diff --exit-code -- include/blight_socket.h; then
  echo "include/blight_socket.h differs from the generated header: run 'cargo build' and commit it" >&2
  exit 1
fi
