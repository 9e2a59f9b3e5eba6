#!/usr/bin/env bash
# OPCM merge cost as models are added: wall time and peak RSS of `modelpress merge opcm`
# merging N task models into a base in one run, for N in COUNTS. Time per added model is
# the slope between the smallest and largest N; peak RSS should not grow with N (every
# input is memory-mapped and read one tensor at a time; see merge/continual.h).
#
#   bench/merge_speed.sh [WORKDIR]                 (default .cache/bench-merge)
#   SIZE=1g COUNTS="2 3" bench/merge_speed.sh      the 1.21 GB BF16 synthetic LLaMA of
#                                                  bench/io_rewrite.sh (~14 GB of disk for 3)
#   SIZE=small COUNTS="2 4 6 8 10" ...             hidden 512, intermediate 1408 (124 MB)
#   METHOD=average ...                              a baseline instead of OPCM
#
# Task models are synthetic checkpoints of the same shapes with other seeds: their task
# vectors are as large as the weights themselves, which costs the SVDs the same as a real
# fine-tune (LAPACK's work does not depend on the values). Inputs are in the page cache
# (each file is read once before timing).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-build/cli/modelpress}
work=${1:-.cache/bench-merge}
size=${SIZE:-small}
counts=${COUNTS:-2 4 6 8 10}
method=${METHOD:-opcm}
mkdir -p "$work"
case $size in
  1g) shape=(--layers 10 --hidden 2048 --intermediate 5632 --heads 16 --kv-heads 8 --vocab 32000 --max-shard-size 1GB) ;;
  small) shape=(--layers 10 --hidden 512 --intermediate 1408 --heads 8 --kv-heads 4 --vocab 32000) ;;
  *) echo "SIZE must be 1g or small" >&2; exit 2 ;;
esac
max=0
for n in $counts; do [ "$n" -gt "$max" ] && max=$n; done
for i in $(seq 0 "$max"); do
  d=$work/$size-$i
  [ -f "$d/config.json" ] || $bin synth "$d" "${shape[@]}" --seed "$i" --overwrite >/dev/null
  cat "$d"/*.safetensors >/dev/null
done
bytes=$(du -cb "$work/$size-0"/*.safetensors | tail -1 | cut -f1)
echo "$method, $size model ($((bytes / 1000000)) MB each), $(nproc) cores, $(OPENBLAS_NUM_THREADS= $bin --version | head -1)"
echo
echo "| models added | wall (s) | peak RSS (MB) |"
echo "|---:|---:|---:|"
first_n="" first_t="" last_n="" last_t=""
for n in $counts; do
  models=()
  for i in $(seq 1 "$n"); do models+=("$work/$size-$i"); done
  out=$work/out-$n
  rm -rf "$out"
  res=$(/usr/bin/time -f '%e %M' "$bin" merge "$method" --base "$work/$size-0" --add "${models[@]}" -o "$out" 2>&1 >/dev/null | tail -1)
  wall=${res% *}
  rss=${res#* }
  echo "| $n | $wall | $((rss / 1000)) |"
  [ -z "$first_n" ] && first_n=$n first_t=$wall
  last_n=$n last_t=$wall
  rm -rf "$out"
done
if [ "$last_n" != "$first_n" ]; then
  echo
  awk -v a="$first_t" -v b="$last_t" -v na="$first_n" -v nb="$last_n" \
    'BEGIN {printf "time per added model: %.1f s (slope from %d to %d models)\n", (b - a) / (nb - na), na, nb}'
fi
