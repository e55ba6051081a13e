#!/usr/bin/env bash
# Checks the dynamic exports of a libblight_socket.so: blight_* and exactly upstream's five
# BlightProtocol:: C++ functions (cxx/blight_protocol_abi.cpp) under upstream's mangled
# names for the library's ELF class (ssize_t is `long` on 64-bit targets: `l`, `int` on
# 32-bit ones: `i`), and nothing else; and
# that each of those five (src/ffi/cxx.rs's trampolines) starts with the landing pad an
# indirect call needs where the CPU enforces them: endbr64/endbr32 (x86 IBT), bti c
# (aarch64 BTI); 32-bit Arm has none.
#   scripts/check-exports.sh LIB [NM [OBJDUMP]]   (OBJDUMP: default NM's prefix + objdump)
set -euo pipefail
lib=$1
nm_tool=${2:-nm}
objdump_tool=${3:-${nm_tool%nm}objdump}
exports=$("$nm_tool" -D --defined-only "$lib" | awk '{print $3}' | sort -u)
cxx_exports="_ZN14BlightProtocol13recv_blockingEil
_ZN14BlightProtocol13send_blockingEiPhl
_ZN14BlightProtocol13wait_for_readEii
_ZN14BlightProtocol13wait_for_sendEii
_ZN14BlightProtocol4recvEiljj"
if LC_ALL=C readelf -h "$lib" | grep -q 'Class:[[:space:]]*ELF32'; then
  # 32-bit targets: ssize_t is int (`i`).
  cxx_exports="_ZN14BlightProtocol13recv_blockingEii
_ZN14BlightProtocol13send_blockingEiPhi
_ZN14BlightProtocol13wait_for_readEii
_ZN14BlightProtocol13wait_for_sendEii
_ZN14BlightProtocol4recvEiijj"
fi
for f in blight_recv blight_recv_blocking blight_send_blocking blight_wait_for_send blight_wait_for_read; do
  grep -qx "$f" <<<"$exports" || { echo "$lib: missing export $f" >&2; exit 1; }
done
if [ "$(grep -v '^blight_' <<<"$exports")" != "$cxx_exports" ]; then
  echo "$lib must export blight_* and exactly these C++ symbols:" >&2; echo "$cxx_exports" >&2
  echo "it exports:" >&2; grep -v '^blight_' <<<"$exports" >&2; exit 1
fi

machine=$(LC_ALL=C readelf -h "$lib" | sed -n 's/^ *Machine: *//p')
case "$machine" in
  *X86-64*) pad='endbr64' ;;
  *80386*) pad='endbr32' ;;
  *AArch64*) pad='(bti[[:space:]]+c|hint[[:space:]]+#0x22)' ;;
  ARM) pad='' ;;
  *) echo "$lib: no landing-pad rule for machine '$machine' (see src/ffi/cxx.rs)" >&2; exit 1 ;;
esac
if [ -n "$pad" ]; then
  for sym in $cxx_exports; do
    addr=$("$nm_tool" -D --defined-only "$lib" | awk -v s="$sym" '$3 == s {print $1}')
    first=$("$objdump_tool" -d --no-show-raw-insn --start-address=0x$addr --stop-address=$((0x$addr + 4)) "$lib" \
            | sed -n 's/^ *[0-9a-f]*:[[:space:]]*//p' | head -n 1)
    grep -Eq "^$pad" <<<"$first" || { echo "$lib: $sym starts with '$first', not the landing pad $pad" >&2; exit 1; }
  done
fi
