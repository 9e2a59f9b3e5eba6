"""EWA measured at model level: `modelpress merge ewa` collapses a tiny Mixtral (random weights
written with numpy, a BPE tokenizer trained here with `tokenizers`) to a dense model, and
`modelpress eval` runs both through modelpress's own forward: the collapse of a Mixtral with
distinct experts has a finite, positive KL divergence from its MoE; the collapse of a Mixtral
whose experts are identical computes the same function (top-k weights renormalized to 1), so
its KLD is 0 up to f32 rounding.

Needs numpy, safetensors and tokenizers (scripts/setup.sh installs them), not torch.
"""
import json
import os
import pathlib
import subprocess

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("safetensors")
tokenizers = pytest.importorskip("tokenizers")
from safetensors.numpy import save_file  # noqa: E402

TEXT = ("The cat sat on the mat. The dog ran to the park and back again. " * 20 + "\n") * 3
H, I, E, LAYERS, HEADS, KV = 32, 48, 4, 2, 4, 2


def binary():
    root = pathlib.Path(__file__).resolve().parents[2]
    return os.environ.get("MODELPRESS_BIN", str(root / "build/cli/modelpress"))


def write_tokenizer(folder):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator([TEXT], trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(str(folder / "tokenizer.json"))
    return tok.get_vocab_size()


def write_mixtral(folder, identical_experts, seed):
    folder.mkdir()
    vocab = write_tokenizer(folder)
    rng = np.random.default_rng(seed)
    d = H // HEADS

    def lin(n, k):
        return (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)

    t = {"model.embed_tokens.weight": (rng.standard_normal((vocab, H)) * 0.5).astype(np.float32),
         "model.norm.weight": np.ones(H, np.float32), "lm_head.weight": lin(vocab, H)}
    for layer in range(LAYERS):
        p = f"model.layers.{layer}."
        t[p + "input_layernorm.weight"] = np.ones(H, np.float32)
        t[p + "post_attention_layernorm.weight"] = np.ones(H, np.float32)
        t[p + "self_attn.q_proj.weight"] = lin(HEADS * d, H)
        t[p + "self_attn.k_proj.weight"] = lin(KV * d, H)
        t[p + "self_attn.v_proj.weight"] = lin(KV * d, H)
        t[p + "self_attn.o_proj.weight"] = lin(H, HEADS * d)
        t[p + "block_sparse_moe.gate.weight"] = lin(E, H) * 4
        shared = (lin(I, H), lin(H, I), lin(I, H))
        for e in range(E):
            w1, w2, w3 = shared if identical_experts else (lin(I, H), lin(H, I), lin(I, H))
            t[p + f"block_sparse_moe.experts.{e}.w1.weight"] = w1
            t[p + f"block_sparse_moe.experts.{e}.w2.weight"] = w2
            t[p + f"block_sparse_moe.experts.{e}.w3.weight"] = w3
    save_file(t, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": H, "intermediate_size": I,
        "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "num_key_value_heads": KV, "vocab_size": vocab,
        "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
        "num_local_experts": E, "num_experts_per_tok": 2, "tie_word_embeddings": False}))


def kld_of_collapse(tmp_path, identical):
    moe = tmp_path / ("same" if identical else "distinct")
    write_mixtral(moe, identical, seed=7)
    dense = tmp_path / (moe.name + "-ewa")
    r = subprocess.run([binary(), "merge", "ewa", str(moe), "-o", str(dense)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    (tmp_path / "t.txt").write_text(TEXT)
    r = subprocess.run([binary(), "eval", str(dense), "--reference", str(moe), "--text", str(tmp_path / "t.txt"),
                        "--ctx", "64", "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["decoder"]


def test_collapse_of_distinct_experts_has_a_finite_positive_kld(tmp_path):
    d = kld_of_collapse(tmp_path, identical=False)
    assert np.isfinite(d["kld"]["mean"]) and d["kld"]["mean"] > 1e-4
    assert d["scored_tokens"] > 100


def test_collapse_of_identical_experts_has_zero_kld(tmp_path):
    d = kld_of_collapse(tmp_path, identical=True)
    assert d["kld"]["max"] < 1e-6
    assert d["top1_agreement"] == 1.0
