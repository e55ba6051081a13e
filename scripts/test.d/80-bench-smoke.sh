#!/usr/bin/env bash
# blight-bench in --smoke mode (a few seconds): every path moves real data, every message
# is verified (exit 1 on a verification failure), and the JSON is written and complete.
# Timing targets are not checked here: a benchmark MISS is not a test failure. Instruction
# counts are (deterministic, whatever the load): bench/callgrind.sh --check fails when a
# 12-byte blight_send_blocking or blight_recv_blocking costs more than upstream's
# socket.cpp + 20 instructions (issue 18).
set -euo pipefail
dir="$BUILD_ROOT/release"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$dir" -j"$(nproc)" --target blight-bench blight-calls
json="$dir/bench-smoke.json"
rm -f "$json"
timeout 120 "$dir/bench/blight-bench" --smoke --json "$json" > "$dir/bench-smoke.txt" || {
  rc=$?; cat "$dir/bench-smoke.txt"; echo "blight-bench --smoke failed (exit $rc)" >&2; exit 1; }
fail() { echo "80-bench-smoke: $*" >&2; cat "$dir/bench-smoke.txt"; exit 1; }
[ -s "$json" ] || fail "no JSON written"
grep -q '"failures": 0,' "$json" || fail "verification failures in $json"
for s in a b c d e f; do
  grep -q "\"scenario\": \"$s\"" "$json" || fail "scenario $s missing from $json"
done
grep -q '"targets": \[' "$json" || fail "no targets in $json"
grep -q '"id": "d.accounting"' "$json" || fail "no accounting target"
grep -q '"id": "d.accounting".*"pass": true' "$json" || fail "zero-copy byte accounting does not add up"
if grep -q ': nan\|: inf' "$json"; then fail "non-numbers in $json"; fi
# The JSON must parse when a parser is around (python3 is not required by CI).
if command -v python3 >/dev/null; then
  python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$json" || fail "invalid JSON"
fi
if command -v gnuplot >/dev/null; then
  "$dir/bench/plot.sh" "$json" "$dir/bench-smoke.svg" >/dev/null || fail "plot.sh failed"
  [ -s "$dir/bench-smoke.svg" ] || fail "no picture"
fi
tail -3 "$dir/bench-smoke.txt"
if command -v valgrind >/dev/null; then
  bench/callgrind.sh --check "$dir" || fail "per-call instructions above upstream + 20 (bench/callgrind.sh)"
fi
