#!/usr/bin/env bash
# 32-bit: the i686 build (cmake/toolchains/i686-linux-gnu.cmake, Debian's cross g++ and
# Rust's i686 std from libstd-rust-web-dev:i386), which runs natively on an x86-64 kernel,
# threads included: the Rust unit and property tests as 32-bit code, then the whole C++
# suite through ctest, and a short stress run. Needs `scripts/setup.sh all`.
set -euo pipefail
t0=$(date +%s)
dir="$BUILD_ROOT/i686"
cargo_dir="$BUILD_ROOT/cargo-cross"  # shared with 26-cross-arm.sh (same rustc)
cmake -S . -B "$dir" --toolchain cmake/toolchains/i686-linux-gnu.cmake -DCMAKE_BUILD_TYPE=Release \
  -DBLIGHT_CARGO_TARGET_DIR="$cargo_dir" >/dev/null
cmake --build "$dir" -j2
so="$dir/lib/libblight_socket.so"
readelf -h "$so" | grep -q 'Machine:.*Intel 80386' || { echo "25-i686: $so is not an i386 ELF" >&2; readelf -h "$so" >&2; exit 1; }
echo "25-i686: built in $(( $(date +%s) - t0 ))s"
# Debian's toolchain (rustup's here has only the host's std), with the i686 linker.
RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc CARGO_TARGET_DIR="$cargo_dir" \
  CARGO_TARGET_I686_UNKNOWN_LINUX_GNU_LINKER=i686-linux-gnu-gcc \
  CC_i686_unknown_linux_gnu=/usr/bin/i686-linux-gnu-gcc CXX_i686_unknown_linux_gnu=/usr/bin/i686-linux-gnu-g++ \
  /usr/bin/cargo test --release --target i686-unknown-linux-gnu
(cd "$dir" && ctest --output-on-failure -j2 -LE stress)
(cd "$dir" && BLIGHT_STRESS_SECONDS="${BLIGHT_I686_STRESS_SECONDS:-15}" ctest --output-on-failure -L stress)
echo "25-i686: Rust tests and the whole C++ suite passed as i686 code ($(( $(date +%s) - t0 ))s)"
