"""The one train/evaluate routine that the CLI, recipes, tuner and benchmarks share.

`train(TrainConfig(...), out="runs/x")` builds the data, model and optimizer, runs
`model.fit` with a progress bar, and writes a run directory:

| file | content |
| --- | --- |
| `config.json` | the `TrainConfig` of the run |
| `model.keras` | the trained model; reloads with `import bnnzoo` and `tf.keras.models.load_model` |
| `history.json` | per-epoch metrics (loss, accuracy, validation, logged schedule values) |
| `metrics.json` | test accuracy/loss, epochs, wall time, parameter and memory counts |
| `curves.png` | training curves |
| `checkpoints/` | the resume checkpoint while a run is unfinished (removed at the end) |

A run that is interrupted (Ctrl-C, SIGTERM, a crash) and started again with the
same configuration and `out` resumes after its last finished epoch, with model
*and* optimizer state restored and the same per-epoch data order, so the result
is the same as an uninterrupted run.

!!! example
    ```python
    from bnnzoo.training import TrainConfig, train

    result = train(TrainConfig(model="binarynet_mlp", dataset="digits", epochs=3))
    print(result.metrics["test_accuracy"])
    ```
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import larq as lq
import numpy as np
import tensorflow as tf

from bnnzoo import data as _data
from bnnzoo import models as _models
from bnnzoo import optimizers as _optimizers
from bnnzoo import quantizers as _quantizers

__all__ = [
    "STRATEGIES",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "load_model",
    "make_strategy",
    "model_memory",
    "register_auto_callback",
    "train",
]

STRATEGIES = ("default", "mirrored", "multiworker")
MODEL_FILE = "model.keras"

# Factories `(model, config, steps_per_epoch) -> list[Callback]` that features
# register so that the shared routine attaches their callbacks when a model needs
# them (e.g. quantizer annealing), without the routine knowing each feature.
_AUTO_CALLBACKS: list[Callable[..., list]] = []


def register_auto_callback(factory: Callable[..., list]) -> Callable[..., list]:
    """Register `factory(model, config, steps_per_epoch) -> list[Callback]`."""
    if factory not in _AUTO_CALLBACKS:
        _AUTO_CALLBACKS.append(factory)
    return factory


@dataclass
class TrainConfig:
    """Everything that defines a training run (and so a recipe file).

    `quantizer` is used for activations and weights unless `input_quantizer` /
    `kernel_quantizer` override it; `quantizer_kwargs` go to the quantizer's
    constructor, `optimizer_kwargs` to the optimizer builder (e.g. `threshold`,
    `gamma`), `model_kwargs` to the model family (e.g. `width`).
    """

    model: str = "binarynet_mlp"
    dataset: str = "digits"
    optimizer: str = "adam"
    quantizer: str = "ste_sign"
    input_quantizer: str | None = None
    kernel_quantizer: str | None = None
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 0
    validation_fraction: float = 0.1
    shuffle: bool = True
    strategy: str = "default"
    data_dir: str | None = None
    quantizer_kwargs: dict[str, Any] = field(default_factory=dict)
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Check names and numbers; raise `ValueError` naming the bad argument."""
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.learning_rate, (int, float)) and math.isfinite(self.learning_rate)
                and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a finite number > 0, got {self.learning_rate!r}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"Unknown strategy {self.strategy!r}. Valid: {', '.join(STRATEGIES)}")
        _models.get_model_spec(self.model)
        _optimizers.optimizer_builder(self.optimizer)
        for q in (self.quantizer, self.input_quantizer, self.kernel_quantizer):
            if q is not None and q != "none":
                _quantizers.quantizer_class(q)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown config keys {unknown}. Valid keys: {', '.join(sorted(known))}")
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "TrainConfig":
        """Read a recipe: a `.json` or `.toml` file of `TrainConfig` fields.

        Other top-level tables/keys listed in `RECIPE_EXTRA_KEYS` (e.g. `artifact`)
        are ignored here and read by the tools that need them.
        """
        values = read_recipe(path)
        return cls.from_dict({k: v for k, v in values.items() if k not in RECIPE_EXTRA_KEYS})

    def quantizer_objects(self):
        """The (input, kernel) quantizers this config asks for."""

        def make(name):
            name = name or self.quantizer
            if name == "none":
                return None
            return _quantizers.get_quantizer(name, **self.quantizer_kwargs)

        return make(self.input_quantizer), make(self.kernel_quantizer)


# Keys a recipe file may hold besides TrainConfig fields (used by bnnzoo.pretrained).
RECIPE_EXTRA_KEYS = ("artifact", "description")


def read_recipe(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No recipe file at {path}")
    if path.suffix == ".json":
        return json.loads(path.read_text())
    if path.suffix == ".toml":
        import tomllib

        return tomllib.loads(path.read_text())
    raise ValueError(f"Recipe files are .json or .toml, got {path.name}")


@dataclass
class TrainResult:
    model: tf.keras.Model
    history: dict[str, list[float]]
    metrics: dict[str, Any]
    run_dir: Path | None


# --------------------------------------------------------------------------- helpers


def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    """`default` (one device), `mirrored` (all local GPUs, else all logical CPUs) or
    `multiworker` (`MultiWorkerMirroredStrategy`, configured by `TF_CONFIG`)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("strategy 'multiworker' needs the TF_CONFIG environment variable")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown strategy {name!r}. Valid: {', '.join(STRATEGIES)}")


def _is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief" or task_type is None:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


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


def compile_model(model: tf.keras.Model, optimizer) -> None:
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def build_model(config: TrainConfig, input_shape, num_classes) -> tf.keras.Model:
    input_q, kernel_q = config.quantizer_objects()
    return _models.create_model(
        config.model,
        input_shape=input_shape,
        num_classes=num_classes,
        input_quantizer=input_q,
        kernel_quantizer=kernel_q,
        **config.model_kwargs,
    )


def load_model(path: str | os.PathLike) -> tf.keras.Model:
    """Load a model saved by `train` (a run directory or a `.keras`/`.h5` file)."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No saved model at {path}")
    import bnnzoo  # noqa: F401  (registers every custom object)

    return tf.keras.models.load_model(path, compile=False)


def _plot_curves(history: dict[str, list[float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = history.get(prefix + key)
            if values:
                ax.plot(range(1, len(values) + 1), values, style, label=(prefix or "train_") + key)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


class _ResumeCheckpoint(tf.keras.callbacks.Callback):
    """Saves model, optimizer, finished-epoch count and history after each epoch."""

    def __init__(self, manager: tf.train.CheckpointManager, epoch_var: tf.Variable,
                 history: dict[str, list[float]], history_path: Path):
        super().__init__()
        self.manager = manager
        self.epoch_var = epoch_var
        self.history = history
        self.history_path = history_path

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.epoch_var.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)
        self.history_path.write_text(json.dumps(self.history))


def _json_default(obj):
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj)}")


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")


# --------------------------------------------------------------------------- train


def train(
    config: TrainConfig,
    out: str | os.PathLike | None = None,
    *,
    callbacks: Sequence[tf.keras.callbacks.Callback] = (),
    verbose: int | None = None,
    resume: bool = True,
    arrays: _data.ArraySplits | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> TrainResult:
    """Train `config` and, when `out` is given, write its run directory.

    Args:
        config: the run's configuration.
        out: run directory; if it holds an unfinished run of the same config, that
            run resumes (unless `resume=False`, which starts over).
        callbacks: extra Keras callbacks.
        verbose: Keras verbosity; default: a progress bar on a terminal, one line
            per epoch otherwise.
        arrays: preloaded data (saves reloading in loops over configs).
        strategy: a ready `tf.distribute` strategy; default: built from `config.strategy`.
    """
    config.validate()
    started = time.perf_counter()
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    strategy = strategy or make_strategy(config.strategy)
    chief = _is_chief(strategy)

    run_dir = Path(out) if out is not None else None
    # Non-chief workers write their (identical) state to a private folder.
    work_dir = run_dir if (run_dir is not None and chief) else Path(tempfile.mkdtemp(prefix="bnnzoo-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = work_dir / "checkpoints"
    config_path = work_dir / "config.json"
    if ckpt_dir.exists() and resume and config_path.exists():
        previous = json.loads(config_path.read_text())
        if {k: v for k, v in previous.items() if k != "strategy"} != {
            k: v for k, v in config.to_dict().items() if k != "strategy"
        }:
            raise ValueError(
                f"{work_dir} holds an unfinished run with a different config; "
                "use another output directory or resume=False (--no-resume)."
            )
    elif ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)
    write_json(config_path, config.to_dict())

    if arrays is None:
        arrays = _data.load_arrays(
            config.dataset, validation_fraction=config.validation_fraction, data_dir=config.data_dir
        )

    tf.keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    with strategy.scope():
        model = build_model(config, arrays.input_shape, arrays.num_classes)
        optimizer = _optimizers.get_optimizer(
            config.optimizer, config.learning_rate, **config.optimizer_kwargs
        )
        # Optimizers with their own training step (FSG) wrap the model before compile.
        if hasattr(optimizer, "wrap_model"):
            model = optimizer.wrap_model(model)
        compile_model(model, optimizer)
        epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="finished_epochs")
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch_var)
    manager = tf.train.CheckpointManager(checkpoint, ckpt_dir, max_to_keep=1)
    history: dict[str, list[float]] = {}
    history_path = work_dir / "history.json"
    if resume and manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint)
        if history_path.exists():
            history = json.loads(history_path.read_text())
        print(f"Resuming {work_dir} after epoch {int(epoch_var.numpy())}/{config.epochs}", flush=True)
    initial_epoch = int(epoch_var.numpy())

    train_ds, steps = _data.epoch_pipeline(
        arrays.x_train,
        arrays.y_train,
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
    all_callbacks = [cb for factory in _AUTO_CALLBACKS for cb in factory(model, config, steps)]
    all_callbacks += list(callbacks)
    # Last, so that values other callbacks add to `logs` are in the saved history.
    all_callbacks.append(_ResumeCheckpoint(manager, epoch_var, history, history_path))
    if initial_epoch < config.epochs:
        model.fit(
            train_ds,
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps,
            validation_data=val_ds,
            callbacks=all_callbacks,
            verbose=verbose,
        )

    test_loss, test_acc = model.evaluate(
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
        "wall_seconds": round(time.perf_counter() - started, 2),
        "train_size": len(arrays.x_train),
        "test_size": len(arrays.x_test),
        "input_shape": list(arrays.input_shape),
        "num_classes": arrays.num_classes,
        **model_memory(model),
        "versions": {"tensorflow": tf.__version__, "larq": lq.__version__},
    }
    if run_dir is not None:
        # Every worker saves (a collective op under MultiWorkerMirroredStrategy).
        model.save(work_dir / MODEL_FILE)
        write_json(history_path, history)
        write_json(work_dir / "metrics.json", metrics)
        if chief:
            _plot_curves(history, work_dir / "curves.png", f"{config.model} on {config.dataset}")
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    if work_dir != run_dir:  # a private temporary folder (no `out`, or a non-chief worker)
        shutil.rmtree(work_dir, ignore_errors=True)
    return TrainResult(model=model, history=history, metrics=metrics, run_dir=run_dir)


# --------------------------------------------------------------------------- evaluate


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
            config = json.loads((path / "config.json").read_text())
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
