#!/usr/bin/env bash
# Checks the dynamic exports of a libblight_socket.so: blight_* and exactly upstream's five
# BlightProtocol:: C++ functions (cxx/blight_protocol_abi.cpp) under upstream's mangled
# names for this host (ssize_t is `long` on 64-bit targets: `l`), and nothing else.
#   scripts/check-exports.sh LIB [NM]
set -euo pipefail
lib=$1
nm_tool=${2:-nm}
exports=$("$nm_tool" -D --defined-only "$lib" | awk '{print $3}' | sort -u)
cxx_exports="_ZN14BlightProtocol13recv_blockingEil
_ZN14BlightProtocol13send_blockingEiPhl
_ZN14BlightProtocol13wait_for_readEii
_ZN14BlightProtocol13wait_for_sendEii
_ZN14BlightProtocol4recvEiljj"
for f in blight_recv blight_recv_blocking blight_send_blocking blight_wait_for_send blight_wait_for_read; do
  grep -qx "$f" <<<"$exports" || { echo "$lib: missing export $f" >&2; exit 1; }
done
if [ "$(grep -v '^blight_' <<<"$exports")" != "$cxx_exports" ]; then
  echo "$lib must export blight_* and exactly these C++ symbols:" >&2; echo "$cxx_exports" >&2
  echo "it exports:" >&2; grep -v '^blight_' <<<"$exports" >&2; exit 1
fi
