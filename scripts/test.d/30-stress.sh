#!/usr/bin/env bash
# The stress test (ctest label `stress`) on the release build of 20-ctest.sh, default length
# (BLIGHT_STRESS_SECONDS, 60 s). Long run: see docs/RELIABILITY.md.
set -euo pipefail
dir="$BUILD_ROOT/release"
cmake --build "$dir" -j2 --target blight_stress
(cd "$dir" && ctest --output-on-failure -L stress)
