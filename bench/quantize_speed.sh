#!/usr/bin/env bash
# Quantization throughput: `modelpress quantize --method llm-int8` against rewriting the same
# checkpoint unchanged with `modelpress convert`, in the same run. Goal: quantize at >= 70%
# of convert's speed (time_quantize <= time_convert / 0.7).
#
#   bench/quantize_speed.sh [WORKDIR]     (default .cache/bench; needs ~4 GB free)
#   REPEAT=5 METHODS="llm-int8 w8a8 w4a16" MODELPRESS_THREADS=2 bench/quantize_speed.sh
#
# Input: the 1.21 GB BF16 synthetic LLaMA of bench/io_rewrite.sh (10 layers, hidden 2048,
# intermediate 5632, vocab 32000, two 1 GB shards; 0.94 GB of it linear weights). Both
# sides run with the input in the page cache (a warm-up run of each first, then REPEAT
# alternating runs; the median is reported). Neither side fsyncs.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/cli/modelpress
work=${1:-.cache/bench}
repeat=${REPEAT:-5}
methods=${METHODS:-llm-int8}
mkdir -p "$work"

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# "wall cpu": elapsed seconds and user + system CPU seconds of one run (GNU time).
timed() { /usr/bin/time -f '%e %U %S' "$@" 2>&1 >/dev/null | tail -1 | awk '{print $1, $2 + $3}'; }

src=$work/llama-1g
[ -f "$src/model.safetensors.index.json" ] || $bin synth "$src" --layers 10 --hidden 2048 --intermediate 5632 \
  --heads 16 --kv-heads 8 --vocab 32000 --max-shard-size 1GB --overwrite >/dev/null
bytes=$(du -cb "$src"/*.safetensors | tail -1 | cut -f1)

# w4a16 needs a group size dividing 2048 and 5632: 128 does.
declare -A extra=([llm-int8]="" [w8a8]="" [w4a16]="--group-size 128")
printf 'input %s bytes, median of %d runs each, %s cores (MODELPRESS_THREADS=%s), load average %s\n' "$bytes" \
  "$repeat" "$(nproc)" "${MODELPRESS_THREADS:-unset}" "$(cut -d' ' -f1-3 /proc/loadavg)"
for method in $methods; do
  conv=(); quant=(); conv_cpu=(); quant_cpu=()
  for i in $(seq 0 "$repeat"); do
    rm -rf "$work/conv-out" "$work/quant-out"
    read -r t_c c_c < <(timed $bin convert "$src" -o "$work/conv-out" --max-shard-size 1GB)
    # shellcheck disable=SC2086
    read -r t_q c_q < <(timed $bin quantize "$src" -o "$work/quant-out" --method "$method" ${extra[$method]} --max-shard-size 1GB)
    if [ "$i" -gt 0 ]; then  # run 0 warms the cache
      conv+=("$t_c"); quant+=("$t_q"); conv_cpu+=("$c_c"); quant_cpu+=("$c_q")
    fi
  done
  out_bytes=$(du -cb "$work/quant-out"/*.safetensors | tail -1 | cut -f1)
  rm -rf "$work/conv-out" "$work/quant-out"
  c=$(printf '%s\n' "${conv[@]}" | median)
  q=$(printf '%s\n' "${quant[@]}" | median)
  cc=$(printf '%s\n' "${conv_cpu[@]}" | median)
  qc=$(printf '%s\n' "${quant_cpu[@]}" | median)
  printf '  modelpress convert                 %.3f s (CPU %.2f s)  %6.0f MB/s\n' "$c" "$cc" \
    "$(awk -v b="$bytes" -v t="$c" 'BEGIN {print b / t / 1e6}')"
  printf '  modelpress quantize --method %-8s %.3f s (CPU %.2f s)  %6.0f MB/s in, output %s bytes\n' "$method" "$q" "$qc" \
    "$(awk -v b="$bytes" -v t="$q" 'BEGIN {print b / t / 1e6}')" "$out_bytes"
  printf '  speed of quantize relative to convert: %.2f (goal >= 0.70)\n' "$(awk -v c="$c" -v q="$q" 'BEGIN {print c / q}')"
done
