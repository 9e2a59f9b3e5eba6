#!/usr/bin/env bash
# Clustering throughput: `modelpress cluster --bits 4` (eDKM, defaults) against W4A16 RTN
# (`modelpress quantize --method w4a16`) on the same checkpoint, in the same run, runs
# alternating. Goal: clustering at >= half RTN's speed (time_cluster <= 2 x time_rtn).
#
#   bench/cluster_speed.sh [CHECKPOINT ...]    (default: scripts/fetch_default_model.sh's)
#   REPEAT=9 EXTRA="--group-size 4" BIN=build-dev/cli/modelpress bench/cluster_speed.sh
#
# Each side runs once untimed (page cache warm), then REPEAT alternating timed runs; medians.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-build/cli/modelpress}
repeat=${REPEAT:-9}
extra=${EXTRA:-}
out=$(mktemp -d "${TMPDIR:-/tmp}/cluster-speed.XXXXXX")
trap 'rm -rf "$out"' EXIT
[ $# -gt 0 ] || set -- "$(scripts/fetch_default_model.sh)"

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
seconds() {  # wall seconds of one run, nanosecond clock
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f\n", b - a}'
}

for ck in "$@"; do
  cluster=( "$bin" cluster "$ck" -o "$out/c" --bits 4 --overwrite $extra )
  rtn=( "$bin" quantize "$ck" -o "$out/q" --method w4a16 --overwrite )
  "${cluster[@]}" >/dev/null; "${rtn[@]}" >/dev/null
  tc=(); tr=()
  for ((i = 0; i < repeat; i++)); do
    tc+=("$(seconds "${cluster[@]}")")
    tr+=("$(seconds "${rtn[@]}")")
  done
  mc=$(printf '%s\n' "${tc[@]}" | median)
  mr=$(printf '%s\n' "${tr[@]}" | median)
  echo "$ck: cluster --bits 4 $extra ${mc}s, quantize --method w4a16 ${mr}s (medians of $repeat);" \
       "cluster speed / RTN speed = $(awk -v c="$mc" -v r="$mr" 'BEGIN {printf "%.2f", r / c}') (goal >= 0.50)"
done
