"""`modelpress quantize IN.gguf -o OUT.gguf --method q8_0|q4_0|q4_1` against the `gguf`
package (llama.cpp's own Python reader and reference quantizers):

- with --scale-search off, every quantized tensor is byte for byte what gguf.quants.quantize
  (ggml's reference quantization, what llama-quantize writes without an importance matrix)
  makes of the same weights;
- with --scale-search on the package reads the file, and each tensor's error is below the
  reference's; without the option q8_0 searches and q4_0 / q4_1 are the reference;
- the metadata is the input's, record for record, but general.file_type and
  general.quantization_version; tensors keep their names and order; the output head, the
  embedding and a layer whose rows are not whole blocks of 32 stay as stored.
CI runs it (docs/TESTING.md)."""
import pytest

np = pytest.importorskip("numpy")
gguf = pytest.importorskip("gguf")
from safetensors import safe_open  # noqa: E402

Q = gguf.GGMLQuantizationType
TYPES = {"q8_0": Q.Q8_0, "q4_0": Q.Q4_0, "q4_1": Q.Q4_1}


@pytest.fixture(scope="module")
def f16_gguf(tmp_path_factory):
    rng = np.random.default_rng(3)
    path = tmp_path_factory.mktemp("gguf-in") / "in.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_embedding_length(64)
    w.add_head_count(4)
    w.add_file_type(1)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(["a", "b", "c"])
    w.add_float32("test.value", 0.25)
    tensors = {
        "token_embd.weight": (rng.standard_normal((16, 64)) * 0.05).astype(np.float16),
        "blk.0.attn_q.weight": (rng.standard_normal((64, 64)) * 0.05).astype(np.float16),
        "blk.0.ffn_down.weight": (rng.standard_normal((64, 96)) * 0.05).astype(np.float16),
        "blk.0.ffn_up.weight": (rng.standard_normal((96, 48)) * 0.05).astype(np.float16),  # rows of 48
        "output_norm.weight": rng.standard_normal(64).astype(np.float32),
        "output.weight": (rng.standard_normal((16, 64)) * 0.05).astype(np.float16),
    }
    tensors["blk.0.attn_q.weight"][3, 7] = 0.9  # an outlier
    for name, value in tensors.items():
        w.add_tensor(name, value)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path, tensors


def fields(reader):
    return {name: f.contents() for name, f in reader.fields.items() if not name.startswith("GGUF.")}


@pytest.mark.parametrize("method", list(TYPES))
def test_reference_bytes_and_searched_error(f16_gguf, modelpress, tmp_path, method):
    src, tensors = f16_gguf
    qtype = TYPES[method]
    ref_path, searched_path = tmp_path / "ref.gguf", tmp_path / "searched.gguf"
    modelpress("quantize", src, "-o", ref_path, "--method", method, "--scale-search", "off")
    modelpress("quantize", src, "-o", searched_path, "--method", method, "--scale-search", "on")
    source = gguf.GGUFReader(str(src))
    for path in (ref_path, searched_path):
        out = gguf.GGUFReader(str(path))
        got = fields(out)
        want = fields(source)
        assert got.pop("general.file_type") == {"q8_0": 7, "q4_0": 2, "q4_1": 3}[method]
        assert got.pop("general.quantization_version") == 2
        want.pop("general.file_type")
        assert got == want
        assert [t.name for t in out.tensors] == list(tensors)
    ref = {t.name: t for t in gguf.GGUFReader(str(ref_path)).tensors}
    searched = {t.name: t for t in gguf.GGUFReader(str(searched_path)).tensors}
    quantized = {"blk.0.attn_q.weight", "blk.0.ffn_down.weight"}
    for name, value in tensors.items():
        if name not in quantized:  # copied as stored, byte for byte
            for t in (ref[name], searched[name]):
                assert t.tensor_type in (Q.F16, Q.F32), name
                np.testing.assert_array_equal(np.asarray(t.data), value, err_msg=name)
            continue
        w = value.astype(np.float32)
        assert ref[name].tensor_type == qtype and searched[name].tensor_type == qtype
        np.testing.assert_array_equal(np.asarray(ref[name].data), gguf.quants.quantize(w, qtype), err_msg=name)
        e_ref = float(((w - gguf.quants.dequantize(ref[name].data, qtype)) ** 2).sum())
        e_searched = float(((w - gguf.quants.dequantize(searched[name].data, qtype)) ** 2).sum())
        assert e_searched < e_ref, (name, e_searched, e_ref)
    # The defaults: q8_0 searched, q4_0 and q4_1 the reference.
    default_path = tmp_path / "default.gguf"
    modelpress("quantize", src, "-o", default_path, "--method", method)
    same_as = searched_path if method == "q8_0" else ref_path
    assert default_path.read_bytes() == same_as.read_bytes()
    # modelpress reads its own file to the package's values.
    modelpress("convert", searched_path, "-o", tmp_path / "dense")
    with safe_open(str(tmp_path / "dense" / "model.safetensors"), framework="numpy") as f:
        for name in quantized:
            np.testing.assert_array_equal(f.get_tensor(name), gguf.quants.dequantize(searched[name].data, qtype))


def test_bad_outputs_are_refused(f16_gguf, modelpress, tmp_path_factory, tmp_path):
    src, _ = f16_gguf

    def fails(*args):
        r = run_modelpress(args)
        assert r.returncode != 0, r.stderr
        return r.stderr.strip().splitlines()[0]  # (CLI11 adds "Run with --help" to option errors)

    assert "GGUF output takes --method q8_0" in fails("quantize", src, "-o", tmp_path / "x.gguf", "--method", "w4a16")
    assert "give -o a name ending in .gguf" in fails("quantize", src, "-o", tmp_path / "x", "--method", "q4_0")
    assert "writes a Hugging Face folder" in fails("convert", src, "-o", tmp_path / "y.gguf")
    hf = tmp_path_factory.mktemp("hf") / "model"
    modelpress("synth", hf, "--layers", 1, "--hidden", 64, "--intermediate", 96, "--heads", 4, "--vocab", 32)
    assert "GGUF output needs a GGUF input" in fails("quantize", hf, "-o", tmp_path / "z.gguf", "--method", "q4_0")
    assert not list(tmp_path.iterdir())


def test_calibration_importance_weighs_the_search(f16_gguf, modelpress, tmp_path):
    """--calib: each layer's error is weighed by diag(X^T X) of its calibration rows (here the
    rows' sum of squares per column). Columns the rows make loud come out more exact than
    the unweighted search makes them, the quiet ones less, and the weighted error is below
    both the reference's and the unweighted search's."""
    from safetensors.numpy import save_file

    src, tensors = f16_gguf
    rng = np.random.default_rng(5)
    loud = np.zeros(64, dtype=bool)
    loud[::4] = True
    rows = {}
    for gguf_name, hf in (("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj"),
                          ("blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj")):
        k = tensors[gguf_name].shape[1]
        x = rng.standard_normal((16, k)).astype(np.float32) * 0.1
        x[:, np.resize(loud, k)] *= 30.0
        rows[hf] = x
    calib = tmp_path / "calib.safetensors"
    save_file(rows, str(calib), metadata={"format": "modelpress-calibration", "version": "1", "source": "test"})
    plain, weighted = tmp_path / "plain.gguf", tmp_path / "weighted.gguf"
    modelpress("quantize", src, "-o", plain, "--method", "q4_0", "--scale-search", "on")
    modelpress("quantize", src, "-o", weighted, "--method", "q4_0", "--calib", calib)
    ref = {t.name: t for t in gguf.GGUFReader(str(src)).tensors}
    got = {path: {t.name: t for t in gguf.GGUFReader(str(path)).tensors} for path in (plain, weighted)}
    for gguf_name, hf in (("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj"),
                          ("blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj")):
        w = np.asarray(ref[gguf_name].data).astype(np.float64)
        h = (rows[hf].astype(np.float64) ** 2).sum(axis=0)
        e = {path: (w - gguf.quants.dequantize(got[path][gguf_name].data, Q.Q4_0)) ** 2 for path in (plain, weighted)}
        e_ref = (w - gguf.quants.dequantize(gguf.quants.quantize(w.astype(np.float32), Q.Q4_0), Q.Q4_0)) ** 2
        loud_cols = np.resize(loud, w.shape[1])
        assert e[weighted][:, loud_cols].sum() < e[plain][:, loud_cols].sum(), gguf_name
        assert (e[weighted] * h).sum() < (e[plain] * h).sum(), gguf_name
        assert (e[weighted] * h).sum() < (e_ref * h).sum(), gguf_name
    # A layer missing from the file is an error naming it; --calib needs a GGUF method.
    save_file({"model.layers.0.self_attn.q_proj": rows["model.layers.0.self_attn.q_proj"]}, str(calib),
              metadata={"format": "modelpress-calibration", "version": "1", "source": "test"})
    r = run_modelpress(["quantize", src, "-o", tmp_path / "y.gguf", "--method", "q4_0", "--calib", calib])
    assert r.returncode == 1 and "model.layers.0.mlp.down_proj" in r.stderr, r.stderr
    assert not (tmp_path / "y.gguf").exists()
    r = run_modelpress(["quantize", src, "-o", tmp_path / "z", "--method", "w4a16", "--calib", calib])
    assert r.returncode != 0 and "--calib" in r.stderr, r.stderr


def run_modelpress(args):
    """The binary's CompletedProcess, whatever its exit status (the `modelpress` fixture
    asserts success)."""
    import os
    import subprocess

    binary = os.environ.get("MODELPRESS_BIN", "build/cli/modelpress")
    return subprocess.run([binary, *map(str, args)], capture_output=True, text=True)
