#!/usr/bin/env bash
# The oxide end-to-end step: oxide's display server (blight) and its clients, built twice,
# talking over their real AF_UNIX sockets, headless.
#
#   integrations/oxide/e2e.sh                     the step (exit 0 only if all passed)
#   integrations/oxide/e2e.sh --negative-control  the same checks with the clients'
#       sends to blight corrupted (corrupt_send.c, LD_PRELOAD: one send in 50, bytes
#       inverted) in combinations 1 (upstream's socket layer) and 2 (ours): the C suite
#       and the libblight client must both fail (exit 1 is the expected outcome;
#       scripts/test.d/66-oxide-e2e.sh requires it)
#   integrations/oxide/e2e.sh --bench-sendv       not the step (CI never runs it): the same
#       builds, then e2e-sendv.sh: the optional sendv-message.patch measured against a
#       running blight (see that file)
#
#   OXIDE_SRC   an oxide checkout (default ../shared/oxide next to this project); only
#               read: it is copied twice, and the copies are patched
#   OXIDE_WORK  the oxide kit's work directory (run.sh); when it holds the kit's builds of
#               this library and of libblight_protocol/libblight, they are reused
#               (default build-oxide in this project)
#   E2E_WORK    this step's trees (default build-oxide-e2e; kept between runs: a second
#               run on the same oxide tree only re-runs make)
#   JOBS        make -j (default 2)
#   CCACHE_DIR  ccache's directory (default $E2E_WORK/ccache); ccache is used when present
#   BLIGHT_CARGO_TARGET_DIR  cargo's target directory for this library (optional)
#
# Trees ($E2E_WORK/<tree>/src and /build, the same layout, so that ccache compiles each
# source file the two trees share once):
#   upstream  oxide as it is, but for display-server-fix.patch (blight's crash on a
#             surface whose image is null: UPSTREAM-NOTE.md)
#   ours      the same with the kit's oxide-build.patch: libblight_protocol on this library
# Each builds libblight_protocol, libblight, liboxide, the display server (blight), the
# QPA plugin, tests/test_app and tests/libblight_protocol with qmake6 + make, with three
# Qt 6.4 work-arounds (QTextStream include, QKeyboardMap name, and a no-op qdbuscpp2xml,
# see below) and DEFINES+=DISABLE_LTO (upstream's own switch). This directory's clients
# (e2e_client.cpp on libblight, null_image_repro.c on libblight_protocol) are built
# against each tree.
#
# Combinations, each against a fresh dbus-daemon and a fresh blight:
#   1 upstream           server and clients built on upstream's socket.cpp
#   2 ours               server and clients built on this library
#   3 upstream-on-ours   the upstream-built binaries run on this library (LD_LIBRARY_PATH)
#   4 server-upstream    upstream's blight, clients built on this library
#   5 server-ours        blight built on this library, upstream's clients
# In each: upstream's C suite (tests/libblight_protocol; test_blight_service_input_open
# is the one expected failure: it needs an evdev device), e2e_client (checks every answer;
# ping latency and repaints/s in 1, 2, 4, 5), the null-image reproducer, tests/test_app
# through the QPA plugin in 1, 2, 3 (its windows must appear in blight's surface list),
# and blight's health (alive; on SIGTERM, gone within 10 s with status 0 or 143, the
# signal's own: upstream blight installs no handler; no new warning in its log).
# The last line is `e2e: N passed, M failed`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
negative=0 bench_sendv=0
case "${1:-}" in
  "") ;;
  --negative-control) negative=1 ;;
  --bench-sendv) bench_sendv=1 ;;
  *) echo "usage: $0 [--negative-control | --bench-sendv]" >&2; exit 2 ;;
esac
OXIDE_SRC=$(cd "${OXIDE_SRC:-$root/../shared/oxide}" && pwd)
OXIDE_WORK=${OXIDE_WORK:-$root/build-oxide}
E2E_WORK=${E2E_WORK:-$root/build-oxide-e2e}
JOBS=${JOBS:-2}
# shellcheck source=integrations/oxide/common.sh
. "$here/common.sh"

for tool in cmake qmake6 make pkg-config patch g++ gcc dbus-daemon dbus-send timeout; do
  command -v "$tool" >/dev/null || { echo "e2e.sh needs $tool (scripts/setup.sh all installs it)" >&2; exit 2; }
done
qt_headers=$(qmake6 -query QT_INSTALL_HEADERS)
for h in QtGui/$(qmake6 -query QT_VERSION)/QtGui/private/qguiapplication_p.h QtQuick/QQuickItem; do
  [ -f "$qt_headers/$h" ] || { echo "e2e.sh needs $qt_headers/$h (scripts/setup.sh all: qt6-base-private-dev qt6-declarative-dev)" >&2; exit 2; }
done
pkg-config --exists libevdev libudev || { echo "e2e.sh needs libevdev-dev and libudev-dev" >&2; exit 2; }
[ -f "$OXIDE_SRC/applications/display-server/surfacewidget.cpp" ] || { echo "OXIDE_SRC=$OXIDE_SRC has no display server" >&2; exit 2; }
# Blight takes its lock and pid file in /run/oxide (a fixed path). As root, each blight gets
# its own empty /run/oxide (a tmpfs in a private mount namespace): runs of this step at the
# same time, or a blight of the machine's own, do not see each other's lock. Otherwise the
# machine's /run/oxide is used, and one run at a time.
mkdir -p /run/oxide 2>/dev/null && [ -w /run/oxide ] || { echo "blight needs a writable /run/oxide (run as root, or create it)" >&2; exit 2; }
private_run=()
if unshare --mount --propagation private sh -c 'mount -t tmpfs -o size=1m e2e /run/oxide' 2>/dev/null; then
  private_run=(unshare --mount --propagation private sh -c 'mount -t tmpfs -o size=1m e2e /run/oxide && exec "$0" "$@"')
fi

mkdir -p "$E2E_WORK/logs" "$E2E_WORK/bin"
E2E_WORK=$(cd "$E2E_WORK" && pwd)
logs=$E2E_WORK/logs
rm -f "$logs"/*.log

# ---- tools on PATH for the builds and for blight ---------------------------------------
# Qt 6.4's qdbuscpp2xml drops every method passing a file descriptor: blight's post-link
# step must not regenerate interfaces/blight.xml, the checked-in one is kept.
printf '#!/bin/sh\n# e2e.sh: keep the checked-in interface XML (Qt 6.4 drops fd methods)\nexit 0\n' >"$E2E_WORK/bin/qdbuscpp2xml"
# Blight refuses to start unless `systemctl show --property MainPID --value blight` prints 0.
printf '#!/bin/sh\n# e2e.sh: no systemd here; blight.service is not running\ncase " $* " in *" show "*) echo 0 ;; esac\nexit 0\n' >"$E2E_WORK/bin/systemctl"
chmod +x "$E2E_WORK/bin/qdbuscpp2xml" "$E2E_WORK/bin/systemctl"

# ---- this library ------------------------------------------------------------------------
if [ -f "$OXIDE_WORK/prefix/lib/pkgconfig/blight_socket.pc" ] || ls "$OXIDE_WORK"/prefix/lib*/*/pkgconfig/blight_socket.pc >/dev/null 2>&1; then
  prefix=$OXIDE_WORK/prefix
  say "reusing the kit's build of this library ($prefix)"
else
  prefix=$E2E_WORK/prefix
  say "building blight_socket (CMake) into $prefix"
  build_library "$E2E_WORK/blight" "$prefix" "$logs"
fi
pc=$(dirname "$(find "$prefix" -name blight_socket.pc | head -n1)")
export PKG_CONFIG_PATH="$pc${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
socket_libdir=$(pkg-config --variable=libdir blight_socket)

# ---- the two trees ---------------------------------------------------------------------
if command -v ccache >/dev/null; then
  export CCACHE_DIR=${CCACHE_DIR:-$E2E_WORK/ccache} CCACHE_BASEDIR=$E2E_WORK CCACHE_NOHASHDIR=1
  export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
  # The build patch adds this library's include directory (pkg-config --cflags) to every
  # compile of the ours tree; it comes after the tree's own include directories, and a
  # header found there is still hashed by content, so leaving the option out of the hash
  # lets a file both trees share compile once (the precompiled headers included).
  inc_abs=$(pkg-config --cflags-only-I blight_socket | sed 's/^ *-I//; s/ *$//')
  export CCACHE_IGNOREOPTIONS="-I$inc_abs -I$(realpath -m --relative-to="$E2E_WORK/ours/build/shared/liboxide" "$inc_abs")"
  cc="ccache gcc"; cxx="ccache g++"
  ccache -z >/dev/null
else
  cc=gcc; cxx=g++
fi
dirs=(shared/libblight_protocol shared/libblight shared/liboxide applications/display-server shared/qpa tests/test_app tests/libblight_protocol)
# What the copies are made from: the oxide tree's files and the two patches.
src_stamp=$( (cd "$OXIDE_SRC" && find . -type f -printf '%P %s %T@\n' | LC_ALL=C sort; cat "$here/display-server-fix.patch" "$here/oxide-build.patch") | sha256sum | cut -d' ' -f1)

prepare_tree() {  # upstream|ours
  local t=$1 dst=$E2E_WORK/$1
  if [ "$(cat "$dst/stamp" 2>/dev/null)" = "$src_stamp" ]; then
    say "$t: sources unchanged since the last run, reusing $dst"
    return
  fi
  say "$t: copying $OXIDE_SRC"
  rm -rf "$dst"
  mkdir -p "$dst/build"
  cp -a "$OXIDE_SRC" "$dst/src"
  patch -s -d "$dst/src" -p1 --no-backup-if-mismatch <"$here/display-server-fix.patch"
  [ "$t" = ours ] && patch -s -d "$dst/src" -p1 --no-backup-if-mismatch <"$here/oxide-build.patch"
  local changed expected
  changed=$(diff -rq "$OXIDE_SRC" "$dst/src" | sed "s|$OXIDE_SRC/||; s|$dst/src/||" | sort || true)
  expected="Files applications/display-server/surfacewidget.cpp and applications/display-server/surfacewidget.cpp differ"
  [ "$t" = ours ] && expected=$(printf '%s\n%s\n%s' "$expected" \
    "Files qmake/libblight_protocol.pri and qmake/libblight_protocol.pri differ" \
    "Files shared/libblight_protocol/libblight_protocol.pro and shared/libblight_protocol/libblight_protocol.pro differ" | sort)
  [ "$changed" = "$expected" ] || { echo "$t: the patches changed other files than expected:" >&2; echo "$changed" >&2; exit 1; }
}

# The kit's libblight_protocol and libblight builds (run.sh: build-upstream, build-patched)
# are reused when their sources are this oxide tree's.
reuse_kit() {  # tree dir
  local kit=upstream
  [ "$1" = ours ] && kit=patched
  local kb=$OXIDE_WORK/build-$kit/$2 ks=$OXIDE_WORK/src-$kit/$2 lib
  lib=lib$(basename "$2" | sed 's/^lib//').so
  [ -f "$kb/$lib" ] && [ -d "$ks" ] || return 1
  diff -rq -x meta.h "$ks" "$E2E_WORK/$1/src/$2" >/dev/null 2>&1 || return 1
  diff -q "$OXIDE_WORK/src-$kit/qmake/libblight_protocol.pri" "$E2E_WORK/$1/src/qmake/libblight_protocol.pri" >/dev/null 2>&1 || return 1
  [ "$prefix" = "$OXIDE_WORK/prefix" ] || return 1
  rm -rf "${E2E_WORK:?}/$1/build/$2"
  mkdir -p "$(dirname "$E2E_WORK/$1/build/$2")"
  ln -s "$kb" "$E2E_WORK/$1/build/$2"
}

# qmake_make builddir pro log [qmake args...]: qmake6 + make in builddir with this kit's
# compilers. Qt 6.4: applications.h needs QTextStream; Qt 6.5's QKeyboardMap was
# QEvdevKeyboardMap.
qmake_make() {
  local dir=$1 pro=$2 log=$3
  shift 3
  (cd "$dir" && PATH="$E2E_WORK/bin:$PATH" logged "$log" sh -c '
    qmake6 "$0" DEFINES+=DISABLE_LTO "$@" && make -j"$JOBS"' \
    "$pro" "$@" "QMAKE_CC=$cc" "QMAKE_CXX=$cxx" \
    "QMAKE_CXXFLAGS+=-I$qt_headers -include QtCore/QTextStream -DQKeyboardMap=QEvdevKeyboardMap")
}

build_tree() {  # upstream|ours
  local t=$1 d extra
  local b=$E2E_WORK/$t/build
  for d in "${dirs[@]}"; do
    if [[ "$d" == shared/libblight* ]] && reuse_kit "$t" "$d"; then
      say "$t: $d: reusing the kit's build ($(readlink "$b/$d"))"
      continue
    fi
    say "$t: qmake6 + make $d"
    [ -L "$b/$d" ] && rm -f "$b/$d"
    mkdir -p "$b/$d"
    extra=()
    # test_app logs its own checks with O_DEBUG (compiled in only with DEBUG; DEBUG=1 at run time).
    [ "$d" = tests/test_app ] && extra=(DEFINES+=DEBUG)
    qmake_make "$b/$d" "$E2E_WORK/$t/src/$d/$(basename "$d").pro" "$logs/build-$t-${d//\//_}.log" "${extra[@]}"
  done
  # The QPA plugin where Qt looks for platforms/ (QT_PLUGIN_PATH).
  mkdir -p "$E2E_WORK/$t/plugins/platforms"
  ln -sf "$b/shared/qpa/liboxide.so" "$E2E_WORK/$t/plugins/platforms/liboxide.so"
  # This directory's clients, built against the tree.
  local inc=(-I"$b/shared/libblight/include" -I"$b/shared/libblight_protocol/include")
  local libs=(-L"$b/shared/libblight" -L"$b/shared/libblight_protocol" -lblight -lblight_protocol)
  [ "$t" = ours ] && libs+=($(pkg-config --libs blight_socket))
  say "$t: e2e_client, null_image_repro"
  logged "$logs/build-$t-e2e_client.log" $cxx -std=c++20 -O2 -Wall -Wextra "${inc[@]}" "$here/e2e_client.cpp" \
    -o "$E2E_WORK/$t/e2e_client" "${libs[@]}" $(pkg-config --libs Qt6Core libsystemd) -lpthread
  logged "$logs/build-$t-null_image_repro.log" $cc -std=gnu11 -O2 -Wall -Wextra "${inc[@]}" "$here/null_image_repro.c" \
    -o "$E2E_WORK/$t/null_image_repro" "${libs[@]}" $(pkg-config --libs Qt6Core libsystemd) -lpthread
}

prepare_tree upstream
prepare_tree ours
build_tree upstream
build_tree ours
logged "$logs/build-corrupt_send.log" gcc -O2 -Wall -Wextra -shared -fPIC "$here/corrupt_send.c" -o "$E2E_WORK/corrupt_send.so" -ldl
echo "$src_stamp" >"$E2E_WORK/upstream/stamp"
echo "$src_stamp" >"$E2E_WORK/ours/stamp"
command -v ccache >/dev/null && say "ccache: $(ccache -s | grep -E '^ *Hits:' | head -n1 | tr -s ' ')"
build_seconds=$(( $(date +%s) - start ))

# ---- running ---------------------------------------------------------------------------
U=$E2E_WORK/upstream/build
O=$E2E_WORK/ours/build
llp_upstream="$U/shared/libblight_protocol:$U/shared/libblight:$U/shared/liboxide"
llp_ours="$O/shared/libblight_protocol:$socket_libdir:$O/shared/libblight:$O/shared/liboxide"
# Upstream-built libblight and liboxide; libblight_protocol (and libblight_socket) ours.
llp_upstream_on_ours="$O/shared/libblight_protocol:$socket_libdir:$U/shared/libblight:$U/shared/liboxide"
export QT_QPA_PLATFORM=offscreen
export XDG_RUNTIME_DIR=$E2E_WORK/xdg
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"

passed=0; failed=0
results=()
declare -A bench
record() {  # combo ok|fail what
  if [ "$2" = ok ]; then passed=$((passed + 1)); results+=("PASS  $1: $3")
  else failed=$((failed + 1)); results+=("FAIL  $1: $3"); fi
  echo "   $([ "$2" = ok ] && echo PASS || echo FAIL): $3"
}

# Warnings blight may print at startup, on this headless machine; whatever else it prints
# after startup at warning level or worse is a new error.
blight_errors() {  # log from_line
  tail -n +"$2" "$1" | grep -E 'Warning|Critical|Fatal|warning:|critical|fatal|rror|Segmentation|Abort' || true
}

blight_pid=""; dbus_pid=""; watch_pid=""
stop_all() {
  local p
  for p in $watch_pid $blight_pid $dbus_pid; do kill "$p" 2>/dev/null || true; done
  watch_pid=""; blight_pid=""; dbus_pid=""
}
trap stop_all EXIT

# The library a binary's libblight_protocol resolves to, under this LD_LIBRARY_PATH.
resolves_to() {  # llp binary
  LD_LIBRARY_PATH="$1" ldd "$2" | awk '/libblight_protocol.so/ {print $3}' | head -n1
}

run_combo() {  # n name server_tree server_llp client_tree client_llp test_app(0|1) bench(0|1)
  local n=$1 name=$2 st=$3 sllp=$4 ct=$5 cllp=$6 with_app=$7 with_bench=$8
  local c="combo $n ($name)" sb=$E2E_WORK/$3/build cb=$E2E_WORK/$5/build
  local tag=$n-$name
  say "$c: server $st on $( [ "$sllp" = "$llp_upstream" ] && echo upstream || echo ours ), clients $ct on $( [ "$cllp" = "$llp_upstream" ] && echo upstream || echo ours )"
  # Which libblight_protocol each side really loads.
  local sres cres want_s want_c
  sres=$(resolves_to "$sllp" "$sb/applications/display-server/blight")
  cres=$(resolves_to "$cllp" "$cb/tests/libblight_protocol/libblight_protocol")
  want_s=${sllp%%/shared/libblight_protocol:*}; want_c=${cllp%%/shared/libblight_protocol:*}
  if [[ "$sres" == "$want_s"/* && "$cres" == "$want_c"/* ]]; then
    record "$c" ok "libblight_protocol: blight loads ${sres#"$E2E_WORK"/}, clients ${cres#"$E2E_WORK"/}"
  else
    record "$c" fail "libblight_protocol resolves to $sres (blight) and $cres (clients)"
  fi

  # A private bus, as both the session and the system bus.
  local addr
  addr=$(dbus-daemon --session --fork --nopidfile --print-address=1 --print-pid=3 3>"$E2E_WORK/dbus.pid")
  dbus_pid=$(cat "$E2E_WORK/dbus.pid")
  export DBUS_SESSION_BUS_ADDRESS=$addr DBUS_SYSTEM_BUS_ADDRESS=$addr

  local blog=$logs/$tag-blight.log
  PATH="$E2E_WORK/bin:$PATH" LD_LIBRARY_PATH="$sllp" "${private_run[@]}" "$sb/applications/display-server/blight" >"$blog" 2>&1 &
  blight_pid=$!
  local i=0
  until dbus-send --session --print-reply --dest=org.freedesktop.DBus / org.freedesktop.DBus.NameHasOwner \
      string:codes.eeems.blight1 2>/dev/null | grep -q 'boolean true'; do
    i=$((i + 1))
    if ! kill -0 "$blight_pid" 2>/dev/null || [ $i -gt 300 ]; then
      record "$c" fail "blight did not come up on the bus (log: $blog)"; tail -n 20 "$blog"; stop_all; return
    fi
    sleep 0.1
  done
  local base=$(( $(wc -l <"$blog") + 1 ))
  record "$c" ok "blight up on a fresh bus (pid $blight_pid)"

  local wlog=$logs/$tag-watch.log
  if [ "$with_app" = 1 ]; then
    # The observer: the first connection, so blight lets it read every surface.
    LD_LIBRARY_PATH="$cllp" "$E2E_WORK/$ct/e2e_client" --watch 300 >"$wlog" 2>&1 &
    watch_pid=$!
    i=0
    until grep -q '^watch: watching' "$wlog" || [ $i -gt 100 ] || ! kill -0 "$watch_pid" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
    grep -q '^watch: watching' "$wlog" || { record "$c" fail "surface observer did not start: $(head -n1 "$wlog")"; with_app=0; }
  fi

  # Under the negative control a corrupted message can leave upstream's suite waiting for
  # an answer without a deadline: 30 s is plenty for a run that takes 4. The corrupted
  # sends are one in 50 from the 10th (the client's); upstream's suite sends only 35
  # messages' worth to blight, so it gets one, from the 20th: a Delete's surface id, whose
  # effect the suite checks (its 10th is a Repaint header, which it does not check: it
  # still passes 24/25, and only blight's log shows the garbage).
  local pre=() suite_pre=() limit=120
  if [ "$negative" = 1 ]; then
    pre=(LD_PRELOAD="$E2E_WORK/corrupt_send.so" CORRUPT_SEND_FIRST=10 CORRUPT_SEND_EVERY=50)
    suite_pre=(LD_PRELOAD="$E2E_WORK/corrupt_send.so" CORRUPT_SEND_FIRST=20 CORRUPT_SEND_EVERY=50)
    limit=30
  fi

  # Upstream's C suite against the running blight. test_blight_service_input_open opens
  # an evdev input device through blight; without one (no /dev/input here) it fails.
  local slog=$logs/$tag-c-suite.log rc=0
  (cd "$cb/tests/libblight_protocol" && env "${suite_pre[@]}" LD_LIBRARY_PATH="$cllp" \
    timeout -k 5 "$limit" ./libblight_protocol) >"$slog" 2>&1 || rc=$?
  local npass nfail unexpected
  npass=$(grep -c '^PASS   : test_' "$slog" || true)
  nfail=$(grep -c '^FAIL   : test_' "$slog" || true)
  unexpected=$(grep '^FAIL   : test_' "$slog" | grep -v 'test_blight_service_input_open()' | sed 's/^FAIL   : //' | tr '\n' ' ' || true)
  if [ -z "$unexpected" ] && [ $((npass + nfail)) -eq 25 ]; then
    if [ "$nfail" = 1 ]; then
      record "$c" ok "upstream C suite: $npass/25 passed; expected failure: test_blight_service_input_open (needs an evdev input device, none here)"
    else
      record "$c" ok "upstream C suite: $npass/25 passed"
    fi
  else
    record "$c" fail "upstream C suite: $npass passed, $nfail failed of $((npass + nfail)) run (25 expected), exit $rc${unexpected:+; unexpected failures: $unexpected}(log: $slog)"
  fi

  # The libblight client.
  local clog=$logs/$tag-client.log
  rc=0
  env "${pre[@]}" LD_LIBRARY_PATH="$cllp" timeout -k 5 "$limit" "$E2E_WORK/$ct/e2e_client" >"$clog" 2>&1 || rc=$?
  local summary
  summary=$(grep '^client:' "$clog" || echo "client: no summary (exit $rc)")
  if [ "$rc" = 0 ] && [[ "$summary" == *" 0 failed"* ]]; then
    record "$c" ok "libblight client: ${summary#client: }"
  else
    record "$c" fail "libblight client: ${summary#client: }; $(grep -m3 '^check: FAILED' "$clog" | sed 's/^check: FAILED //' | tr '\n' ';') (log: $clog)"
  fi
  if [ "$with_bench" = 1 ] && grep -q '^bench:' "$clog"; then
    bench[$n]="$(grep '^bench:' "$clog" | sed 's/^bench: //');"
  fi

  if [ "$negative" = 0 ]; then
    # Blight's crash on a null image (fixed by display-server-fix.patch): it must survive.
    local rlog=$logs/$tag-repro.log
    rc=0
    LD_LIBRARY_PATH="$cllp" timeout -k 5 60 "$E2E_WORK/$ct/null_image_repro" >"$rlog" 2>&1 || rc=$?
    if [ "$rc" = 0 ]; then record "$c" ok "null-image reproducer: blight survived"
    else record "$c" fail "null-image reproducer: exit $rc: $(tail -n1 "$rlog")"; fi
  fi

  if [ "$with_app" = 1 ]; then
    # tests/test_app: its own libblight checks ("Test passes"), then its QML windows through
    # the QPA plugin: they must appear in blight's surface list.
    local alog=$logs/$tag-test_app.log
    (cd "$cb/tests/test_app" && exec env LD_LIBRARY_PATH="$cllp" QT_PLUGIN_PATH="$E2E_WORK/$ct/plugins" DEBUG=1 \
      ./test_app) >"$alog" 2>&1 &
    local app_pid=$! app_ok=0 mark=""
    for i in $(seq 1 600); do
      if ! kill -0 "$app_pid" 2>/dev/null; then break; fi
      if [ -z "$mark" ] && grep -q 'Test passes' "$alog"; then mark=$(wc -l <"$wlog"); fi
      # After its test removed its own surfaces, a surface of test_app's connection that
      # blight lists and that was not one of those: a window of the QPA plugin.
      if [ -n "$mark" ] && awk -v pid="$app_pid" -v mark="$mark" '
          /^surfaces:/ { for (i = 2; i <= NF; i++) if (index($i, "connection/" pid "/surface/") == 1) {
                           if (NR <= mark) before[$i] = 1; else if (!($i in before)) found = 1 } }
          END { exit !found }' "$wlog"; then
        app_ok=1; break
      fi
      sleep 0.1
    done
    if [ "$app_ok" = 1 ]; then
      record "$c" ok "test_app: its libblight test passed, then blight listed its QPA window surface(s): $(tail -n1 "$wlog" | grep -o "connection/$app_pid/surface/[0-9]*" | sed 's|.*/||' | tr '\n' ' ')"
    elif kill -0 "$app_pid" 2>/dev/null; then
      record "$c" fail "test_app: $( [ -n "$mark" ] && echo "no QPA window surface in blight" || echo "its libblight test did not pass") within 60 s (logs: $alog, $wlog)"
    else
      record "$c" fail "test_app exited early: $(tail -n 3 "$alog" | tr '\n' ' ') (log: $alog)"
    fi
    kill "$app_pid" 2>/dev/null || true
    wait "$app_pid" 2>/dev/null || true
    kill "$watch_pid" 2>/dev/null || true
    wait "$watch_pid" 2>/dev/null || true
    watch_pid=""
  fi

  # Blight's health: alive, clean exit on SIGTERM, no new warning in its log.
  if kill -0 "$blight_pid" 2>/dev/null; then
    record "$c" ok "blight alive after the clients"
    kill -TERM "$blight_pid"
    rc=0
    for i in $(seq 1 100); do kill -0 "$blight_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$blight_pid" 2>/dev/null; then
      kill -KILL "$blight_pid"; wait "$blight_pid" 2>/dev/null || true
      record "$c" fail "blight did not exit within 10 s of SIGTERM"
    else
      wait "$blight_pid" || rc=$?
      # Blight installs no SIGTERM handler: the signal's default action ends it (143).
      # A crash (SIGSEGV, SIGABRT: 139, 134) or an error exit is not clean.
      if [ "$rc" = 0 ] || [ "$rc" = 143 ]; then
        record "$c" ok "blight ended on SIGTERM within $(( i / 10 )).$(( i % 10 )) s (status $rc$( [ "$rc" = 143 ] && echo ": the signal's default action, blight has no handler"))"
      else record "$c" fail "blight exited with status $rc on SIGTERM"; fi
    fi
  else
    rc=0; wait "$blight_pid" || rc=$?
    record "$c" fail "blight died during the clients (status $rc; log: $blog)"
  fi
  blight_pid=""
  local errs
  errs=$(blight_errors "$blog" "$base")
  if [ -z "$errs" ]; then record "$c" ok "blight's log: no new warning or error"
  else record "$c" fail "blight's log: $(echo "$errs" | wc -l) new warning/error line(s), first: $(echo "$errs" | head -n1)"; fi
  stop_all
}

# Not the step: the sendv measurement, on these trees (it builds a third libblight_protocol).
if [ "$bench_sendv" = 1 ]; then
  # shellcheck source=integrations/oxide/e2e-sendv.sh
  . "$here/e2e-sendv.sh"
  exit
fi
if [ "$negative" = 0 ]; then
  run_combo 1 upstream         upstream "$llp_upstream"         upstream "$llp_upstream"         1 1
  run_combo 2 ours             ours     "$llp_ours"             ours     "$llp_ours"             1 1
  run_combo 3 upstream-on-ours upstream "$llp_upstream_on_ours" upstream "$llp_upstream_on_ours" 1 0
  run_combo 4 server-upstream  upstream "$llp_upstream"         ours     "$llp_ours"             0 1
  run_combo 5 server-ours      ours     "$llp_ours"             upstream "$llp_upstream"         0 1
else
  say "NEGATIVE CONTROL: every client's sends go through corrupt_send.so (one in 50 corrupted)"
  run_combo 1 upstream upstream "$llp_upstream" upstream "$llp_upstream" 0 0
  run_combo 2 ours     ours     "$llp_ours"     ours     "$llp_ours"     0 0
fi

# More rounds of the measurement alone (fresh blight, the client only), the combinations
# alternating, so that a burst of load from elsewhere hits one round of one row, not a row:
# the table gives each row's median over the rounds (E2E_BENCH_ROUNDS, default 5, the
# combinations' own runs included).
bench_round() {  # n server_tree server_llp client_tree client_llp
  local n=$1 sb=$E2E_WORK/$2/build addr out rc=0
  addr=$(dbus-daemon --session --fork --nopidfile --print-address=1 --print-pid=3 3>"$E2E_WORK/dbus.pid")
  dbus_pid=$(cat "$E2E_WORK/dbus.pid")
  export DBUS_SESSION_BUS_ADDRESS=$addr DBUS_SYSTEM_BUS_ADDRESS=$addr
  PATH="$E2E_WORK/bin:$PATH" LD_LIBRARY_PATH="$3" "${private_run[@]}" "$sb/applications/display-server/blight" \
    >"$logs/bench-$n-blight.log" 2>&1 &
  blight_pid=$!
  local i=0
  until dbus-send --session --print-reply --dest=org.freedesktop.DBus / org.freedesktop.DBus.NameHasOwner \
      string:codes.eeems.blight1 2>/dev/null | grep -q 'boolean true'; do
    i=$((i + 1))
    if ! kill -0 "$blight_pid" 2>/dev/null || [ $i -gt 300 ]; then break; fi
    sleep 0.1
  done
  out=$(LD_LIBRARY_PATH="$5" timeout -k 5 120 "$E2E_WORK/$4/e2e_client" 2>&1) || rc=$?
  if [ "$rc" = 0 ] && grep -q '^bench:' <<<"$out"; then
    bench[$n]+="$(grep '^bench:' <<<"$out" | sed 's/^bench: //');"
  else
    record "benchmark round, combo $n" fail "client failed (exit $rc): $(grep -m2 -E '^(check|client):' <<<"$out" | tr '\n' ' ')"
  fi
  stop_all
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]}'; }
field() {  # name, from the bench lines on stdin: the values, space-separated
  tr ';' '\n' | sed -n "s/.*$1=\([0-9.]*\).*/\1/p" | tr '\n' ' '
}

if [ "$negative" = 0 ]; then
  rounds=${E2E_BENCH_ROUNDS:-5}
  for r in $(seq 2 "$rounds"); do
    say "benchmark round $r of $rounds: combinations 1, 2, 4, 5, client only"
    bench_round 1 upstream "$llp_upstream" upstream "$llp_upstream"
    bench_round 2 ours     "$llp_ours"     ours     "$llp_ours"
    bench_round 4 upstream "$llp_upstream" ours     "$llp_ours"
    bench_round 5 ours     "$llp_ours"     upstream "$llp_upstream"
  done
  {
    echo "| combination (server / clients) | ping median (µs) | ping p99 (µs) | repaints/s | rounds |"
    echo "|---|---:|---:|---:|---:|"
    names=([1]="1 upstream / upstream" [2]="2 ours / ours" [4]="4 upstream / ours" [5]="5 ours / upstream")
    for n in 1 2 4 5; do
      b=${bench[$n]:-}
      [ -n "$b" ] || continue
      echo "| ${names[$n]} | $(field ping_median_us <<<"$b" | median) | $(field ping_p99_us <<<"$b" | median) | $(field repaints_per_s <<<"$b" | median) | $(tr ';' '\n' <<<"$b" | grep -c .) |"
    done
    echo
    echo "Medians over the rounds; each round: 2000 pings, 50 batches of 200 repaints, each batch followed by a ping."
  } >"$E2E_WORK/bench.md"
  say "latency and repaints (same run, same machine; $E2E_WORK/bench.md):"
  cat "$E2E_WORK/bench.md"
fi
say "summary (oxide: $OXIDE_SRC; build ${build_seconds}s, total $(( $(date +%s) - start ))s)"
printf '  %s\n' "${results[@]}"
echo "e2e: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
