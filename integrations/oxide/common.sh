# Shared by run.sh, sendv.sh and e2e.sh (sourced; `root` set by the caller): the progress
# line, the logged command, and this library's CMake build and install.
start=$(date +%s)
# say text...: a progress line with the seconds since the script started (SAY_PREFIX first).
say() { echo "== [$(( $(date +%s) - start ))s] ${SAY_PREFIX:-}$*"; }
# logged log command...: runs the command with its output in log; shows the log's end if it fails.
logged() {
  local log=$1; shift
  if ! "$@" >"$log" 2>&1; then
    echo "failed: $* (log: $log)" >&2; tail -n 40 "$log" >&2; return 1
  fi
}
# build_library workdir prefix logs: builds this library (Release, no tests, benchmark or
# examples) in workdir and installs it into prefix, logging each stage in logs.
build_library() {
  local work=$1 prefix=$2 logs=$3
  logged "$logs/blight-configure.log" cmake -S "$root" -B "$work" -DCMAKE_BUILD_TYPE=Release \
    -DBLIGHT_BUILD_TESTS=OFF -DBLIGHT_BUILD_BENCH=OFF -DBLIGHT_BUILD_EXAMPLES=OFF \
    ${BLIGHT_CARGO_TARGET_DIR:+-DBLIGHT_CARGO_TARGET_DIR="$BLIGHT_CARGO_TARGET_DIR"}
  logged "$logs/blight-build.log" cmake --build "$work" -j"$JOBS"
  logged "$logs/blight-install.log" cmake --install "$work" --prefix "$prefix"
}
