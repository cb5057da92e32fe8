"""Optimizers for binarized networks and the registry that names them.

`get_optimizer(name, learning_rate, **kwargs)` builds the optimizer that the
training routine, the CLI and the tuner use. Binary-aware optimizers are wrapped in
`lq.optimizers.CaseOptimizer` so that real-valued variables (batch norm, biases)
get Adam with `learning_rate` and binary variables get the binary optimizer.

| name | binary variables | real-valued variables |
| --- | --- | --- |
| `adam` | Adam on latent weights (straight-through) | Adam |
| `bop` | larq `Bop(threshold, gamma)` | Adam |
| `bop2ndorder` | `Bop2ndOrder(threshold, gamma, sigma, epsilon, bias_correction)` | Adam |
"""

from __future__ import annotations

import math
from typing import Any, Callable

import larq as lq
import tensorflow as tf

__all__ = [
    "PAPER_SCHEDULES",
    "SCHEDULES",
    "adam",
    "bop",
    "get_optimizer",
    "list_optimizers",
    "paper_schedule",
    "register_optimizer",
]

_OPTIMIZERS: dict[str, Callable[..., Any]] = {}


def register_optimizer(name: str):
    """Register `builder(learning_rate, **kwargs) -> optimizer` under `name`.

    The builder may carry a `search_space(hp)` attribute used by the tuner.
    """

    def add(builder):
        if name in _OPTIMIZERS and _OPTIMIZERS[name] is not builder:
            raise ValueError(f"optimizer {name!r} is already registered")
        _OPTIMIZERS[name] = builder
        return builder

    return add


def list_optimizers() -> list[str]:
    """Sorted names of every registered optimizer."""
    return sorted(_OPTIMIZERS)


def optimizer_builder(name: str) -> Callable[..., Any]:
    try:
        return _OPTIMIZERS[name]
    except KeyError:
        raise ValueError(
            f"Unknown optimizer {name!r}. Valid names: {', '.join(list_optimizers())}"
        ) from None


def get_optimizer(name: str, learning_rate: float = 1e-3, **kwargs):
    """Build the registered optimizer `name`.

    Args:
        name: a name from `list_optimizers()`.
        learning_rate: learning rate of the real-valued variables (and of the latent
            weights for `adam`); must be > 0.
        **kwargs: the optimizer's own hyperparameters (e.g. `threshold`, `gamma`).
    """
    builder = optimizer_builder(name)
    if not isinstance(learning_rate, tf.keras.optimizers.schedules.LearningRateSchedule):
        if not (math.isfinite(learning_rate) and learning_rate > 0):
            raise ValueError(f"learning_rate must be a finite number > 0, got {learning_rate}")
    return builder(learning_rate, **kwargs)


def _adam(learning_rate, beta_1: float = 0.9, beta_2: float = 0.999):
    for name, value in (("beta_1", beta_1), ("beta_2", beta_2)):
        if not (isinstance(value, (int, float)) and 0 <= value < 1):
            raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return tf.keras.optimizers.legacy.Adam(learning_rate, beta_1=beta_1, beta_2=beta_2)


@register_optimizer("adam")
def adam(learning_rate=1e-3, beta_1: float = 0.9, beta_2: float = 0.999):
    """Adam on every variable: latent binary weights are trained straight-through.

    `beta_1`, `beta_2`: Adam's moment rates (Hyper-BinaryNet's recipe uses 0.5, 0.99).
    """
    return _adam(learning_rate, beta_1, beta_2)


# Schedules of the Bop2ndOrder authors' CIFAR-10 recipe (linear polynomial decay over
# the run; github.com/CuauSuarez/Bop2ndOrder, models/*_batch.py; shared/papers.md):
# name -> (start, end). `bop` uses the same threshold and gamma, so a Bop vs
# Bop2ndOrder comparison differs only by the second moment.
PAPER_SCHEDULES = {
    "threshold": (1e-5, 1e-8),
    "gamma": (1e-2, 1e-5),
    "sigma": (1e-7, 1e-2),
}
SCHEDULES = ("constant", "paper")


def paper_schedule(name: str, decay_steps: int | None):
    """The authors' linear `PolynomialDecay` of hyperparameter `name` over `decay_steps`.

    !!! example
        ```python
        from bnnzoo.optimizers import paper_schedule

        gamma = paper_schedule("gamma", decay_steps=1000)
        print(float(gamma(0)), float(gamma(1000)))  # 0.01 1e-05
        ```
    """
    if name not in PAPER_SCHEDULES:
        raise ValueError(f"Unknown scheduled hyperparameter {name!r}. Valid names: "
                         f"{', '.join(PAPER_SCHEDULES)}")
    if not (isinstance(decay_steps, (int, float)) and decay_steps >= 1):
        raise ValueError(
            f"decay_steps must be an integer >= 1 for schedule='paper', got {decay_steps!r} "
            "(bnnzoo.training.train passes the run length)"
        )
    start, end = PAPER_SCHEDULES[name]
    return tf.keras.optimizers.schedules.PolynomialDecay(start, int(decay_steps), end, power=1.0)


def check_schedule(schedule: str) -> str:
    """`schedule` if it is one of `SCHEDULES`, else a `ValueError` naming them."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    return schedule


@register_optimizer("bop")
def bop(learning_rate=1e-3, threshold: float = 1e-8, gamma: float = 1e-4,
        schedule: str = "constant", decay_steps: int | None = None):
    """larq's `Bop` on binary variables, Adam on the rest (Helwegen et al., 2019).

    `schedule="paper"` replaces `threshold` and `gamma` by the Bop2ndOrder authors'
    linear decays (τ 1e-5 → 1e-8, γ 1e-2 → 1e-5 over `decay_steps`; `train` passes
    the run length), the baseline schedule of their comparison.
    """
    if check_schedule(schedule) == "paper":
        threshold, gamma = paper_schedule("threshold", decay_steps), paper_schedule("gamma", decay_steps)
    else:
        if not threshold >= 0:
            raise ValueError(f"threshold must be >= 0, got {threshold}")
        if not 0 < gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    return lq.optimizers.CaseOptimizer(
        (lq.optimizers.Bop.is_binary_variable, lq.optimizers.Bop(threshold=threshold, gamma=gamma)),
        default_optimizer=_adam(learning_rate),
    )


def _bop_search_space(hp):
    """Tuner space of `bop` (see `bnnzoo.tuning`): log-scaled threshold and gamma."""
    return {
        "threshold": hp.Float("threshold", 1e-10, 1e-5, sampling="log", default=1e-8),
        "gamma": hp.Float("gamma", 1e-5, 1e-2, sampling="log", default=1e-4),
    }


bop.search_space = _bop_search_space


from bnnzoo.optimizers.bop2ndorder import Bop2ndOrder, bop2ndorder  # noqa: E402,F401
from bnnzoo.optimizers.fsg import FSG, fsg, fsg_attention  # noqa: E402,F401
