#!/usr/bin/env bash
# Builds the examples in the release build tree and runs them; fails if either fails.
set -euo pipefail
dir="$BUILD_ROOT/release"
# Configure again: examples/ is picked up at configure time, and must be on.
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DBLIGHT_BUILD_EXAMPLES=ON >/dev/null
cmake --build "$dir" -j2 --target zerocopy_event_loop cpp_messages
for example in zerocopy_event_loop cpp_messages; do
  echo "--- examples/$example"
  if ! timeout 120 "$dir/examples/$example"; then
    echo "70-examples: examples/$example failed" >&2
    exit 1
  fi
done
echo "70-examples: both examples passed"
