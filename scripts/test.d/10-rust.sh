#!/usr/bin/env bash
# Rust unit and property tests and the smoke test over sockets (tests/sockets.rs; the
# socket suite proper is ctest's, 20-ctest.sh), lints, formatting, and the checked-in
# header must equal the one cbindgen generates.
set -euo pipefail
tree_state() { git status --porcelain --untracked-files=all -- src include tests tools build.rs cbindgen.toml Cargo.toml Cargo.lock; }
before=$(tree_state)
cargo test --release --locked
# clippy and rustfmt come with rustup's default profile; a toolchain without them skips
# the check with a note rather than failing the whole run for a missing tool.
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --release --all-targets -- -D warnings
else
  echo "note: cargo clippy not installed; lints skipped" >&2
fi
if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --check
else
  echo "note: rustfmt not installed; formatting not checked" >&2
fi
./scripts/gen-header.sh --check
# cargo builds write nothing in the source tree (build.rs writes only to OUT_DIR, and the
# header generator to a temporary file that --check compares).
if [ "$(tree_state)" != "$before" ]; then
  echo "the source tree changed during cargo build/test:" >&2; tree_state >&2; exit 1
fi
