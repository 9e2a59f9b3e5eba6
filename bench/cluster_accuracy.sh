#!/usr/bin/env bash
# The accuracy table of docs/CLUSTERING.md on the default real checkpoint (all-MiniLM-L6-v2):
# eDKM vs plain k-means vs group-wise RTN at 3 and 4 bits, matched bits per weight, weight
# MSE and per-layer output error (bench/cluster_accuracy.cpp), then a cross-check through
# the CLI: `modelpress cluster` / `modelpress quantize --method w4a16` and `modelpress
# validate` on their outputs (mean of validate's per-layer relative error), which must agree
# with the table's rows of the same configuration.
#
#   bench/cluster_accuracy.sh [CHECKPOINT]     BUILD=build-dev bench/cluster_accuracy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
bin=$build/cli/modelpress
ck=${1:-$(scripts/fetch_default_model.sh)}
out=$(mktemp -d "${TMPDIR:-/tmp}/cluster-accuracy.XXXXXX")
trap 'rm -rf "$out"' EXIT

"$build/bench/cluster_accuracy" "$ck"
echo
echo "Cross-check with modelpress validate (synthetic activations, 64 rows, seed 0):"
mean_error() {
  "$bin" validate --original "$ck" --compressed "$1" --json --runs 1 | python3 -c '
import json, sys
d = json.load(sys.stdin)
e = [l["error"]["relative_error"] for l in d["layers"]]
b = sum(l["packed_bytes"] for l in d["layers"]) * 8 / sum(l["out_features"] * l["in_features"] for l in d["layers"])
print(f"{len(e)} layers, {b:.3f} bits/weight (validate counts the shape tensor), mean output rel. error {sum(e) / len(e):.4f}")'
}
for bits in 3 4; do
  for alg in dkm kmeans; do
    "$bin" cluster "$ck" -o "$out/c" --bits "$bits" --algorithm "$alg" --overwrite >/dev/null
    echo "  cluster --bits $bits --algorithm $alg: $(mean_error "$out/c")"
  done
done
"$bin" quantize "$ck" -o "$out/q" --method w4a16 --overwrite >/dev/null
echo "  quantize --method w4a16 (group 128, f32 scales): $(mean_error "$out/q")"
