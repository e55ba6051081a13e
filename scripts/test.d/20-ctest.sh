#!/usr/bin/env bash
# The C++ suite (GoogleTest) and the plain-C test, through CMake and ctest.
set -euo pipefail
dir="$BUILD_ROOT/release"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DBLIGHT_CARGO_TARGET_DIR="$BUILD_ROOT/cargo" >/dev/null
cmake --build "$dir" -j"$(nproc)"
nm -D --defined-only "$dir/lib/libblight_socket.so" | awk '{print $3}' | LC_ALL=C sort > "$dir/exports.txt"
for f in blight_recv blight_recv_blocking blight_send_blocking blight_wait_for_send blight_wait_for_read; do
  grep -qx "$f" "$dir/exports.txt" || { echo "missing export $f" >&2; exit 1; }
done
# Upstream's five BlightProtocol:: C++ functions (cxx/blight_protocol_abi.cpp), under
# upstream's mangled names (ssize_t is `long` here), and no other C++ symbol.
cxx_exports="_ZN14BlightProtocol13recv_blockingEil
_ZN14BlightProtocol13send_blockingEiPhl
_ZN14BlightProtocol13wait_for_readEii
_ZN14BlightProtocol13wait_for_sendEii
_ZN14BlightProtocol4recvEiljj"
if [ "$(grep -v '^blight_' "$dir/exports.txt")" != "$cxx_exports" ]; then
  echo "the library must export blight_* and exactly these C++ symbols:" >&2; echo "$cxx_exports" >&2
  echo "it exports:" >&2; grep -v '^blight_' "$dir/exports.txt" >&2; exit 1
fi
# Test-only hooks stay out of the release library (they live in lib-test-hooks/).
if grep -q BLIGHT_SOCKET_TEST_PANIC "$dir/lib/libblight_socket.so"; then
  echo "the release library contains the test panic switch" >&2; exit 1
fi
(cd "$dir" && ctest --output-on-failure -j2 -LE stress)
