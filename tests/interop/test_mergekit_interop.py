"""The same mergekit YAML run by mergekit (`mergekit-yaml`, the pinned 0.1.5) and by
`modelpress merge --config`, on tiny random LLaMA models built with transformers (a base and
three fine-tunes: base + small perturbations, so the task vectors have realistic angles).

Compared tensor by tensor: max |modelpress - mergekit| <= 1e-6 * max |mergekit| (float32;
mergekit computes in float32 torch/numpy, modelpress sums in double and rounds once) for
task_arithmetic, ties, linear, slerp (a layer gradient with filters), model_stock and
passthrough slices. DARE draws its masks from torch's global generator in mergekit and from a
seeded counter-based generator in modelpress, so no seed makes them equal: the test checks
the no-drop limit (density 1 gives task arithmetic in both) and the statistics at density
0.5 (share of entries kept, and the merged task vector's L1 norm against the undropped one).
The stacked slices model must load with AutoModelForCausalLM and give mergekit's logits.

CI runs it (docs/TESTING.md); a plain pytest run skips without torch, transformers or
mergekit.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("mergekit")
from safetensors.numpy import load_file  # noqa: E402

LAYERS = 4


def make_models(folder):
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=96, hidden_size=48, intermediate_size=80, num_hidden_layers=LAYERS,
                                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    base = transformers.LlamaForCausalLM(config).eval()
    base.save_pretrained(folder / "base", safe_serialization=True)
    # Fine-tunes: a shared direction plus each model's own, 5% of the weights' scale.
    shared = {n: torch.randn_like(p) for n, p in base.state_dict().items()}
    for i in range(3):
        g = torch.Generator().manual_seed(100 + i)
        model = transformers.LlamaForCausalLM(config).eval()
        state = {}
        for n, p in base.state_dict().items():
            own = torch.randn(p.shape, generator=g)
            state[n] = p + 0.05 * p.std().clamp(min=1e-3) * (0.5 * shared[n] + own)
        model.load_state_dict(state)
        model.save_pretrained(folder / f"ft{i}", safe_serialization=True)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mergekit")
    make_models(folder)
    return folder


def tensors(folder):
    out = {}
    for f in sorted(os.listdir(folder)):
        if f.endswith(".safetensors"):
            out.update(load_file(str(folder / f)))
    return out


def run_both(folder, modelpress, name, yaml_text, seed=0):
    cfg = folder / f"{name}.yml"
    cfg.write_text(yaml_text)
    mk_out, mp_out = folder / f"{name}-mergekit", folder / f"{name}-modelpress"
    for d in (mk_out, mp_out):
        shutil.rmtree(d, ignore_errors=True)
    mergekit_yaml = os.path.join(os.path.dirname(sys.executable), "mergekit-yaml")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([mergekit_yaml, str(cfg), str(mk_out), "--no-copy-tokenizer", "--random-seed", "0"],
                       capture_output=True, text=True, env=env, cwd=folder)
    assert r.returncode == 0, r.stderr[-3000:]
    modelpress("merge", "--config", cfg, "-o", mp_out, "--seed", seed)
    return mk_out, mp_out


def assert_same(mk_out, mp_out):
    mk, mp = tensors(mk_out), tensors(mp_out)
    assert set(mk) <= set(mp), sorted(set(mk) - set(mp))
    for n, want in mk.items():
        got = mp[n]
        assert got.shape == want.shape, n
        scale = float(np.max(np.abs(want)))
        err = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
        assert err <= 1e-6 * scale, f"{n}: max difference {err:.3g} against max |value| {scale:.3g}"


def model_list(folder, params):
    return "".join(f"  - model: {folder / f'ft{i}'}\n    parameters: {json.dumps(p)}\n" for i, p in enumerate(params))


CASES = {
    "task_arithmetic": lambda f: (f"merge_method: task_arithmetic\nbase_model: {f / 'base'}\ndtype: float32\n"
                                  "parameters: {lambda: 0.9}\nmodels:\n" +
                                  model_list(f, [{"weight": 0.5}, {"weight": 0.3}, {"weight": -0.2}])),
    "ties": lambda f: (f"merge_method: ties\nbase_model: {f / 'base'}\ndtype: float32\nmodels:\n" +
                       model_list(f, [{"weight": 1.0, "density": 0.3}, {"weight": 0.6, "density": 0.5},
                                      {"weight": 0.8, "density": 0.7}])),
    "linear": lambda f: ("merge_method: linear\ndtype: float32\nmodels:\n" +
                         model_list(f, [{"weight": 1.0}, {"weight": 2.0}, {"weight": 0.5}])),
    "slerp": lambda f: (f"merge_method: slerp\nbase_model: {f / 'base'}\ndtype: float32\nslices:\n  - sources:\n"
                        f"      - {{model: {f / 'base'}, layer_range: [0, {LAYERS}]}}\n"
                        f"      - {{model: {f / 'ft0'}, layer_range: [0, {LAYERS}]}}\n"
                        "parameters:\n  t:\n    - filter: self_attn\n      value: [0, 0.5, 0.3, 0.7, 1]\n"
                        "    - filter: mlp\n      value: [1, 0.5, 0.7, 0.3, 0]\n    - value: 0.5\n"),
    "model_stock": lambda f: (f"merge_method: model_stock\nbase_model: {f / 'base'}\ndtype: float32\nmodels:\n" +
                              "".join(f"  - model: {f / f'ft{i}'}\n" for i in range(3))),
    "passthrough": lambda f: ("merge_method: passthrough\ndtype: float32\nslices:\n"
                              f"  - sources: [{{model: {f / 'ft0'}, layer_range: [0, 3]}}]\n"
                              f"  - sources: [{{model: {f / 'ft1'}, layer_range: [1, {LAYERS}]}}]\n"),
}


@pytest.mark.parametrize("method", sorted(CASES))
def test_same_yaml_same_weights(models, modelpress, method):
    mk_out, mp_out = run_both(models, modelpress, method, CASES[method](models))
    assert_same(mk_out, mp_out)
    assert (mp_out / "mergekit_config.yml").read_text() == (models / f"{method}.yml").read_text()
    mk_cfg = json.loads((mk_out / "config.json").read_text())
    mp_cfg = json.loads((mp_out / "config.json").read_text())
    assert mp_cfg["num_hidden_layers"] == mk_cfg["num_hidden_layers"]


def test_passthrough_slices_load_in_transformers(models, modelpress):
    mk_out, mp_out = run_both(models, modelpress, "stack", CASES["passthrough"](models))
    ids = torch.tensor([[1, 5, 9, 33, 70, 2]])
    logits = {}
    for name, folder in (("mergekit", mk_out), ("modelpress", mp_out)):
        model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        assert model.config.num_hidden_layers == 6  # layers 0-2 of ft0, then 1-3 of ft1
        with torch.no_grad():
            logits[name] = model(ids).logits
    assert torch.allclose(logits["modelpress"], logits["mergekit"], rtol=0, atol=1e-6 * float(logits["mergekit"].abs().max()))


def test_dare_no_drop_limit_is_task_arithmetic(models, modelpress):
    params = [{"weight": 0.5, "density": 1.0}, {"weight": 0.3, "density": 1.0}]
    text = f"merge_method: dare_linear\nbase_model: {models / 'base'}\ndtype: float32\nmodels:\n" + model_list(models, params)
    mk_out, mp_out = run_both(models, modelpress, "dare1", text)
    assert_same(mk_out, mp_out)


def test_dare_statistics_match(models, modelpress):
    # One model, weight 1: the merged task vector is the dropped and rescaled task vector itself.
    text = (f"merge_method: dare_linear\nbase_model: {models / 'base'}\ndtype: float32\nmodels:\n" +
            model_list(models, [{"weight": 1.0, "density": 0.5}]))
    mk_out, mp_out = run_both(models, modelpress, "dare05", text, seed=7)
    base, ft = tensors(models / "base"), tensors(models / "ft0")
    mk, mp = tensors(mk_out), tensors(mp_out)
    big = [n for n in base if base[n].size >= 2000]
    assert big
    for n in big:
        tau = (ft[n] - base[n]).astype(np.float64)
        for tool, out in (("mergekit", mk), ("modelpress", mp)):
            d = out[n].astype(np.float64) - base[n]
            kept = np.mean(np.abs(d) > 1e-12 * np.max(np.abs(tau)))
            sd = np.sqrt(0.25 / tau.size)
            assert abs(kept - 0.5) <= 6 * sd, f"{tool} {n}: kept {kept:.4f}"
            # Rescaled by 1/density (modelpress, the paper) or to the undropped L1 norm
            # (mergekit 0.1): either way the L1 norm is the undropped one within sampling error.
            ratio = np.sum(np.abs(d)) / np.sum(np.abs(tau))
            assert abs(ratio - 1) <= 0.1, f"{tool} {n}: L1 ratio {ratio:.4f}"
        # Different generators: the two masks are not the same.
        assert np.mean((np.abs(mk[n] - base[n]) > 0) != (np.abs(mp[n] - base[n]) > 0)) > 0.2
