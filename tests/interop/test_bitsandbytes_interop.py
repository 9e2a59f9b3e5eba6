"""A `modelpress quantize --method llm-int8` checkpoint of a tiny synthetic LLaMA loads with
transformers + bitsandbytes on CPU (AutoModelForCausalLM.from_pretrained): every linear
layer becomes a Linear8bitLt holding modelpress's int8 weight and SCB unchanged, those are
the codes bitsandbytes itself computes from the original weight, and a layer's output on
inputs with outlier columns matches the LLM.int8 math written out here in numpy.

Tolerance of the layer output: |y_bitsandbytes - y_reference| <= 1e-5 * max|y_reference|.
The reference does the same integer matmul and the same float scalings in float64; what is
left is float32 rounding in bitsandbytes' dequantization and its outlier addmm.
Every int8 layer's output also matches modelpress's own CPU kernel (run through
`modelpress validate --dump-outputs`) within 5e-5 * max|y| on f16-representable rows: see the last test.

The last test decompresses a checkpoint bitsandbytes itself saved and compares with its
dequantization. CI runs every case (docs/TESTING.md); a plain pytest run skips without
torch, transformers or bitsandbytes."""
import json

import pytest

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
bnb = pytest.importorskip("bitsandbytes")
from safetensors.torch import load_file  # noqa: E402

THRESHOLD = 6.0


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, modelpress):
    tmp = tmp_path_factory.mktemp("bnb")
    src, out = tmp / "src", tmp / "out"
    # f16 weights: bitsandbytes quantizes the f16 weight itself, so its own codes are
    # comparable bit for bit with modelpress's.
    modelpress("synth", src, "--layers", 2, "--hidden", 128, "--intermediate", 256, "--heads", 4, "--kv-heads", 2,
               "--vocab", 64, "--dtype", "f16")
    modelpress("quantize", src, "-o", out, "--method", "llm-int8", "--threshold", THRESHOLD)
    return src, out


@pytest.fixture(scope="module")
def model(checkpoints):
    _, out = checkpoints
    try:
        return transformers.AutoModelForCausalLM.from_pretrained(str(out), device_map="cpu", dtype=torch.float32)
    except (ImportError, RuntimeError) as e:  # a bitsandbytes build without a CPU backend
        pytest.skip(f"transformers + bitsandbytes cannot load int8 on this CPU: {e}")


def test_config_and_modules(checkpoints, model):
    _, out = checkpoints
    qc = json.loads((out / "config.json").read_text())["quantization_config"]
    assert qc["quant_method"] == "bitsandbytes" and qc["load_in_8bit"] and qc["llm_int8_threshold"] == THRESHOLD
    int8_modules = {n for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear8bitLt)}
    assert len(int8_modules) == 14
    assert "lm_head" not in int8_modules  # listed in llm_int8_skip_modules
    assert type(model.lm_head) is torch.nn.Linear and model.lm_head.weight.dtype.is_floating_point


def test_weights_are_modelpress_codes_and_bitsandbytes_codes(checkpoints, model):
    src, out = checkpoints
    ours = load_file(str(out / "model.safetensors"))
    original = load_file(str(src / "model.safetensors"))
    for name, module in model.named_modules():
        if not isinstance(module, bnb.nn.Linear8bitLt):
            continue
        cb = module.weight.data
        scb = module.weight.SCB if getattr(module.weight, "SCB", None) is not None else module.state.SCB
        assert cb.dtype == torch.int8
        assert torch.equal(cb, ours[name + ".weight"]), name
        assert torch.equal(scb, ours[name + ".SCB"]), name
        # bitsandbytes' own quantization of the original f16 weight gives the same codes.
        cb_ref, scb_ref, _ = bnb.functional.int8_vectorwise_quant(original[name + ".weight"].to(torch.float16))
        assert torch.equal(cb_ref, cb), name
        assert torch.equal(scb_ref, scb), name


def llm_int8_reference(x, cb, scb, threshold):
    """LLM.int8() as bitsandbytes computes it (MatMul8bitLt, inference path), in numpy:
    activations cast to f16 and quantized per row with outlier elements (|x| >= threshold)
    left out of the absmax and their columns zeroed; int8 matmul; the outlier columns
    multiplied in floating point against the dequantized int8 weight columns."""
    x = x.astype(np.float64)
    x16 = x.astype(np.float16).astype(np.float64)
    outliers = np.abs(x16) >= threshold
    cols = np.nonzero(outliers.any(axis=0))[0]
    xa = np.where(outliers, 0.0, x16)
    row_stats = np.abs(xa).max(axis=1).astype(np.float32).astype(np.float64)
    ca = np.round(xa * (np.float32(127.0) / row_stats.astype(np.float32)).astype(np.float64)[:, None])
    if x.shape[0] > 1:
        ca[:, cols] = 0
    c = ca.astype(np.int64) @ cb.astype(np.int64).T
    y = c * (row_stats[:, None] * scb[None, :].astype(np.float64)) / 127.0**2
    w_cols = cb[:, cols].astype(np.float64) * scb[:, None].astype(np.float64) / 127.0
    return y + x[:, cols] @ w_cols.T, cols


def test_layer_output_matches_int8_math(checkpoints, model):
    _, out = checkpoints
    ours = load_file(str(out / "model.safetensors"))
    name = "model.layers.1.self_attn.q_proj"
    layer = model.get_submodule(name)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, layer.in_features)).astype(np.float32)
    x[:, 3] *= 10.0   # two outlier feature columns, as LLM.int8() meets them
    x[2, 77] = -9.0
    with torch.no_grad():
        y = layer(torch.from_numpy(x)).float().numpy()
    cb, scb = ours[name + ".weight"].numpy(), ours[name + ".SCB"].numpy()
    ref, cols = llm_int8_reference(x, cb, scb, THRESHOLD)
    assert 3 in cols and 77 in cols
    assert np.max(np.abs(y - ref)) <= 1e-5 * np.max(np.abs(ref))
    # And the int8 layer is the float layer to within quantization error.
    w = ours[name + ".weight"].float().numpy() * scb[:, None] / 127.0
    exact = x.astype(np.float64) @ w.T.astype(np.float64)
    assert np.linalg.norm(y - exact) / np.linalg.norm(exact) < 0.02


def test_generate_runs(model):
    ids = torch.tensor([[1, 5, 9, 2]])
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, 4, model.config.vocab_size)
    assert torch.isfinite(logits).all()


def test_layer_outputs_match_modelpress_kernels(checkpoints, model, modelpress, tmp_path):
    """Every int8 layer, bitsandbytes against modelpress's own CPU kernel on the same rows:
    `modelpress validate --calib` runs the rows through the LLM.int8 kernel and
    `--dump-outputs` hands its outputs back. bitsandbytes casts activations to f16 before
    quantizing them, modelpress quantizes the f32 rows it is given; the rows are therefore
    f16-representable, so both quantize the same values. Measured: at most 1.9e-5 * max|y|
    apart (f32 accumulation order); the stated tolerance is 5e-5 * max|y| per layer. (With
    arbitrary f32 rows the two differ by up to ~6e-3 * max|y|, one activation code step
    where the f16 cast moves a value across a rounding boundary.)"""
    src, out = checkpoints
    from safetensors.numpy import load_file as load_np, save_file as save_np

    layers = {n: m for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear8bitLt)}
    rng = np.random.default_rng(1)
    rows = {}
    for i, (name, layer) in enumerate(sorted(layers.items())):
        x = rng.standard_normal((7, layer.in_features)).astype(np.float32)
        x[:, (5 * i + 3) % layer.in_features] *= 12.0  # an outlier feature column per layer
        rows[name] = x.astype(np.float16).astype(np.float32)
    calib, dump = tmp_path / "calib.safetensors", tmp_path / "outputs.safetensors"
    save_np(rows, str(calib), metadata={"format": "modelpress-calibration", "version": "1", "source": "interop test"})
    modelpress("validate", "--original", src, "--compressed", out, "--calib", calib, "--backend", "cpu",
               "--runs", 1, "--dump-outputs", dump)
    ours = load_np(str(dump))
    for name, layer in layers.items():
        np.testing.assert_array_equal(ours[name + ".x"], rows[name])
        with torch.no_grad():
            y = layer(torch.from_numpy(rows[name])).float().numpy()
        y_mp = ours[name + ".y"]
        assert y.shape == y_mp.shape, name
        scale = np.max(np.abs(ours[name + ".y_reference"]))
        assert np.max(np.abs(y - y_mp)) <= 5e-5 * scale, (name, np.max(np.abs(y - y_mp)) / scale)


@pytest.fixture(scope="module")
def bitsandbytes_checkpoint(checkpoints, tmp_path_factory):
    """A checkpoint bitsandbytes itself wrote: the f16 source loaded with load_in_8bit on CPU
    and saved by transformers (int8 CB as <p>.weight, f32 SCB, config.json's dtype float16)."""
    src, _ = checkpoints
    out = tmp_path_factory.mktemp("bnb-saved") / "int8"
    config = transformers.BitsAndBytesConfig(load_in_8bit=True)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(str(src), device_map="cpu", quantization_config=config)
    loaded.save_pretrained(str(out))
    return out


TORCH_DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


@pytest.mark.parametrize("dtype", ["auto", "f32", "f16", "bf16"])
def test_decompress_gives_bitsandbytes_dequantized_weights(checkpoints, bitsandbytes_checkpoint, modelpress, tmp_path,
                                                           dtype):
    """`modelpress decompress` of bitsandbytes' own checkpoint: every int8 layer becomes
    bitsandbytes' dequantization (int8_vectorwise_dequant: CB * SCB / 127) in the asked
    dtype; with auto, the float16 config.json records; every other tensor is copied as is
    and quantization_config is gone. modelpress multiplies CB by fl(SCB / 127), bitsandbytes
    rounds CB * SCB first: the f32 values may differ by one ulp, so the check is one ulp in
    f32 and exact equality with modelpress's own rule rounded to the asked dtype."""
    src, _ = checkpoints
    out = tmp_path / "dense"
    modelpress("decompress", bitsandbytes_checkpoint, "-o", out, "--dtype", dtype)
    packed = load_file(str(bitsandbytes_checkpoint / "model.safetensors"))
    dense = load_file(str(out / "model.safetensors"))
    want_dtype = TORCH_DTYPES["f16" if dtype == "auto" else dtype]
    layers = sorted(name[: -len(".SCB")] for name in packed if name.endswith(".SCB"))
    assert len(layers) == 14
    for name in layers:
        cb, scb = packed[name + ".weight"], packed[name + ".SCB"]
        got = dense[name + ".weight"]
        assert got.dtype == want_dtype and got.shape == cb.shape, name
        theirs = bnb.functional.int8_vectorwise_dequant(cb, scb).numpy()
        ours = (cb.float() * (scb / 127.0)[:, None]).to(want_dtype)
        assert torch.equal(got, ours), name
        if want_dtype == torch.float32:
            np.testing.assert_array_max_ulp(got.numpy(), theirs, maxulp=1)
        assert name + ".SCB" not in dense
    for name, value in packed.items():
        if name.rsplit(".", 1)[0] not in layers:
            assert torch.equal(dense[name], value), name
    # The layer's other tensors (SCB, and the weight_format bitsandbytes still saves) are gone.
    assert set(dense) == {n for n in packed if n.rsplit(".", 1)[0] not in layers} | {n + ".weight" for n in layers}
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config
    # And the result is the original model to within int8 rounding (half a step per row).
    original = load_file(str(src / "model.safetensors"))
    for name in layers:
        step = (packed[name + ".SCB"] / 127.0)[:, None]
        assert torch.all((dense[name + ".weight"].float() - original[name + ".weight"].float()).abs()
                         <= step * 0.501 + 2.0**-8 * original[name + ".weight"].float().abs()), name
