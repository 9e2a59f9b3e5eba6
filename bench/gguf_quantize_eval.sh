#!/usr/bin/env bash
# GGUF output, modelpress's block quantizers against llama.cpp's reference quantization, on the
# default decoder (SmolLM2-135M-Instruct) in one run: its GGUF rewritten as F16
# (bench/gguf_f16_copy.py), then `modelpress quantize --method q8_0|q4_0` with
# --scale-search off (ggml's reference, byte for byte what llama-quantize writes without an
# importance matrix), on, and on weighted by calibration (--calib, from `modelpress
# calibrate` on other text); each file's weight error against the F16 weights (`gguf`
# package) and `modelpress eval` against the original weights on the evaluation text.
#   bench/gguf_quantize_eval.sh        MAX_TOKENS=4096 BUILD=build bench/gguf_quantize_eval.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BUILD:-build}/cli/modelpress
max_tokens=${MAX_TOKENS:-4096}
text=$(scripts/fetch_eval_text.sh)
gguf=$(scripts/fetch_default_model.sh decoder)
out=${OUT:-.cache/bench/gguf-quantize}
mkdir -p "$out"
[ -s "$out/smol-f16.gguf" ] || python3 bench/gguf_f16_copy.py "$gguf" "$out/smol-f16.gguf"
# Calibration for --calib, on text the evaluation does not read: characters 200,000-260,000
# of the evaluation text (eval reads its first MAX_TOKENS tokens).
if [ ! -s "$out/calib.safetensors" ]; then
  python3 -c "import sys; t = open(sys.argv[1], encoding='utf-8').read(); open(sys.argv[2], 'w', encoding='utf-8').write(t[200000:260000])" \
    "$text" "$out/calib.txt"
  "$bin" calibrate "$out/smol-f16.gguf" --text "$out/calib.txt" --samples 8 --seq-len 512 -o "$out/calib.safetensors" \
    --overwrite >/dev/null
fi
echo "| type | parameters | quantize time | weight error | PPL (reference) | KLD mean | KLD p99 | top-1 |"
echo "|---|---|---:|---:|---|---:|---:|---:|"
for method in q8_0 q4_0; do
  for search in off on calib; do
    file=$out/smol-$method-$search.gguf
    args=(--scale-search "$search")
    [ "$search" = calib ] && args=(--calib "$out/calib.safetensors")
    start=$EPOCHREALTIME
    "$bin" quantize "$out/smol-f16.gguf" -o "$file" --method "$method" "${args[@]}" --overwrite >/dev/null
    seconds=$(python3 -c "print(f'{$EPOCHREALTIME - $start:.2f}')")
    error=$(python3 - "$out/smol-f16.gguf" "$file" <<'PY'
import sys
import numpy as np
import gguf
src = {t.name: t for t in gguf.GGUFReader(sys.argv[1]).tensors}
num = den = 0.0
for t in gguf.GGUFReader(sys.argv[2]).tensors:
    if t.tensor_type in (gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.F32):
        continue
    w = gguf.quants.dequantize(src[t.name].data, src[t.name].tensor_type).astype(np.float64)
    num += float(((w - gguf.quants.dequantize(t.data, t.tensor_type)) ** 2).sum())
    den += float((w ** 2).sum())
print(f"{np.sqrt(num / den):.5f}")
PY
)
    "$bin" eval "$file" --reference "$gguf" --text "$text" --max-tokens "$max_tokens" --json 2>/dev/null |
      python3 -c "
import json, sys
d = json.load(sys.stdin)['decoder']
label = {'off': 'reference (llama.cpp)', 'on': 'scale search', 'calib': 'scale search, --calib'}['$search']
print(f\"| ${method^^} | {label} | $seconds s | $error | {d['perplexity']:.3f} ({d['reference_perplexity']:.3f}) | {d['kld']['mean']:.4f} | {d['kld']['p99']:.4f} | {100 * d['top1_agreement']:.2f}% |\")"
  done
done
