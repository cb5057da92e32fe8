"""The optimizer registry (`OptimizerSpec`, `register_optimizer`, `BuilderFlag`), and
the `adam` and `bop` builders. The protocol is described in `bnnzoo.optimizers`.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Sequence

import larq as lq
import tensorflow as tf

from bnnzoo.optimizers.flip_rate import FlipRate
from bnnzoo.registry import Registry
from bnnzoo.validation import check_number, check_positive

__all__ = [
    "BuilderFlag",
    "OptimizerSpec",
    "PAPER_SCHEDULES",
    "SCHEDULES",
    "adam",
    "bop",
    "bop_family_callbacks",
    "builder_flags",
    "check_schedule",
    "helwegen_gamma_schedule",
    "get_optimizer",
    "list_optimizers",
    "optimizer_builder",
    "optimizer_spec",
    "paper_schedule",
    "real_valued_adam",
    "register_optimizer",
]


@dataclasses.dataclass(frozen=True)
class BuilderFlag:
    """A `bnnzoo train --<name>` flag that sets the builder keyword argument `name`.

    Args:
        name: the builder's keyword argument (`bias_correction` -> `--bias-correction`).
        help: the flag's help text.
        low: smallest allowed number (`None`: the flag takes a string, see `choices`).
        low_open: exclude `low` itself.
        choices: allowed strings (`"none"` becomes `None`).
    """

    name: str
    help: str
    low: float | None = 0.0
    low_open: bool = True
    choices: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """A registered optimizer: how to build it and what a run with it needs, as data.

    `bnnzoo.training.train`, the tuner and the CLI read these fields; nothing is
    looked up on the builder function itself.

    Args:
        name: the registry name (`--optimizer NAME`, `TrainConfig.optimizer`).
        builder: `builder(learning_rate, **kwargs) -> optimizer`.
        search_space: `search_space(hp) -> dict` of builder kwargs drawn from a
            keras-tuner `hp` (`bnnzoo.tuning`), or `None` (nothing to search).
        training_callbacks: `training_callbacks(model, config, steps_per_epoch) ->
            list[Callback]` that every run with this optimizer attaches (`bop`,
            `bop2ndorder`: the binary-variable check and `FlipRate`), or `None`.
        wrap_model: `wrap_model(model) -> model`, applied before compiling (FSG's own
            training step, `bnnzoo.fsg.wrap`), or `None` (the model as it is).
        cli_flags: `BuilderFlag`s that `bnnzoo train` offers as `--<name>` flags.

    !!! example
        ```python
        import larq as lq
        from bnnzoo.optimizers import optimizer_spec

        spec = optimizer_spec("bop2ndorder")
        assert spec.training_callbacks is optimizer_spec("bop").training_callbacks
        assert spec.wrap_model is None and optimizer_spec("fsg").wrap_model is not None
        assert isinstance(spec.build(1e-3, threshold=1e-6), lq.optimizers.CaseOptimizer)
        assert [f.name for f in spec.cli_flags][:2] == ["threshold", "gamma"]  # bop's flags, and more
        assert all(spec.accepts(f.name) for f in spec.cli_flags)
        ```
    """

    name: str
    builder: Callable[..., Any]
    search_space: Callable[[Any], dict[str, Any]] | None = None
    training_callbacks: Callable[..., Sequence[tf.keras.callbacks.Callback]] | None = None
    wrap_model: Callable[[tf.keras.Model], tf.keras.Model] | None = None
    cli_flags: tuple[BuilderFlag, ...] = ()

    def __post_init__(self):
        if not callable(self.builder):
            raise ValueError(f"builder of optimizer {self.name!r} must be callable, got {self.builder!r}")
        for hook, value in (("search_space", self.search_space), ("wrap_model", self.wrap_model),
                            ("training_callbacks", self.training_callbacks)):
            if value is not None and not callable(value):
                raise ValueError(f"{hook} of optimizer {self.name!r} must be callable or None, got {value!r}")
        flags = tuple(self.cli_flags)
        bad = [f for f in flags if not isinstance(f, BuilderFlag)]
        if bad:
            raise ValueError(f"cli_flags of optimizer {self.name!r} must be BuilderFlag objects, got {bad[0]!r}")
        object.__setattr__(self, "cli_flags", flags)

    def build(self, learning_rate: float = 1e-3, **kwargs):
        """The optimizer: `builder(learning_rate, **kwargs)`, `learning_rate` > 0 (or a schedule)."""
        if not isinstance(learning_rate, tf.keras.optimizers.schedules.LearningRateSchedule):
            check_positive("learning_rate", learning_rate)
        return self.builder(learning_rate, **kwargs)

    def accepts(self, argument: str) -> bool:
        """Whether the builder takes the keyword argument `argument` (e.g. `decay_steps`)."""
        return argument in inspect.signature(self.builder).parameters

    def callbacks(self, model: tf.keras.Model, config, steps_per_epoch: int) -> list:
        """The callbacks a run of `config` with this optimizer attaches (none if undeclared)."""
        if self.training_callbacks is None:
            return []
        return list(self.training_callbacks(model, config, steps_per_epoch))

    def wrap(self, model: tf.keras.Model) -> tf.keras.Model:
        """`model` as this optimizer trains it: `wrap_model(model)`, or `model` unchanged."""
        return model if self.wrap_model is None else self.wrap_model(model)


OPTIMIZERS: Registry[OptimizerSpec] = Registry("optimizer")


def register_optimizer(name: str, *, search_space=None, training_callbacks=None, wrap_model=None,
                       cli_flags: Sequence[BuilderFlag] = ()):
    """Register `builder(learning_rate, **kwargs) -> optimizer` as an `OptimizerSpec`.

    One statement: decorate the builder, giving what its runs need as keyword
    arguments (the fields of `OptimizerSpec`). The decorated function is returned
    unchanged.

    Args:
        name: the registry name.
        search_space: see `OptimizerSpec`.
        training_callbacks: see `OptimizerSpec`.
        wrap_model: see `OptimizerSpec`.
        cli_flags: see `OptimizerSpec`.

    !!! example
        ```python
        import tensorflow as tf
        from bnnzoo.optimizers import list_optimizers, optimizer_spec, register_optimizer
        from bnnzoo.optimizers.builders import OPTIMIZERS

        @register_optimizer("sgd_example", search_space=lambda hp: {"momentum": hp.Float("momentum", 0.0, 0.99)})
        def sgd_example(learning_rate=1e-2, momentum=0.9):
            return tf.keras.optimizers.legacy.SGD(learning_rate, momentum=momentum)

        assert "sgd_example" in list_optimizers()
        assert optimizer_spec("sgd_example").build(0.1).momentum == 0.9
        assert OPTIMIZERS.unregister("sgd_example").builder is sgd_example  # keep the registry as shipped
        ```
    """

    def add(builder):
        OPTIMIZERS.register(name, OptimizerSpec(name, builder, search_space=search_space,
                                                training_callbacks=training_callbacks,
                                                wrap_model=wrap_model, cli_flags=tuple(cli_flags)))
        return builder

    return add


def list_optimizers() -> list[str]:
    """Sorted names of every registered optimizer."""
    return OPTIMIZERS.names()


def optimizer_spec(name: str) -> OptimizerSpec:
    """The `OptimizerSpec` registered under `name`; `ValueError` listing the valid names otherwise."""
    return OPTIMIZERS.get(name)


def optimizer_builder(name: str) -> Callable[..., Any]:
    """The builder function of `optimizer_spec(name)`."""
    return optimizer_spec(name).builder


def builder_flags() -> dict[str, tuple[BuilderFlag, list[str]]]:
    """Every registered optimizer's `cli_flags`: flag name -> (the flag, optimizer names)."""
    flags: dict[str, tuple[BuilderFlag, list[str]]] = {}
    for opt_name, spec in OPTIMIZERS.items():
        for flag in spec.cli_flags:
            flags.setdefault(flag.name, (flag, []))[1].append(opt_name)
    return flags


def get_optimizer(name: str, learning_rate: float = 1e-3, **kwargs):
    """Build the registered optimizer `name`.

    Args:
        name: a name from `list_optimizers()`.
        learning_rate: learning rate of the real-valued variables (and of the latent
            weights for `adam`); must be > 0.
        **kwargs: the optimizer's own hyperparameters (e.g. `threshold`, `gamma`).
    """
    return optimizer_spec(name).build(learning_rate, **kwargs)


def real_valued_adam(learning_rate, beta_1: float = 0.9, beta_2: float = 0.999):
    """The legacy Adam every builder gives the real-valued variables (and `adam` all)."""
    for name, value in (("beta_1", beta_1), ("beta_2", beta_2)):
        check_number(name, value, low=0.0, high=1.0, high_open=True)
    return tf.keras.optimizers.legacy.Adam(learning_rate, beta_1=beta_1, beta_2=beta_2)


@register_optimizer("adam")
def adam(learning_rate=1e-3, beta_1: float = 0.9, beta_2: float = 0.999):
    """Adam on every variable: latent binary weights are trained straight-through.

    `beta_1`, `beta_2`: Adam's moment rates (Hyper-BinaryNet's recipe uses 0.5, 0.99).
    """
    return real_valued_adam(learning_rate, beta_1, beta_2)


# Schedules of the Bop2ndOrder authors' CIFAR-10 recipe (linear polynomial decay over
# the run; github.com/CuauSuarez/Bop2ndOrder, models/*_batch.py; shared/papers.md):
# name -> (start, end).
PAPER_SCHEDULES = {
    "threshold": (1e-5, 1e-8),
    "gamma": (1e-2, 1e-5),
    "sigma": (1e-7, 1e-2),
}
# Bop's own recipe (Helwegen et al. 2019, section 5.2; the `bop_sec52` hyperparameters
# of the Bop baseline in the Bop2ndOrder authors' repo): tau 1e-8 constant, gamma 1e-4
# x0.1 every 100 of 500 epochs, i.e. after every HELWEGEN_DECAY_EVERY of the run.
HELWEGEN_DECAY_EVERY = 0.2
#   constant: the given threshold/gamma(/sigma) throughout;
#   paper:    the Bop2ndOrder authors' linear decays (PAPER_SCHEDULES), times the
#             builder's `*_scale` factors;
#   helwegen: Bop's own recipe: `threshold` constant, `gamma` x0.1 after every 20 %
#             of the run (staircase).
SCHEDULES = ("constant", "paper", "helwegen")


def paper_schedule(name: str, decay_steps: int | None, scale: float = 1.0):
    """The authors' linear `PolynomialDecay` of hyperparameter `name` over `decay_steps`,
    both ends multiplied by `scale` (>= 0; e.g. a search over the schedule's level,
    or `scale=0` for a zero threshold).

    !!! example
        ```python
        import math
        from bnnzoo.optimizers import paper_schedule

        gamma = paper_schedule("gamma", decay_steps=1000)
        assert math.isclose(gamma(0), 1e-2, rel_tol=1e-6) and math.isclose(gamma(1000), 1e-5, rel_tol=1e-6)
        assert math.isclose(paper_schedule("gamma", 1000, scale=10.0)(0), 0.1, rel_tol=1e-6)
        ```
    """
    if name not in PAPER_SCHEDULES:
        raise ValueError(f"Unknown scheduled hyperparameter {name!r}. Valid names: "
                         f"{', '.join(PAPER_SCHEDULES)}")
    _check_decay_steps(decay_steps, "paper")
    scale = check_number(f"{name}_scale", scale, low=0.0)
    start, end = PAPER_SCHEDULES[name]
    return tf.keras.optimizers.schedules.PolynomialDecay(
        start * scale, int(decay_steps), end * scale, power=1.0)


def helwegen_gamma_schedule(gamma: float, decay_steps: int | None):
    """Bop's own gamma schedule: `gamma` x0.1 after every 20 % of `decay_steps` steps
    (Helwegen et al.: x0.1 every 100 of 500 epochs), as a staircase `ExponentialDecay`.

    !!! example
        ```python
        import numpy as np
        from bnnzoo.optimizers.builders import helwegen_gamma_schedule

        gamma = helwegen_gamma_schedule(1e-4, decay_steps=1000)
        values = [float(gamma(step)) for step in (0, 199, 200, 999)]
        assert np.allclose(values, [1e-4, 1e-4, 1e-5, 1e-8], rtol=1e-6, atol=0)
        ```
    """
    _check_decay_steps(decay_steps, "helwegen")
    gamma = check_number("gamma", gamma, low=0.0, high=1.0, low_open=True)
    every = max(1, int(round(HELWEGEN_DECAY_EVERY * int(decay_steps))))
    return tf.keras.optimizers.schedules.ExponentialDecay(gamma, every, 0.1, staircase=True)


def _check_decay_steps(decay_steps, schedule: str) -> None:
    if not (isinstance(decay_steps, (int, float)) and not isinstance(decay_steps, bool)
            and decay_steps >= 1):
        raise ValueError(
            f"decay_steps must be an integer >= 1 for schedule={schedule!r}, got {decay_steps!r} "
            "(bnnzoo.training.train passes the run length)"
        )


def check_schedule(schedule: str, allowed: tuple[str, ...] = SCHEDULES) -> str:
    """`schedule` if it is one of `allowed`, else a `ValueError` naming them."""
    if schedule not in allowed:
        raise ValueError(f"schedule must be one of {', '.join(allowed)}, got {schedule!r}")
    return schedule


def _bop_search_space(hp):
    """Tuner space of `bop` (see `bnnzoo.tuning`): log-scaled threshold and gamma."""
    return {
        "threshold": hp.Float("threshold", 1e-10, 1e-5, sampling="log", default=1e-8),
        "gamma": hp.Float("gamma", 1e-5, 1e-2, sampling="log", default=1e-4),
    }


def bop_family_callbacks(model, config, steps_per_epoch) -> list:
    """`training_callbacks` of `bop` and `bop2ndorder`: fail early when the model has no
    binary variables (the optimizer would train nothing), else log flip rates (`FlipRate`)."""
    if not any(lq.optimizers.Bop.is_binary_variable(v) for v in model.trainable_variables):
        raise ValueError(
            f"optimizer {config.optimizer!r} flips binary variables only (precision == 1, "
            f"the kernels of larq layers with a 1-bit kernel_quantizer), but model "
            f"{config.model!r} with kernel_quantizer "
            f"{config.kernel_quantizer or config.quantizer!r} has none; use a binary "
            "kernel quantizer (e.g. ste_sign) or --optimizer adam."
        )
    return [FlipRate()]


THRESHOLD_FLAG = BuilderFlag("threshold", "Bop/Bop2ndOrder flip threshold tau", low=0.0, low_open=False)
GAMMA_FLAG = BuilderFlag("gamma", "Bop/Bop2ndOrder first-moment rate")


@register_optimizer("bop", search_space=_bop_search_space, training_callbacks=bop_family_callbacks,
                    cli_flags=(THRESHOLD_FLAG, GAMMA_FLAG))
def bop(learning_rate=1e-3, threshold: float = 1e-8, gamma: float = 1e-4,
        schedule: str = "constant", decay_steps: int | None = None,
        threshold_scale: float = 1.0, gamma_scale: float = 1.0):
    """larq's `Bop` on binary variables, Adam on the rest (Helwegen et al., 2019).

    `schedule`:

    - `"constant"`: `threshold` and `gamma` throughout;
    - `"helwegen"`: Bop's own recipe (Helwegen et al. section 5.2, the Bop baseline's
      `bop_sec52` hyperparameters in the Bop2ndOrder authors' repo): `threshold`
      constant (1e-8 there), `gamma` (1e-4 there) x0.1 after every 20 % of the run
      (100 of 500 epochs), `decay_steps` being the run length that `train` passes;
    - `"paper"`: the Bop2ndOrder authors' linear decays (τ 1e-5 → 1e-8, γ 1e-2 → 1e-5
      over `decay_steps`), times `threshold_scale` / `gamma_scale`.
    """
    if check_schedule(schedule) == "paper":
        threshold = paper_schedule("threshold", decay_steps, threshold_scale)
        gamma = paper_schedule("gamma", decay_steps, gamma_scale)
    else:
        threshold = check_number("threshold", threshold, low=0.0)
        gamma = (helwegen_gamma_schedule(gamma, decay_steps) if schedule == "helwegen"
                 else check_number("gamma", gamma, low=0.0, high=1.0, low_open=True))
    return lq.optimizers.CaseOptimizer(
        (lq.optimizers.Bop.is_binary_variable, lq.optimizers.Bop(threshold=threshold, gamma=gamma)),
        default_optimizer=real_valued_adam(learning_rate),
    )
