# The optional sendv patch (sendv-message.patch, SENDV-PROPOSAL.md) against a running
# display server. Not the CI step: sourced by `integrations/oxide/e2e.sh --bench-sendv`
# after e2e.sh has built (or reused) its upstream and ours trees, with its variables and
# functions ($E2E_WORK, $cc/$cxx with ccache, llp_*, private_run, stop_all, say, logged,
# qmake_make).
#
#   integrations/oxide/e2e.sh --bench-sendv
#   E2E_SENDV_ROUNDS  rounds (default 9); each round runs the three client builds, in an
#                     order that rotates from round to round, each against a fresh blight
#   E2E_SENDV_CLIENT  the client's counts (default: --pings 20000 --infos 20000
#                     --batches 1000 --per-batch 200)
#
# 1. A third libblight_protocol: the ours tree (the kit's build patch) plus
#    sendv-message.patch, in $E2E_WORK/sendv (only shared/libblight_protocol is built:
#    clients load it by LD_LIBRARY_PATH; blight and libblight stay as e2e.sh built them).
# 2. e2e_sendv_client.c, built once: every message through oxide's blight_send_message.
# 3. Checks on the sendv build, against a fresh blight: upstream's C suite
#    (tests/libblight_protocol, the ours build, run on the sendv library) and the client's
#    own checks; the sendv library must import blight_sendv_blocking and the drop-in not;
#    with strace, the system calls of one short client run of each build.
# 4. Rounds: blight built on this library (the ours tree, llp_ours), fresh for every
#    client run; clients on upstream's socket.cpp, the drop-in, the drop-in + sendv.
#    Table ($E2E_WORK/bench-sendv.md): each column's median over the rounds, and the load
#    average before and after.
rounds=${E2E_SENDV_ROUNDS:-9}
read -r -a client_args <<<"${E2E_SENDV_CLIENT:---pings 20000 --infos 20000 --batches 1000 --per-batch 200}"
sv=$E2E_WORK/sendv
sendv_stamp=$( (echo "$src_stamp"; cat "$here/sendv-message.patch") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$sv/stamp" 2>/dev/null)" = "$sendv_stamp" ] && [ -f "$sv/build/shared/libblight_protocol/libblight_protocol.so" ]; then
  say "sendv: sources unchanged since the last run, reusing $sv"
else
  say "sendv: the ours tree + sendv-message.patch"
  rm -rf "$sv"
  mkdir -p "$sv/build/shared/libblight_protocol"
  cp -a "$E2E_WORK/ours/src" "$sv/src"
  patch -s -d "$sv/src" -p1 --no-backup-if-mismatch <"$here/sendv-message.patch"
  changed=$(diff -rq "$E2E_WORK/ours/src" "$sv/src" | sed "s|$E2E_WORK/||g" || true)
  [ "$changed" = "Files ours/src/shared/libblight_protocol/libblight_protocol.cpp and sendv/src/shared/libblight_protocol/libblight_protocol.cpp differ" ] \
    || { echo "sendv-message.patch must change exactly libblight_protocol.cpp; it changed:" >&2; echo "$changed" >&2; exit 1; }
  say "sendv: qmake6 + make shared/libblight_protocol"
  qmake_make "$sv/build/shared/libblight_protocol" "$sv/src/shared/libblight_protocol/libblight_protocol.pro" \
    "$logs/build-sendv-libblight_protocol.log"
  echo "$sendv_stamp" >"$sv/stamp"
fi
# One client binary for the three builds: libblight_protocol's ABI is upstream's in all.
logged "$logs/build-e2e_sendv_client.log" $cc -std=gnu11 -O2 -Wall -Wextra -I"$O/shared/libblight_protocol/include" \
  "$here/e2e_sendv_client.c" -o "$sv/e2e_sendv_client" -L"$O/shared/libblight_protocol" -lblight_protocol \
  -Wl,-rpath-link,"$socket_libdir" $(pkg-config --libs Qt6Core libsystemd) -lpthread

llp_sendv="$sv/build/shared/libblight_protocol:$socket_libdir:$O/shared/libblight:$O/shared/liboxide"
declare -A sv_llp=([upstream]="$llp_upstream" [drop-in]="$llp_ours" [sendv]="$llp_sendv")
variants=(upstream drop-in sendv)
client=$sv/e2e_sendv_client

# ---- checks ----------------------------------------------------------------------------
for v in "${variants[@]}"; do
  lib=$(resolves_to "${sv_llp[$v]}" "$client")
  imports=$(nm -D --undefined-only "$lib" | grep -c ' blight_sendv_blocking$' || true)
  want=0; [ "$v" = sendv ] && want=1
  [ "${lib%/libblight_protocol.so*}" = "${sv_llp[$v]%%:*}" ] && [ "$imports" = "$want" ] \
    || { echo "sendv: the $v client loads $lib, which imports blight_sendv_blocking $imports time(s), not $want" >&2; exit 1; }
done
say "sendv: clients load upstream's, the drop-in's and the sendv build's libblight_protocol; only the last imports blight_sendv_blocking"

start_blight() {  # tag: a fresh bus and a fresh blight on this library; 1 when it did not come up
  local addr i=0
  addr=$(dbus-daemon --session --fork --nopidfile --print-address=1 --print-pid=3 3>"$E2E_WORK/dbus.pid")
  dbus_pid=$(cat "$E2E_WORK/dbus.pid")
  export DBUS_SESSION_BUS_ADDRESS=$addr DBUS_SYSTEM_BUS_ADDRESS=$addr
  PATH="$E2E_WORK/bin:$PATH" LD_LIBRARY_PATH="$llp_ours" "${private_run[@]}" "$O/applications/display-server/blight" \
    >"$logs/sendv-$1-blight.log" 2>&1 &
  blight_pid=$!
  until dbus-send --session --print-reply --dest=org.freedesktop.DBus / org.freedesktop.DBus.NameHasOwner \
      string:codes.eeems.blight1 2>/dev/null | grep -q 'boolean true'; do
    i=$((i + 1))
    if ! kill -0 "$blight_pid" 2>/dev/null || [ $i -gt 300 ]; then
      echo "sendv: blight did not come up (log: $logs/sendv-$1-blight.log)" >&2; stop_all; return 1
    fi
    sleep 0.1
  done
}
blight_cpu_ticks() { awk '{print $14 + $15}' "/proc/$blight_pid/stat"; }

start_blight check
slog=$logs/sendv-c-suite.log rc=0
(cd "$O/tests/libblight_protocol" && LD_LIBRARY_PATH="$llp_sendv" timeout -k 5 120 ./libblight_protocol) >"$slog" 2>&1 || rc=$?
npass=$(grep -c '^PASS   : test_' "$slog" || true)
unexpected=$(grep '^FAIL   : test_' "$slog" | grep -v 'test_blight_service_input_open()' | sed 's/^FAIL   : //' | tr '\n' ' ' || true)
[ -z "$unexpected" ] && [ "$npass" -ge 24 ] \
  || { echo "sendv: upstream's C suite on the sendv library: $npass passed, exit $rc${unexpected:+, failed: $unexpected} (log: $slog)" >&2; exit 1; }
say "sendv: upstream's C suite on the sendv library against blight: $npass/25 passed (test_blight_service_input_open needs an evdev device)"
stop_all

if command -v strace >/dev/null; then
  say "sendv: system calls of one short client run (200 pings, 200 Infos, 2 x 200 repaints) per build:"
  for v in "${variants[@]}"; do
    start_blight "strace-$v" || exit 1
    rc=0
    LD_LIBRARY_PATH="${sv_llp[$v]}" strace -f -c -e trace=sendto,sendmsg,recvfrom,recvmsg,poll,ppoll -o "$sv/strace-$v.txt" \
      "$client" --pings 200 --infos 200 --batches 2 --per-batch 200 >"$logs/sendv-strace-$v.log" 2>&1 || rc=$?
    stop_all
    # Only a count for the reader: a machine that forbids ptrace skips it, the rounds still run.
    if [ "$rc" != 0 ]; then
      echo "   $v: no count (exit $rc under strace; log: $logs/sendv-strace-$v.log)"; continue
    fi
    printf '   %-8s %s\n' "$v" "$(awk '$NF ~ /^(sendto|sendmsg|recvfrom|recvmsg|poll|ppoll)$/ {printf "%s %s  ", $NF, $4}' "$sv/strace-$v.txt")"
  done
fi

# ---- rounds ----------------------------------------------------------------------------
declare -A sv_out=()
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
tick=$(getconf CLK_TCK)
for r in $(seq 1 "$rounds"); do
  say "sendv: round $r of $rounds (load $(cut -d' ' -f1-3 /proc/loadavg))"
  for k in 0 1 2; do
    v=${variants[$(( (k + r) % 3 ))]}
    start_blight "$v-$r" || exit 1
    c0=$(blight_cpu_ticks)
    rc=0
    out=$(LD_LIBRARY_PATH="${sv_llp[$v]}" timeout -k 5 300 "$client" "${client_args[@]}" 2>&1) || rc=$?
    c1=$(blight_cpu_ticks)
    stop_all
    if [ "$rc" != 0 ] || ! grep -q '^bench:' <<<"$out"; then
      echo "sendv: the $v client failed in round $r (exit $rc):" >&2; echo "$out" | head -n 5 >&2; exit 1
    fi
    sv_out[$v]+="$(grep '^bench:' <<<"$out" | sed 's/^bench: //') blight_cpu_ms=$(( (c1 - c0) * 1000 / tick ));"
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# Column $1's median over build $2's rounds (the lower middle one for an even count).
col() {
  tr ';' '\n' <<<"${sv_out[$2]}" | sed -n "s/.* $1=\([0-9.]*\).*/\1/p; s/^$1=\([0-9.]*\).*/\1/p" | sort -g |
    awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]}'
}
{
  echo "| clients' libblight_protocol | ping median (µs) | ping p99 (µs) | Info median (µs) | Info p99 (µs) | repaints/s | client CPU per repaint (µs) | blight CPU per run (ms) |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  for v in "${variants[@]}"; do
    echo "| $v | $(col ping_median_us "$v") | $(col ping_p99_us "$v") | $(col info_median_us "$v") | $(col info_p99_us "$v") | $(col repaints_per_s "$v") | $(col client_cpu_us_per_repaint "$v") | $(col blight_cpu_ms "$v") |"
  done
  for base in drop-in upstream; do
    for q in ping_median_us info_median_us repaints_per_s client_cpu_us_per_repaint blight_cpu_ms; do
      printf '%s %s %s\n' "$q" "$(col "$q" sendv)" "$(col "$q" "$base")"
    done | awk -v base="$base" '{r[$1] = ($3 > 0) ? $2 / $3 : 0}
      END {printf "| sendv / %s | %.2fx | | %.2fx | | %.2fx | %.2fx | %.2fx |\n", base, r["ping_median_us"], r["info_median_us"], r["repaints_per_s"], r["client_cpu_us_per_repaint"], r["blight_cpu_ms"]}'
  done
  echo
  echo "Blight on this library, fresh for each client run; medians over $rounds rounds, the three builds alternating (order rotating each round)."
  echo "Each run (e2e_sendv_client ${client_args[*]}): the pings, the Infos, then the repaint batches, each followed by a ping."
  echo "Load average before: $load_before; after: $load_after."
  echo "Per-round values (\`bench:\` lines): $sv/rounds.txt"
} >"$E2E_WORK/bench-sendv.md"
for v in "${variants[@]}"; do tr ';' '\n' <<<"${sv_out[$v]}" | grep . | sed "s/^/$v: /"; done >"$sv/rounds.txt"
say "sendv against a running blight ($E2E_WORK/bench-sendv.md):"
cat "$E2E_WORK/bench-sendv.md"
