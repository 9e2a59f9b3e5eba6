"""modelpress dequantizes GGUF files exactly as the reference `gguf` Python package (from
llama.cpp) does: files are written with gguf.GGUFWriter, converted to f32 safetensors by
`modelpress convert`, and compared with gguf.quants.dequantize. Every type modelpress reads:
Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and F16 quantized by the package from real values; Q2_K to Q6_K,
IQ4_NL and IQ4_XS as random blocks (the package cannot quantize them)."""
import json

import pytest

np = pytest.importorskip("numpy")
gguf = pytest.importorskip("gguf")
from safetensors import safe_open  # noqa: E402

Q = gguf.GGMLQuantizationType


# Byte offset of each block's f16 super-scale(s) (d, and dmin where there is one), from
# ggml-common.h's block structs.
SCALE_OFFSETS = {Q.Q2_K: (80, 2), Q.Q3_K: (108, 1), Q.Q4_K: (0, 2), Q.Q5_K: (0, 2), Q.Q6_K: (208, 1),
                 Q.IQ4_NL: (0, 1), Q.IQ4_XS: (0, 1)}


def random_blocks(rng, qtype, n_blocks):
    """Random bytes for `n_blocks` blocks of a K-quant or IQ4 type, with finite f16 scales."""
    block_elems, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    offset, count = SCALE_OFFSETS[qtype]
    d = rng.uniform(-0.05, 0.05, size=(n_blocks, count)).astype(np.float16).view(np.uint8)
    raw[:, offset:offset + 2 * count] = d.reshape(n_blocks, 2 * count)
    return raw


def test_dequantization_matches_gguf_package(tmp_path, modelpress):
    rng = np.random.default_rng(11)
    writer = gguf.GGUFWriter(str(tmp_path / "m.gguf"), "llama")
    writer.add_uint32("test.answer", 42)
    expected = {}
    # Types gguf-py can quantize: a real weight, quantized by the reference code. (BF16 is
    # left to the C++ tests: numpy, and so safetensors.numpy, has no bfloat16.)
    for qtype in (Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.F16):
        w = (rng.standard_normal((6, 96)) * 0.05).astype(np.float32)
        packed = gguf.quants.quantize(w, qtype)
        name = f"blk.0.{qtype.name.lower()}.weight"
        writer.add_tensor(name, packed, raw_shape=packed.shape, raw_dtype=qtype)
        expected[name] = gguf.quants.dequantize(packed, qtype)
    # K-quants and IQ4 (gguf-py dequantizes but does not quantize them): random blocks.
    for qtype in (Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.IQ4_NL, Q.IQ4_XS):
        block_elems = gguf.GGML_QUANT_SIZES[qtype][0]
        raw = random_blocks(rng, qtype, 4 * 512 // block_elems).reshape(4, -1)  # 4 rows of 512 elements
        name = f"blk.1.{qtype.name.lower()}.weight"
        writer.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=qtype)
        expected[name] = gguf.quants.dequantize(raw, qtype)
    f32 = rng.standard_normal((3, 5)).astype(np.float32)
    writer.add_tensor("output_norm.weight", f32)
    expected["output_norm.weight"] = f32
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    summary = json.loads(modelpress("inspect", "--json", tmp_path / "m.gguf"))
    assert summary["format"] == "gguf"
    assert summary["architecture"] == "llama"
    types = summary["quantization"]["tensor_types"]
    for name in ("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS", "Q8_0"):
        assert types[name] == 1, name

    modelpress("convert", tmp_path / "m.gguf", "-o", tmp_path / "out")
    with safe_open(str(tmp_path / "out" / "model.safetensors"), framework="numpy") as f:
        assert set(f.keys()) == set(expected)
        for name, want in expected.items():
            got = f.get_tensor(name)
            assert got.shape == want.shape, name
            np.testing.assert_array_equal(got.astype(np.float32), want.astype(np.float32), err_msg=name)
