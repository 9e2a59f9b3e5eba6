"""modelpress's own forward (`modelpress forward`, model/) against transformers, in f32, on tiny
random models built here: LLaMA (plus the llama3 RoPE scaling), Mistral, Qwen2 (q/k/v biases),
Qwen3 (q/k norms), Mixtral (top-2 MoE routing) and BERT (hidden states and the
sentence-transformers embedding). Decoders are also run token by token through the KV cache
(--prefill), which must give the same logits. A GGUF LLaMA written with the `gguf` package
(q/k rows permuted as convert_hf_to_gguf.py does) must give the same logits as its source,
and so must transformers on the folder `modelpress convert --hf` makes of it.

Tolerance: |modelpress - transformers| <= 1e-4 * max|transformers| (f32, same operations in
a different order).

CI runs it (docs/TESTING.md); a plain pytest run skips without torch or transformers.
"""
import json

import pytest

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.numpy import load_file  # noqa: E402

IDS = [1, 5, 9, 33, 2, 60, 14, 15, 16, 3, 7, 7, 7, 41, 0, 63, 22]
COMMON = dict(vocab_size=64, hidden_size=32, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=64)

DECODERS = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", dict(rope_theta=500.0)),
    "llama_tied": ("LlamaConfig", "LlamaForCausalLM", dict(tie_word_embeddings=True)),
    "llama3_rope": ("LlamaConfig", "LlamaForCausalLM",
                    dict(rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                           original_max_position_embeddings=16), rope_theta=10000.0)),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(sliding_window=None)),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict()),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(head_dim=16)),
    "mixtral": ("MixtralConfig", "MixtralForCausalLM", dict(num_local_experts=4, num_experts_per_tok=2)),
}


def build(kind, folder):
    cfg_name, model_name, extra = DECODERS[kind]
    torch.manual_seed(sum(map(ord, kind)))
    cfg = getattr(transformers, cfg_name)(**{**COMMON, **extra})
    model = getattr(transformers, model_name)(cfg).eval()
    with torch.no_grad():  # random norms and biases, so a wrong or missing one shows
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith(".bias"):
                p.add_(torch.randn_like(p) * 0.3)
    model.save_pretrained(folder)
    return model


def forward(modelpress, folder, out, *extra):
    modelpress("forward", folder, "--ids", ",".join(map(str, IDS)), "-o", out, *extra)
    return load_file(str(out))


def close(got, ref):
    assert got.shape == ref.shape
    err = np.abs(got - ref).max()
    assert err <= 1e-4 * np.abs(ref).max(), f"max error {err} vs max |ref| {np.abs(ref).max()}"


@pytest.mark.parametrize("kind", sorted(DECODERS))
def test_decoder_logits_equal_transformers(modelpress, tmp_path, kind):
    model = build(kind, tmp_path / kind)
    with torch.no_grad():
        ref = model(torch.tensor([IDS])).logits[0].numpy()
    close(forward(modelpress, tmp_path / kind, tmp_path / "all.st")["logits"], ref)
    # Prefill 5 tokens, then decode one at a time through the KV cache.
    close(forward(modelpress, tmp_path / kind, tmp_path / "step.st", "--prefill", "5")["logits"], ref)


def test_bert_hidden_states_and_sentence_embedding(modelpress, tmp_path):
    torch.manual_seed(3)
    cfg = transformers.BertConfig(vocab_size=64, hidden_size=32, intermediate_size=40, num_hidden_layers=2,
                                  num_attention_heads=4, max_position_embeddings=40)
    model = transformers.BertModel(cfg, add_pooling_layer=False).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith(".bias"):
                p.add_(torch.randn_like(p) * 0.3)
        hidden = model(torch.tensor([IDS])).last_hidden_state[0]
    model.save_pretrained(tmp_path / "bert")
    got = forward(modelpress, tmp_path / "bert", tmp_path / "bert.st")
    close(got["last_hidden_state"], hidden.numpy())
    mean = hidden.mean(0)
    close(got["sentence_embedding"], (mean / mean.norm()).numpy())


def test_gguf_llama_equals_its_source(modelpress, tmp_path):
    gguf = pytest.importorskip("gguf")
    model = build("llama", tmp_path / "src")
    cfg = model.config
    heads, kv = cfg.num_attention_heads, cfg.num_key_value_heads

    def permute(w, n_head):  # convert_hf_to_gguf.py LlamaModel.permute
        return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    parts = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
             "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    w = gguf.GGUFWriter(str(tmp_path / "tiny.gguf"), "llama")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_freq_base(cfg.rope_parameters["rope_theta"] if hasattr(cfg, "rope_parameters") else cfg.rope_theta)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_vocab_size(cfg.vocab_size)
    for name, p in model.state_dict().items():
        a = p.numpy().astype(np.float32)
        if name in names:
            out = names[name]
        else:
            layer, rest = name.split(".")[2], ".".join(name.split(".")[3:-1])
            out = f"blk.{layer}.{parts[rest]}.weight"
            if rest == "self_attn.q_proj":
                a = permute(a, heads)
            elif rest == "self_attn.k_proj":
                a = permute(a, kv)
        w.add_tensor(out, np.ascontiguousarray(a))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with torch.no_grad():
        ref = model(torch.tensor([IDS])).logits[0].numpy()
    close(forward(modelpress, tmp_path / "tiny.gguf", tmp_path / "gguf.st")["logits"], ref)
    # `convert --hf` makes it a folder transformers loads: the same logits again.
    modelpress("convert", tmp_path / "tiny.gguf", "-o", tmp_path / "hf", "--hf")
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        close(back(torch.tensor([IDS])).logits[0].numpy(), ref)


def test_forward_refuses_bad_models(tmp_path):
    import os
    import subprocess
    binary = os.environ.get("MODELPRESS_BIN", "build/cli/modelpress")
    build("llama", tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["architectures"] = ["GPTNeoXForCausalLM"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    r = subprocess.run([binary, "forward", tmp_path / "m", "--ids", "1", "-o", tmp_path / "x.st"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "GPTNeoXForCausalLM" in r.stderr and "LlamaForCausalLM" in r.stderr
    assert not (tmp_path / "x.st").exists()


@pytest.mark.parametrize("kind", ["ViTModel", "ViTForImageClassification", "DeiTModel"])
def test_vit_hidden_states_and_logits_equal_transformers(modelpress, tmp_path, kind):
    from safetensors.numpy import save_file
    torch.manual_seed(5)
    config_cls = transformers.DeiTConfig if kind.startswith("DeiT") else transformers.ViTConfig
    cfg = config_cls(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=40, image_size=24,
                     patch_size=8, num_channels=3, num_labels=7)
    extra = {} if kind == "ViTForImageClassification" else {"add_pooling_layer": False}
    model = getattr(transformers, kind)(cfg, **extra).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layernorm" in name or name.endswith(".bias") or "token" in name or "position" in name:
                p.add_(torch.randn_like(p) * 0.3)
        pixels = torch.rand(2, 3, 24, 24) * 2 - 1
        out = model(pixel_values=pixels, **({"output_hidden_states": True} if "Classification" in kind else {}))
    model.save_pretrained(tmp_path / "vit")
    save_file({"pixel_values": pixels.numpy()}, str(tmp_path / "pixels.safetensors"))
    modelpress("forward", tmp_path / "vit", "--pixels", tmp_path / "pixels.safetensors", "-o", tmp_path / "out.st")
    got = load_file(str(tmp_path / "out.st"))
    if "Classification" in kind:
        close(got["logits"], out.logits.numpy())
    else:
        close(got["last_hidden_state"], out.last_hidden_state.numpy())
