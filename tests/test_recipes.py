"""The committed recipes (`recipes/*.toml`, `recipes/teachers/*.toml`) are valid as
`bnnzoo train --recipe` reads them, publish where their file name says, and the
teachers they name are trained by a committed recipe (`recipes/run_recipes.sh`)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from bnnzoo import pretrained
from bnnzoo.cli import build_parser, stage_configs_from_args
from bnnzoo.models import create_model
from bnnzoo.training import read_recipe
from bnnzoo.training.loop import model_memory

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "recipes").glob("*.toml"))
TEACHERS = sorted((REPO / "recipes" / "teachers").glob("*.toml"))
TEACHER_RUN = re.compile(r"^runs/zoo/teachers/([A-Za-z0-9_.-]+)$")
ONE_BIT = {"ste_sign", "bnn", "dorefa_weights"}


def configs_of(path: Path) -> list:
    """The stage configs `bnnzoo train --recipe PATH` would train."""
    return stage_configs_from_args(build_parser().parse_args(["train", "--recipe", str(path)]))


@pytest.mark.parametrize("path", RECIPES + TEACHERS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_recipe_reads_as_the_cli_reads_it(path):
    configs = configs_of(path)
    assert configs and all(c.epochs >= 1 for c in configs)
    assert read_recipe(path).get("description"), f"{path.name} has no description"


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_artifact_recipes_publish_where_their_file_name_says(path):
    config = configs_of(path)[-1]
    name, tag = pretrained.recipe_artifact(read_recipe(path), config.model, config.dataset)
    assert path.stem == f"{name}-{tag}"


def test_teacher_recipes_have_no_artifact_and_every_named_teacher_has_a_recipe():
    for path in TEACHERS:
        assert "artifact" not in read_recipe(path), f"{path.name}: a teacher is never published"
    named = set()
    for path in RECIPES:
        teacher = read_recipe(path).get("teacher")
        match = TEACHER_RUN.match(teacher) if isinstance(teacher, str) else None
        if match:
            named.add(match.group(1))
    assert named, "no recipe names a teacher under runs/zoo/teachers/"
    assert named <= {p.stem for p in TEACHERS}


def test_run_recipes_finds_the_teacher_the_recipe_names():
    """The `sed` line of run_recipes.sh extracts the same teacher stem as TOML does."""
    script = (REPO / "recipes" / "run_recipes.sh").read_text()
    (expression,) = re.findall(r"sed -n '([^']+)'", script)
    for path in RECIPES:
        out = subprocess.run(["sed", "-n", expression, str(path)], capture_output=True, text=True, check=True)
        teacher = read_recipe(path).get("teacher", "")
        match = TEACHER_RUN.match(teacher) if isinstance(teacher, str) else None
        assert out.stdout.strip() == (match.group(1) if match else "")


@pytest.mark.parametrize("stem", ["reactnet-fashion_mnist", "reactnet-fashion_mnist-small"])
def test_reactnet_recipes_are_reactnets_two_stages_ending_fully_binary(stem):
    first, last = configs_of(REPO / "recipes" / f"{stem}.toml")
    # stage 1: real weights, binary activations; stage 2: both binary, from stage 1
    assert first.kernel_quantizer == "none" and first.quantizer in ONE_BIT
    assert last.kernel_quantizer in (None, *ONE_BIT) and last.quantizer in ONE_BIT
    assert last.input_quantizer in (None, *ONE_BIT)
    assert first.teacher == last.teacher and last.init_from is None


def test_small_reactnet_recipe_has_at_most_40_kib_of_binary_weights():
    (config,) = configs_of(REPO / "recipes" / "reactnet-fashion_mnist-small.toml")[-1:]
    model = create_model(config.model, input_shape=(28, 28, 1), num_classes=10, **config.model_kwargs)
    memory = model_memory(model)
    assert memory["binary_params"] / 8 <= 40 * 1024
    assert memory["binary_params"] > 0.9 * memory["params"]  # binary but for stem, norms and classifier
