#!/usr/bin/env bash
# Configures and builds modelpress into build/ (Release). Extra arguments go to CMake,
# e.g. -DMODELPRESS_CUDA=OFF. BUILD_DIR overrides the folder.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Release} "$@" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
