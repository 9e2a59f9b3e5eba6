#!/usr/bin/env bash
# I/O benchmark: reading every tensor of a checkpoint and writing it back through the
# streaming writer (`modelpress convert`), against `cp` of the same files, in the same run;
# then peak resident memory of the rewrite on a larger checkpoint (/usr/bin/time -v).
#
#   bench/io_rewrite.sh [WORKDIR]     (default .cache/bench; needs ~15 GB free)
#
# Both sides run with the input in the page cache (each is run once to warm up, then
# REPEAT times alternately; the median is reported). Neither side fsyncs.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/cli/modelpress
work=${1:-.cache/bench}
repeat=${REPEAT:-5}
mkdir -p "$work"

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
seconds() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN {print e - s}'; }

# 1. Throughput: a 1.3 GB checkpoint in two shards.
small=$work/llama-1g
[ -f "$small/model.safetensors.index.json" ] || $bin synth "$small" --layers 10 --hidden 2048 --intermediate 5632 \
  --heads 16 --kv-heads 8 --vocab 32000 --max-shard-size 1GB --overwrite >/dev/null
bytes=$(du -cb "$small"/*.safetensors | tail -1 | cut -f1)
cp_times=(); mp_times=(); us_times=()
for i in $(seq 0 "$repeat"); do
  rm -rf "$work/cp-out" "$work/mp-out" "$work/us-out"
  t_cp=$(seconds cp -r "$small" "$work/cp-out")
  t_mp=$(seconds $bin convert "$small" -o "$work/mp-out" --max-shard-size 1GB)
  t_us=$(seconds env MODELPRESS_NO_KERNEL_COPY=1 $bin convert "$small" -o "$work/us-out" --max-shard-size 1GB)
  if [ "$i" -gt 0 ]; then cp_times+=("$t_cp"); mp_times+=("$t_mp"); us_times+=("$t_us"); fi  # run 0 warms the cache
  rm -rf "$work/cp-out" "$work/mp-out" "$work/us-out"
done
cp_med=$(printf '%s\n' "${cp_times[@]}" | median)
mp_med=$(printf '%s\n' "${mp_times[@]}" | median)
us_med=$(printf '%s\n' "${us_times[@]}" | median)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
printf 'rewrite %s bytes, median of %d runs each:\n' "$bytes" "$repeat"
printf '  cp -r                                    %.3f s\n' "$cp_med"
printf '  modelpress convert                       %.3f s  ratio %s (goal <= 1.5)\n' "$mp_med" "$(ratio "$mp_med" "$cp_med")"
printf '  modelpress convert, no in-kernel copies  %.3f s  ratio %s\n' "$us_med" "$(ratio "$us_med" "$cp_med")"

# 2. Peak memory: a 4.3 GB checkpoint whose largest tensor is 262 MB.
large=$work/llama-4g
[ -f "$large/model.safetensors.index.json" ] || $bin synth "$large" --layers 10 --hidden 4096 --intermediate 11008 \
  --heads 32 --kv-heads 32 --vocab 32000 --max-shard-size 2GB --overwrite >/dev/null
total=$(du -cb "$large"/*.safetensors | tail -1 | cut -f1)
largest=$((32000 * 4096 * 2))
peak_rss_mb() {  # peak resident memory of a rewrite of $large, in MB
  rm -rf "$work/large-out"
  local kb
  kb=$( { env "$@" /usr/bin/time -v $bin convert "$large" -o "$work/large-out" --max-shard-size 2GB >/dev/null; } 2>&1 |
        awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}')
  rm -rf "$work/large-out"
  echo $((kb * 1024 / 1000000))
}
limit_mb=$(( (2 * largest) / 1000000 + 100 ))
printf 'rewrite %s bytes, largest tensor %d MB, limit 2 x largest + 100 MB = %d MB\n' "$total" $((largest / 1000000)) "$limit_mb"
printf '  peak RSS, in-kernel copies (default):                %d MB\n' "$(peak_rss_mb MODELPRESS_NO_KERNEL_COPY=0)"
printf '  peak RSS, every byte read through the mapping:       %d MB\n' "$(peak_rss_mb MODELPRESS_NO_KERNEL_COPY=1)"
