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
schedules; `teacher` the teacher of a distilled run (`TrainConfig.teacher`); `stages`
multi-stage recipes (`[[stages]]`), which `train_stages` trains one run directory per
stage. The run directory holds:

| file | content |
| --- | --- |
| `config.json` | the `TrainConfig` of the run |
| `model.keras` | the trained model; reloads with `import bnnzoo` and `tf.keras.models.load_model` |
| `history.json` | per-epoch metrics (loss, accuracy, validation, logged schedule values, `epoch_seconds`, `load_1min`) |
| `metrics.json` | test accuracy/loss, epochs, wall time (`train_seconds`: every epoch's, resumed ones too), load, machine, parameter and memory counts |
| `curves.png` | training curves |
| `checkpoints/` | the resume checkpoint while a run is unfinished (removed at the end) |
| `recipe.json` | with `bnnzoo train --recipe`: the recipe, for `bnnzoo publish` |
| `teacher.json` | with a teacher: its source and its model file's sha256 (a resume with another is refused) |
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
from pathlib import Path
from typing import Any, Sequence

import tensorflow as tf

from bnnzoo.data import ArraySplits
from bnnzoo.training.config import (
    DISTILLATION_KEYS,
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
from bnnzoo.training.loop import evaluate, machine, matmul_gflops, model_memory, plot_curves, restore_and_fit, write_results
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
from bnnzoo.training.stages import (
    ARCHITECTURE_KEYS,
    STAGES_KEY,
    check_same_architecture,
    check_teachers,
    final_stage_dir,
    stage_configs,
    stage_dir,
    stage_values,
    staged_init_from,
)
from bnnzoo.training.teacher import TEACHER_RECORD, Teacher, load_teacher, resolve_teacher

__all__ = [
    "ARCHITECTURE_KEYS",
    "DISTILLATION_KEYS",
    "LR_SCHEDULES",
    "MAX_BATCH_SIZE",
    "MAX_EPOCHS",
    "MODEL_FILE",
    "RECIPE_EXTRA_KEYS",
    "STAGES_KEY",
    "STRATEGIES",
    "TEACHER_RECORD",
    "RunDirectory",
    "RunParts",
    "TrainConfig",
    "Teacher",
    "TrainResult",
    "assemble_run",
    "build_model",
    "build_optimizer",
    "check_same_architecture",
    "check_teachers",
    "compile_model",
    "create_training_variables",
    "evaluate",
    "final_stage_dir",
    "is_chief",
    "learning_rate_schedule",
    "load_initial_weights",
    "load_model",
    "load_teacher",
    "make_strategy",
    "machine",
    "matmul_gflops",
    "model_memory",
    "plot_curves",
    "read_json",
    "read_recipe",
    "resolve_run_directory",
    "resolve_teacher",
    "restore_and_fit",
    "run_callbacks",
    "stage_configs",
    "stage_dir",
    "stage_values",
    "staged_init_from",
    "train",
    "train_stages",
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


def train_stages(configs: Sequence[TrainConfig], out: str | os.PathLike, *,
                 callbacks: Sequence[tf.keras.callbacks.Callback] = (), verbose: int | None = None,
                 resume: bool = True, overwrite: bool = False, arrays: ArraySplits | None = None,
                 strategy: tf.distribute.Strategy | None = None,
                 record: dict[str, Any] | None = None) -> list[TrainResult]:
    """Train the stages of a multi-stage recipe (`stage_configs`), stage k into `out/stage-<k>`.

    Stage k > 1 starts from stage k-1's weights (`init_from` = `out/stage-<k-1>`)
    unless it names its own `init_from`. Each stage is an ordinary `train` run: a
    finished stage is returned as it is, an interrupted one resumes, so the same call
    continues a staged run where it stopped. Before anything is trained, the stages
    are checked to share one architecture and every teacher to exist. The last
    stage's run is the result (`final_stage_dir`); `record` files are written into
    `out` once every stage has finished.

    Args:
        configs: one `TrainConfig` per stage.
        out: the folder of the stage run directories.
        callbacks, verbose, resume, overwrite, arrays, strategy: as `train`, for every stage.
        record: JSON files `{name: value}` written into `out` at the end (e.g. `recipe.json`).

    Returns:
        The `TrainResult` of every stage, in order.

    !!! example
        ```python
        import tempfile
        from pathlib import Path
        from bnnzoo.training import stage_configs, train_stages

        configs = stage_configs({"epochs": 1, "model_kwargs": {"units": 16},
                                 "stages": [{"kernel_quantizer": "none"}, {}]})
        out = Path(tempfile.mkdtemp()) / "run"
        first, second = train_stages(configs, out, verbose=0)
        assert second.run_dir == out / "stage-2"
        assert (out / "stage-2" / "config.json").read_text().count(str(out / "stage-1")) == 1  # init_from
        ```
    """
    if not configs:
        raise ValueError("configs must hold at least one stage, got none")
    out = Path(out)
    if (out / "config.json").is_file():
        raise ValueError(f"{out} holds a single-stage run (config.json); train the staged recipe into "
                         "another directory (--out NEW)")
    check_same_architecture(configs)
    check_teachers(configs)
    strategy = strategy or make_strategy(configs[0].strategy)
    results = []
    configs = staged_init_from(configs, out)
    for number, config in enumerate(configs, 1):
        target = stage_dir(out, number)
        print(f"Stage {number}/{len(configs)} -> {target}", flush=True)
        results.append(train(config, target, callbacks=callbacks, verbose=verbose, resume=resume, arrays=arrays,
                             strategy=strategy, overwrite=overwrite))
    if is_chief(strategy):
        for name, value in (record or {}).items():
            write_json(out / name, value)
    return results
