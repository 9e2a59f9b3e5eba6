#!/usr/bin/env bash
# The main job on the default models: sets up, builds only the modelpress binary (CUDA only
# where a GPU is visible; the build log goes to .cache/build-main.log), fetches the models and
# the evaluation text, and for each model compresses it and proves the result twice:
#   all-MiniLM-L6-v2 (encoder): LLM.int8 (bitsandbytes int8 checkpoint); `validate` runs every
#     int8 layer through its kernel against the original weights (per-layer accuracy, size,
#     latency; HTML report .cache/out/report.html), then `eval` runs the whole model on the
#     text (sentence-embedding cosine and ranking against the original);
#   SmolLM2-135M-Instruct (decoder, GGUF Q4_1 dequantized as the reference): made a Hugging
#     Face folder, quantized to W4A16 (compressed-tensors), and `eval` measures perplexity,
#     KL divergence and top-1 agreement against the original, and decode speed.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
scripts/setup.sh --main
build=${BUILD_DIR:-build-main}
cuda=OFF
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && cuda=ON
mkdir -p .cache/out
log=.cache/build-main.log
echo "== building modelpress (CUDA $cuda; log: $log)"
if ! { cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMODELPRESS_TESTS=OFF -DMODELPRESS_CUDA=$cuda &&
       cmake --build "$build" -j"$(nproc)" --target modelpress; } >"$log" 2>&1; then
  tail -n 30 "$log"
  echo "build failed; the whole log is in $log" >&2
  exit 1
fi
bin=$build/cli/modelpress
model=$(scripts/fetch_default_model.sh)
text=$(scripts/fetch_eval_text.sh)

out=.cache/out/$(basename "$model")-llm-int8
echo
echo "== modelpress quantize $model -o $out --method llm-int8"
"$bin" quantize "$model" -o "$out" --method llm-int8 --overwrite
echo
echo "== modelpress validate --original $model --compressed $out --report .cache/out/report.html"
"$bin" validate --original "$model" --compressed "$out" --report .cache/out/report.html
echo
echo "== modelpress eval $out --reference $model --text $text"
"$bin" eval "$out" --reference "$model" --text "$text" --max-tokens 8192 --report .cache/out/eval-minilm.html

gguf=$(scripts/fetch_default_model.sh decoder)
hf=.cache/out/SmolLM2-135M-Instruct-f32
w4=.cache/out/SmolLM2-135M-Instruct-w4a16
echo
echo "== modelpress convert $gguf -o $hf --hf; quantize $hf -o $w4 --method w4a16 --group-size 64"
"$bin" convert "$gguf" -o "$hf" --hf --overwrite
"$bin" quantize "$hf" -o "$w4" --method w4a16 --group-size 64 --overwrite | tail -n 1
echo
echo "== modelpress eval $w4 --reference $gguf --text $text --max-tokens 2048 --decode-tokens 32"
"$bin" eval "$w4" --reference "$gguf" --text "$text" --max-tokens 2048 --decode-tokens 32 \
  --report .cache/out/eval-smollm2.html
echo
echo "done in $(( $(date +%s) - start )) s; reports: .cache/out/report.html, eval-minilm.html, eval-smollm2.html"
