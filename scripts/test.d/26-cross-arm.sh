#!/usr/bin/env bash
# The tablets: armv7 (reMarkable 1 and 2) and aarch64 (Paper Pro), cross-compiled with the
# toolchain files in cmake/toolchains/ (Debian's cross g++, Rust std from
# libstd-rust-web-dev:<arch>). Every program is built and linked; the library's ELF class
# and machine, SONAME and exports are checked, and its glibc floor
# (scripts/check-glibc-floor.sh: GLIBC_ at most 2.35, printed with its GLIBCXX_ needs).
# Then, under qemu-user with Debian's multiarch runtime (`-L /`: libc6:armhf, libc6:arm64):
#   - ctest runs the whole C and C++ suite, threads and fork() included
#     (CMAKE_CROSSCOMPILING_EMULATOR, label `qemu`), except what qemu-user cannot emulate:
#     cpp_tests/emulation_skips.txt, each test listed as Disabled with its reason, each
#     reason checked by a probe run under qemu (test emulation_skip_holds.<probe>, which
#     fails when qemu can do it after all); a skip-list entry that matches no test fails
#     this step;
#   - the stress test, shortened (BLIGHT_QEMU_STRESS_SECONDS, default 10);
#   - the C++ ABI: cxx/abi_check.cpp compiled against upstream's unmodified socket.h (the
#     oxide tree, OXIDE_SRC, default ../shared/oxide) calls the five BlightProtocol::
#     functions of the cross-built library;
#   - the Rust unit and property tests, on several threads.
# Needs `scripts/setup.sh all`. BLIGHT_CROSS_ARCHES picks the architectures.
set -euo pipefail
# One cargo target directory for every cross build (the host-side build script and the
# cc crate are compiled once); Debian's rustc, which has these targets' std.
cargo_dir="$BUILD_ROOT/cargo-cross"
OXIDE_SRC="${OXIDE_SRC:-$PWD/../shared/oxide}"
[ -f "$OXIDE_SRC/shared/libblight_protocol/socket.h" ] \
  || { echo "26-cross-arm: no oxide tree at $OXIDE_SRC: set OXIDE_SRC to an oxide checkout" >&2; exit 1; }
upstream="$OXIDE_SRC/shared"

# The probes of the skip list, natively: each must find that this kernel can do what
# qemu-user cannot (exit 1), or it could not tell a stale skip from a needed one.
mkdir -p "$BUILD_ROOT/probe"
cc -O1 -o "$BUILD_ROOT/probe/emulation_probe" cpp_tests/emulation_probe.c
for p in $(sed -n 's/^check: \([a-z_]*\)$/\1/p' cpp_tests/emulation_skips.txt | sort -u); do
  if "$BUILD_ROOT/probe/emulation_probe" "$p" >/dev/null; then
    echo "26-cross-arm: the probe '$p' says the skip holds even natively: it cannot detect a stale skip" >&2; exit 1
  fi
done
# upstream's libblight_protocol.h includes <systemd/sd-bus.h>: the host's copy (headers
# only, the same for every architecture; libsystemd-dev), alone in its own directory.
sd_inc="$BUILD_ROOT/probe/sd-include"
mkdir -p "$sd_inc" && cp -r /usr/include/systemd "$sd_inc/"

for arch in ${BLIGHT_CROSS_ARCHES:-armv7 aarch64}; do
  t0=$(date +%s)
  case "$arch" in
    armv7) toolchain=cmake/toolchains/armv7-linux-gnueabihf.cmake; triple=armv7-unknown-linux-gnueabihf
           gnu=arm-linux-gnueabihf; qemu=qemu-arm; machine=ARM; class=ELF32; ssize=i ;;
    aarch64) toolchain=cmake/toolchains/aarch64-linux-gnu.cmake; triple=aarch64-unknown-linux-gnu
           gnu=aarch64-linux-gnu; qemu=qemu-aarch64; machine=AArch64; class=ELF64; ssize=l ;;
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
  scripts/check-glibc-floor.sh "$so" 2.35 "$gnu-readelf"

  echo "--- $arch: ctest under $qemu -L / (threads and fork included; the tests it does not run are listed as Disabled, each with its reason)"
  log="$dir/ctest-qemu.log"
  (cd "$dir" && ctest --output-on-failure -j2 -LE stress --timeout 300) 2>&1 | tee "$log"
  if grep -q "matches no test" "$log"; then
    echo "26-cross-arm: cpp_tests/emulation_skips.txt names tests that do not exist (above)" >&2; exit 1
  fi
  echo "--- $arch: stress test under $qemu, ${BLIGHT_QEMU_STRESS_SECONDS:-10}s"
  (cd "$dir" && BLIGHT_STRESS_SECONDS="${BLIGHT_QEMU_STRESS_SECONDS:-10}" ctest --output-on-failure -L stress)

  echo "--- $arch: C++ ABI, a caller built against upstream's unmodified socket.h ($upstream/libblight_protocol)"
  "$gnu-g++" -std=c++17 -O1 -I"$upstream" -I"$upstream/libblight_protocol/vendor/fbg/src" \
    -I"$upstream/libblight_protocol/vendor/fbg/src/nanojpeg" -I"$sd_inc" cxx/abi_check.cpp \
    -L"$dir/lib" -lblight_socket -o "$dir/abi_check_upstream"
  wanted=$("$gnu-nm" -u "$dir/abi_check_upstream" | awk '/BlightProtocol/ {print $2}' | sort)
  [ "$(wc -l <<<"$wanted")" = 5 ] && grep -q "^_ZN14BlightProtocol4recvEi${ssize}jj\$" <<<"$wanted" \
    || { echo "26-cross-arm: the upstream caller does not call the five functions with ssize_t as '$ssize':" >&2; echo "$wanted" >&2; exit 1; }
  for s in $wanted; do
    "$gnu-nm" -D --defined-only "$so" | grep -q " T $s\$" || { echo "26-cross-arm: $arch library lacks $s" >&2; exit 1; }
    echo "    $s ($(echo "$s" | c++filt)): called by the upstream caller, exported by the library"
  done
  "$qemu" -L / -E LD_LIBRARY_PATH="$dir/lib" "$dir/abi_check_upstream"

  echo "--- $arch: Rust unit and property tests under $qemu -L /, several threads"
  upper=$(echo "$triple" | tr 'a-z-' 'A-Z_'); lower=${triple//-/_}
  bins=$(env RUSTC=/usr/bin/rustc CARGO_TARGET_DIR="$cargo_dir" "CARGO_TARGET_${upper}_LINKER=$gnu-gcc" \
         "CC_$lower=$(command -v "$gnu-gcc")" "CXX_$lower=$(command -v "$gnu-g++")" \
         /usr/bin/cargo test --release --target "$triple" --no-run --message-format=json \
         | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')
  [ -n "$bins" ] || { echo "26-cross-arm: no Rust test binaries for $triple" >&2; exit 1; }
  for bin in $bins; do
    timeout 900 "$qemu" -L / "$bin" --test-threads="${BLIGHT_QEMU_TEST_THREADS:-4}" -q
  done
  echo "--- $arch: passed in $(( $(date +%s) - t0 ))s"
done
