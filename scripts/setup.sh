#!/usr/bin/env bash
# Installs what this project needs on Debian 12 and is missing; a second run changes
# nothing and takes about a second (each package is checked with dpkg-query first, and
# `apt-get update` runs only when something is missing).
#
#   scripts/setup.sh host   the native build, tests and demo: cmake, g++, GoogleTest,
#                           valgrind, gnuplot, ... and Debian's Rust (rustc-web, cargo-web)
#                           when no Rust as new as Cargo.toml's rust-version (1.88: naked
#                           functions) is on PATH or in ~/.cargo/bin
#   scripts/setup.sh all    host, plus the tablets' and i686 cross toolchains (gcc/g++ for
#                           arm-linux-gnueabihf, aarch64-linux-gnu, i686-linux-gnu, after
#                           dpkg --add-architecture armhf arm64 i386), their Rust standard
#                           libraries (libstd-rust-web-dev:<arch>, with Debian's rustc-web
#                           and cargo-web), libgtest-dev:<arch>, libc6:i386, qemu-user with
#                           the tablets' multiarch runtime (libc6 and libstdc++6 for armhf
#                           and arm64: the tests run under `qemu-arm -L /`), Qt 6 and
#                           libsystemd for the oxide integration kit, and for the oxide
#                           end-to-end step (blight, its QPA plugin, test_app): Qt 6's
#                           private and Quick/QML development packages, libevdev, libudev,
#                           libts, dbus-daemon, dbus-send and ccache
#   scripts/setup.sh check  [host|all]: only report what is missing (exit 1 if anything)
#
# Needs root for apt-get (CI runs as root); otherwise it uses `sudo` when that works
# without a password prompt, and else says what to run. BLIGHT_SETUP=skip skips it all
# (scripts/demo.sh, scripts/test-all.sh and .ci/run call this script first).
set -euo pipefail
[ "${BLIGHT_SETUP:-}" = skip ] && exit 0

check_only=0
if [ "${1:-}" = check ]; then check_only=1; shift; fi
mode="${1:-host}"
case "$mode" in host|all) ;; *) echo "usage: $0 [check] [host|all]" >&2; exit 2 ;; esac

export PATH="$HOME/.cargo/bin:$PATH"
host_packages=(cmake g++ make libgtest-dev pkg-config valgrind gnuplot-nox iproute2 util-linux git
               ca-certificates binutils)
cross_arches=(armhf arm64 i386)
cross_packages=(gcc-arm-linux-gnueabihf g++-arm-linux-gnueabihf gcc-aarch64-linux-gnu g++-aarch64-linux-gnu
                gcc-i686-linux-gnu g++-i686-linux-gnu libc6:i386 libstdc++6:i386 qemu-user
                libc6:armhf libstdc++6:armhf libc6:arm64 libstdc++6:arm64
                rustc-web cargo-web libstd-rust-web-dev:armhf libstd-rust-web-dev:arm64 libstd-rust-web-dev:i386
                libgtest-dev:armhf libgtest-dev:arm64 libgtest-dev:i386
                qt6-base-dev qt6-base-dev-tools libsystemd-dev
                qt6-base-private-dev qt6-declarative-dev qt6-declarative-private-dev qt6-declarative-dev-tools
                qml6-module-qtquick qml6-module-qtquick-window qml6-module-qtquick-controls
                qml6-module-qtquick-layouts qml6-module-qtquick-templates qml6-module-qtqml-workerscript
                libevdev-dev libudev-dev libts-dev dbus-daemon dbus-bin ccache)

native=$(dpkg --print-architecture)
# Installed for the architecture asked (pkg:arch), or else for this machine's (or "all"):
# an unqualified name matches every architecture's copy of a multiarch package.
installed() {
  case "$1" in
    *:*) [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" = "ii " ] ;;
    *) dpkg-query -W -f='${db:Status-Abbrev}${Architecture}\n' "$1" 2>/dev/null | grep -qE "^ii ($native|all)$" ;;
  esac
}

# A cargo and a rustc at least as new as Cargo.toml's rust-version, read from there;
# rustup's or Debian's (Debian 12's plain `cargo` is 1.63: too old; its cargo-web is new).
rust_min=$(sed -n 's/^rust-version = "1\.\([0-9]*\).*"/\1/p' "$(dirname "$0")/../Cargo.toml")
[ -n "$rust_min" ] || { echo "setup: no rust-version = \"1.N\" in Cargo.toml" >&2; exit 2; }
minor_of() { "$1" --version 2>/dev/null | sed -n 's/^[a-z]* 1\.\([0-9]*\)\..*/\1/p'; }
cargo_ok() {
  local c r
  c=$(minor_of cargo); r=$(minor_of rustc)
  [ -n "$c" ] && [ -n "$r" ] && [ "$c" -ge "$rust_min" ] && [ "$r" -ge "$rust_min" ]
}

wanted=("${host_packages[@]}")
cargo_ok || wanted+=(rustc-web cargo-web)
arches_missing=()
if [ "$mode" = all ]; then
  wanted+=("${cross_packages[@]}")
  foreign=" $(dpkg --print-foreign-architectures | tr '\n' ' ') "
  for a in "${cross_arches[@]}"; do
    [[ "$foreign" == *" $a "* ]] || arches_missing+=("$a")
  done
fi
missing=()
for p in "${wanted[@]}"; do
  installed "$p" || missing+=("$p")
done

too_old() {
  echo "setup: cargo $(minor_of cargo | sed 's/^/1./') and rustc $(minor_of rustc | sed 's/^/1./') on PATH;" \
       "Cargo.toml's rust-version needs 1.$rust_min: install a newer Rust (rustup)" >&2
}
if [ ${#missing[@]} -eq 0 ] && [ ${#arches_missing[@]} -eq 0 ]; then
  # rustc-web/cargo-web are installed and still too old, or another Rust comes first on PATH.
  cargo_ok || { too_old; exit 1; }
  echo "setup ($mode): everything is installed"
  exit 0
fi
echo "setup ($mode): missing: ${arches_missing[*]:+architectures ${arches_missing[*]}; }${missing[*]}"
[ "$check_only" = 1 ] && exit 1

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root=(sudo)
else
  echo "setup: installing needs root. Run:  sudo $0 $mode" >&2
  echo "       (or install the packages above yourself; BLIGHT_SETUP=skip skips this check)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
for a in "${arches_missing[@]}"; do
  "${as_root[@]}" dpkg --add-architecture "$a"
done
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Debian's cargo-web is /usr/bin/cargo; rustup's, when present, stays first on PATH.
cargo_ok || { too_old; exit 1; }
echo "setup ($mode): installed ${missing[*]}"
