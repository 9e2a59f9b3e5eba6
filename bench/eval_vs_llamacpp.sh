#!/usr/bin/env bash
# modelpress's 4-bit and 8-bit weight quantization against llama.cpp's quantizers on the same
# model, measured by the same `modelpress eval` in the same run: SmolLM2-135M-Instruct (the GGUF
# Q4_1 weights dequantized are the reference), every linear layer of the 30 blocks quantized
# (embeddings and norms kept f32, as modelpress keeps them), KLD / perplexity / top-1 against the
# reference on the evaluation text.
#   llama.cpp: Q4_0 (symmetric, 32 weights per f16 scale), Q4_1 (scale and minimum per 32),
#     Q8_0 (int8, 32 per f16 scale), written with the `gguf` package's quantizers, which
#     reimplement ggml's reference quantization (gguf-py/gguf/quants.py; no llama.cpp binary is
#     reachable here); modelpress reads the file and dequantizes the blocks exactly.
#   modelpress: W4A16 symmetric and asymmetric with group 32 (the same grouping), W8A8 and
#     LLM.int8 (per-row int8 scales; activations quantized at run time).
#
#   bench/eval_vs_llamacpp.sh            BUILD=build-dev MAX_TOKENS=4096 bench/eval_vs_llamacpp.sh
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
bin=$build/cli/modelpress
max_tokens=${MAX_TOKENS:-8192}
text=$(scripts/fetch_eval_text.sh)
gguf=$(scripts/fetch_default_model.sh decoder)
out=${OUT:-.cache/bench/vs-llamacpp}
mkdir -p "$out"
"$bin" convert "$gguf" -o "$out/f32" --hf --overwrite >/dev/null

for type in Q4_0 Q4_1 Q8_0; do
  python3 - "$out/f32" "$out/smol-$type.gguf" "$type" <<'PY'
import json, sys
import numpy as np
import gguf
from gguf import quants
from safetensors.numpy import load_file
folder, path, qtype = sys.argv[1], sys.argv[2], getattr(gguf.GGMLQuantizationType, sys.argv[3])
cfg = json.load(open(f"{folder}/config.json"))
t = load_file(f"{folder}/model.safetensors")
heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
def permute(w, n):  # convert_hf_to_gguf.py LlamaModel.permute
    return w.reshape(n, 2, w.shape[0] // n // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
parts = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
         "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
         "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
w = gguf.GGUFWriter(path, "llama")
w.add_context_length(cfg["max_position_embeddings"]); w.add_embedding_length(cfg["hidden_size"])
w.add_block_count(cfg["num_hidden_layers"]); w.add_feed_forward_length(cfg["intermediate_size"])
w.add_head_count(heads); w.add_head_count_kv(kv); w.add_rope_freq_base(cfg["rope_theta"])
w.add_layer_norm_rms_eps(cfg["rms_norm_eps"]); w.add_vocab_size(cfg["vocab_size"])
for name, a in t.items():
    if name == "model.embed_tokens.weight": w.add_tensor("token_embd.weight", a); continue
    if name == "model.norm.weight": w.add_tensor("output_norm.weight", a); continue
    if name == "lm_head.weight": w.add_tensor("output.weight", a); continue
    layer, rest = name.split(".")[2], ".".join(name.split(".")[3:-1])
    if a.ndim == 1: w.add_tensor(f"blk.{layer}.{parts[rest]}.weight", a); continue
    if rest == "self_attn.q_proj": a = permute(a, heads)
    if rest == "self_attn.k_proj": a = permute(a, kv)
    w.add_tensor(f"blk.{layer}.{parts[rest]}.weight", quants.quantize(np.ascontiguousarray(a), qtype), raw_dtype=qtype)
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
PY
done
"$bin" quantize "$out/f32" -o "$out/w4a16-sym-g32" --method w4a16 --group-size 32 --overwrite >/dev/null
"$bin" quantize "$out/f32" -o "$out/w4a16-asym-g32" --method w4a16 --group-size 32 --asymmetric --overwrite >/dev/null
# The range rule (no scale search), for the search's effect at model level.
"$bin" quantize "$out/f32" -o "$out/w4a16-sym-g32-range" --method w4a16 --group-size 32 --scale-search off --overwrite >/dev/null
"$bin" quantize "$out/f32" -o "$out/w4a16-asym-g32-range" --method w4a16 --group-size 32 --asymmetric --scale-search off \
  --overwrite >/dev/null
"$bin" quantize "$out/f32" -o "$out/w8a8" --method w8a8 --overwrite >/dev/null
"$bin" quantize "$out/f32" -o "$out/llm-int8" --method llm-int8 --overwrite >/dev/null

echo "| quantizer | format | bits/weight | PPL (reference) | KLD mean | KLD p99 | top-1 |"
echo "|---|---|---:|---|---:|---:|---:|"
for pair in "llama.cpp (gguf-py):Q4_0:4.5:smol-Q4_0.gguf" "modelpress:W4A16 sym g32 (f32 scales), scale search:5.0:w4a16-sym-g32" \
            "modelpress:W4A16 sym g32 (f32 scales), range rule:5.0:w4a16-sym-g32-range" \
            "llama.cpp (gguf-py):Q4_1:5.0:smol-Q4_1.gguf" "modelpress:W4A16 asym g32 (f32 scales), scale search:5.25:w4a16-asym-g32" \
            "modelpress:W4A16 asym g32 (f32 scales), range rule:5.25:w4a16-asym-g32-range" \
            "llama.cpp (gguf-py):Q8_0:8.5:smol-Q8_0.gguf" "modelpress:W8A8:8.06:w8a8" "modelpress:LLM.int8:8.06:llm-int8"; do
  IFS=: read -r who fmt bits dir <<<"$pair"
  "$bin" eval "$out/$dir" --reference "$gguf" --text "$text" --max-tokens "$max_tokens" --json 2>/dev/null |
    python3 -c "
import json, sys
d = json.load(sys.stdin)['decoder']
print(f\"| $who | $fmt | $bits | {d['perplexity']:.3f} ({d['reference_perplexity']:.3f}) | {d['kld']['mean']:.4f} | {d['kld']['p99']:.4f} | {100 * d['top1_agreement']:.2f}% |\")"
done
