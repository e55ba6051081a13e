#!/usr/bin/env bash
# The oxide integration kit: builds oxide's libblight_protocol, libblight and tests/libblight
# on this library, and runs upstream's own tests against it, at source and binary level.
#
#   OXIDE_SRC   an oxide checkout (default: ../shared/oxide next to this project); only
#               read, never edited: it is copied, and the copy is patched
#   OXIDE_WORK  the build directory (default: build-oxide in this project; emptied first)
#   JOBS        make -j (default 2)
#   BLIGHT_CARGO_TARGET_DIR  cargo's target directory for this library (optional: reuse one)
#
# Steps:
#   1. build this library with CMake and install it into $OXIDE_WORK/prefix;
#   2. copy the oxide tree twice: "upstream" untouched, "patched" with oxide-build.patch
#      (build files only: libblight_protocol.pro without socket.cpp, this project's socket.h,
#      blight_socket through pkg-config; libblight_protocol.pri and .pc pull it in);
#   3. build shared/libblight_protocol, shared/libblight, tests/libblight in both with
#      qmake6 + make, and upstream's C socket tests through socket_tests.c;
#   4. run (a) upstream's four C socket tests and (b) tests/libblight, built on the patched
#      tree; (c) the same tests and libblight.so built from the untouched tree (with
#      upstream's socket.cpp), run unchanged against the patched libblight_protocol.so and
#      libblight_socket.so, after `ldd -r` found no undefined symbol.
# Exits non-zero when anything fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
OXIDE_SRC=$(cd "${OXIDE_SRC:-$root/../shared/oxide}" && pwd)
OXIDE_WORK=${OXIDE_WORK:-$root/build-oxide}
JOBS=${JOBS:-2}
# shellcheck source=integrations/oxide/common.sh
. "$here/common.sh"

for tool in cmake qmake6 make pkg-config patch g++ gcc; do
  command -v "$tool" >/dev/null || { echo "run.sh needs $tool (Debian: qt6-base-dev qt6-base-dev-tools libsystemd-dev pkg-config g++ cmake)" >&2; exit 2; }
done
[ -f "$OXIDE_SRC/shared/libblight_protocol/socket.cpp" ] || { echo "OXIDE_SRC=$OXIDE_SRC is not an oxide tree" >&2; exit 2; }
rm -rf "$OXIDE_WORK"
mkdir -p "$OXIDE_WORK/logs"
logs=$OXIDE_WORK/logs

# ---- 1. this library -----------------------------------------------------------------
say "building blight_socket (CMake) into $OXIDE_WORK/prefix"
build_library "$OXIDE_WORK/blight" "$OXIDE_WORK/prefix" "$logs"
pc=$(dirname "$(find "$OXIDE_WORK/prefix" -name blight_socket.pc | head -n1)")
export PKG_CONFIG_PATH="$pc${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
socket_libdir=$(pkg-config --variable=libdir blight_socket)

# ---- 2. the two oxide trees ----------------------------------------------------------
say "copying $OXIDE_SRC (upstream, and patched with oxide-build.patch)"
cp -a "$OXIDE_SRC" "$OXIDE_WORK/src-upstream"
cp -a "$OXIDE_SRC" "$OXIDE_WORK/src-patched"
patch -s -d "$OXIDE_WORK/src-patched" -p1 --no-backup-if-mismatch <"$here/oxide-build.patch"
changed=$(diff -rq "$OXIDE_SRC" "$OXIDE_WORK/src-patched" | sort || true)
expected="Files $OXIDE_SRC/qmake/libblight_protocol.pri and $OXIDE_WORK/src-patched/qmake/libblight_protocol.pri differ
Files $OXIDE_SRC/shared/libblight_protocol/libblight_protocol.pro and $OXIDE_WORK/src-patched/shared/libblight_protocol/libblight_protocol.pro differ"
[ "$changed" = "$expected" ] || { echo "the patch must change exactly the two build files; it changed:" >&2; echo "$changed" >&2; exit 1; }
echo "patch: $(grep -c '^+[^+]' "$here/oxide-build.patch") lines added, $(grep -c '^-[^-]' "$here/oxide-build.patch") removed, 2 build files, no source file"

# ---- 3. builds -----------------------------------------------------------------------
build_tree() {  # $1 = upstream|patched
  local src=$OXIDE_WORK/src-$1 out=$OXIDE_WORK/build-$1 d
  for d in shared/libblight_protocol shared/libblight tests/libblight; do
    say "$1: qmake6 + make $d"
    mkdir -p "$out/$d"
    (cd "$out/$d" && logged "$logs/$1-${d//\//_}.log" sh -c "qmake6 '$src/$d/$(basename "$d").pro' && make -j'$JOBS'")
  done
  # Upstream's C socket tests (tests/libblight_protocol/test.c) through our driver,
  # compiled against this tree's headers and linked to its libblight_protocol.
  local extra=()
  [ "$1" = patched ] && extra=($(pkg-config --libs blight_socket))
  logged "$logs/$1-socket_tests.log" gcc -std=gnu11 -O1 \
    -I"$out/shared/libblight_protocol/include" -I"$src/tests/libblight_protocol" \
    "$here/socket_tests.c" -o "$out/socket_tests" \
    -L"$out/shared/libblight_protocol" -lblight_protocol "${extra[@]}" $(pkg-config --libs libsystemd) -lpthread
}
build_tree upstream
build_tree patched
up=$OXIDE_WORK/build-upstream
pa=$OXIDE_WORK/build-patched

# ---- 4. tests ------------------------------------------------------------------------
export QT_QPA_PLATFORM=offscreen
failures=0
declare -A result
# Runs a test binary with the given LD_LIBRARY_PATH; records "passed/total" from its
# "Totals: N passed, M failed" lines (QtTest prints one per test class).
run_counted() {  # name ld_library_path binary
  local name=$1 llp=$2 bin=$3 out rc=0 passed failed
  say "$name: $bin"
  out=$(cd "$(dirname "$bin")" && LD_LIBRARY_PATH="$llp" "$bin" 2>&1) || rc=$?
  echo "$out" >"$logs/run-${name//[^a-z0-9]/_}.log"
  echo "$out" | grep -E '^(PASS|FAIL|SKIP|Totals)' | grep -v '^PASS   : .*::\(initTestCase\|cleanupTestCase\)()' || true
  read -r passed failed totals < <(echo "$out" | awk '/^Totals:/ {p += $2; f += $4; n++} END {print p + 0, f + 0, n + 0}')
  [ "$totals" -gt 0 ] || failed=1
  result[$name]="${passed:-0}/$(( ${passed:-0} + ${failed:-0} )) passed (exit status $rc)"
  if [ "$rc" -ne 0 ] || [ "${failed:-1}" -ne 0 ] || [ "${passed:-0}" -eq 0 ]; then failures=$((failures + 1)); fi
}

patched_llp="$pa/shared/libblight:$pa/shared/libblight_protocol:$socket_libdir"
run_counted "(a) C socket tests" "$pa/shared/libblight_protocol:$socket_libdir" "$pa/socket_tests"
run_counted "(b) tests/libblight" "$patched_llp" "$pa/tests/libblight/libblight"

# (c) binaries built from the untouched tree; only libblight_protocol.so (patched) and
# libblight_socket.so come from this side.
binary_llp="$up/shared/libblight:$pa/shared/libblight_protocol:$socket_libdir"
say "(c) ldd -r on the untouched binaries, with the patched libblight_protocol + libblight_socket"
sums_before=$(sha256sum "$up/socket_tests" "$up/tests/libblight/libblight" "$up"/shared/libblight/libblight.so.*.*.*)
for bin in "$up/socket_tests" "$up/tests/libblight/libblight" "$up"/shared/libblight/libblight.so; do
  report=$(LD_LIBRARY_PATH="$binary_llp" ldd -r "$bin" 2>&1)
  if echo "$report" | grep -E 'undefined symbol|not found'; then
    echo "ldd -r $bin: unresolved (above)" >&2; failures=$((failures + 1))
  else
    echo "ldd -r $(basename "$bin"): no undefined symbol; $(echo "$report" | grep -o 'libblight_protocol.so.[0-9]* => [^ ]*' | sed "s|$OXIDE_WORK/||"); $(echo "$report" | grep -o 'libblight_socket.so.[0-9]* => [^ ]*' | sed "s|$OXIDE_WORK/||")"
  fi
  if ! echo "$report" | grep -q "libblight_protocol.so.[0-9]* => $pa/"; then
    echo "ldd $bin: libblight_protocol does not resolve to the patched build" >&2; failures=$((failures + 1))
  fi
done
run_counted "(c) C socket tests, untouched binary" "$binary_llp" "$up/socket_tests"
run_counted "(c) tests/libblight, untouched binaries" "$binary_llp" "$up/tests/libblight/libblight"
[ "$sums_before" = "$(sha256sum "$up/socket_tests" "$up/tests/libblight/libblight" "$up"/shared/libblight/libblight.so.*.*.*)" ] \
  || { echo "an untouched binary changed" >&2; failures=$((failures + 1)); }

say "summary (oxide: $OXIDE_SRC)"
for name in "(a) C socket tests" "(b) tests/libblight" "(c) C socket tests, untouched binary" "(c) tests/libblight, untouched binaries"; do
  printf '  %-42s %s\n' "$name" "${result[$name]}"
done
if [ "$failures" -ne 0 ]; then
  echo "oxide kit: $failures check(s) failed (logs in $logs)" >&2
  exit 1
fi
echo "oxide kit: all checks passed in $(( $(date +%s) - start ))s"
