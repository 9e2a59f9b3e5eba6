"""`modelpress merge ewa` on tiny random MoE models built with transformers: the collapsed
checkpoint loads with AutoModelForCausalLM as the dense architecture (Mixtral -> Mistral,
Qwen2-MoE -> Qwen2, Qwen3-MoE -> Qwen3, DeepSeek-V3 with every layer dense, OLMoE as a
one-expert MoE) and its logits equal those of a dense model assembled here, in Python, from
the experts' mean (the rules of docs/MERGING.md written out independently). A second test
checks the meaning: after `--share-rate 1` every expert is the mean, so the MoE itself (top-k
weights renormalized to 1, as Mixtral does) computes exactly the collapsed dense FFN.

Tolerance: |logits - reference| <= 1e-4 * max|reference| (float32, same operations in a
different order).

CI runs it (docs/TESTING.md); a plain pytest run skips without torch or transformers.
"""
import json

import pytest

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file, save_file  # noqa: E402

COMMON = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
E = 4

CASES = {
    "mixtral": ("MixtralConfig", "MixtralForCausalLM", dict(intermediate_size=40, num_local_experts=E, num_experts_per_tok=2),
                "MistralForCausalLM"),
    "qwen2_moe": ("Qwen2MoeConfig", "Qwen2MoeForCausalLM",
                  dict(intermediate_size=40, num_experts=E, num_experts_per_tok=2, moe_intermediate_size=24,
                       shared_expert_intermediate_size=16), "Qwen2ForCausalLM"),
    "qwen3_moe": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM",
                  dict(intermediate_size=40, num_experts=E, num_experts_per_tok=2, moe_intermediate_size=24, head_dim=8),
                  "Qwen3ForCausalLM"),
    "deepseek_v3": ("DeepseekV3Config", "DeepseekV3ForCausalLM",
                    dict(intermediate_size=48, n_routed_experts=E, num_experts_per_tok=2, moe_intermediate_size=24,
                         n_shared_experts=1, first_k_dense_replace=1, kv_lora_rank=16, q_lora_rank=16,
                         qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=8, n_group=1, topk_group=1,
                         num_key_value_heads=4),  # MLA: one KV head per query head
                    "DeepseekV3ForCausalLM"),
    "olmoe": ("OlmoeConfig", "OlmoeForCausalLM", dict(intermediate_size=40, num_experts=E, num_experts_per_tok=2),
              "OlmoeForCausalLM"),
}


def build_moe(kind, folder):
    cfg_name, model_name, extra, _ = CASES[kind]
    torch.manual_seed(0)
    config = getattr(transformers, cfg_name)(**{**COMMON, **extra})
    model = getattr(transformers, model_name)(config).eval()
    # Random init leaves norms at 1 and some weights tiny; perturb everything so a wrong
    # mapping shows in the logits.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(folder)
    return model


def expert_mean(sd, prefix, proj):
    keys = [f"{prefix}.experts.{e}.{proj}.weight" for e in range(E)]
    return torch.stack([sd[k] for k in keys]).double().mean(0).float()


def dense_reference(kind, moe, src, folder):
    """The dense model the collapse should equal, built from the MoE's saved weights (the
    per-expert checkpoint names; transformers v5 fuses experts only in memory)."""
    sd = load_file(str(src / "model.safetensors"))
    cfg = moe.config.to_dict()
    out = {}
    if kind == "mixtral":
        dense_cfg = transformers.MistralConfig(**{k: v for k, v in cfg.items() if k not in ("num_local_experts",)})
        for k, v in sd.items():
            if "block_sparse_moe" not in k:
                out[k] = v
        for layer in range(COMMON["num_hidden_layers"]):
            p = f"model.layers.{layer}.block_sparse_moe"
            for src, dst in (("w1", "gate_proj"), ("w3", "up_proj"), ("w2", "down_proj")):
                out[f"model.layers.{layer}.mlp.{dst}.weight"] = expert_mean(sd, p, src)
    elif kind in ("qwen2_moe", "qwen3_moe", "deepseek_v3"):
        if kind == "deepseek_v3":
            dense_cfg = transformers.DeepseekV3Config(**{**cfg, "first_k_dense_replace": COMMON["num_hidden_layers"]})
        else:
            width = cfg["moe_intermediate_size"] + cfg.get("shared_expert_intermediate_size", 0)
            cls = "Qwen2" if kind == "qwen2_moe" else "Qwen3"
            dense_cfg = getattr(transformers, cls + "Config")(**{**cfg, "intermediate_size": width})
        for k, v in sd.items():
            if ".mlp." not in k or (kind == "deepseek_v3" and k.startswith("model.layers.0.")):
                out[k] = v
        first_moe = 1 if kind == "deepseek_v3" else 0
        for layer in range(first_moe, COMMON["num_hidden_layers"]):
            p = f"model.layers.{layer}.mlp"
            gate, up, down = (expert_mean(sd, p, n) for n in ("gate_proj", "up_proj", "down_proj"))
            shared = {"qwen2_moe": ("shared_expert", 0.5), "deepseek_v3": ("shared_experts", 1.0)}.get(kind)
            if shared:
                name, c = shared
                gate = torch.cat([gate, sd[f"{p}.{name}.gate_proj.weight"]], 0)
                up = torch.cat([up, sd[f"{p}.{name}.up_proj.weight"]], 0)
                down = torch.cat([down, c * sd[f"{p}.{name}.down_proj.weight"]], 1)
            out[f"{p}.gate_proj.weight"], out[f"{p}.up_proj.weight"], out[f"{p}.down_proj.weight"] = gate, up, down
    elif kind == "olmoe":
        dense_cfg = transformers.OlmoeConfig(**{**cfg, "num_experts": 1, "num_experts_per_tok": 1})
        for k, v in sd.items():
            if ".mlp." not in k:
                out[k] = v
        for layer in range(COMMON["num_hidden_layers"]):
            p = f"model.layers.{layer}.mlp"
            for n in ("gate_proj", "up_proj", "down_proj"):
                out[f"{p}.experts.0.{n}.weight"] = expert_mean(sd, p, n)
            out[f"{p}.gate.weight"] = torch.zeros(1, COMMON["hidden_size"])
    # Saved with safetensors and loaded with from_pretrained, independently of modelpress's writer.
    dense_cfg.save_pretrained(folder)
    save_file({k: v.contiguous() for k, v in out.items()}, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.double().numpy()


@pytest.mark.parametrize("kind", sorted(CASES))
def test_collapsed_moe_loads_as_dense_and_matches(tmp_path, modelpress, kind):
    src, out = tmp_path / "moe", tmp_path / "dense"
    moe = build_moe(kind, src)
    modelpress("merge", "ewa", src, "-o", out)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == [CASES[kind][3]]
    loaded = transformers.AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    assert type(loaded).__name__ == CASES[kind][3]
    reference = dense_reference(kind, moe, src, tmp_path / "reference")
    ids = torch.randint(0, COMMON["vocab_size"], (2, 9), generator=torch.Generator().manual_seed(1))
    got, want = logits(loaded, ids), logits(reference, ids)
    assert np.max(np.abs(got - want)) <= 1e-4 * np.max(np.abs(want)), kind
    # And the collapse did change the model (the experts differed).
    assert np.max(np.abs(logits(moe, ids) - want)) > 1e-3


def test_share_rate_one_makes_the_moe_compute_the_dense_ffn(tmp_path, modelpress):
    src, shared, dense = tmp_path / "moe", tmp_path / "shared", tmp_path / "dense"
    build_moe("mixtral", src)
    modelpress("merge", "ewa", src, "-o", shared, "--share-rate", 1)
    modelpress("merge", "ewa", src, "-o", dense)
    moe = transformers.AutoModelForCausalLM.from_pretrained(str(shared), dtype=torch.float32).eval()
    assert type(moe).__name__ == "MixtralForCausalLM"
    flat = transformers.AutoModelForCausalLM.from_pretrained(str(dense), dtype=torch.float32).eval()
    ids = torch.randint(0, COMMON["vocab_size"], (2, 9), generator=torch.Generator().manual_seed(2))
    got, want = logits(moe, ids), logits(flat, ids)
    assert np.max(np.abs(got - want)) <= 1e-4 * np.max(np.abs(want))


def test_switch_transformers_collapses_to_its_dense_layers(tmp_path, modelpress):
    """Switch's expert_J.wi/wo become the dense layer's mlp.wi/wo and the config builds no
    sparse layer; compared with a Switch model configured dense and given the experts' mean."""
    src, out, ref = tmp_path / "moe", tmp_path / "dense", tmp_path / "reference"
    kw = dict(vocab_size=64, d_model=32, d_kv=8, d_ff=40, num_layers=2, num_decoder_layers=2, num_heads=4,
              num_experts=E, expert_capacity=64)
    torch.manual_seed(0)
    moe = transformers.SwitchTransformersForConditionalGeneration(
        transformers.SwitchTransformersConfig(**kw, num_sparse_encoder_layers=1, num_sparse_decoder_layers=1)).eval()
    with torch.no_grad():
        for p in moe.parameters():
            p.add_(0.05 * torch.randn_like(p))
    moe.save_pretrained(src)
    modelpress("merge", "ewa", src, "-o", out)
    loaded = transformers.AutoModelForSeq2SeqLM.from_pretrained(str(out), dtype=torch.float32).eval()
    sd = load_file(str(src / "model.safetensors"))
    dense = {}
    for k, v in sd.items():
        if ".experts." in k or ".router." in k:
            continue
        dense[k] = v
    for k in sd:
        if k.endswith(".experts.expert_0.wi.weight") or k.endswith(".experts.expert_0.wo.weight"):
            prefix, proj = k.split(".experts.expert_0.")
            dense[f"{prefix}.{proj}"] = torch.stack(
                [sd[f"{prefix}.experts.expert_{e}.{proj}"] for e in range(E)]).double().mean(0).float()
    # Dense everywhere: sparse_step = num_layers // 3 = 0 (transformers' own "0 sparse layers"
    # setting still makes layer 1 sparse; docs/MERGING.md).
    cfg = transformers.SwitchTransformersConfig(**kw, num_sparse_encoder_layers=3, num_sparse_decoder_layers=3)
    cfg.save_pretrained(ref)
    save_file({k: v.contiguous() for k, v in dense.items()}, str(ref / "model.safetensors"), metadata={"format": "pt"})
    reference = transformers.AutoModelForSeq2SeqLM.from_pretrained(str(ref), dtype=torch.float32).eval()
    ids = torch.randint(0, 64, (2, 7), generator=torch.Generator().manual_seed(3))
    dec = torch.randint(0, 64, (2, 5), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        got = loaded(input_ids=ids, decoder_input_ids=dec).logits.double().numpy()
        want = reference(input_ids=ids, decoder_input_ids=dec).logits.double().numpy()
    for model in (loaded, reference):
        assert not any("experts" in n for n, _ in model.named_parameters())
    assert np.max(np.abs(got - want)) <= 1e-4 * np.max(np.abs(want))
