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
    print(result.metrics["test_accuracy"])
    ```
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import larq as lq
import numpy as np
import tensorflow as tf

from bnnzoo import callbacks as _callbacks
from bnnzoo import data as _data
from bnnzoo._atomic import atomic_path, atomic_write_json, json_safe, replace_directory
from bnnzoo._runlock import LOCK_FILE, directory_lock
from bnnzoo import models as _models
from bnnzoo import optimizers as _optimizers
from bnnzoo import quantizers as _quantizers
from bnnzoo.registry import Registry

__all__ = [
    "LR_SCHEDULES",
    "STRATEGIES",
    "TrainConfig",
    "TrainResult",
    "build_optimizer",
    "evaluate",
    "learning_rate_schedule",
    "load_initial_weights",
    "load_model",
    "make_strategy",
    "model_memory",
    "run_callbacks",
    "wrap_for_optimizer",
    "train",
]

# Distribution strategies by name: name -> factory() -> tf.distribute.Strategy.
STRATEGIES: Registry = Registry("strategy")
MODEL_FILE = "model.keras"
# Upper bounds that keep a typo (`--epochs 1000000000000`) from running for ever.
MAX_EPOCHS = 1_000_000
MAX_BATCH_SIZE = 1 << 20

@dataclass
class TrainConfig:
    """Everything that defines a training run (and so a recipe file).

    `quantizer` is used for activations and weights unless `input_quantizer` /
    `kernel_quantizer` override it; `quantizer_kwargs` go to the constructor of
    `quantizer` wherever it is used (not to an override of another name), `optimizer_kwargs` to the optimizer builder (e.g. `threshold`,
    `gamma`), `model_kwargs` to the model family (e.g. `width`).

    `annealing` is the rule of the automatic quantizer annealing
    (`bnnzoo.callbacks.ANNEALING_RULES`: `"default"`, `"compressed"`, `"none"`);
    `exact_sign_fraction` the share of the epochs at the end of the run in which
    annealed quantizers use an exact-sign forward (at least the last epoch; 0.2: the
    last fifth), so the model trained and validated there is binary; `mu_max` the
    value the `"default"` rule grows BNN++'s / ProxConnect's \\(\\mu\\) to (`None`:
    `bnnzoo.callbacks.MU_MAX`);
    `lr_schedule` the learning-rate schedule of the whole run (`LR_SCHEDULES`);
    `clipnorm` a global gradient-norm clip applied by every optimizer of the run (each
    sub-optimizer of a `CaseOptimizer` clips the gradients it receives);
    `init_from` a run directory or saved model whose weights initialize the model
    (e.g. a float run of the same network for FSG's fine-tuning setting).
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
    annealing: str = "default"
    exact_sign_fraction: float = 0.0
    mu_max: float | None = None
    lr_schedule: str = "constant"
    clipnorm: float | None = None
    init_from: str | None = None

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Check names and numbers; raise `ValueError` naming the bad argument."""
        for name, upper in (("epochs", MAX_EPOCHS), ("batch_size", MAX_BATCH_SIZE)):
            value = getattr(self, name)
            if (not isinstance(value, (int, np.integer)) or isinstance(value, bool)
                    or not 0 < value <= upper):
                raise ValueError(f"{name} must be an integer in [1, {upper}], got {value!r}")
        if (not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool)
                or not 0 <= self.seed < 2**32):
            raise ValueError(f"seed must be an integer in [0, 2**32), got {self.seed!r}")
        if not (isinstance(self.learning_rate, (int, float)) and math.isfinite(self.learning_rate)
                and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a finite number > 0, got {self.learning_rate!r}")
        if (not isinstance(self.validation_fraction, (int, float)) or isinstance(self.validation_fraction, bool)
                or not 0 <= self.validation_fraction < 1):
            raise ValueError(f"validation_fraction must be a number in [0, 1), got {self.validation_fraction!r}")
        STRATEGIES.get(self.strategy)
        _models.get_model_spec(self.model)
        _optimizers.optimizer_spec(self.optimizer)
        for q in (self.quantizer, self.input_quantizer, self.kernel_quantizer):
            if q is not None and q != "none":
                _quantizers.quantizer_class(q)
        _callbacks.check_annealing_rule(self.annealing)
        if (not isinstance(self.exact_sign_fraction, (int, float)) or isinstance(self.exact_sign_fraction, bool)
                or not 0 <= self.exact_sign_fraction < 1):
            raise ValueError(f"exact_sign_fraction must be a number in [0, 1), got {self.exact_sign_fraction!r}")
        if self.mu_max is not None and not (
                isinstance(self.mu_max, (int, float)) and not isinstance(self.mu_max, bool)
                and math.isfinite(self.mu_max) and self.mu_max > 0):
            raise ValueError(f"mu_max must be a finite number > 0 or None, got {self.mu_max!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}"
            )
        if self.clipnorm is not None and not (
                isinstance(self.clipnorm, (int, float)) and not isinstance(self.clipnorm, bool)
                and math.isfinite(self.clipnorm) and self.clipnorm > 0):
            raise ValueError(f"clipnorm must be a finite number > 0 or None, got {self.clipnorm!r}")
        if self.init_from is not None and not isinstance(self.init_from, (str, os.PathLike)):
            raise ValueError(f"init_from must be a path or None, got {self.init_from!r}")

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
            kwargs = self.quantizer_kwargs if name == self.quantizer else {}
            return _quantizers.get_quantizer(name, **kwargs)

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


@STRATEGIES.register("default")
def _default_strategy() -> tf.distribute.Strategy:
    return tf.distribute.get_strategy()


@STRATEGIES.register("mirrored")
def _mirrored_strategy() -> tf.distribute.Strategy:
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])


@STRATEGIES.register("multiworker")
def _multiworker_strategy() -> tf.distribute.Strategy:
    if "TF_CONFIG" not in os.environ:
        raise ValueError("strategy 'multiworker' needs the TF_CONFIG environment variable")
    return tf.distribute.MultiWorkerMirroredStrategy()


def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    """`default` (one device), `mirrored` (all local GPUs, else all logical CPUs) or
    `multiworker` (`MultiWorkerMirroredStrategy`, configured by `TF_CONFIG`)."""
    return STRATEGIES.get(name)()


def wrap_for_optimizer(model: tf.keras.Model, optimizer: str) -> tf.keras.Model:
    """`model` as optimizer `optimizer` trains it: wrapped by the builder's `wrap_model`
    when it declares one (FSG's own training step, `bnnzoo.fsg.wrap`), else unchanged."""
    return _optimizers.optimizer_spec(optimizer).wrap(model)


def run_callbacks(model: tf.keras.Model, config: "TrainConfig", steps_per_epoch: int) -> list:
    """The callbacks a run of `config` needs, asked of the parts it uses.

    - the model's quantizers: `bnnzoo.callbacks.default_annealing` (annealing of
      BNN++, ProxConnect and STE-Warmup by the rule `config.annealing`);
    - the optimizer builder's `training_callbacks(model, config, steps_per_epoch)`
      when it declares one (`bop`/`bop2ndorder`: the binary-variable check and
      `FlipRate`; `bnnzoo.optimizers.builders.BUILDER_HOOKS`).
    """
    found = list(_callbacks.default_annealing(model, config, steps_per_epoch))
    return found + _optimizers.optimizer_spec(config.optimizer).callbacks(model, config, steps_per_epoch)


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


def create_training_variables(model: tf.keras.Model, x, y) -> None:
    """Create, eagerly, every variable `model.fit`'s first step would create inside
    its trace: the loss and metric accumulators and the optimizer's state.

    TensorFlow traces a `tf.function` twice when its first call creates variables;
    with them created here, `fit` traces its training step once (a short digits run
    starts ~2 s sooner). Values are unchanged: the forward pass on `x` (a batch of
    the training inputs, `y` its labels) runs in inference mode and updates nothing.
    """
    y_pred = model(x, training=False)
    model.compiled_loss.build(y_pred)
    model.compiled_metrics.build(y_pred, tf.convert_to_tensor(y))
    _optimizers.create_optimizer_variables(model.optimizer, model.trainable_variables)


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


# Learning-rate schedules of a run, scaled to its length (`TrainConfig.lr_schedule`):
#   constant: the learning rate throughout;
#   linear:   linear decay to 1/10 of it at the end (Bop2ndOrder's CIFAR recipe:
#             Adam 1e-2 -> 1e-3);
#   halving:  x0.5 after every 30 % of the run (Hyper-BinaryNet: halved every 60 of
#             200 epochs);
#   step:     x0.1 after every 30 % of the run (FSG: x0.1 every 30 of 100 epochs).
LR_SCHEDULES = ("constant", "linear", "halving", "step")


def learning_rate_schedule(name: str, learning_rate: float, epochs: int, steps_per_epoch: int):
    """The learning rate (a float or a Keras schedule) of `TrainConfig.lr_schedule`.

    Step schedules change at epoch boundaries: every `max(1, round(0.3 * epochs))`
    epochs. The schedule is a function of the optimizer's step count, which
    checkpoints restore, so a resumed run continues it.

    !!! example
        ```python
        from bnnzoo.training import learning_rate_schedule

        lr = learning_rate_schedule("halving", 1e-2, epochs=10, steps_per_epoch=100)
        print(float(lr(0)), float(lr(300)))  # 0.01 0.005
        ```
    """
    if name not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {name!r}")
    total = max(1, epochs * steps_per_epoch)
    if name == "constant":
        return learning_rate
    if name == "linear":
        return tf.keras.optimizers.schedules.PolynomialDecay(
            learning_rate, total, end_learning_rate=learning_rate / 10, power=1.0
        )
    factor = 0.5 if name == "halving" else 0.1
    every = max(1, round(0.3 * epochs))
    # PiecewiseConstantDecay switches after a boundary: step k*every*steps is the first
    # step of epoch k*every and gets the new value.
    boundaries = [k * every * steps_per_epoch - 1 for k in range(1, epochs) if k * every < epochs]
    if not boundaries:
        return learning_rate
    values = [learning_rate * factor**k for k in range(len(boundaries) + 1)]
    return tf.keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def build_optimizer(config: TrainConfig, steps_per_epoch: int):
    """The optimizer of `config`: its builder with `optimizer_kwargs`, the learning
    rate of `lr_schedule`, and `clipnorm` set on every sub-optimizer.

    A builder with a `decay_steps` argument (the paper schedules of `bop` and
    `bop2ndorder`) gets the run length, `epochs * steps_per_epoch`, unless the config
    gives it.
    """
    kwargs = dict(config.optimizer_kwargs)
    if _optimizers.optimizer_spec(config.optimizer).accepts("decay_steps") and "decay_steps" not in kwargs:
        kwargs["decay_steps"] = config.epochs * steps_per_epoch
    learning_rate = learning_rate_schedule(
        config.lr_schedule, config.learning_rate, config.epochs, steps_per_epoch
    )
    optimizer = _optimizers.get_optimizer(config.optimizer, learning_rate, **kwargs)
    if config.clipnorm is not None:
        for sub in _optimizers.applying_optimizers(optimizer):
            sub.global_clipnorm = float(config.clipnorm)
    return optimizer


def _weight_shapes(model: tf.keras.Model) -> list[tuple[str, list[tuple]]]:
    return [(layer.name, [tuple(w.shape) for w in layer.weights]) for layer in model.layers
            if layer.weights]


def load_initial_weights(model: tf.keras.Model, source: str | os.PathLike) -> None:
    """Copy the weights of `source` (a run directory or a saved model) into `model`.

    Layers are matched in order among those with weights, and every weight's shape
    must agree; quantizers do not matter (a float run initializes its binary
    version: the latent weights start at the float weights). Raises `ValueError`
    naming both models where the architectures differ.
    """
    path = Path(source)
    described = str(path)
    config_file = path / "config.json" if path.is_dir() else None
    if config_file is not None and config_file.exists():
        values = json.loads(config_file.read_text())
        described = f"{path} ({values.get('model')} {values.get('model_kwargs') or ''})".strip()
    try:
        donor = load_model(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"init_from: cannot load a model from {path}: {error}") from None
    mine, theirs = _weight_shapes(model), _weight_shapes(donor)
    if [shapes for _, shapes in mine] != [shapes for _, shapes in theirs]:
        first = next((f"layer {a[0]!r} {a[1]} vs {b[0]!r} {b[1]}" for a, b in zip(mine, theirs)
                      if a[1] != b[1]), f"{len(mine)} vs {len(theirs)} layers with weights")
        raise ValueError(
            f"init_from: {described} has another architecture than model {model.name!r}: {first}"
        )
    for target, donor_layer in zip([l for l in model.layers if l.weights],
                                   [l for l in donor.layers if l.weights]):
        target.set_weights(donor_layer.get_weights())


def load_model(path: str | os.PathLike) -> tf.keras.Model:
    """Load a model saved by `train` (a run directory or a `.keras`/`.h5` file)."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No saved model at {path}")
    import zipfile

    # Every custom object is registered: bnnzoo/__init__ has run before this module.

    try:
        from bnnzoo.model_files import load_keras_file  # files of a newer Keras 2: bnnzoo/model_files.py

        return load_keras_file(path, compile=False)
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError) as err:
        detail = " ".join(str(err).split())[:300]
        raise ValueError(f"cannot load the model file {path}: truncated, corrupted or not a Keras model "
                         f"({type(err).__name__}: {detail})") from err


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
        # History first: if the process dies between the two writes, the checkpoint
        # is the older one and `train` drops the extra history entry on resume
        # (checkpoint first would lose that entry for good).
        write_json(self.history_path, self.history)
        self.epoch_var.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)


def _json_default(obj):
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj)}")


def write_json(path: Path, obj) -> None:
    """Write `obj` as JSON to `path` atomically (temporary file + `os.replace`).

    The file is always valid JSON: NaN and ±Infinity (e.g. the loss of a diverged
    run) are written as `null`; numpy scalars and paths are converted.

    Args:
        path: the target file; its folder must exist.
        obj: the value to write.
    """
    atomic_write_json(path, obj, default=_json_default)


# --------------------------------------------------------------------------- run directories

# The files of a run directory that a new run replaces.
_RUN_FILES = (MODEL_FILE, "metrics.json", "history.json", "curves.png")


def _field_defaults() -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(TrainConfig):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _config_differences(previous: dict[str, Any], config: TrainConfig) -> list[str]:
    """Keys (except `strategy`) whose values differ between a saved config and `config`.

    A key missing from the saved config counts as its field's default, so run
    directories written before a field existed still match.
    """
    def as_json(values):
        return json.loads(json.dumps(json_safe(values, _json_default)))

    current, defaults = as_json(config.to_dict()), as_json(_field_defaults())
    missing = object()
    keys = (set(previous) | set(current)) - {"strategy"}
    return sorted(k for k in keys if previous.get(k, defaults.get(k, missing)) != current.get(k, missing))


def _check_not_a_file(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"out {run_dir} is a file, not a run directory; give a folder path")


def _staging_dir(run_dir: Path) -> Path:
    """Where a run that replaces `run_dir`'s previous one is trained (a hidden sibling,
    on the same file system) until it is complete and swapped in."""
    return run_dir.with_name(f".{run_dir.name}.staging")


def _link_or_copy(source, target) -> None:
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:  # a file system without hard links
        shutil.copy2(source, target, follow_symlinks=False)


def _keep_other_files(old: Path, new: Path) -> None:
    """Hard-link into `new` whatever `old` holds besides a run's own files (e.g. an
    export written into the run directory), so that swapping `new` in keeps it."""
    owned = {*_RUN_FILES, "config.json", "checkpoints", "recipe.json", LOCK_FILE}
    for item in old.iterdir():
        if item.name in owned or (new / item.name).exists():
            continue
        if item.is_dir() and not item.is_symlink():
            shutil.copytree(item, new / item.name, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(item, new / item.name)


def _holds_a_run(run_dir: Path) -> bool:
    """Whether `run_dir` holds any file of a run (a result a new run must not destroy)."""
    return run_dir.is_dir() and any(
        (run_dir / name).exists() for name in (*_RUN_FILES, "config.json", "checkpoints"))


def _existing_run(run_dir: Path, config: TrainConfig, *, resume: bool, overwrite: bool) -> str:
    """What `run_dir` holds for a new run of `config`: `"finished"` (the same config,
    done), `"resume"` (the same config, unfinished) or `"fresh"` (start over).

    Raises `ValueError` (one line: the differing keys and the ways out) rather than
    replace a finished run of another config, or resume one of another config.
    """
    _check_not_a_file(run_dir)
    config_path, ckpt_dir = run_dir / "config.json", run_dir / "checkpoints"
    finished = (run_dir / MODEL_FILE).is_file() and not ckpt_dir.exists()
    if overwrite or not run_dir.is_dir():
        return "fresh"
    if not config_path.is_file():
        if finished:
            raise ValueError(f"{run_dir} holds a {MODEL_FILE} without config.json; "
                             "train into another directory (--out NEW) or replace it (--overwrite)")
        return "fresh"
    try:
        previous = json.loads(config_path.read_text())
        if not isinstance(previous, dict):
            raise ValueError("not a JSON object")
    except ValueError as err:
        raise ValueError(f"{config_path} is not a valid run config ({err}); "
                         "train into another directory (--out NEW) or replace it (--overwrite)") from None
    differ = _config_differences(previous, config)
    if finished and differ:
        raise ValueError(
            f"{run_dir} holds a finished run with a different config (differs in: {', '.join(differ)}); "
            "train into another directory (--out NEW) or replace it (--overwrite, overwrite=True)"
        )
    if finished and (run_dir / "metrics.json").is_file():
        return "finished" if resume else "fresh"  # resume=False: train the same config again
    if ckpt_dir.exists() and resume:
        if differ:
            raise ValueError(
                f"{run_dir} holds an unfinished run with a different config (differs in: {', '.join(differ)}); "
                "use another directory (--out NEW), start it over (--no-resume, resume=False) "
                "or replace it (--overwrite, overwrite=True)"
            )
        return "resume"
    return "fresh"


def _finished_result(run_dir: Path) -> TrainResult:
    """The result of a finished run directory, read back without training."""
    history_path = run_dir / "history.json"
    history = json.loads(history_path.read_text()) if history_path.is_file() else {}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return TrainResult(model=load_model(run_dir), history=history, metrics=metrics, run_dir=run_dir)


def _prepare_run_dir(work_dir: Path, config: TrainConfig, state: str) -> Path:
    """Make the folder a run of `config` writes into and write its `config.json` there.

    Returns `work_dir` itself, except for a fresh run over a previous one (`--no-resume`
    of a finished run, `--overwrite`): that run is trained in `_staging_dir(work_dir)`,
    and `train` swaps it in only once it is complete, so a crash, Ctrl-C or full disk
    leaves the previous run as it was.
    """
    target = work_dir
    try:
        if state == "fresh" and _holds_a_run(work_dir):
            work_dir = _staging_dir(work_dir)
            shutil.rmtree(work_dir, ignore_errors=True)  # one a killed run left behind
        work_dir.mkdir(parents=True, exist_ok=True)
        write_json(work_dir / "config.json", config.to_dict())
    except OSError as err:
        raise type(err)(f"cannot write the run directory {target}: {err.strerror or err}") from err
    return work_dir


def _check_fully_restored(status, path: str) -> None:
    """The resumed checkpoint and the run's state match one to one, now that every
    variable exists: no checkpointed value is left over and no variable is left unset.

    A checkpoint written by another bnnzoo version (e.g. renamed optimizer state) would
    otherwise resume with part of its state silently left at initial values.
    """
    try:
        status.assert_consumed()
    except AssertionError as err:
        status.expect_partial()  # the error below says it; no second report at deletion
        found = re.findall(r"\(root\)\.[\w./-]+|Variable '[^']+'", str(err))
        names = sorted(set(found)) or [str(err).splitlines()[0]]
        raise ValueError(f"cannot resume from {path}: the checkpoint does not match this run's state "
                         f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}); it was written "
                         "by another bnnzoo version or model; start the run over with --no-resume") from None


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
    overwrite: bool = False,
    model: tf.keras.Model | None = None,
    record: dict[str, Any] | None = None,
) -> TrainResult:
    """Train `config` and, when `out` is given, write its run directory.

    A run directory is never replaced silently: one holding a finished run of the
    same config is returned as it is (no training; `resume=False` trains it again),
    one holding a run of another config is refused with a `ValueError` naming the
    differing keys unless `overwrite=True` (an unfinished one also with
    `resume=False`). Every file of the run is written atomically, and a run that
    replaces a previous one (`resume=False` on a finished run, `overwrite=True`) is
    trained in a hidden sibling folder and swapped in only when complete: until
    then `out` keeps the previous run, whatever happens to this one.

    One writer per run directory: the run holds `out`'s lock (`bnnzoo._runlock`)
    from start to end; a second `train` on the same `out` is refused at once with
    a `ValueError` naming the holder's pid.

    Args:
        config: the run's configuration.
        out: run directory; if it holds an unfinished run of the same config, that
            run resumes (unless `resume=False`, which starts over).
        overwrite: replace whatever run `out` holds (finished or not, any config).
        callbacks: extra Keras callbacks.
        verbose: Keras verbosity; default: a progress bar on a terminal, one line
            per epoch otherwise.
        arrays: preloaded data (saves reloading in loops over configs).
        strategy: a ready `tf.distribute` strategy; default: built from `config.strategy`.
        record: extra JSON files written into the run directory with the result,
            `{file name: value}` (e.g. the recipe of `bnnzoo train --recipe`, which
            `bnnzoo publish` reads).
        model: a model already built for `config` (e.g. by keras-tuner's
            `HyperModel.build(hp)`), trained instead of a new one from
            `build_model`; build it under `strategy`'s scope when there is one.
    """
    config.validate()
    strategy = strategy or make_strategy(config.strategy)
    run_dir = Path(out) if out is not None else None
    if run_dir is None or not _is_chief(strategy):
        return _train(config, run_dir, callbacks, verbose, resume, arrays, strategy, overwrite, model)
    _check_not_a_file(run_dir)
    with directory_lock(run_dir) as lock:
        try:
            result = _train(config, run_dir, callbacks, verbose, resume, arrays, strategy, overwrite, model)
            for name, value in (record or {}).items():
                write_json(run_dir / name, value)
        except BaseException:
            # A replacement that did not finish leaves the previous run as it was.
            shutil.rmtree(_staging_dir(run_dir), ignore_errors=True)
            if lock.created and lock.holds_only("config.json"):  # no epoch was trained in it
                for name in ("config.json", LOCK_FILE):
                    (run_dir / name).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    run_dir.rmdir()
            raise
    return result


def _train(config: TrainConfig, out, callbacks, verbose, resume, arrays, strategy, overwrite, model) -> TrainResult:
    """`train` once `out`'s lock is held (or without `out`, or on a non-chief worker)."""
    started = time.perf_counter()
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    strategy = strategy or make_strategy(config.strategy)
    chief = _is_chief(strategy)

    run_dir = Path(out) if out is not None else None
    state = "fresh"
    if run_dir is not None and chief:
        state = _existing_run(run_dir, config, resume=resume, overwrite=overwrite)
        if state == "finished":
            print(f"{run_dir} already holds this finished run; nothing to train "
                  "(--overwrite / overwrite=True trains it again)", flush=True)
            return _finished_result(run_dir)
    # Data first: a dataset that fails to load leaves no run directory behind.
    if arrays is None:
        arrays = _data.load_arrays(
            config.dataset, validation_fraction=config.validation_fraction, data_dir=config.data_dir
        )
    # Non-chief workers write their (identical) state to a private folder.
    work_dir = run_dir if (run_dir is not None and chief) else Path(tempfile.mkdtemp(prefix="bnnzoo-"))
    work_dir = _prepare_run_dir(work_dir, config, state)
    ckpt_dir = work_dir / "checkpoints"

    tf.keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    with strategy.scope():
        if model is None:
            model = build_model(config, arrays.input_shape, arrays.num_classes)
        if config.init_from:
            load_initial_weights(model, config.init_from)
        optimizer = build_optimizer(config, -(-len(arrays.x_train) // config.batch_size))
        model = wrap_for_optimizer(model, config.optimizer)
        compile_model(model, optimizer)
        epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="finished_epochs")
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch_var)
    manager = tf.train.CheckpointManager(checkpoint, ckpt_dir, max_to_keep=1)
    history: dict[str, list[float]] = {}
    history_path = work_dir / "history.json"
    restored = None
    if resume and manager.latest_checkpoint:
        restored = checkpoint.restore(manager.latest_checkpoint)
        if history_path.exists():
            # The history is written before the checkpoint (`_ResumeCheckpoint`): a run
            # killed between the two has one epoch more in it, which is retrained.
            finished = int(epoch_var.numpy())
            history = {k: v[:finished] for k, v in json.loads(history_path.read_text()).items()}
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
    all_callbacks = run_callbacks(model, config, steps) + list(callbacks)
    # Last, so that values other callbacks add to `logs` are in the saved history.
    all_callbacks.append(_ResumeCheckpoint(manager, epoch_var, history, history_path))
    if initial_epoch < config.epochs:
        # After the callbacks: their checks (e.g. Bop on a model without binary
        # variables) come first. A restored checkpoint fills these as they are created.
        with strategy.scope():
            create_training_variables(model, arrays.x_train[:1], arrays.y_train[:1])
        if restored is not None:
            _check_fully_restored(restored, manager.latest_checkpoint)
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
        # Whether every 1-bit quantizer's forward is exactly binary now (annealed ones
        # at exact sign): False means the accuracy above is not that of a binary model.
        "binary_forward": _quantizers.binary_forward(model),
        "versions": {"tensorflow": tf.__version__, "larq": lq.__version__},
    }
    if run_dir is not None:
        # Every worker saves (a collective op under MultiWorkerMirroredStrategy).
        # Atomic writes: a crash leaves the previous complete file, never a truncated one.
        with atomic_path(work_dir / MODEL_FILE) as tmp:
            model.save(tmp)
        write_json(history_path, history)
        write_json(work_dir / "metrics.json", metrics)
        if chief:
            with atomic_path(work_dir / "curves.png") as tmp:
                _plot_curves(history, tmp, f"{config.model} on {config.dataset}")
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    if run_dir is not None and chief and work_dir == _staging_dir(run_dir):
        _keep_other_files(run_dir, work_dir)
        replace_directory(work_dir, run_dir)  # the complete new run replaces the previous one
    elif work_dir != run_dir:  # a private temporary folder (no `out`, or a non-chief worker)
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
