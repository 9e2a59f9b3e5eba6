#!/usr/bin/env bash
# The model-level accuracy table of docs/EVAL.md: both default models compressed by every
# method modelpress has, each measured by `modelpress eval` against its original in the same
# run, on the default evaluation text (Tom Sawyer).
#   all-MiniLM-L6-v2 (encoder): sentence-embedding cosine to the original, Spearman of
#     pairwise similarities, over the first MAX_TOKENS tokens of lines (default 8192);
#   SmolLM2-135M-Instruct (decoder; the GGUF Q4_1 file dequantized is the original, made a
#     Hugging Face folder by `convert --hf`): perplexity, KLD and top-1 agreement over the
#     first MAX_TOKENS tokens (ctx 512, stride 256), and batch-1 decode speed (64 steps).
#
#   bench/eval_models.sh            BUILD=build-dev MAX_TOKENS=4096 bench/eval_models.sh
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
bin=$build/cli/modelpress
max_tokens=${MAX_TOKENS:-8192}
text=$(scripts/fetch_eval_text.sh)
encoder=$(scripts/fetch_default_model.sh)
gguf=$(scripts/fetch_default_model.sh decoder)
out=${OUT:-.cache/bench/eval}
mkdir -p "$out"

echo "| model | method | bits/weight | metric | value |"
echo "|---|---|---:|---|---|"
row() {  # model method folder metric-json-path...
  python3 - "$@" <<'PY'
import json, sys
model, method, bits, path = sys.argv[1:5]
d = json.load(open(path))
if "encoder" in d:
    e = d["encoder"]
    print(f"| {model} | {method} | {bits} | cosine mean / min, Spearman | {e['cosine']['mean']:.5f} / {e['cosine']['min']:.5f}, {e['spearman']:.5f} |")
else:
    x = d["decoder"]
    s = x.get("speed", {})
    rs = x.get("reference_speed", {})
    speed = f", decode {s['decode_tokens_per_s']:.1f} tok/s ({s['decode_tokens_per_s'] / rs['decode_tokens_per_s']:.2f}x f32)" if s else ""
    print(f"| {model} | {method} | {bits} | PPL (orig {x['reference_perplexity']:.3f}), KLD mean / p99, top-1 | "
          f"{x['perplexity']:.3f}, {x['kld']['mean']:.4f} / {x['kld']['p99']:.4f}, {100 * x['top1_agreement']:.2f}%{speed} |")
PY
}
bits_of() {  # packed bits per weight of a compressed folder, from validate's JSON
  "$bin" validate --original "$1" --compressed "$2" --json --runs 1 --rows 8 | python3 -c '
import json, sys
d = json.load(sys.stdin)
b = sum(l["packed_bytes"] for l in d["layers"]) * 8 / sum(l["out_features"] * l["in_features"] for l in d["layers"])
print(f"{b:.2f}")'
}
compress() {  # original method out
  case $2 in
    llm-int8|w8a8) "$bin" quantize "$1" -o "$3" --method "$2" --overwrite >/dev/null ;;
    w4a16) "$bin" quantize "$1" -o "$3" --method w4a16 --group-size 64 --overwrite >/dev/null ;;
    cluster4) "$bin" cluster "$1" -o "$3" --bits 4 --overwrite >/dev/null ;;
  esac
}

for method in llm-int8 w8a8 w4a16 cluster4; do
  compress "$encoder" $method "$out/minilm-$method"
  "$bin" eval "$out/minilm-$method" --reference "$encoder" --text "$text" --max-tokens "$max_tokens" \
    --report "$out/minilm-$method.json" >/dev/null 2>&1
  row all-MiniLM-L6-v2 $method "$(bits_of "$encoder" "$out/minilm-$method")" "$out/minilm-$method.json"
done

"$bin" convert "$gguf" -o "$out/smol-f32" --hf --overwrite >/dev/null
for method in llm-int8 w8a8 w4a16 cluster4; do
  compress "$out/smol-f32" $method "$out/smol-$method"
  # The GGUF file is the reference: the same weights as smol-f32, and it carries the tokenizer.
  "$bin" eval "$out/smol-$method" --reference "$gguf" --text "$text" --max-tokens "$max_tokens" \
    --decode-tokens 64 --report "$out/smol-$method.json" >/dev/null 2>&1
  row SmolLM2-135M $method "$(bits_of "$out/smol-f32" "$out/smol-$method")" "$out/smol-$method.json"
done
