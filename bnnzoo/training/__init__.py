"""The one train/evaluate routine that the CLI, recipes, tuner and benchmarks share.

`train(TrainConfig(...), out="runs/x")` builds the data, model and optimizer, runs
`model.fit` with a progress bar, and writes a run directory. It reads as its four
phases, each a function of its own module:

| phase | function | module |
| --- | --- | --- |
| resolve the run directory (lock, fresh / resume / finished, staging) | `resolve_run_directory` | `run_dir` |
| assemble the run's parts (data, model, optimizer, callbacks, compile) | `assemble_run` | `parts` |
| restore the checkpoint and fit | `restore_and_fit` | `loop` |
| write the results (test metrics, model, history, curves) | `write_results` | `loop` |

`config` holds `TrainConfig`, recipes (`read_recipe`), strategies and learning-rate
schedules. The run directory holds:

| file | content |
| --- | --- |
| `config.json` | the `TrainConfig` of the run |
| `model.keras` | the trained model; reloads with `import bnnzoo` and `tf.keras.models.load_model` |
| `history.json` | per-epoch metrics (loss, accuracy, validation, logged schedule values) |
| `metrics.json` | test accuracy/loss, epochs, wall time, parameter and memory counts |
| `curves.png` | training curves |
| `checkpoints/` | the resume checkpoint while a run is unfinished (removed at the end) |
| `recipe.json` | with `bnnzoo train --recipe`: the recipe, for `bnnzoo publish` |
| `.bnnzoo.lock` | the writer lock a running `train` holds (`bnnzoo._runlock`); not part of the run |

A run that is interrupted (Ctrl-C, SIGTERM, a crash) and started again with the
same configuration and `out` resumes after its last finished epoch, with model
*and* optimizer state restored and the same per-epoch data order, so the result
is the same as an uninterrupted run. A run that replaces a finished one is trained
in a hidden sibling folder and swapped in whole when complete.

!!! example
    ```python
    from bnnzoo.training import TrainConfig, train

    result = train(TrainConfig(model="binarynet_mlp", dataset="digits", epochs=3))
    assert len(result.history["loss"]) == 3 and result.history["loss"][-1] < result.history["loss"][0]
    assert result.metrics["test_accuracy"] > 0.5  # chance is 0.1
    ```
"""

from __future__ import annotations

import os
import time
from typing import Any, Sequence

import tensorflow as tf

from bnnzoo.data import ArraySplits
from bnnzoo.training.config import (
    LR_SCHEDULES,
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    RECIPE_EXTRA_KEYS,
    STRATEGIES,
    TrainConfig,
    is_chief,
    learning_rate_schedule,
    make_strategy,
    read_recipe,
)
from bnnzoo.training.loop import evaluate, model_memory, restore_and_fit, write_results
from bnnzoo.training.parts import (
    RunParts,
    assemble_run,
    build_model,
    build_optimizer,
    compile_model,
    create_training_variables,
    run_callbacks,
    wrap_for_optimizer,
)
from bnnzoo.training.run_dir import (
    MODEL_FILE,
    RunDirectory,
    TrainResult,
    _config_differences,
    load_initial_weights,
    load_model,
    read_json,
    resolve_run_directory,
    write_json,
    writing,
)

__all__ = [
    "LR_SCHEDULES",
    "MAX_BATCH_SIZE",
    "MAX_EPOCHS",
    "MODEL_FILE",
    "RECIPE_EXTRA_KEYS",
    "STRATEGIES",
    "RunDirectory",
    "RunParts",
    "TrainConfig",
    "TrainResult",
    "assemble_run",
    "build_model",
    "build_optimizer",
    "compile_model",
    "create_training_variables",
    "evaluate",
    "is_chief",
    "learning_rate_schedule",
    "load_initial_weights",
    "load_model",
    "make_strategy",
    "model_memory",
    "read_json",
    "read_recipe",
    "resolve_run_directory",
    "restore_and_fit",
    "run_callbacks",
    "train",
    "wrap_for_optimizer",
    "write_json",
    "write_results",
    "writing",
]


def train(config: TrainConfig, out: str | os.PathLike | None = None, *,
          callbacks: Sequence[tf.keras.callbacks.Callback] = (), verbose: int | None = None,
          resume: bool = True, arrays: ArraySplits | None = None,
          strategy: tf.distribute.Strategy | None = None, overwrite: bool = False,
          model: tf.keras.Model | None = None, record: dict[str, Any] | None = None) -> TrainResult:
    """Train `config` and, when `out` is given, write its run directory.

    A run directory is never replaced silently: a finished run of the same config is
    returned as it is (`resume=False` trains it again); a run of another config is
    refused with a `ValueError` naming the differing keys unless `overwrite=True` (an
    unfinished one also with `resume=False`). Every file is written atomically, and a
    replacement is trained in a hidden sibling folder and swapped in only when
    complete. One writer per run directory: a second `train` on the same `out` is
    refused at once with a `ValueError` naming the holder's pid.

    Args:
        config: the run's configuration (validated when it was made).
        out: run directory; an unfinished run of the same config there resumes.
        callbacks: extra Keras callbacks.
        verbose: Keras verbosity; default: a progress bar on a terminal, else one line per epoch.
        resume: resume an unfinished run of the same config (else start it over).
        arrays: preloaded data (saves reloading in loops over configs).
        strategy: a ready `tf.distribute` strategy; default: built from `config.strategy`.
        overwrite: replace whatever run `out` holds (finished or not, any config).
        model: a model already built for `config` (e.g. by keras-tuner's `HyperModel.build(hp)`),
            trained instead of a new one; build it under `strategy`'s scope when there is one.
        record: extra JSON files written into the run directory with the result,
            `{file name: value}` (e.g. the recipe of `bnnzoo train --recipe`).
    """
    strategy = strategy or make_strategy(config.strategy)
    with resolve_run_directory(config, out, strategy, resume=resume, overwrite=overwrite) as run:
        started = time.perf_counter()
        if run.state == "finished":
            result = run.finished_result()
        else:
            parts = assemble_run(config, strategy, arrays=arrays, model=model)
            history = restore_and_fit(parts, run, callbacks=callbacks, verbose=verbose, resume=resume)
            result = write_results(parts, run, history, started=started)
        run.write_records(record or {})
    return result
