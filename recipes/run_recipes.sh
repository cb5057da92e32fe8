#!/usr/bin/env bash
# Regenerate pretrained artifacts: trains each recipe with `bnnzoo train --recipe`
# (which publishes artifacts/<name>/<tag>/ with its card when training ends).
# Usage: recipes/run_recipes.sh [recipes/<name>-<tag>.toml ...]   (default: all)
# Long runs on a shared machine are serialized with flock on /tmp/bnnzoo-long.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
recipes=("$@")
[ ${#recipes[@]} -gt 0 ] || recipes=(recipes/*.toml)
for recipe in "${recipes[@]}"; do
    stem=$(basename "${recipe%.*}")
    echo "== $recipe -> runs/zoo/$stem"
    flock /tmp/bnnzoo-long.lock "$PY" -m bnnzoo train --recipe "$recipe" --out "runs/zoo/$stem"
done
