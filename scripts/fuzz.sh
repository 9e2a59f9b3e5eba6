#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/: clang, AddressSanitizer + UndefinedBehaviorSanitizer)
# into build-fuzz/ and runs them (docs/RELIABILITY.md, "Fuzzing").
#
#   scripts/fuzz.sh TARGET SECONDS [libFuzzer options]   fuzz one target; the corpus grows in
#                                                        .cache/fuzz/TARGET, crashes land in
#                                                        .cache/fuzz/crashes/
#   scripts/fuzz.sh --ci                                 every target, briefly and
#                                                        deterministically (-seed=1, 20000 runs
#                                                        from the seeds and the committed
#                                                        regression inputs): what CI runs
#
# Targets: safetensors gguf calibration merge_config. The seeds are written by
# build-fuzz/make_seeds with modelpress's own writers. Every run limits memory to 1 GiB
# (-rss_limit_mb, which also fails any single allocation above it): a header claiming 2^60
# elements must be an error, not an allocation.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(safetensors gguf calibration merge_config)
build=build-fuzz
if ! command -v clang++ >/dev/null; then
  echo "fuzz: clang++ is missing (scripts/setup.sh installs it)" >&2
  exit 1
fi
cmake -S fuzz -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
rm -rf "$build/seeds"
"$build/make_seeds" "$build/seeds"
common=(-rss_limit_mb=1024 -timeout=20 -print_final_stats=1)

run_target() {  # TARGET CORPUS_DIR [options]
  local t=$1 corpus=$2
  shift 2
  mkdir -p "$corpus"
  local dirs=("$corpus" "$build/seeds/$t")
  [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
  "$build/fuzz_$t" "${common[@]}" -dict="fuzz/dicts/$t.dict" "$@" "${dirs[@]}"
}

if [ "${1:-}" = --ci ]; then
  for t in "${targets[@]}"; do
    echo "== fuzz $t (CI: seed 1, 20000 runs)"
    scratch=$(mktemp -d)
    if ! run_target "$t" "$scratch/corpus" -seed=1 -runs=20000 -artifact_prefix="$scratch/" >"$scratch/log" 2>&1; then
      tail -40 "$scratch/log" >&2
      echo "fuzz: $t failed (rerun: scripts/fuzz.sh $t 60 -seed=1)" >&2
      exit 1
    fi
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$scratch/log" || true
    rm -rf "$scratch"
  done
  exit 0
fi

t=${1:?usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer options] | --ci}
seconds=${2:?usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer options]}
shift 2
[[ " ${targets[*]} " == *" $t "* ]] || { echo "fuzz: unknown target $t (${targets[*]})" >&2; exit 2; }
mkdir -p ".cache/fuzz/$t" .cache/fuzz/crashes
run_target "$t" ".cache/fuzz/$t" -max_total_time="$seconds" -artifact_prefix=".cache/fuzz/crashes/$t-" "$@"
