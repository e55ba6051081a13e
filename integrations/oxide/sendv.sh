#!/usr/bin/env bash
# The optional sendv patch (sendv-message.patch, see SENDV-PROPOSAL.md): oxide's
# blight_send_message sends header and payload with one blight_sendv_blocking instead of
# two send_blocking calls. Never applied by the drop-in kit (run.sh); this script checks
# it and, with --bench, measures it. Run after run.sh, on its OXIDE_WORK:
#
#   integrations/oxide/sendv.sh [--bench [ROUNDS]]
#
#   OXIDE_WORK  run.sh's build directory (default: build-oxide in this project); uses its
#               src-patched tree (the drop-in), build-patched, build-upstream and prefix
#   JOBS        make -j (default 2)
#
# Steps:
#   1. copy src-patched to src-sendv and apply sendv-message.patch (it must change
#      exactly libblight_protocol.cpp);
#   2. build shared/libblight_protocol, shared/libblight and tests/libblight there
#      (qmake6 + make, as run.sh), upstream's C socket tests and send_message.c;
#   3. run upstream's C socket tests, tests/libblight, and send_message check (oxide's
#      blight_send_message -> blight_message_from_socket round trips from 0 B to 1 MiB, a
#      closed peer, a missing payload) on the sendv build;
#   4. --bench: send_message bench through oxide's own blight_send_message and
#      blight_message_from_socket at 0, 64 and 4096 B, one binary run against upstream's
#      libblight_protocol (its socket.cpp), the drop-in build and the sendv build in
#      interleaved rounds (ROUNDS, default 7); prints medians and ratios.
# Exits non-zero when a build or a check fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
OXIDE_WORK=${OXIDE_WORK:-$root/build-oxide}
JOBS=${JOBS:-2}
bench=0 rounds=7
if [ "${1:-}" = --bench ]; then bench=1; rounds=${2:-7}; fi
logs=$OXIDE_WORK/logs
for d in src-patched build-patched build-upstream prefix; do
  [ -d "$OXIDE_WORK/$d" ] || { echo "no $OXIDE_WORK/$d: run integrations/oxide/run.sh first" >&2; exit 2; }
done
SAY_PREFIX="sendv: "
# shellcheck source=integrations/oxide/common.sh
. "$here/common.sh"
pc=$(dirname "$(find "$OXIDE_WORK/prefix" -name blight_socket.pc | head -n1)")
export PKG_CONFIG_PATH="$pc${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
socket_libdir=$(pkg-config --variable=libdir blight_socket)

# ---- 1. the patched tree ---------------------------------------------------------------
src=$OXIDE_WORK/src-sendv out=$OXIDE_WORK/build-sendv
rm -rf "$src" "$out"
cp -a "$OXIDE_WORK/src-patched" "$src"
patch -s -d "$src" -p1 --no-backup-if-mismatch <"$here/sendv-message.patch"
changed=$(diff -rq "$OXIDE_WORK/src-patched" "$src" | sed "s|$OXIDE_WORK/||g" || true)
[ "$changed" = "Files src-patched/shared/libblight_protocol/libblight_protocol.cpp and src-sendv/shared/libblight_protocol/libblight_protocol.cpp differ" ] \
  || { echo "sendv-message.patch must change exactly libblight_protocol.cpp; it changed:" >&2; echo "$changed" >&2; exit 1; }
say "sendv-message.patch: $(grep -c '^+[^+]' "$here/sendv-message.patch") lines added, $(grep -c '^-[^-]' "$here/sendv-message.patch") removed, libblight_protocol.cpp only"

# ---- 2. builds -------------------------------------------------------------------------
for d in shared/libblight_protocol shared/libblight tests/libblight; do
  say "qmake6 + make $d"
  mkdir -p "$out/$d"
  (cd "$out/$d" && logged "$logs/sendv-${d//\//_}.log" sh -c "qmake6 '$src/$d/$(basename "$d").pro' && make -j'$JOBS'")
done
inc=$out/shared/libblight_protocol/include
logged "$logs/sendv-socket_tests.log" gcc -std=gnu11 -O1 -I"$inc" -I"$src/tests/libblight_protocol" \
  "$here/socket_tests.c" -o "$out/socket_tests" -L"$out/shared/libblight_protocol" -lblight_protocol \
  $(pkg-config --libs blight_socket) $(pkg-config --libs libsystemd) -lpthread
# send_message links libblight_protocol only (upstream's headers: the ABI is the same), so
# that LD_LIBRARY_PATH picks which build it runs on.
logged "$logs/sendv-send_message.log" gcc -std=gnu11 -O2 -I"$OXIDE_WORK/build-upstream/shared/libblight_protocol/include" \
  "$here/send_message.c" -o "$out/send_message" -L"$out/shared/libblight_protocol" -lblight_protocol \
  -Wl,-rpath-link,"$socket_libdir" -lpthread

# ---- 3. checks -------------------------------------------------------------------------
export QT_QPA_PLATFORM=offscreen
failures=0
run_counted() {  # name ld_library_path command...
  local name=$1 llp=$2 out rc=0 passed failed; shift 2
  say "$name"
  out=$(cd "$(dirname "$1")" && LD_LIBRARY_PATH="$llp" "$@" 2>&1) || rc=$?
  echo "$out" >"$logs/sendv-run-${name//[^a-z0-9]/_}.log"
  echo "$out" | grep -E '^(PASS|FAIL|SKIP|Totals)' | grep -v '^PASS   : .*::\(initTestCase\|cleanupTestCase\)()' || true
  read -r passed failed < <(echo "$out" | awk '/^Totals:/ {p += $2; f += $4} END {print p + 0, f + 0}')
  if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
    echo "sendv: $name failed (exit status $rc)" >&2; failures=$((failures + 1))
  fi
}
llp_sendv="$out/shared/libblight:$out/shared/libblight_protocol:$socket_libdir"
run_counted "C socket tests (sendv build)" "$llp_sendv" "$out/socket_tests"
run_counted "tests/libblight (sendv build)" "$llp_sendv" "$out/tests/libblight/libblight"
run_counted "send_message check (sendv build)" "$llp_sendv" "$out/send_message" check
if [ "$failures" -ne 0 ]; then
  echo "sendv: $failures check(s) failed (logs in $logs)" >&2
  exit 1
fi
say "all checks passed"
[ "$bench" = 1 ] || exit 0

# ---- 4. the benchmark ------------------------------------------------------------------
declare -A llp=(
  [upstream]="$OXIDE_WORK/build-upstream/shared/libblight_protocol"
  [drop-in]="$OXIDE_WORK/build-patched/shared/libblight_protocol:$socket_libdir"
  [sendv]="$out/shared/libblight_protocol:$socket_libdir"
)
variants=(upstream drop-in sendv)
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
say "benchmark: oxide's blight_send_message -> blight_message_from_socket, $rounds interleaved rounds (load: $(cut -d' ' -f1-3 /proc/loadavg))"
printf '  %-8s %-9s %12s %14s %14s   %s\n' size build "messages/s" "sender us/msg" "receiver us/msg" "/ upstream (rate, sender CPU); / drop-in (rate)"
for size in 0 64 4096; do
  count=$(( size >= 4096 ? 40000 : 60000 ))
  declare -A rate=() scpu=() rcpu=()
  for v in "${variants[@]}"; do LD_LIBRARY_PATH="${llp[$v]}" "$out/send_message" bench "$size" $((count / 4)) >/dev/null; done
  for ((r = 0; r < rounds; r++)); do
    for ((k = 0; k < 3; k++)); do
      v=${variants[$(( (k + r) % 3 ))]}
      read -r a b c < <(LD_LIBRARY_PATH="${llp[$v]}" "$out/send_message" bench "$size" "$count")
      rate[$v]+="$a "; scpu[$v]+="$b "; rcpu[$v]+="$c "
    done
  done
  declare -A m_rate=() m_cpu=() m_rcpu=()
  for v in "${variants[@]}"; do
    m_rate[$v]=$(echo "${rate[$v]}" | tr ' ' '\n' | grep . | median)
    m_cpu[$v]=$(echo "${scpu[$v]}" | tr ' ' '\n' | grep . | median)
    m_rcpu[$v]=$(echo "${rcpu[$v]}" | tr ' ' '\n' | grep . | median)
  done
  for v in "${variants[@]}"; do
    printf '  %-8s %-9s %12.0f %14.3f %14.3f   %s\n' "${size}B" "$v" "${m_rate[$v]}" "${m_cpu[$v]}" "${m_rcpu[$v]}" \
      "$(awk -v r="${m_rate[$v]}" -v ur="${m_rate[upstream]}" -v c="${m_cpu[$v]}" -v uc="${m_cpu[upstream]}" -v dr="${m_rate[drop-in]}" \
         'BEGIN {printf "%.2fx %.2fx; %.2fx", r / ur, c / uc, r / dr}')"
  done
  unset rate scpu rcpu m_rate m_cpu m_rcpu
done
