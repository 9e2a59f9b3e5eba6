#!/usr/bin/env bash
# The main job on the default checkpoint: sets up, builds, fetches the model, then runs
# modelpress on it. (Until compression passes land, that is `modelpress inspect`.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
model=$(scripts/fetch_default_model.sh)
echo "== modelpress inspect $model"
build/cli/modelpress inspect "$model"
