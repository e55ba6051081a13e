#!/usr/bin/env bash
# Runs every test of the project: each step in scripts/test.d/, in order. Fails on the
# first step that fails. BUILD_ROOT (default ./build-test) holds the build trees.
# Installs what is missing first (scripts/setup.sh all; BLIGHT_SETUP=skip skips that).
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILD_ROOT="${BUILD_ROOT:-$PWD/build-test}"
export PATH="$HOME/.cargo/bin:$PATH"
# Everything the steps need, the cross toolchains included (a no-op when installed).
./scripts/setup.sh all
mkdir -p "$BUILD_ROOT"
start=$(date +%s)
for step in scripts/test.d/*.sh; do
  echo "=== $(basename "$step") ($(( $(date +%s) - start ))s elapsed)"
  bash "$step"
done
echo "=== all test steps passed in $(( $(date +%s) - start ))s"
