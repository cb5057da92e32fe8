"""The loop: restore a run's checkpoint and fit, evaluate, and write the results."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import larq as lq
import tensorflow as tf

from bnnzoo import data as _data
from bnnzoo import distillation as _distillation
from bnnzoo import quantizers as _quantizers
from bnnzoo._atomic import atomic_path
from bnnzoo.callbacks import EpochStats
from bnnzoo.training.parts import RunParts, compile_model, create_training_variables
from bnnzoo.training.run_dir import (
    MODEL_FILE,
    RunDirectory,
    TrainResult,
    _check_fully_restored,
    _ResumeCheckpoint,
    load_model,
    read_json,
    write_json,
    writing,
)
from bnnzoo.training.teacher import pin_teacher, saved_teacher_logits

__all__ = ["evaluate", "machine", "model_memory", "plot_curves", "restore_and_fit", "write_results"]


def restore_and_fit(parts: RunParts, run: RunDirectory, *,
                    callbacks: Sequence[tf.keras.callbacks.Callback] = (), verbose: int | None = None,
                    resume: bool = True) -> dict[str, list[float]]:
    """The third phase of `train`: prepare the run's folder, restore its last
    checkpoint (model, optimizer, finished epochs, history) when resuming (refused
    when the run's teacher changed since, `bnnzoo.training.teacher`), and fit
    the remaining epochs with the per-epoch data order of an uninterrupted run,
    checkpointing after every epoch. Returns the history of every finished epoch.

    !!! example
        ```python
        from pathlib import Path
        import tempfile
        from bnnzoo.training import RunDirectory, TrainConfig, assemble_run, restore_and_fit

        parts = assemble_run(TrainConfig(epochs=2, model_kwargs={"units": 16}))
        history = restore_and_fit(parts, RunDirectory(Path(tempfile.mkdtemp()) / "run"), verbose=0)
        assert len(history["loss"]) == 2
        ```
    """
    config, arrays, model = parts.config, parts.arrays, parts.model
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    work_dir = run.prepare(config)
    pin_teacher(run, parts.teacher)  # a resumed run keeps its teacher
    manager = tf.train.CheckpointManager(parts.checkpoint, run.checkpoints, max_to_keep=1)
    history: dict[str, list[float]] = {}
    history_path = work_dir / "history.json"
    restored = None
    latest = manager.latest_checkpoint
    start_over = "start the run over with --no-resume (resume=False)"
    if resume and latest:
        saved = read_json(history_path, hint=start_over) if history_path.exists() else {}
        if not all(isinstance(v, list) for v in saved.values()):
            raise ValueError(f"{history_path} must map each metric to a list of per-epoch values; {start_over}")
        with _resuming_from(latest, start_over):
            restored = parts.checkpoint.restore(latest)
        # The history is written before the checkpoint (`_ResumeCheckpoint`): a run
        # killed between the two has one epoch more in it, which is retrained.
        finished = int(parts.epoch.numpy())
        history = {k: v[:finished] for k, v in saved.items()}
        print(f"Resuming {work_dir} after epoch {int(parts.epoch.numpy())}/{config.epochs}", flush=True)
    initial_epoch = int(parts.epoch.numpy())

    targets = arrays.y_train
    if isinstance(model, _distillation.Distiller) and initial_epoch < config.epochs:
        # The teacher is frozen and the inputs are not augmented: its outputs are the
        # same every epoch, so it runs once per run (not per batch, nor per resume).
        targets = (arrays.y_train, saved_teacher_logits(
            run, parts.teacher, arrays.x_train, lambda x: model.teacher_logits(x, max(config.batch_size, 256))))
    train_ds, steps = _data.epoch_pipeline(
        arrays.x_train,
        targets,
        config.batch_size,
        seed=config.seed,
        epochs=config.epochs,
        initial_epoch=initial_epoch,
        shuffle=config.shuffle,
    )
    val_ds = (
        _data.eval_pipeline(arrays.x_val, arrays.y_val, max(config.batch_size, 256))
        if len(arrays.x_val)
        else None
    )
    # EpochStats (epoch_seconds, load_1min) after the others, so its seconds include
    # their epoch-end work; the checkpoint last, so that every value added to `logs`
    # is in the saved history.
    all_callbacks = [*parts.callbacks, *callbacks, EpochStats(),
                     _ResumeCheckpoint(manager, parts.epoch, history, history_path)]
    if initial_epoch < config.epochs:
        # The parts' callbacks were built (and their checks, e.g. Bop on a model
        # without binary variables, ran) first. A restored checkpoint fills these as
        # they are created.
        with parts.strategy.scope(), _resuming_from(latest if restored is not None else None, start_over):
            # Variables created here are filled from the checkpoint as they are made.
            create_training_variables(model, arrays.x_train[:1], arrays.y_train[:1])
        if restored is not None:
            _check_fully_restored(restored, latest)
        model.fit(
            train_ds,
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps,
            validation_data=val_ds,
            callbacks=all_callbacks,
            verbose=verbose,
        )
    return history


@contextlib.contextmanager
def _resuming_from(checkpoint: str | None, what_to_do: str):
    """A checkpoint TensorFlow cannot read (truncated, corrupted: an `OpError`, or the
    `IndexError` of a short data file) as one `ValueError` naming its files."""
    try:
        yield
    except (tf.errors.OpError, IndexError) as err:
        if checkpoint is None:
            raise
        detail = " ".join(str(getattr(err, "message", err)).split())[:160]
        raise ValueError(f"cannot resume from {checkpoint} (.index / .data-*): the checkpoint is truncated or "
                         f"corrupted ({type(err).__name__}: {detail}); {what_to_do}") from None


def write_results(parts: RunParts, run: RunDirectory, history: dict[str, list[float]], *,
                  started: float) -> TrainResult:
    """The fourth phase of `train`: evaluate on the test split, write the model,
    `history.json`, `metrics.json` and `curves.png` atomically, and complete the run
    directory (checkpoints removed, a staged replacement swapped in). A distilled
    run's model file, measurements and `TrainResult.model` are the student's alone.

    Args:
        parts: the run's parts.
        run: its run directory (after `restore_and_fit`).
        history: the per-epoch history.
        started: `time.perf_counter()` at the start of the run (for `wall_seconds`).

    !!! example
        ```python
        import time, tempfile
        from pathlib import Path
        from bnnzoo.training import RunDirectory, TrainConfig, assemble_run, restore_and_fit, write_results

        started, run = time.perf_counter(), RunDirectory(Path(tempfile.mkdtemp()) / "run")
        parts = assemble_run(TrainConfig(epochs=1, model_kwargs={"units": 16}))
        result = write_results(parts, run, restore_and_fit(parts, run, verbose=0), started=started)
        assert (run.out / "metrics.json").is_file() and not run.checkpoints.exists()
        ```
    """
    config, arrays, work_dir = parts.config, parts.arrays, run.work_dir
    model = parts.student  # a Distiller's evaluate is its student's: the same numbers
    test_loss, test_acc = parts.model.evaluate(
        _data.eval_pipeline(arrays.x_test, arrays.y_test, 256), verbose=0
    )
    metrics = {
        "model": config.model,
        "dataset": config.dataset,
        "optimizer": config.optimizer,
        "quantizer": config.quantizer,
        "epochs": config.epochs,
        "seed": config.seed,
        "test_accuracy": float(test_acc),
        "test_loss": float(test_loss),
        "val_accuracy": history.get("val_accuracy", [None])[-1],
        "train_accuracy": history.get("accuracy", [None])[-1],
        # This process's seconds; train_seconds adds up every epoch, resumed ones too.
        "wall_seconds": round(time.perf_counter() - started, 2),
        "train_seconds": _total(history.get("epoch_seconds")),
        "load_1min": _load_summary(history.get("load_1min")),
        "machine": machine(),
        "train_size": len(arrays.x_train),
        "test_size": len(arrays.x_test),
        "input_shape": list(arrays.input_shape),
        "num_classes": arrays.num_classes,
        **model_memory(model),
        # Whether every 1-bit quantizer's forward is exactly binary now (annealed ones
        # at exact sign): False means the accuracy above is not that of a binary model.
        "binary_forward": _quantizers.binary_forward(model),
        "versions": {"tensorflow": tf.__version__, "larq": lq.__version__},
    }
    if run.out is not None:
        # Every worker saves (a collective op under MultiWorkerMirroredStrategy).
        # Atomic writes: a crash leaves the previous complete file, never a truncated one.
        # A model short of exact sign is saved as it is, labelled by `binary_forward`
        # above: no NonBinaryForwardWarning.
        with (writing(work_dir / MODEL_FILE), atomic_path(work_dir / MODEL_FILE) as tmp,
              _quantizers.nonbinary_expected()):
            model.save(tmp)
        write_json(work_dir / "history.json", history)
        write_json(work_dir / "metrics.json", metrics)
        if run.chief:
            with writing(work_dir / "curves.png"), atomic_path(work_dir / "curves.png") as tmp:
                plot_curves([(None, history)], tmp, f"{config.model} on {config.dataset}")
    run.finish()
    return TrainResult(model=model, history=history, metrics=metrics, run_dir=run.out)


def evaluate(
    source: str | os.PathLike | tf.keras.Model,
    dataset: str | None = None,
    *,
    batch_size: int = 256,
    data_dir: str | None = None,
    arrays: _data.ArraySplits | None = None,
) -> dict[str, Any]:
    """Test accuracy and loss of a run directory, a saved model file or a model.

    For a run directory the dataset defaults to the one it was trained on.
    """
    config = None
    if isinstance(source, tf.keras.Model):
        model = source
    else:
        path = Path(source)
        if path.is_dir() and (path / "config.json").exists():
            config = read_json(path / "config.json", hint="give --dataset, or retrain the run")
        model = load_model(path)
    dataset = dataset or (config or {}).get("dataset")
    if arrays is None:
        if dataset is None:
            raise ValueError("evaluate needs a dataset name for a bare model")
        arrays = _data.load_arrays(
            dataset,
            validation_fraction=(config or {}).get("validation_fraction", 0.1),
            data_dir=data_dir or (config or {}).get("data_dir"),
        )
    if tuple(model.input_shape[1:]) != arrays.input_shape:
        raise ValueError(
            f"model expects inputs of shape {tuple(model.input_shape[1:])}, dataset "
            f"{arrays.name!r} has {arrays.input_shape}"
        )
    compile_model(model, "adam")
    loss, acc = model.evaluate(_data.eval_pipeline(arrays.x_test, arrays.y_test, batch_size), verbose=0)
    return {
        "dataset": arrays.name,
        "test_accuracy": float(acc),
        "test_loss": float(loss),
        "test_size": len(arrays.x_test),
        **model_memory(model),
    }


def matmul_gflops(size: int = 1024, seconds: float = 0.25) -> float:
    """This machine's float32 matrix-multiply throughput now, in GFLOP/s: TensorFlow
    multiplies two `size` x `size` matrices until `seconds` have passed (at least
    3 times, after one untimed warm-up), and the rate is `2 * size**3` per product.

    The load average does not show a shared host's contention: on the 2-core
    development machine it read ~2.4 with a benchmark running both on 2026-12-06, when
    a `binarynet` width-1/4 epoch took ~65 s, and on 2026-12-07, when the same epoch
    took ~200 s and a NumPy matmul ran ~4x slower. `machine()` records this rate in a
    run's `metrics.json` (and a card) next to the load.

    !!! example
        ```python
        from bnnzoo.training import matmul_gflops

        assert matmul_gflops(size=64, seconds=0.01) > 0
        ```
    """
    if not (isinstance(size, int) and size >= 1):
        raise ValueError(f"size must be an integer >= 1, got {size!r}")
    if not (isinstance(seconds, (int, float)) and seconds >= 0):
        raise ValueError(f"seconds must be a number >= 0, got {seconds!r}")
    a = tf.random.stateless_normal((size, size), seed=(0, 0))
    product = tf.function(lambda m: tf.reduce_sum(tf.linalg.matmul(m, m)))
    product(a).numpy()  # trace and warm up
    started, done = time.perf_counter(), 0
    while done < 3 or time.perf_counter() - started < seconds:
        product(a).numpy()
        done += 1
    return round(2 * size**3 * done / (time.perf_counter() - started) / 1e9, 1)


def machine() -> dict[str, Any]:
    """The machine a run trains on, for its `metrics.json` (and a published card):
    CPU model and count, OS, Python, the GPUs TensorFlow sees, and its matrix-multiply
    throughput when the run ends (`matmul_gflops`).

    !!! example
        ```python
        from bnnzoo.training import machine

        info = machine()
        assert info["cpu_count"] >= 1 and info["python"].count(".") == 2
        assert info["matmul_gflops"] > 0
        ```
    """
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "gpus": [d.name for d in tf.config.list_logical_devices("GPU")],
        "matmul_gflops": matmul_gflops(),
    }


def _total(values: list[float | None] | None) -> float | None:
    """The sum of per-epoch seconds; None unless every epoch recorded its own."""
    if not values or any(v is None for v in values):
        return None
    return round(float(sum(values)), 2)


def _load_summary(values: list[float | None] | None) -> dict[str, float] | None:
    """Min, median and max of the per-epoch load averages that were recorded."""
    values = sorted(v for v in values or () if v is not None)
    if not values:
        return None
    return {"min": values[0], "median": statistics.median(values), "max": values[-1], "epochs": len(values)}


def model_memory(model: tf.keras.Model) -> dict[str, float]:
    """Parameter counts and weight memory from larq's model profile."""
    profile = lq.models.ModelProfile(model)
    memory_bytes = profile.memory / 8
    fp32_bytes = profile.fp_equivalent_memory / 8
    return {
        "params": int(model.count_params()),
        "binary_params": int(profile.weight_count(bitwidth=1)),
        "weight_memory_bytes": float(memory_bytes),
        "float32_memory_bytes": float(fp32_bytes),
        "memory_ratio_vs_float32": float(memory_bytes / fp32_bytes) if fp32_bytes else float("nan"),
    }


def plot_curves(stages: list[tuple[str | None, dict[str, list]]], path: str | os.PathLike, title: str) -> None:
    """Loss and accuracy (train and validation) per epoch into the PNG `path`.

    `stages` is `[(None, history)]` for one run (`curves.png` of a run directory), or
    `[(name, history), ...]` for the stages of a staged recipe, drawn one after
    another, each in its own colour, with a dotted line where each stage starts.

    !!! example
        ```python
        import tempfile
        from pathlib import Path
        from bnnzoo.training import plot_curves

        path = Path(tempfile.mkdtemp()) / "curves.png"
        plot_curves([("stage-1", {"loss": [1.0, 0.7]}), ("stage-2", {"loss": [0.9, 0.5, None]})], path, "two stages")
        assert path.read_bytes()[1:4] == b"PNG"
        ```
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    staged = len(stages) > 1
    fig, axes = plt.subplots(1, 2, figsize=(10 if staged else 9, 3.5))
    for ax, key in zip(axes, ("loss", "accuracy")):
        start = 0
        for number, (name, history) in enumerate(stages):
            for prefix, style in (("", "-"), ("val_", "--")):
                values = history.get(prefix + key)
                if values:
                    label = (prefix or "train_") + key
                    ax.plot(range(start + 1, start + len(values) + 1),
                            [math.nan if v is None else v for v in values], style,
                            label=f"{name} {label}" if name else label, color=f"C{number}" if staged else None)
            if start:
                ax.axvline(start + 0.5, color="grey", linestyle=":")
            start += len(history.get("loss", []))
        ax.set_xlabel("epoch (all stages)" if staged else "epoch")
        ax.set_title(key)
        ax.legend(fontsize=7 if staged else None)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
