#!/usr/bin/env bash
# The C++ suite (GoogleTest) and the plain-C test, through CMake and ctest.
set -euo pipefail
dir="$BUILD_ROOT/release"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DBLIGHT_CARGO_TARGET_DIR="$BUILD_ROOT/cargo" >/dev/null
cmake --build "$dir" -j"$(nproc)"
./scripts/check-exports.sh "$dir/lib/libblight_socket.so"
# Test-only hooks stay out of the release library (they live in lib-test-hooks/).
if grep -q BLIGHT_SOCKET_TEST_PANIC "$dir/lib/libblight_socket.so"; then
  echo "the release library contains the test panic switch" >&2; exit 1
fi
(cd "$dir" && ctest --output-on-failure -j2 -LE stress)
