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

__all__ = ["get_optimizer", "list_optimizers", "register_optimizer", "adam", "bop"]

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


def _adam(learning_rate):
    return tf.keras.optimizers.legacy.Adam(learning_rate)


@register_optimizer("adam")
def adam(learning_rate=1e-3):
    """Adam on every variable: latent binary weights are trained straight-through."""
    return _adam(learning_rate)


@register_optimizer("bop")
def bop(learning_rate=1e-3, threshold: float = 1e-8, gamma: float = 1e-4):
    """larq's `Bop` on binary variables, Adam on the rest (Helwegen et al., 2019)."""
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
