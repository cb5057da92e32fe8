#!/usr/bin/env bash
# Regenerate pretrained artifacts: trains each recipe with `bnnzoo train --recipe`
# (which never writes artifacts/), then publishes the finished run with `bnnzoo publish`,
# which writes artifacts/<name>/<tag>/ and its card from the run (and refuses to
# replace an artifact with a worse or different one; pass PUBLISH_FLAGS=--force to).
# Usage: recipes/run_recipes.sh [recipes/<name>-<tag>.toml ...]   (default: all)
# A recipe whose teacher is runs/zoo/teachers/<stem> gets that teacher trained first from
# recipes/teachers/<stem>.toml (never published; a finished teacher run is kept as it is).
# Long runs on a shared machine are serialized with flock on /tmp/bnnzoo-long.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
recipes=("$@")
[ ${#recipes[@]} -gt 0 ] || recipes=(recipes/*.toml)
for recipe in "${recipes[@]}"; do
    stem=$(basename "${recipe%.*}")
    teacher=$(sed -n 's|^teacher *= *"runs/zoo/teachers/\([A-Za-z0-9_.-]*\)".*|\1|p' "$recipe")
    if [ -n "$teacher" ]; then
        echo "== recipes/teachers/$teacher.toml -> runs/zoo/teachers/$teacher (teacher of $recipe)"
        flock /tmp/bnnzoo-long.lock "$PY" -m bnnzoo train --recipe "recipes/teachers/$teacher.toml" \
            --out "runs/zoo/teachers/$teacher"
    fi
    echo "== $recipe -> runs/zoo/$stem"
    flock /tmp/bnnzoo-long.lock "$PY" -m bnnzoo train --recipe "$recipe" --out "runs/zoo/$stem"
    # shellcheck disable=SC2086  # PUBLISH_FLAGS is a list of flags
    "$PY" -m bnnzoo publish "runs/zoo/$stem" ${PUBLISH_FLAGS:-}
done
