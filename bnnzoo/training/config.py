"""Configuration of a run: `TrainConfig`, recipe files, distribution strategies and
learning-rate schedules. Nothing here builds a model or touches a run directory.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from bnnzoo import callbacks as _callbacks
from bnnzoo import distillation as _distillation
from bnnzoo import models as _models
from bnnzoo import optimizers as _optimizers
from bnnzoo import quantizers as _quantizers
from bnnzoo.registry import Registry

__all__ = [
    "DISTILLATION_KEYS",
    "LR_SCHEDULES",
    "MAX_BATCH_SIZE",
    "MAX_EPOCHS",
    "RECIPE_EXTRA_KEYS",
    "STRATEGIES",
    "TrainConfig",
    "is_chief",
    "learning_rate_schedule",
    "make_strategy",
    "read_recipe",
]

# Distribution strategies by name: name -> factory() -> tf.distribute.Strategy.
STRATEGIES: Registry = Registry("strategy")

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
    annealed quantizers use an exact-sign forward (at least the last epoch; default
    0.2, the last fifth: the binary network needs more than one epoch to recover from
    the switch, `docs/training.md`), so the model trained and validated there is
    binary; `mu_max` the
    value the `"default"` rule grows BNN++'s / ProxConnect's \\(\\mu\\) to (`None`:
    the forward's declared cap, `bnnzoo.callbacks.MU_MAX`);
    `lr_schedule` the learning-rate schedule of the whole run (`LR_SCHEDULES`);
    `clipnorm` a global gradient-norm clip applied by every optimizer of the run (each
    sub-optimizer of a `CaseOptimizer` clips the gradients it receives);
    `init_from` a run directory or saved model whose weights initialize the model
    (e.g. a float run of the same network for FSG's fine-tuning setting).

    `teacher` distills the model from a trained teacher (`bnnzoo.distillation`): a
    finished run directory, a `.keras`/`.h5` model file, or `family:tag` of a
    pretrained artifact (`bnnzoo list`); `distillation_kwargs` go to
    `bnnzoo.distillation.DistillationLoss` (`DISTILLATION_KEYS`: `temperature`,
    `alpha`, `from_logits`; default ReActNet's \\(T = 1, \\alpha = 1\\)). Not with an
    optimizer that wraps the model with its own training step (FSG).
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
    exact_sign_fraction: float = 0.2
    mu_max: float | None = None
    lr_schedule: str = "constant"
    clipnorm: float | None = None
    init_from: str | None = None
    teacher: str | None = None
    distillation_kwargs: dict[str, Any] = field(default_factory=dict)

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
        for name in ("model", "dataset", "optimizer", "quantizer", "strategy", "annealing", "lr_schedule"):
            _check_type(name, getattr(self, name), str, "a name (a string)")
        for name in ("input_quantizer", "kernel_quantizer"):
            _check_type(name, getattr(self, name), (str, type(None)), "a quantizer name or None")
        _check_type("data_dir", self.data_dir, (str, os.PathLike, type(None)), "a folder path or None")
        _check_type("shuffle", self.shuffle, bool, "true or false")
        STRATEGIES.get(self.strategy)
        _check_keywords("model_kwargs", self.model_kwargs, _models.get_model_spec(self.model).builder,
                        f"model {self.model!r}", skip=2)  # input_shape and num_classes come from the data
        _check_keywords("quantizer_kwargs", self.quantizer_kwargs, None, "")
        _check_keywords("optimizer_kwargs", self.optimizer_kwargs,
                        _optimizers.optimizer_spec(self.optimizer).builder, f"optimizer {self.optimizer!r}")
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
        self._check_distillation()

    def _check_distillation(self) -> None:
        """`teacher` and `distillation_kwargs` (values checked by building the loss)."""
        if isinstance(self.teacher, os.PathLike):
            self.teacher = os.fspath(self.teacher)
        if self.teacher is not None and (not isinstance(self.teacher, str) or not self.teacher.strip()):
            raise ValueError("teacher must be a run directory, a .keras/.h5 model file or family:tag "
                             f"of a pretrained artifact, or None, got {self.teacher!r}")
        kwargs = self.distillation_kwargs
        if not isinstance(kwargs, dict):
            raise ValueError(f"distillation_kwargs must be a dict of keyword arguments, got {kwargs!r}")
        unknown = sorted(set(kwargs) - set(DISTILLATION_KEYS))
        if unknown:
            raise ValueError(f"distillation_kwargs has {', '.join(map(repr, unknown))}, which the distillation "
                             f"loss does not take; it takes: {', '.join(DISTILLATION_KEYS)}")
        try:
            _distillation.DistillationLoss(**kwargs)
        except ValueError as err:
            raise ValueError(f"distillation_kwargs: {err}") from None
        if self.teacher is not None and _optimizers.optimizer_spec(self.optimizer).wrap_model is not None:
            raise ValueError(f"teacher {self.teacher!r} cannot be used with optimizer {self.optimizer!r}, which "
                             "trains the model with its own training step; use another optimizer or no teacher")

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
        are ignored here and read by the tools that need them. A multi-stage recipe
        (`[[stages]]`) is refused: `bnnzoo.training.stage_configs` reads it.
        """
        values = read_recipe(path)
        if "stages" in values:
            raise ValueError(f"recipe {path} has [[stages]]: one TrainConfig per stage, "
                             "bnnzoo.training.stage_configs(read_recipe(path))")
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


def _check_type(argument: str, value, kinds, allowed: str) -> None:
    """`ValueError` naming `argument`, `value` and what is `allowed` unless `value` is one of `kinds`."""
    if not isinstance(value, kinds):
        raise ValueError(f"{argument} must be {allowed}, got {value!r} ({type(value).__name__})")


def _check_keywords(argument: str, kwargs, target, owner: str, skip: int = 1) -> None:
    """`ValueError` for a key of `kwargs` that the builder `target` does not take
    besides its first `skip` arguments (the learning rate; a model's input shape
    and class count); `target=None` checks only that `kwargs` is a dict of names.

    Names only, so a misspelt `--optimizer-arg` fails when the config is made; values
    are checked where the part is built (`assemble_run`). A builder that takes
    `**kwargs` accepts any name here.
    """
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise ValueError(f"{argument} must be a dict (a TOML table) of keyword arguments by name, "
                         f"got {kwargs!r}")
    if target is None:
        return
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):  # no signature to read (a C-implemented callable)
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    names = [n for n, p in list(parameters.items())[skip:] if p.kind is not inspect.Parameter.VAR_POSITIONAL]
    unknown = sorted(set(kwargs) - set(names))
    if unknown:
        raise ValueError(f"{argument} has {', '.join(map(repr, unknown))}, which {owner} does not take; "
                         f"it takes: {', '.join(names)}")


# The keyword arguments of `TrainConfig.distillation_kwargs` (`bnnzoo.distillation.DistillationLoss`'s).
DISTILLATION_KEYS = ("temperature", "alpha", "from_logits")

# Keys a recipe file may hold besides TrainConfig fields (used by bnnzoo.pretrained).
RECIPE_EXTRA_KEYS = ("artifact", "description")


def read_recipe(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No recipe file at {path}")
    if path.suffix == ".json":
        values = json.loads(path.read_text())
    elif path.suffix == ".toml":
        import tomllib

        values = tomllib.loads(path.read_text())
    else:
        raise ValueError(f"Recipe files are .json or .toml, got {path.name}")
    if not isinstance(values, dict):
        raise ValueError(f"recipe {path} must hold an object of TrainConfig fields "
                         f"({{\"epochs\": 10, ...}}), got a {type(values).__name__}")
    return values


@STRATEGIES.register("default")
def _default_strategy() -> tf.distribute.Strategy:
    return tf.distribute.get_strategy()


@STRATEGIES.register("mirrored")
def _mirrored_strategy() -> tf.distribute.Strategy:
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])


# Seconds a multi-worker run waits for every worker of TF_CONFIG before it gives up
# (TensorFlow's own default is to wait for ever); `bnnzoo train --connect-timeout`.
CONNECT_TIMEOUT_ENV = "BNNZOO_CONNECT_TIMEOUT"
DEFAULT_CONNECT_TIMEOUT_S = 120.0


def _tf_config() -> dict[str, Any]:
    """TF_CONFIG, checked: a JSON object with a `cluster` of address lists and a `task`."""
    text = os.environ.get("TF_CONFIG")
    if text is None:
        raise ValueError("strategy 'multiworker' needs the TF_CONFIG environment variable "
                         '({"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}})')
    try:
        value = json.loads(text)
    except ValueError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON ({err}): {text[:80]!r}") from None
    cluster = value.get("cluster") if isinstance(value, dict) else None
    task = value.get("task") if isinstance(value, dict) else None
    if (not isinstance(cluster, dict) or not cluster
            or not all(isinstance(v, list) and all(isinstance(a, str) for a in v) for v in cluster.values())
            or not isinstance(task, dict) or task.get("type") not in cluster
            or not isinstance(task.get("index"), int)
            or not 0 <= task["index"] < len(cluster[task["type"]])):
        raise ValueError('TF_CONFIG must be {"cluster": {"worker": ["host:port", ...]}, "task": {"type": '
                         f'"worker", "index": i}}}} with the task in the cluster, got {text[:120]!r}')
    return value


def _connect_timeout() -> float:
    text = os.environ.get(CONNECT_TIMEOUT_ENV)
    if text is None:
        return DEFAULT_CONNECT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{CONNECT_TIMEOUT_ENV} must be a number of seconds > 0, got {text!r}")
    return value


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _unreachable(addresses) -> list[str]:
    """The `host:port` addresses that refuse or ignore a TCP connection now."""
    import socket

    down = []
    for address in addresses:
        try:
            socket.create_connection(_split_address(address), timeout=1).close()
        except (OSError, ValueError):
            down.append(address)
    return down


def _wait_for_peers(me: str, peers: list[str], timeout: float) -> None:
    """Wait, at most `timeout` seconds, until every peer's port accepts a connection;
    `ConnectionError` naming those that never did.

    TensorFlow's constructor waits for the other workers in a collective op, in C++,
    with no time limit (its `timeout_seconds` does not bound the group's forming) and
    with Python's signal handlers unable to run (SIGTERM and Ctrl-C do nothing). This
    wait is a Python loop, so both work during it. Meanwhile this worker's own port
    accepts connections (a plain listening socket, closed before TensorFlow binds the
    port), so that the other workers' waits see it.
    """
    import socket

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("", _split_address(me)[1]))
        listener.listen(64)
    except (OSError, ValueError):  # taken (e.g. by this process's own server already): nothing to show
        listener.close()
        listener = None
    deadline = time.monotonic() + timeout
    try:
        pending = _unreachable(peers)
        while pending and time.monotonic() < deadline:
            time.sleep(0.25)
            pending = _unreachable(pending)
    finally:
        if listener is not None:
            listener.close()
    if pending:
        raise ConnectionError(f"multiworker: no answer from worker(s) {', '.join(pending)} of TF_CONFIG within "
                              f"{timeout:g} s; start them, fix TF_CONFIG, or wait longer "
                              f"(--connect-timeout / ${CONNECT_TIMEOUT_ENV})")


@STRATEGIES.register("multiworker")
def _multiworker_strategy() -> tf.distribute.Strategy:
    tf_config, timeout = _tf_config(), _connect_timeout()
    task = tf_config["task"]
    me = tf_config["cluster"][task["type"]][task["index"]]
    peers = [a for kind in tf_config["cluster"].values() for a in kind if a != me]
    print(f"Waiting up to {timeout:g} s for the other workers of TF_CONFIG ({', '.join(peers) or 'none'}; "
          f"--connect-timeout / ${CONNECT_TIMEOUT_ENV})", flush=True)
    _wait_for_peers(me, peers, timeout)
    return tf.distribute.MultiWorkerMirroredStrategy()


def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    """`default` (one device), `mirrored` (all local GPUs, else all logical CPUs) or
    `multiworker` (`MultiWorkerMirroredStrategy`, configured by `TF_CONFIG`)."""
    return STRATEGIES.get(name)()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this worker writes the run directory (always, except on non-chief
    workers of a `MultiWorkerMirroredStrategy`)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief" or task_type is None:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief

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
        import numpy as np
        from bnnzoo.training import learning_rate_schedule

        lr = learning_rate_schedule("halving", 1e-2, epochs=10, steps_per_epoch=100)
        every = max(1, round(0.3 * 10)) * 100  # steps between halvings
        steps = [0, every - 1, every, 2 * every, 999]
        assert np.allclose([float(lr(s)) for s in steps], [1e-2 * 0.5 ** (s // every) for s in steps])
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
