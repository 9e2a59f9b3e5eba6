"""modelpress's safetensors output loads with the Python `safetensors` package, and files the
package writes read back through modelpress unchanged."""
import json

import pytest

np = pytest.importorskip("numpy")
safetensors_numpy = pytest.importorskip("safetensors.numpy")
from safetensors import safe_open  # noqa: E402


def load_all(folder):
    """Every tensor of a Hugging Face folder (single or sharded), through `safetensors`."""
    index = folder / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
    tensors, metadata = {}, None
    for name in files:
        with safe_open(str(folder / name), framework="numpy") as f:
            metadata = f.metadata()
            for key in f.keys():
                tensors[key] = f.get_tensor(key)
    return tensors, metadata


@pytest.mark.parametrize("dtype,np_dtype", [("f32", np.float32), ("f16", np.float16)])
def test_synthetic_checkpoint_loads_and_matches_after_resharding(tmp_path, modelpress, dtype, np_dtype):
    src, out = tmp_path / "src", tmp_path / "out"
    modelpress("synth", src, "--layers", 2, "--hidden", 64, "--intermediate", 96, "--heads", 4,
               "--kv-heads", 2, "--vocab", 100, "--dtype", dtype)
    modelpress("convert", src, "-o", out, "--max-shard-size", "30kB")
    assert (out / "model.safetensors.index.json").exists()

    original, metadata = load_all(src)
    resharded, _ = load_all(out)
    assert metadata == {"format": "pt"}
    assert set(original) == set(resharded)
    for name, value in original.items():
        assert value.dtype == np_dtype
        np.testing.assert_array_equal(value, resharded[name])
    assert original["model.layers.1.self_attn.k_proj.weight"].shape == (32, 64)

    # The index's total_size is the sum of tensor bytes, as transformers expects.
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] == sum(v.nbytes for v in original.values())

    # modelpress's own view of the tensors agrees with the package's.
    summary = json.loads(modelpress("inspect", "--json", out))
    shapes = {t["name"]: tuple(t["shape"]) for t in summary["tensors"]}
    assert shapes == {k: v.shape for k, v in original.items()}


def test_files_written_by_safetensors_round_trip_through_modelpress(tmp_path, modelpress):
    rng = np.random.default_rng(3)
    tensors = {
        "f64": rng.standard_normal((3, 5)),
        "f32": rng.standard_normal((7, 1, 3)).astype(np.float32),
        "f16": rng.standard_normal((13,)).astype(np.float16),
        "i64": rng.integers(-(2**40), 2**40, size=(2, 3)),
        "i32": rng.integers(-(2**30), 2**30, size=(4,), dtype=np.int32),
        "i16": rng.integers(-3000, 3000, size=(5,), dtype=np.int16),
        "i8": rng.integers(-128, 127, size=(3, 3), dtype=np.int8),
        "u8": rng.integers(0, 255, size=(9,), dtype=np.uint8),
        "bool": rng.integers(0, 2, size=(6,)).astype(bool),
        "scalar": np.array(1.5, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }
    src = tmp_path / "in"
    src.mkdir()
    safetensors_numpy.save_file(tensors, str(src / "model.safetensors"), metadata={"note": "from python"})
    summary = json.loads(modelpress("inspect", "--json", src / "model.safetensors"))
    assert {t["name"]: t["shape"] for t in summary["tensors"]} == {k: list(v.shape) for k, v in tensors.items()}

    modelpress("convert", src, "-o", tmp_path / "out")
    loaded, metadata = load_all(tmp_path / "out")
    assert metadata == {"note": "from python", "format": "pt"}
    for name, value in tensors.items():
        assert loaded[name].dtype == value.dtype, name
        np.testing.assert_array_equal(loaded[name], value)
