#!/usr/bin/env bash
# The oldest C runtime a built libblight_socket.so runs on: prints the highest GLIBC_
# symbol version it needs (and the symbols that need it), its GLIBCXX_/CXXABI_ needs
# (libstdc++.so.6), and fails when the GLIBC_ version is above FLOOR.
#   scripts/check-glibc-floor.sh LIB [FLOOR] [READELF]
# FLOOR defaults to 2.35: the glibc of the reMarkable codex SDK 5.7.119 (reMarkable OS
# 3.27.1 and later, what current oxide requires). See docs/GUIDE.md, section 6.
set -euo pipefail
lib=$1
floor=${2:-2.35}
readelf_tool=${3:-readelf}
# The version needs (.gnu.version_r): "  0x0010:   Name: GLIBC_2.34  Flags: none  Version: 5"
needs=$("$readelf_tool" -V --wide "$lib" | sed -n 's/.*Name: \([A-Z_]*[0-9][0-9.]*\) .*Flags.*/\1/p' | sort -u)
glibc=$(grep '^GLIBC_[0-9]' <<<"$needs" | sed 's/^GLIBC_//' | sort -V | tail -1 || true)
[ -n "$glibc" ] || { echo "check-glibc-floor: $lib needs no GLIBC_ version (is it a glibc library?)" >&2; exit 1; }
cxx=$(grep -E '^(GLIBCXX|CXXABI)_' <<<"$needs" | sort -V | tr '\n' ' ' || true)
# Which symbols ask for the highest version (from the dynamic symbol table).
syms=$("$readelf_tool" --dyn-syms --wide "$lib" | awk -v v="GLIBC_$glibc" '$7 == "UND" { split($8, a, "@"); if (a[2] == v) print a[1] }' \
       | sort -u | tr '\n' ' ')
echo "glibc floor: $(basename "$lib") needs GLIBC_$glibc (${syms% }); limit $floor"
cxx=${cxx% }
echo "libstdc++:   ${cxx:-none} (libstdc++.so.6)"
if [ "$(printf '%s\n%s\n' "$glibc" "$floor" | sort -V | tail -1)" != "$floor" ]; then
  echo "check-glibc-floor: $lib needs GLIBC_$glibc, above the floor $floor: it would not load on a device" \
       "with glibc $floor (docs/GUIDE.md, section 6)" >&2
  exit 1
fi
