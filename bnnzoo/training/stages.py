"""Multi-stage recipes: `[[stages]]`, each stage a run initialized from the one before.

A recipe may hold an array of tables `[[stages]]`; each table overrides TrainConfig
fields of the recipe's top level for one stage (a key of a stage replaces the top
level's value whole, tables such as `optimizer_kwargs` included). ReActNet's
two-stage training is

```toml
model = "binarynet_mlp"
epochs = 1

[[stages]]            # 1: real-valued weights, binary activations
kernel_quantizer = "none"

[[stages]]            # 2: both binary, from stage 1's weights
kernel_quantizer = "ste_sign"
```

`train_stages(configs, out)` trains stage k into `out/stage-<k>`; stage k > 1 starts
from `out/stage-<k-1>` unless it names its own `init_from`. Each stage is an
ordinary run directory, so the same call resumes an interrupted stage and returns a
finished one as it is. Every stage must train the same network (`ARCHITECTURE_KEYS`):
a recipe whose stages differ there is refused before anything is trained.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Sequence

from bnnzoo.training.config import RECIPE_EXTRA_KEYS, TrainConfig
from bnnzoo.training.teacher import resolve_teacher

__all__ = ["ARCHITECTURE_KEYS", "STAGES_KEY", "check_same_architecture", "check_teachers", "final_stage_dir",
           "stage_configs", "stage_dir", "stage_values", "staged_init_from"]

STAGES_KEY = "stages"
# What every stage of a recipe shares: the network (the dataset fixes its input shape and classes).
ARCHITECTURE_KEYS = ("model", "model_kwargs", "dataset")


def stage_values(recipe: dict[str, Any]) -> list[dict[str, Any]]:
    """The TrainConfig values of each stage of `recipe` (`read_recipe`'s dict): the
    top level without `RECIPE_EXTRA_KEYS`, each stage's keys replacing its values. A
    recipe without `[[stages]]` is one stage.

    Raises:
        ValueError: `stages` is not a non-empty array of tables, or a stage names a
            key that is not a TrainConfig field.
    """
    top = {k: v for k, v in recipe.items() if k not in (*RECIPE_EXTRA_KEYS, STAGES_KEY)}
    if STAGES_KEY not in recipe:
        return [top]
    stages = recipe[STAGES_KEY]
    if not isinstance(stages, list) or not stages or not all(isinstance(s, dict) for s in stages):
        raise ValueError(f"stages must be a non-empty array of tables ([[stages]]), got {stages!r}")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = []
    for number, stage in enumerate(stages, 1):
        unknown = sorted(set(stage) - fields)
        if unknown:
            raise ValueError(f"stage {number} has keys {unknown} that are not TrainConfig fields; "
                             f"valid keys: {', '.join(sorted(fields))}")
        values.append({**top, **stage})
    return values


def check_same_architecture(configs: Sequence[TrainConfig]) -> None:
    """`ValueError` (one line, naming both stages and the keys) when two stages differ
    in `ARCHITECTURE_KEYS`; each stage is compared with stage 1."""
    first = configs[0]
    for number, config in enumerate(configs[1:], 2):
        differ = [k for k in ARCHITECTURE_KEYS if getattr(config, k) != getattr(first, k)]
        if differ:
            detail = "; ".join(f"{k} {getattr(first, k)!r} vs {getattr(config, k)!r}" for k in differ)
            raise ValueError(f"stages 1 and {number} of the recipe train different networks ({detail}); "
                             f"every stage must have the same {', '.join(ARCHITECTURE_KEYS)}")


def stage_configs(recipe: dict[str, Any]) -> list[TrainConfig]:
    """The TrainConfig of each stage of `recipe`, checked to share one architecture.

    `init_from` is as the recipe gives it (`train_stages` chains the stages).

    Raises:
        ValueError: as `stage_values`; a stage's config is invalid (the message
            names the stage); the stages differ in architecture.

    !!! example
        ```python
        from bnnzoo.training import stage_configs

        recipe = {"model": "binarynet_mlp", "epochs": 2,
                  "stages": [{"kernel_quantizer": "none"}, {"epochs": 3}]}
        first, second = stage_configs(recipe)
        assert (first.kernel_quantizer, first.epochs) == ("none", 2)
        assert (second.kernel_quantizer, second.epochs) == (None, 3)
        try:
            stage_configs({**recipe, "stages": [{}, {"model_kwargs": {"units": 8}}]})
        except ValueError as err:
            assert str(err).startswith("stages 1 and 2 of the recipe train different networks (model_kwargs")
        else:
            raise AssertionError("stages of two architectures were accepted")
        ```
    """
    configs = []
    for number, values in enumerate(stage_values(recipe), 1):
        try:
            configs.append(TrainConfig.from_dict(values))
        except (ValueError, TypeError) as err:
            raise type(err)(f"stage {number}: {err}" if STAGES_KEY in recipe else str(err)) from None
    check_same_architecture(configs)
    return configs


def stage_dir(out: str | os.PathLike, number: int) -> Path:
    """The run directory of stage `number` (from 1) of a staged run in `out`."""
    return Path(out) / f"stage-{number}"


def final_stage_dir(out: str | os.PathLike, recipe: dict[str, Any]) -> Path:
    """The run directory holding the result of a staged recipe's run in `out`."""
    return stage_dir(out, len(recipe[STAGES_KEY]))


def staged_init_from(configs: Sequence[TrainConfig], out: str | os.PathLike) -> list[TrainConfig]:
    """`configs` as `train_stages` trains them into `out`: stage k > 1 without its own
    `init_from` starts from `out/stage-<k-1>`."""
    return [c if k == 1 or c.init_from else dataclasses.replace(c, init_from=str(stage_dir(out, k - 1)))
            for k, c in enumerate(configs, 1)]


def check_teachers(configs: Sequence[TrainConfig]) -> None:
    """Every stage's teacher can be found now (a missing one fails before stage 1 trains)."""
    for number, config in enumerate(configs, 1):
        if config.teacher:
            try:
                resolve_teacher(config.teacher)
            except ValueError as err:
                raise ValueError(f"stage {number}: {err}") from None
