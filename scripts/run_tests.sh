#!/usr/bin/env bash
# Runs every test: sets up, builds (Release, CUDA code compiled where nvcc exists), runs
# the suite with CTest, then builds and runs it again under AddressSanitizer and
# UndefinedBehaviorSanitizer. CUDA tests skip without a GPU; interop tests run when their
# Python packages are installed (setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
jobs=$(nproc)

echo "== build (Release)"
scripts/build.sh
echo "== tests (Release)"
ctest --test-dir build --output-on-failure -j"$jobs"

echo "== build (AddressSanitizer + UndefinedBehaviorSanitizer)"
BUILD_DIR=build-asan BUILD_TYPE=RelWithDebInfo scripts/build.sh -DMODELPRESS_SANITIZE=ON -DMODELPRESS_CUDA=OFF
echo "== tests (sanitizers)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs"
