#!/usr/bin/env python3
"""4-bit weight error, modelpress against llama.cpp's block formats, on the same weights in one
run: the relative Frobenius error ||W - deq(Q(W))|| / ||W|| over every linear layer
modelpress quantizes (embeddings and lm_head are left out on both sides). The weights are
first rounded to f16, so that modelpress stores f16 scales as Q4_0 does (compressed-tensors
keeps scales in the weight's dtype) and every method starts from the same f16 values.

  modelpress: `quantize --method w4a16 --group-size 32` (4.5 bits per weight with an f16
    scale per 32; asymmetric adds a 4-bit zero point: 4.625), --scale-search on and off,
    read back through `modelpress decompress --dtype f32`.
  llama.cpp: Q4_0 (an f16 scale per 32 weights, signed: 4.5 bits) and Q4_1 (f16 scale and
    minimum per 32: 5.0 bits) from the `gguf` package's quantizers (gguf-py quants.py, ggml's
    reference quantization, which is what llama-quantize does without an importance matrix).

Usage: bench/w4_weight_error.py MODELPRESS_BIN MODEL_DIR [MODEL_DIR...]   (needs numpy,
safetensors and gguf: scripts/setup.sh installs them)."""
import json
import pathlib
import subprocess
import sys
import tempfile
import time

import shutil

import gguf
import numpy as np
from gguf import quants
from safetensors.numpy import load_file, save_file


def load_folder(folder):
    folder = pathlib.Path(folder)
    index = folder / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
    out = {}
    for f in files:
        out.update(load_file(str(folder / f)))
    return out


def f16_copy(model, folder):
    """The checkpoint with every float tensor rounded to f16, and its config.json."""
    folder.mkdir()
    tensors = {n: (t.astype(np.float16) if t.dtype.kind == "f" else t) for n, t in load_folder(model).items()}
    save_file(tensors, str(folder / "model.safetensors"))
    shutil.copy(pathlib.Path(model) / "config.json", folder / "config.json")
    return {n: t.astype(np.float32) if t.dtype == np.float16 else t for n, t in tensors.items()}


def modelpress_dequantized(binary, model, tmp, args):
    packed, dense = tmp / "packed", tmp / "dense"
    start = time.perf_counter()
    subprocess.run([binary, "quantize", model, "-o", packed, "--method", "w4a16", "--group-size", "32", *args,
                    "--overwrite"], check=True, capture_output=True)
    seconds = time.perf_counter() - start
    report = json.loads(subprocess.run([binary, "quantize", model, "-o", tmp / "again", "--method", "w4a16",
                                        "--group-size", "32", *args, "--overwrite", "--json"],
                                       check=True, capture_output=True, text=True).stdout)
    layers = [l["name"] for l in report["layers"] if l["format"] == "w4a16"]
    subprocess.run([binary, "decompress", packed, "-o", dense, "--dtype", "f32", "--overwrite"], check=True,
                   capture_output=True)
    return layers, load_folder(dense), seconds


def main():
    binary, models = sys.argv[1], sys.argv[2:]
    print("| model | method | bits/weight | relative error | vs Q4_0 |")
    print("|---|---|---|---|---|")
    for source in models:
        rows = []
        with tempfile.TemporaryDirectory() as d:
            tmp = pathlib.Path(d)
            model = tmp / pathlib.Path(source).name
            original = f16_copy(source, model)
            layers = None
            for label, bits, args in [("modelpress w4a16 sym, range rule", 4.5, ["--scale-search", "off"]),
                                      ("modelpress w4a16 sym, scale search", 4.5, []),
                                      ("modelpress w4a16 asym, range rule", 4.625, ["--asymmetric", "--scale-search", "off"]),
                                      ("modelpress w4a16 asym, scale search", 4.625, ["--asymmetric"])]:
                layers, dense, _ = modelpress_dequantized(binary, model, tmp, args)
                num = sum(float(((original[n + ".weight"].astype(np.float64) - dense[n + ".weight"]) ** 2).sum())
                          for n in layers)
                rows.append((label, bits, num))
        den = sum(float((original[n + ".weight"].astype(np.float64) ** 2).sum()) for n in layers)
        for label, qtype, bits in [("llama.cpp Q4_0", gguf.GGMLQuantizationType.Q4_0, 4.5),
                                   ("llama.cpp Q4_1", gguf.GGMLQuantizationType.Q4_1, 5.0)]:
            num = 0.0
            for n in layers:
                w = np.ascontiguousarray(original[n + ".weight"].astype(np.float32))
                y = quants.dequantize(quants.quantize(w, qtype), qtype)
                num += float(((w.astype(np.float64) - y) ** 2).sum())
            rows.append((label, bits, num))
        q40 = np.sqrt(next(r[2] for r in rows if r[0] == "llama.cpp Q4_0") / den)
        for label, bits, num in rows:
            e = np.sqrt(num / den)
            print(f"| {pathlib.Path(source).name} | {label} | {bits} | {e:.5f} | {e / q40:.3f}x |")


if __name__ == "__main__":
    main()
