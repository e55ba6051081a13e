#!/usr/bin/env bash
# The README's first command: builds the library (CMake drives cargo) and the benchmark,
# then runs blight-bench in its quick mode (under a minute on 2 cores): real data through
# every path, verified, against the upstream algorithm. Prints one table (each of our calls
# against upstream's loop, and the path the bytes took), then where the JSON and the
# picture went.
#   BUILD_DIR   build tree (default ./build-demo)
#   extra arguments go to blight-bench, e.g. ./scripts/demo.sh --targets (the PASS/MISS
#   scoreboard too) or ./scripts/demo.sh --full (careful numbers, everything printed)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
# cmake, g++, gnuplot, ... and Debian's Rust if there is no cargo (a no-op when installed).
./scripts/setup.sh host
dir="${BUILD_DIR:-$PWD/build-demo}"
echo "== building the library and blight-bench in $dir"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DBLIGHT_BUILD_TESTS=OFF -DBLIGHT_BUILD_BENCH=ON >/dev/null
cmake --build "$dir" -j"$(nproc)" --target blight-bench
json="$dir/bench-results.json"
echo "== running blight-bench${*:+ $*} (ours and the upstream algorithm alternate; medians and ratios)"
rc=0
"$dir/bench/blight-bench" --json "$json" "$@" || rc=$?
if [ "$rc" -ne 0 ]; then
  echo "demo: blight-bench failed (exit $rc): data verification failed or a send/receive errored" >&2
  exit "$rc"
fi
echo "== where the results went"
echo "JSON:    $json (every measured row, the path statistics, the summary, the targets)"
if command -v gnuplot >/dev/null; then
  picture=$("$dir/bench/plot.sh" "$json" "$dir/bench-results.svg")
  echo "picture: $picture (throughput and sender CPU by message size and path, (c) and (d))"
else
  echo "picture: not drawn (gnuplot missing: apt-get install gnuplot-nox), then: bench/plot.sh $json"
fi
echo "more:    ./scripts/demo.sh --targets (the PASS/MISS scoreboard), --full (careful numbers);"
echo "         docs/BENCHMARKS.md (how to read this, full runs, what limits each MISS)"
