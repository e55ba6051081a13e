#!/usr/bin/env bash
# Property tests of the notification range mapping and the buffer table, a larger bounded
# run than the default one of 10-rust.sh (~10 s). Long run (see docs/RELIABILITY.md):
#   BLIGHT_PROPTEST_CASES=1000000 cargo test --release --lib prop_tests
set -euo pipefail
BLIGHT_PROPTEST_CASES="${BLIGHT_PROPTEST_CASES:-20000}" cargo test --release --lib prop_tests
