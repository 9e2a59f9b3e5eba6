"""modelpress's compressed-tensors output (w4a16: pack-quantized, w8a8: int-quantized)
decompresses, with the `compressed-tensors` package's own compressor classes and through
transformers' loader, to exactly the weights modelpress's encoding says: (q - zero) * scale
computed here with numpy from the packed tensors; and `modelpress decompress` turns the
checkpoint back into those weights. CI runs every case (docs/TESTING.md); a plain pytest
run skips without torch or compressed-tensors."""
import json

import pytest

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
pytest.importorskip("compressed_tensors")
from safetensors.torch import load_file  # noqa: E402  (numpy has no bfloat16)


def load_folder(folder):
    """Every tensor of the output folder as torch tensors, in their stored dtypes."""
    index = folder / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
    tensors = {}
    for name in files:
        tensors.update(load_file(str(folder / name)))
    return tensors


def f32(t):
    return t.float().numpy()


def unpack_rows(words, cols, bits):
    """Inverse of the documented layout: a row is a little-endian bit stream, element c at
    bits [c*b, c*b+b), stored as q + 2^(b-1)."""
    stream = np.unpackbits(words.astype("<i4").view(np.uint8).reshape(words.shape[0], -1), axis=1, bitorder="little")
    stream = stream[:, : cols * bits].reshape(words.shape[0], cols, bits)
    u = (stream.astype(np.int32) << np.arange(bits)).sum(axis=2)
    return u - (1 << (bits - 1))


def modelpress_dequant(tensors, prefix, dtype):
    """modelpress's dequantized weight (f32) from its own tensors, per docs/QUANTIZATION.md."""
    scale = f32(tensors[prefix + ".weight_scale"])
    if prefix + ".weight_packed" in tensors:
        n, k = (int(v) for v in tensors[prefix + ".weight_shape"])
        q = unpack_rows(tensors[prefix + ".weight_packed"].numpy(), k, 4)
        groups = scale.shape[1]
        zero = np.zeros_like(scale, dtype=np.int32)
        if prefix + ".weight_zero_point" in tensors:  # packed along dim 0: columns are the streams
            zero = unpack_rows(tensors[prefix + ".weight_zero_point"].numpy().T.copy(), n, 4).T
        g = k // groups
        return (q - np.repeat(zero, g, axis=1)).astype(np.float32) * np.repeat(scale, g, axis=1)
    q = tensors[prefix + ".weight"].numpy().astype(np.float32)
    return q * scale


def round_like_torch(values_f32, dtype):
    """What torch computes when it dequantizes in the scale's dtype: the f32 product rounded
    to that dtype (round to nearest even)."""
    t = torch.from_numpy(np.ascontiguousarray(values_f32))
    return t.to({"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}[dtype]).float().numpy()


def decompress_module(prefix, tensors, qconfig):
    """Decompress one module with compressed-tensors' registered compressor for the format."""
    from compressed_tensors.compressors import BaseCompressor
    from compressed_tensors.quantization import QuantizationConfig

    config = QuantizationConfig.model_validate({k: v for k, v in qconfig.items() if k not in ("version", "sparsity_config", "transform_config")})
    scheme = config.config_groups["group_0"]
    compressor = BaseCompressor.get_value_from_registry(qconfig["format"])
    local = {name[len(prefix) + 1:]: value for name, value in tensors.items()
             if name.startswith(prefix + ".") and name.count(".") == prefix.count(".") + 1}
    if hasattr(compressor, "decompress") and isinstance(compressor, type):
        try:
            return compressor.decompress(local, scheme)["weight"].float().numpy()
        except NotImplementedError:
            pass
    pytest.skip("this compressed-tensors version has no classmethod decompress interface")


def quantize(modelpress, tmp_path, dtype, *args):
    src, out = tmp_path / "src", tmp_path / "out"
    modelpress("synth", src, "--layers", 2, "--hidden", 128, "--intermediate", 256, "--heads", 4, "--kv-heads", 2,
               "--vocab", 64, "--dtype", dtype)
    modelpress("quantize", src, "-o", out, *args)
    return src, out


CASES = [
    ("bf16", ["--method", "w4a16"]),
    ("f16", ["--method", "w4a16", "--group-size", "32", "--asymmetric"]),
    ("bf16", ["--method", "w8a8"]),
    ("f32", ["--method", "w8a8", "--skip", "down_proj"]),
    ("f16", ["--method", "w4a16", "--group-size", "32", "--asymmetric", "--scale-search", "off"]),
]


@pytest.mark.parametrize("dtype,args", CASES)
def test_compressor_classes_decompress_to_modelpress_weights(tmp_path, modelpress, dtype, args):
    src, out = quantize(modelpress, tmp_path, dtype, *args)
    tensors = load_folder(out)
    qconfig = json.loads((out / "config.json").read_text())["quantization_config"]
    prefixes = sorted({n.rsplit(".", 1)[0] for n in tensors if n.endswith(".weight_scale")})
    assert len(prefixes) == (12 if "--skip" in args else 14)
    original = load_folder(src)
    searched_error = 0.0
    for prefix in prefixes:
        theirs = decompress_module(prefix, tensors, qconfig)
        ours = modelpress_dequant(tensors, prefix, dtype)
        # compressed-tensors multiplies in the scale's dtype; that rounding is the only
        # difference allowed, and it is exactly reproduced here.
        np.testing.assert_array_equal(theirs, round_like_torch(ours, dtype), err_msg=prefix)
        w = f32(original[prefix + ".weight"])
        if "w4a16" in args and "off" not in args:
            # Searched scales (the default) trade clipping for a finer step: no half-step
            # bound, but less squared error than the range rule on the same weights.
            assert qconfig["config_groups"]["group_0"]["weights"]["observer"] == "mse"
            searched_error += float(((w - ours) ** 2).sum())
            continue
        # The range rule keeps the weights within half a quantization step.
        scale = f32(tensors[prefix + ".weight_scale"])
        step = np.repeat(scale, w.shape[1] // scale.shape[1], axis=1)
        assert np.all(np.abs(w - ours) <= step * 0.5001), prefix
    if searched_error:
        off = tmp_path / "range-rule"
        modelpress("quantize", src, "-o", off, "--scale-search", "off", *args)
        plain = load_folder(off)
        plain_error = sum(float(((f32(original[p + ".weight"]) - modelpress_dequant(plain, p, dtype)) ** 2).sum())
                          for p in prefixes)
        assert searched_error < 0.95 * plain_error, (searched_error, plain_error)


@pytest.mark.parametrize("dtype,args", [CASES[0], CASES[1], CASES[2]])
def test_transformers_loads_and_decompresses(tmp_path, modelpress, dtype, args):
    transformers = pytest.importorskip("transformers")
    _, out = quantize(modelpress, tmp_path, dtype, *args)
    config = transformers.CompressedTensorsConfig(run_compressed=False)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(out), quantization_config=config)
    tensors = load_folder(out)
    compared = 0
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or name == "lm_head":
            continue
        ours = round_like_torch(modelpress_dequant(tensors, name, dtype), dtype)
        np.testing.assert_array_equal(module.weight.detach().float().numpy(), ours, err_msg=name)
        compared += 1
    assert compared == 14
    # lm_head was left unquantized and listed in `ignore`.
    assert "lm_head" in json.loads((out / "config.json").read_text())["quantization_config"]["ignore"]


@pytest.mark.parametrize("dtype,args", CASES)
@pytest.mark.parametrize("asked", ["auto", "f32", "bf16"])
def test_decompress_gives_compressed_tensors_dequantized_weights(tmp_path, modelpress, dtype, args, asked):
    """`modelpress decompress` of a compressed-tensors checkpoint: each quantized layer
    becomes the weight compressed-tensors' own compressor decompresses it to. With auto the
    dense weight takes the scale's dtype, where compressed-tensors computes, and equals its
    result exactly; with f32 it is the exact (q - zero) * scale, which compressed-tensors'
    result is rounded from; with bf16, that product rounded once. Unquantized tensors are
    copied as they are, and quantization_config is gone."""
    _, out = quantize(modelpress, tmp_path, dtype, *args)
    dense_dir = tmp_path / "dense"
    modelpress("decompress", out, "-o", dense_dir, "--dtype", asked)
    tensors = load_folder(out)
    dense = load_folder(dense_dir)
    qconfig = json.loads((out / "config.json").read_text())["quantization_config"]
    prefixes = sorted({n.rsplit(".", 1)[0] for n in tensors if n.endswith(".weight_scale")})
    want = {"auto": dtype, "f32": "f32", "bf16": "bf16"}[asked]
    torch_dtype = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}[want]
    for prefix in prefixes:
        got = dense[prefix + ".weight"]
        assert got.dtype == torch_dtype, prefix
        ours = modelpress_dequant(tensors, prefix, dtype)
        np.testing.assert_array_equal(f32(got), round_like_torch(ours, want), err_msg=prefix)
        if want == dtype:
            np.testing.assert_array_equal(f32(got), decompress_module(prefix, tensors, qconfig), err_msg=prefix)
        assert not [n for n in dense if n.startswith(prefix + ".weight_")], prefix
    for name, value in tensors.items():
        if name.rsplit(".", 1)[0] not in prefixes:
            assert torch.equal(dense[name], value), name
    assert "quantization_config" not in json.loads((dense_dir / "config.json").read_text())
