#!/usr/bin/env bash
# The main job on the default checkpoint: sets up, builds, fetches the model, quantizes it
# with LLM.int8 (bitsandbytes int8 checkpoint) and proves the result: `modelpress validate`
# runs every int8 layer through the kernels against the original weights and prints the
# accuracy, size and latency summary; the HTML report goes to .cache/out/report.html.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
model=$(scripts/fetch_default_model.sh)
out=.cache/out/$(basename "$model")-llm-int8
mkdir -p .cache/out
echo "== modelpress quantize $model -o $out --method llm-int8"
build/cli/modelpress quantize "$model" -o "$out" --method llm-int8 --overwrite
echo
echo "== modelpress validate --original $model --compressed $out --report .cache/out/report.html"
build/cli/modelpress validate --original "$model" --compressed "$out" --report .cache/out/report.html
