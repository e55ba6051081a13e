#!/usr/bin/env bash
# The C++ suite (GoogleTest) and the plain-C test, through CMake and ctest.
set -euo pipefail
dir="$BUILD_ROOT/release"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DBLIGHT_CARGO_TARGET_DIR="$BUILD_ROOT/cargo" >/dev/null
cmake --build "$dir" -j"$(nproc)"
nm -D --defined-only "$dir/lib/libblight_socket.so" | awk '{print $3}' | sort > "$dir/exports.txt"
for f in blight_recv blight_recv_blocking blight_send_blocking blight_wait_for_send blight_wait_for_read; do
  grep -qx "$f" "$dir/exports.txt" || { echo "missing export $f" >&2; exit 1; }
done
if grep -vq '^blight_' "$dir/exports.txt"; then
  echo "the library exports symbols that are not blight_*:" >&2; grep -v '^blight_' "$dir/exports.txt" >&2; exit 1
fi
# Test-only hooks stay out of the release library (they live in lib-test-hooks/).
if grep -q BLIGHT_SOCKET_TEST_PANIC "$dir/lib/libblight_socket.so"; then
  echo "the release library contains the test panic switch" >&2; exit 1
fi
(cd "$dir" && ctest --output-on-failure -j2 -LE stress)
