#!/usr/bin/env bash
# Draws the throughput and the sender's CPU per GB of blight-bench's large-message
# scenarios, by message size and path, from the JSON it wrote.
#   bench/plot.sh bench-results.json [out.svg|out.png]
# Needs gnuplot (Debian: gnuplot-nox). The JSON has one result per line; awk reads it.
set -euo pipefail
json="${1:-bench-results.json}"
out="${2:-${json%.json}.svg}"
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 1; }
[ -r "$json" ] || { echo "plot.sh: cannot read $json" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# series name -> file of "size gb_per_s snd_cpu_s_per_gb" lines
awk -v dir="$tmp" '
  function field(name,   m) {
    if (match($0, "\"" name "\": (\"[^\"]*\"|[-0-9.e+]+|null)")) {
      m = substr($0, RSTART + length(name) + 4, RLENGTH - length(name) - 4); gsub(/"/, "", m); return m
    }
    return ""
  }
  /"scenario": "[cd]"/ && /"gb_per_s"/ {
    s = field("scenario"); t = field("transport"); p = field("path")
    if (field("gb_per_s") == "null") next
    name = t "-" p
    gsub(/[^A-Za-z0-9_-]/, "_", name)
    file = dir "/" name ".dat"
    if (!(name in seen)) { seen[name] = 1; order[++n] = name }
    print field("size"), field("gb_per_s"), field("snd_cpu_s_per_gb") >> file
  }
  END { for (i = 1; i <= n; i++) print order[i] > (dir "/series") }
' "$json"
[ -s "$tmp/series" ] || { echo "plot.sh: no (c)/(d) results in $json" >&2; exit 1; }

case "$out" in
  *.png) term="pngcairo size 1400,560 font 'sans,10'" ;;
  *) term="svg size 1400,560 dynamic font 'sans,11'" ;;
esac
title_of() {
  case "$1" in
    unix-reference) echo "AF\\\\_UNIX reference (upstream loop)" ;;
    unix-send_blocking) echo "AF\\\\_UNIX blight\\\\_send\\\\_blocking" ;;
    unix-send_zerocopy) echo "AF\\\\_UNIX blight\\\\_send\\\\_zerocopy (splice)" ;;
    unix-raw_splice) echo "AF\\\\_UNIX raw splice, no library (kernel floor)" ;;
    tcp-reference) echo "TCP loopback reference (upstream loop)" ;;
    tcp-send_blocking) echo "TCP loopback blight\\\\_send\\\\_blocking (copy)" ;;
    tcp-send_zerocopy) echo "TCP loopback blight\\\\_send\\\\_zerocopy" ;;
    *) echo "$1" ;;
  esac
}
plot_cmd() {  # $1: column
  local sep="" cmd="plot "
  while read -r s; do
    local style="lw 2 pt 7"
    case "$s" in *raw_splice) style="lw 2 pt 6 dt 2" ;; esac  # the kernel floor: dashed
    cmd+="$sep'$tmp/$s.dat' using 1:$1 with linespoints $style title \"$(title_of "$s")\""
    sep=", "
  done < "$tmp/series"
  echo "$cmd"
}
mode=$(grep -o '"mode": "[a-z]*"' "$json" | head -1 | cut -d'"' -f4)
gnuplot <<GP
set terminal $term
set output '$out'
set multiplot layout 1,2 title "blight-bench ($mode mode): large messages by size and path, medians of interleaved runs"
set logscale x 2
set xlabel 'message size (bytes)'
set xtics ("4 KiB" 4096, "16 KiB" 16384, "64 KiB" 65536, "256 KiB" 262144, "1 MiB" 1048576, "4 MiB" 4194304, "10 MiB" 10485760)
set grid
set key top left Left reverse font ',9'
set ylabel 'throughput (GB/s)'
set title 'throughput (higher is better)'
$(plot_cmd 2)
set ylabel "sender CPU (s per GB)"
set title 'sender CPU per GB (lower is better)'
set key top right font ',9'
$(plot_cmd 3)
unset multiplot
GP
echo "$out"
