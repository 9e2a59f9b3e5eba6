#!/usr/bin/env bash
# Batch-1 prefill and decode speed of SmolLM2-135M-Instruct: modelpress's forward (f32, and its
# LLM.int8 and W4A16 checkpoints) against PyTorch CPU (f32, transformers, the same GGUF
# weights dequantized, the same thread count), measured in the same run. Prefill: 512 tokens
# of the evaluation text in one pass, logits of the last position only; decode: 64 greedy
# steps through the KV cache. PyTorch's side needs torch, transformers and accelerate
# (skipped with a note without them). docs/PERFORMANCE.md records the output.
#
#   bench/forward_speed.sh            BUILD=build-dev THREADS=2 bench/forward_speed.sh
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
bin=$build/cli/modelpress
threads=${THREADS:-$(nproc)}
export OMP_NUM_THREADS=$threads
text=$(scripts/fetch_eval_text.sh)
gguf=$(scripts/fetch_default_model.sh decoder)
out=${OUT:-.cache/bench/speed}
mkdir -p "$out"
"$bin" convert "$gguf" -o "$out/f32" --hf --overwrite >/dev/null
"$bin" quantize "$out/f32" -o "$out/llm-int8" --method llm-int8 --overwrite >/dev/null
"$bin" quantize "$out/f32" -o "$out/w4a16" --method w4a16 --group-size 64 --overwrite >/dev/null

echo "| runtime | weights | prefill 512 (tok/s) | decode 64 (tok/s) |"
echo "|---|---|---:|---:|"
for rep in 1 2; do  # two rounds, alternating, so drift shows
  for m in f32 llm-int8 w4a16; do
    "$bin" eval "$out/$m" --text "$text" --max-tokens 513 --ctx 512 --decode-tokens 64 --json \
      2>/dev/null | python3 -c "
import json, sys
s = json.load(sys.stdin)['decoder']['speed']
print(f'| modelpress (round $rep) | $m | {s[\"prefill_tokens_per_s\"]:.1f} | {s[\"decode_tokens_per_s\"]:.1f} |')"
  done
  python3 - "$gguf" "$text" "$threads" "$rep" 2>/dev/null <<'PY' || echo "| PyTorch | f32 | (torch/transformers/accelerate not installed) | |"
import os, sys, time
gguf, text, threads, rep = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
import torch, transformers
torch.set_num_threads(threads)
folder, name = os.path.split(gguf)
tok = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
model = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32).eval()
ids = torch.tensor([tok(open(text).read())["input_ids"][:512]])
with torch.no_grad():
    model(ids[:, :16])  # warm-up
    t0 = time.perf_counter()
    out = model(ids, use_cache=True, logits_to_keep=1)
    prefill = 512 / (time.perf_counter() - t0)
    cache, nxt = out.past_key_values, out.logits[0, -1].argmax().view(1, 1)
    t0 = time.perf_counter()
    for _ in range(64):
        out = model(nxt, past_key_values=cache, use_cache=True)
        cache, nxt = out.past_key_values, out.logits[0, -1].argmax().view(1, 1)
    decode = 64 / (time.perf_counter() - t0)
print(f"| PyTorch {torch.__version__} (round {rep}) | f32 | {prefill:.1f} | {decode:.1f} |")
PY
done
