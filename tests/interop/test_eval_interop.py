"""`modelpress eval` and `modelpress calibrate` against independent computations in torch:

- perplexity of a tiny random LLaMA (with a byte-level BPE tokenizer trained here) with a
  sliding window equals the same windows computed with transformers, within 1e-3 relative;
- the KL divergence between that model and a perturbed copy equals torch's (mean, and top-1
  agreement exactly);
- on all-MiniLM-L6-v2 (when .cache holds it), the rows `calibrate` records equal those of
  tools/record_calibration.py for the same sentences, within f32 rounding, and the Gram
  statistics equal X^T X of those rows.

CI runs it (docs/TESTING.md); a plain pytest run skips without torch, transformers or tokenizers.
"""
import json
import os
import pathlib
import subprocess
import sys

import pytest

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
from safetensors.numpy import load_file  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEXT = (
    "Tom appeared on the sidewalk with a bucket of whitewash and a long-handled brush. He surveyed the fence, "
    "and all gladness left him and a deep melancholy settled down upon his spirit. Thirty yards of board fence "
    "nine feet high. Life to him seemed hollow, and existence but a burden. Sighing, he dipped his brush and "
    "passed it along the topmost plank; repeated the operation; did it again; compared the insignificant "
    "whitewashed streak with the far-reaching continent of unwhitewashed fence, and sat down on a tree-box "
    "discouraged. Jim came skipping out at the gate with a tin pail, and singing Buffalo Gals.\n"
) * 3


def binary():
    return os.environ.get("MODELPRESS_BIN", str(ROOT / "build/cli/modelpress"))


def train_tokenizer(folder):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([TEXT], trainers.BpeTrainer(vocab_size=320, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(str(folder / "tokenizer.json"))
    return tok


def tiny_llama(folder, vocab, seed, noise=0.0, base=None):
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(vocab_size=vocab, hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    model = transformers.LlamaForCausalLM(cfg).eval()
    if base is not None:
        model.load_state_dict(base.state_dict())
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * noise)
    model.save_pretrained(folder)
    return model


def windows(n, ctx, stride):
    prev_end = 0
    for begin in range(0, n, stride):
        end = min(begin + ctx, n)
        yield begin, end, max(prev_end, begin + 1)
        prev_end = end
        if end == n:
            break


def eval_json(*args):
    r = subprocess.run([binary(), "eval", *map(str, args), "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_perplexity_and_kld_equal_torch(tmp_path):
    (tmp_path / "m").mkdir()
    tok = train_tokenizer(tmp_path / "m")
    vocab = tok.get_vocab_size()
    ref = tiny_llama(tmp_path / "m", vocab, seed=1)
    (tmp_path / "q").mkdir()
    model = tiny_llama(tmp_path / "q", vocab, seed=2, noise=0.02, base=ref)
    (tmp_path / "q" / "tokenizer.json").write_bytes((tmp_path / "m" / "tokenizer.json").read_bytes())
    (tmp_path / "t.txt").write_text(TEXT)
    ids = tok.encode(TEXT).ids[:200]
    ctx, stride = 40, 15

    got = eval_json(tmp_path / "q", "--reference", tmp_path / "m", "--text", tmp_path / "t.txt",
                    "--ctx", ctx, "--stride", stride, "--max-tokens", 200)["decoder"]

    nll = ref_nll = 0.0
    klds, agree, scored = [], 0, 0
    with torch.no_grad():
        for begin, end, first_target in windows(len(ids), ctx, stride):
            window = torch.tensor([ids[begin:end]])
            lp = torch.log_softmax(model(window).logits[0].double(), -1)
            lp_ref = torch.log_softmax(ref(window).logits[0].double(), -1)
            for j in range(first_target, end):
                row = j - begin - 1
                nll -= lp[row, ids[j]].item()
                ref_nll -= lp_ref[row, ids[j]].item()
                klds.append((lp_ref[row].exp() * (lp_ref[row] - lp[row])).sum().item())
                agree += int(lp[row].argmax() == lp_ref[row].argmax())
                scored += 1
    assert got["scored_tokens"] == scored == len(ids) - 1
    assert got["perplexity"] == pytest.approx(np.exp(nll / scored), rel=1e-3)
    assert got["reference_perplexity"] == pytest.approx(np.exp(ref_nll / scored), rel=1e-3)
    assert got["kld"]["mean"] == pytest.approx(np.mean(klds), rel=1e-3)
    assert got["kld"]["p99"] == pytest.approx(np.percentile(klds, 99), rel=1e-2)
    assert got["top1_agreement"] == pytest.approx(agree / scored, abs=1.5 / scored)


def test_calibrate_rows_equal_record_calibration(tmp_path):
    model = ROOT / ".cache/models/all-MiniLM-L6-v2"
    if not (model / "model.safetensors").exists():
        pytest.skip("all-MiniLM-L6-v2 is not in .cache (scripts/fetch_default_model.sh)")
    lines = [s.strip() + "." for s in TEXT.splitlines()[0].split(".") if s.strip()][:6]
    (tmp_path / "t.txt").write_text("\n".join(lines) + "\n")
    prompts = sum((["--prompt", line] for line in lines), [])
    subprocess.run([sys.executable, str(ROOT / "tools/record_calibration.py"), str(model), *prompts, "--dtype", "f32",
                    "--max-tokens", "100000", "-o", str(tmp_path / "ref.safetensors")], check=True, capture_output=True)
    r = subprocess.run([binary(), "calibrate", str(model), "--text", str(tmp_path / "t.txt"), "--samples", "100",
                        "--rows", "100000", "-o", str(tmp_path / "ours.safetensors")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ref = load_file(str(tmp_path / "ref.safetensors"))
    ours = load_file(str(tmp_path / "ours.safetensors"))
    layers = [k for k in ref if not k.endswith(".step")]
    assert len(layers) == 37
    for name in layers:
        a, b = ours[name], ref[name]
        assert a.shape == b.shape, name
        assert np.abs(a - b).max() <= 1e-4 * max(1.0, np.abs(b).max()), name
        gram = b.astype(np.float64).T @ b.astype(np.float64)
        assert np.abs(ours[name + ".gram"] - gram).max() <= 1e-4 * np.abs(gram).max(), name
        assert ours[name + ".tokens"][0] == b.shape[0]
        np.testing.assert_allclose(ours[name + ".absmax"], np.abs(b).max(0), rtol=1e-4, atol=1e-5)
