#!/usr/bin/env bash
# Configures and builds modelpress into build/ (Release). Extra arguments go to CMake,
# e.g. -DMODELPRESS_CUDA=OFF. BUILD_DIR overrides the folder.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
# The interop tests run under the Python of the environment setup.sh made, where it exists.
python_args=()
venv_python="$(scripts/interop_venv.sh)/bin/python"
[ -x "$venv_python" ] && python_args=(-DPython3_EXECUTABLE="$venv_python")
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Release} "${python_args[@]}" "$@" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
