#!/usr/bin/env bash
# The tablets: armv7 (reMarkable 1 and 2) and aarch64 (Paper Pro), cross-compiled with the
# toolchain files in cmake/toolchains/ (Debian's cross g++, Rust std from
# libstd-rust-web-dev:<arch>). Every program is built and linked; the library's ELF class
# and machine, SONAME and exports are checked. Then, under qemu-user:
#   - ctest runs the single-threaded C and C++ tests (CMAKE_CROSSCOMPILING_EMULATOR, label
#     `qemu`); it lists every test it does not run as Disabled, and prints each one's
#     reason (cpp_tests/emulation_skips.txt: threads, fork, SO_ZEROCOPY, RLIMIT_AS);
#   - the Rust unit and property tests, with scripts/qemu/no_threads.c preloaded so that
#     libtest runs each test on the main thread (qemu-user cannot run threads here).
# Needs `scripts/setup.sh all`. BLIGHT_CROSS_ARCHES picks the architectures.
set -euo pipefail
# One cargo target directory for every cross build (the host-side build script and
# cbindgen are compiled once); Debian's rustc, which has these targets' std.
cargo_dir="$BUILD_ROOT/cargo-cross"
for arch in ${BLIGHT_CROSS_ARCHES:-armv7 aarch64}; do
  t0=$(date +%s)
  case "$arch" in
    armv7) toolchain=cmake/toolchains/armv7-linux-gnueabihf.cmake; triple=armv7-unknown-linux-gnueabihf
           gnu=arm-linux-gnueabihf; qemu=qemu-arm; machine=ARM; class=ELF32 ;;
    aarch64) toolchain=cmake/toolchains/aarch64-linux-gnu.cmake; triple=aarch64-unknown-linux-gnu
           gnu=aarch64-linux-gnu; qemu=qemu-aarch64; machine=AArch64; class=ELF64 ;;
    *) echo "26-cross-arm: unknown arch $arch" >&2; exit 1 ;;
  esac
  dir="$BUILD_ROOT/$arch"
  echo "--- $arch: build ($triple)"
  cmake -S . -B "$dir" --toolchain "$toolchain" -DCMAKE_BUILD_TYPE=Release \
    -DBLIGHT_CARGO_TARGET_DIR="$cargo_dir" >/dev/null
  cmake --build "$dir" -j2
  so="$dir/lib/libblight_socket.so"
  readelf -h "$so" | grep -q "Class:.*$class" && readelf -h "$so" | grep -q "Machine:.*$machine" \
    || { echo "26-cross-arm: $so is not $class $machine" >&2; readelf -h "$so" >&2; exit 1; }
  readelf -d "$so" | grep -q 'Library soname: \[libblight_socket.so.1\]' || { echo "26-cross-arm: no SONAME" >&2; exit 1; }
  for f in blight_recv blight_recv_blocking blight_send_blocking blight_wait_for_send blight_wait_for_read \
           blight_send_zerocopy blight_process_zerocopy_completions blight_release_buffer; do
    nm -D --defined-only "$so" | grep -q " $f\$" || { echo "26-cross-arm: $arch library lacks $f" >&2; exit 1; }
  done
  real=$(readlink -f "$so")
  echo "--- $arch: built in $(( $(date +%s) - t0 ))s; library $(stat -c %s "$real") bytes, debug info $(stat -c %s "$real.debug") bytes"

  echo "--- $arch: ctest under $qemu (the tests it does not run are listed as Disabled, each with its reason)"
  (cd "$dir" && ctest --output-on-failure -j2 --timeout 120)

  echo "--- $arch: Rust unit and property tests under $qemu, one thread"
  upper=$(echo "$triple" | tr 'a-z-' 'A-Z_'); lower=${triple//-/_}
  "$gnu-gcc" -shared -fPIC -O2 -o "$dir/no_threads.so" scripts/qemu/no_threads.c
  bins=$(env RUSTC=/usr/bin/rustc CARGO_TARGET_DIR="$cargo_dir" "CARGO_TARGET_${upper}_LINKER=$gnu-gcc" \
         "CC_$lower=$(command -v "$gnu-gcc")" "CXX_$lower=$(command -v "$gnu-g++")" \
         /usr/bin/cargo test --release --target "$triple" --no-run --message-format=json \
         | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')
  [ -n "$bins" ] || { echo "26-cross-arm: no Rust test binaries for $triple" >&2; exit 1; }
  for bin in $bins; do
    timeout 600 "$qemu" -L "/usr/$gnu" -E LD_PRELOAD="$dir/no_threads.so" "$bin" --test-threads=1 -q
  done
  echo "--- $arch: passed in $(( $(date +%s) - t0 ))s"
done
