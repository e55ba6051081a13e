#!/usr/bin/env bash
# Runs every test of the project: each step in scripts/test.d/, in order. Fails on the
# first step that fails. BUILD_ROOT (default ./build-test) holds the build trees.
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILD_ROOT="${BUILD_ROOT:-$PWD/build-test}"
export PATH="$HOME/.cargo/bin:$PATH"
mkdir -p "$BUILD_ROOT"
start=$(date +%s)
for step in scripts/test.d/*.sh; do
  echo "=== $(basename "$step") ($(( $(date +%s) - start ))s elapsed)"
  bash "$step"
done
echo "=== all test steps passed in $(( $(date +%s) - start ))s"
