#!/usr/bin/env bash
# The C++ suite built with AddressSanitizer + UndefinedBehaviorSanitizer
# (-DBLIGHT_SANITIZE=ON; the Rust library itself is not instrumented), every test run with
# options that make any report fatal, and the stress test for a shortened run.
set -euo pipefail
dir="$BUILD_ROOT/asan"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBLIGHT_SANITIZE=ON -DBLIGHT_CARGO_TARGET_DIR="$BUILD_ROOT/cargo" \
  -DBLIGHT_BUILD_BENCH=OFF -DBLIGHT_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$dir" -j2
# allocator_may_return_null: the bad-input tests ask for SSIZE_MAX bytes and expect -ENOMEM.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:exitcode=86:detect_leaks=1:allocator_may_return_null=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=87"
export LSAN_OPTIONS="exitcode=88"
export BLIGHT_STRESS_SECONDS="${BLIGHT_SANITIZE_STRESS_SECONDS:-20}"
(cd "$dir" && ctest --output-on-failure -j2)
