#!/usr/bin/env bash
# modelpress against mergekit on the same YAML: wall time and peak RSS of `mergekit-yaml`
# (the pinned version in the interop environment, CPU) and `modelpress merge --config` for
# task_arithmetic, ties and slerp, merging three fine-tunes (two for slerp) into a base.
#
#   bench/mergekit_compare.sh [WORKDIR]        (default .cache/bench-mergekit)
#   SIZE=small bench/mergekit_compare.sh       hidden 512 models (124 MB) for a quick look
#   METHODS="ties" ...                          a subset
#
# Models: synthetic LLaMA checkpoints (modelpress synth; SIZE=1g is the 1.21 GB BF16 model of
# bench/io_rewrite.sh), seeds 0-3, the base being seed 0. Inputs are read once before timing
# (page cache), each tool writes its own output folder, which is removed after.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-build/cli/modelpress}
work=${1:-.cache/bench-mergekit}
size=${SIZE:-1g}
methods=${METHODS:-task_arithmetic ties slerp}
venv=$(scripts/interop_venv.sh)
mergekit_yaml=$venv/bin/mergekit-yaml
[ -x "$mergekit_yaml" ] || { echo "no mergekit in $venv: run scripts/setup.sh" >&2; exit 1; }
case $size in
  1g) shape=(--layers 10 --hidden 2048 --intermediate 5632 --heads 16 --kv-heads 8 --vocab 32000 --max-shard-size 1GB) ;;
  small) shape=(--layers 10 --hidden 512 --intermediate 1408 --heads 8 --kv-heads 4 --vocab 32000) ;;
  *) echo "SIZE must be 1g or small" >&2; exit 2 ;;
esac
mkdir -p "$work"
work=$(cd "$work" && pwd)
for i in 0 1 2 3; do
  d=$work/$size-$i
  [ -f "$d/config.json" ] || $bin synth "$d" "${shape[@]}" --seed "$i" --overwrite >/dev/null
  cat "$d"/*.safetensors >/dev/null
done

yaml_for() {
  case $1 in
    task_arithmetic)
      printf 'merge_method: task_arithmetic\nbase_model: %s\nmodels:\n' "$work/$size-0"
      for i in 1 2 3; do printf '  - model: %s\n    parameters: {weight: 0.3}\n' "$work/$size-$i"; done ;;
    ties)
      printf 'merge_method: ties\nbase_model: %s\nmodels:\n' "$work/$size-0"
      for i in 1 2 3; do printf '  - model: %s\n    parameters: {weight: 1.0, density: 0.2}\n' "$work/$size-$i"; done ;;
    slerp)
      printf 'merge_method: slerp\nbase_model: %s\nmodels:\n  - model: %s\n  - model: %s\n' \
        "$work/$size-0" "$work/$size-0" "$work/$size-1"
      printf 'parameters:\n  t:\n    - filter: self_attn\n      value: [0, 0.5, 0.3, 0.7, 1]\n    - value: 0.5\n' ;;
  esac
}

measure() {  # prints "wall rss_kb"
  /usr/bin/time -f '%e %M' "$@" 2>&1 >/dev/null | tail -1
}

bytes=$(du -cb "$work/$size-0"/*.safetensors | tail -1 | cut -f1)
echo "$size models ($((bytes / 1000000)) MB each), $(nproc) cores; $($bin --version | head -1);" \
  "mergekit $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("mergekit"))')"
echo
echo "| method | mergekit wall (s) | modelpress wall (s) | speed-up | mergekit peak RSS (MiB) | modelpress peak RSS (MiB) | memory ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for m in $methods; do
  cfg=$work/$m.yml
  yaml_for "$m" > "$cfg"
  rm -rf "$work/out-mk" "$work/out-mp"
  mk=$(HF_HUB_OFFLINE=1 measure "$mergekit_yaml" "$cfg" "$work/out-mk" --no-copy-tokenizer)
  mp=$(measure "$bin" merge --config "$cfg" -o "$work/out-mp")
  rm -rf "$work/out-mk" "$work/out-mp"
  awk -v m="$m" -v a="$mk" -v b="$mp" 'BEGIN {
    split(a, x, " "); split(b, y, " ");
    printf "| %s | %.1f | %.1f | %.2fx | %d | %d | %.2f |\n", m, x[1], y[1], x[1] / y[1], x[2] / 1024, y[2] / 1024, y[2] / x[2] }'
done
