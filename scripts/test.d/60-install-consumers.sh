#!/usr/bin/env bash
# Installs the release build into a temporary prefix, checks what was installed (files,
# SONAME and symlinks, exported symbols, pkg-config and CMake package), then builds the
# consumers in consumers/ outside the main build, each once with pkg-config and once with
# find_package, and runs them against real sockets with LD_LIBRARY_PATH unset.
set -euo pipefail
dir="$BUILD_ROOT/release"
if [ ! -f "$dir/CMakeCache.txt" ]; then
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$dir" -j2

fail() { echo "60-install-consumers: $*" >&2; exit 1; }

version=$(sed -n 's/^version = "\([0-9.]*\)"$/\1/p' Cargo.toml | head -n1)
major=${version%%.*}
[ -n "$version" ] || fail "no version in Cargo.toml"
libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:PATH=//p' "$dir/CMakeCache.txt")
libdir=${libdir:-lib}
case "$libdir" in /*) fail "CMAKE_INSTALL_LIBDIR is absolute ($libdir): this test wants a relocatable prefix" ;; esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
cmake --install "$dir" --prefix "$prefix" >"$work/install.log"

# --- The installed files -------------------------------------------------------------
L="$prefix/$libdir"
for f in "$L/libblight_socket.so.$version" \
         "$prefix/include/blight_socket.h" \
         "$prefix/include/libblight_protocol/socket.h" \
         "$L/pkgconfig/blight_socket.pc" \
         "$L/cmake/BlightSocket/BlightSocketConfig.cmake" \
         "$L/cmake/BlightSocket/BlightSocketConfigVersion.cmake"; do
  [ -f "$f" ] && [ ! -L "$f" ] || fail "not installed as a regular file: ${f#"$prefix"/}"
done
[ "$(readlink "$L/libblight_socket.so.$major")" = "libblight_socket.so.$version" ] \
  || fail "libblight_socket.so.$major is not a symlink to libblight_socket.so.$version"
[ "$(readlink "$L/libblight_socket.so")" = "libblight_socket.so.$major" ] \
  || fail "libblight_socket.so is not a symlink to libblight_socket.so.$major"
cmp -s include/blight_socket.h "$prefix/include/blight_socket.h" || fail "installed blight_socket.h differs"
cmp -s include/libblight_protocol/socket.h "$prefix/include/libblight_protocol/socket.h" \
  || fail "installed libblight_protocol/socket.h differs"

soname=$(readelf -d "$L/libblight_socket.so.$version" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = "libblight_socket.so.$major" ] || fail "SONAME is '$soname', expected libblight_socket.so.$major"
if readelf -d "$L/libblight_socket.so.$version" | grep -Eq '\((RPATH|RUNPATH)\)'; then
  fail "the installed library carries an RPATH/RUNPATH"
fi

# Exports: blight_* (exactly the functions the header declares) and upstream's five C++
# functions, nothing else.
./scripts/check-exports.sh "$L/libblight_socket.so.$version" || fail "the installed library exports internals"
nm -D --defined-only "$L/libblight_socket.so.$version" | awk '{print $3}' | grep '^blight_' | sort -u >"$work/exports.txt"
grep -oE '^[A-Za-z_][A-Za-z0-9_ *]*[ *]blight_[a-z0-9_]+\(' "$prefix/include/blight_socket.h" \
  | grep -oE 'blight_[a-z0-9_]+\($' | tr -d '(' | sort -u >"$work/declared.txt"
[ -s "$work/declared.txt" ] || fail "no function declarations found in blight_socket.h"
if ! diff -u "$work/declared.txt" "$work/exports.txt" >"$work/exports.diff"; then
  cat "$work/exports.diff" >&2
  fail "the header's functions (-) and the library's exports (+) differ"
fi

# pkg-config, from the installed file only.
export PKG_CONFIG_PATH="$L/pkgconfig"
unset PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR LD_LIBRARY_PATH
[ "$(pkg-config --modversion blight_socket)" = "$version" ] || fail "pkg-config version is not $version"
[ "$(pkg-config --variable=libdir blight_socket)" = "$L" ] || fail "pkg-config libdir is not $L"
pkg-config --cflags blight_socket | grep -q -- "-I$prefix/include" || fail "pkg-config --cflags lacks -I$prefix/include"
pkg-config --libs blight_socket | grep -q -- "-lblight_socket" || fail "pkg-config --libs lacks -lblight_socket"

# The CMake package must not name the install prefix (it computes it from its location).
if grep -q -e "$prefix" -e "$dir" "$L/cmake/BlightSocket/BlightSocketConfig.cmake"; then
  fail "BlightSocketConfig.cmake contains an absolute path: not relocatable"
fi
echo "installed and checked: $(cd "$prefix" && find . -mindepth 1 \( -type f -o -type l \) | sort | tr '\n' ' ')"

# --- Consumers -------------------------------------------------------------------------
run() {  # run <name> <executable>: no LD_LIBRARY_PATH; the library must come from the prefix.
  local name=$1 exe=$2 resolved
  resolved=$(env -u LD_LIBRARY_PATH ldd "$exe" | sed -n "s/.*libblight_socket.so.$major => \([^ ]*\) .*/\1/p")
  case "$resolved" in
    "$3"/libblight_socket.so.$major) ;;
    *) fail "$name: loads libblight_socket.so.$major from '$resolved', not from $3" ;;
  esac
  echo "--- $name"
  env -u LD_LIBRARY_PATH "$exe" || fail "$name failed (exit $?)"
}

# pkg-config builds (plain Makefiles; the RPATH comes from pkg-config's libdir).
make -s -C consumers/c_app O="$work/c_app-pkgconfig" >/dev/null
make -s -C consumers/cpp_app O="$work/cpp_app-pkgconfig" >/dev/null
run "c_app (pkg-config)" "$work/c_app-pkgconfig/c_app" "$L"
run "cpp_app (pkg-config)" "$work/cpp_app-pkgconfig/cpp_app" "$L"

# find_package builds, against the installed tree moved elsewhere: the package is
# relocatable, and nothing refers to the original prefix any more.
moved="$work/moved-prefix"
mv "$prefix" "$moved"
unset PKG_CONFIG_PATH
for app in c_app cpp_app; do
  cmake -S "consumers/$app" -B "$work/$app-cmake" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_PREFIX_PATH="$moved" >"$work/$app-cmake.log" || { cat "$work/$app-cmake.log" >&2; fail "$app: configure failed"; }
  cmake --build "$work/$app-cmake" -j2 >/dev/null || fail "$app: find_package build failed"
  run "$app (find_package)" "$work/$app-cmake/$app" "$moved/$libdir"
done

# SameMajorVersion: the next major version is not accepted.
if cmake -S consumers/c_app -B "$work/c_app-next-major" -DCMAKE_PREFIX_PATH="$moved" \
         -DBLIGHT_SOCKET_MIN_VERSION="$((major + 1)).0" >"$work/next-major.log" 2>&1; then
  fail "find_package(BlightSocket $((major + 1)).0) accepted version $version"
fi
echo "60-install-consumers: install, pkg-config and CMake package checked; 4 consumer builds passed"
