#!/usr/bin/env bash
# Instructions per call (user space, callgrind) of every call oxide makes per message, for
# this library, the reference (upstream's algorithm, bench/reference_socket.cpp) and
# upstream's own socket.cpp, each a shared library called through dlsym by blight-calls.
#
#   bench/callgrind.sh [BUILD_DIR]      (default: build-bench; needs valgrind)
#   OURS=/path/to/libblight_socket.so bench/callgrind.sh ...   (another build of ours,
#                                        e.g. an older commit's, for before/after figures)
#
# Each figure is (instructions collected in N=2000 calls' functions, minus those of N=1000
# calls) / 1000: the steady-state cost of one call, without first-call costs (lazy
# binding, the logger's start-up). System calls themselves are not counted (callgrind sees
# user space only); the messages are 12 bytes, as oxide's header. Deterministic: the same
# build gives the same numbers whatever the machine's load.
#   bench/callgrind.sh --check [BUILD_DIR]   only blight_send_blocking and
#                                        blight_recv_blocking, ours and upstream's; exits 1
#                                        when ours costs more than upstream + 20 (issue 18's
#                                        target), 0 with a note when upstream was not built
set -euo pipefail
check=0
if [ "${1:-}" = --check ]; then check=1; shift; fi
build=${1:-build-bench}
calls=$build/bench/blight-calls
[ -x "$calls" ] || { echo "no $calls: cmake --build $build --target blight-calls" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "callgrind.sh needs valgrind" >&2; exit 2; }
ours=$(readlink -f "${OURS:-$build/lib/libblight_socket.so}")
ref=$build/bench/libblight-reference.so
up=$build/bench/libblight-upstream.so
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Prints instructions per call, or "-" when the library has no such function.
per_call() {  # library op
  local lib=$1 op=$2 n a b sym
  [ -f "$lib" ] || { echo "-"; return; }
  for n in 1000 2000; do
    sym=$("$calls" "$lib" "$op" 1 2>/dev/null) || { echo "-"; return; }
    valgrind --tool=callgrind --demangle=no --toggle-collect="$sym" \
      --callgrind-out-file="$tmp/out.$n" "$calls" "$lib" "$op" "$n" >/dev/null 2>"$tmp/log.$n" \
      || { echo "callgrind failed for $lib $op (log below)" >&2; cat "$tmp/log.$n" >&2; exit 1; }
  done
  a=$(awk '/^summary:/ {print $2}' "$tmp/out.1000")
  b=$(awk '/^summary:/ {print $2}' "$tmp/out.2000")
  awk -v a="$a" -v b="$b" 'BEGIN {printf "%.1f\n", (b - a) / 1000}'
}

if [ "$check" = 1 ]; then
  [ -f "$up" ] || { echo "callgrind.sh --check: no $up (no oxide tree at build time): nothing to compare"; exit 0; }
  failed=0
  for op in send recv_blocking; do
    o=$(per_call "$ours" "$op"); u=$(per_call "$up" "$op")
    verdict=$(awk -v o="$o" -v u="$u" 'BEGIN {print (o <= u + 20) ? "ok" : "TOO MANY"}')
    printf 'instructions per 12-byte %-14s ours %6s, upstream %6s (at most upstream + 20): %s\n' "$op" "$o" "$u" "$verdict"
    [ "$verdict" = ok ] || failed=1
  done
  exit "$failed"
fi

printf 'instructions per call (callgrind, user space, 12-byte messages)\n'
printf '  %-20s %10s %10s %10s %18s\n' call ours reference upstream "ours - upstream"
for op in send recv_blocking recv recv_into wait_for_send wait_for_read \
          cxx_send cxx_recv_blocking cxx_recv cxx_wait_for_send cxx_wait_for_read; do
  o=$(per_call "$ours" "$op"); r=$(per_call "$ref" "$op"); u=$(per_call "$up" "$op")
  d=$(awk -v o="$o" -v u="$u" 'BEGIN {if (o == "-" || u == "-") print "-"; else printf "%+.1f", o - u}')
  printf '  %-20s %10s %10s %10s %18s\n' "$op" "$o" "$r" "$u" "$d"
done
