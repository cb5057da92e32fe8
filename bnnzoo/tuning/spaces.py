"""Search-space presets and the per-object spaces they are built from.

A preset (`SearchSpace`) says *which* choices are searched: the optimizers, the
quantizers, and whether the learning rate, width and batch size are. What each
optimizer or quantizer can vary is declared once, next to the object, by its
`search_space(hp)` (see `bnnzoo.tuning`); `object_search_space` finds it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from bnnzoo import optimizers as _optimizers
from bnnzoo import quantizers as _quantizers
from bnnzoo.registry import Registry

__all__ = [
    "SEARCH_SPACES",
    "SearchSpace",
    "get_search_space",
    "list_search_spaces",
    "object_search_space",
]

# Objects bnnzoo reuses from larq cannot carry a `search_space` method; their
# spaces live here, keyed by registry name.
_FOREIGN_SPACES: dict[str, Callable[[Any], dict[str, Any]]] = {
    # SwishSign(beta): the sign-Swish steepness of BNN+ (larq default 5).
    "swish_sign": lambda hp: {"beta": hp.Float("beta", 1.0, 20.0, sampling="log", default=5.0)},
}


def object_search_space(obj, name: str) -> Callable[[Any], dict[str, Any]] | None:
    """The `search_space(hp)` callable of a registered quantizer class or
    `bnnzoo.optimizers.OptimizerSpec`, or `None`."""
    space = getattr(obj, "search_space", None)
    if callable(space):
        return space
    return _FOREIGN_SPACES.get(name)


@dataclass(frozen=True)
class SearchSpace:
    """A named preset: which choices a search varies.

    `optimizers`/`quantizers` of `None` mean every registered one (read from the
    registries when the search is built, so new ones join without edits here).
    `learning_rates` is a `(low, high)` log-scaled range or `None` (fixed);
    `widths` and `batch_sizes` are choice lists or `None` (fixed).
    """

    name: str
    description: str
    optimizers: tuple[str, ...] | None = ("adam",)
    quantizers: tuple[str, ...] | None = ("ste_sign",)
    learning_rates: tuple[float, float] | None = None
    widths: tuple[float, ...] | None = None
    batch_sizes: tuple[int, ...] | None = None

    def resolve(self, optimizers=None, quantizers=None) -> "SearchSpace":
        """This preset with registry lookups done and optional user restrictions.

        `optimizers`/`quantizers` (lists of names) replace the preset's lists.
        Raises `ValueError` for unregistered names.
        """
        opts = _names(optimizers or self.optimizers, _optimizers.list_optimizers(), "optimizer", self.name)
        quants = _names(quantizers or self.quantizers, _quantizers.list_quantizers(), "quantizer", self.name)
        return dataclasses.replace(self, optimizers=opts, quantizers=quants)


def _names(wanted, registered: list[str], kind: str, space: str) -> tuple[str, ...]:
    if wanted is None:
        return tuple(registered)
    missing = [n for n in wanted if n not in registered]
    if missing:
        raise ValueError(
            f"search space {space!r} needs {kind} {', '.join(map(repr, missing))}, which is not "
            f"registered. Registered {kind}s: {', '.join(registered)}"
        )
    return tuple(dict.fromkeys(wanted))


SEARCH_SPACES: Registry[SearchSpace] = Registry("search space")
for _space in (
        SearchSpace(
            "bop2ndorder",
            "Bop2ndOrder's own hyperparameters (the paper's ablation: log-scaled threshold tau, "
            "rates gamma and sigma, bias-correction mode); quantizer, learning rate, width, "
            "batch size fixed",
            optimizers=("bop2ndorder",),
        ),
        SearchSpace(
            "quantizers",
            "every registered quantizer (gradient approximation) with its own hyperparameters; "
            "optimizer, learning rate, width, batch size fixed",
            optimizers=("adam",),
            quantizers=None,
        ),
        SearchSpace(
            "full",
            "every registered optimizer and quantizer with their own hyperparameters, plus the "
            "learning rate of real-valued variables, width and batch size",
            optimizers=None,
            quantizers=None,
            learning_rates=(1e-4, 1e-2),
            widths=(0.5, 1.0, 2.0),
            batch_sizes=(32, 64, 128),
        ),
):
    SEARCH_SPACES.register(_space.name, _space)


def list_search_spaces() -> list[str]:
    """Sorted names of the search-space presets."""
    return SEARCH_SPACES.names()


def get_search_space(name: str) -> SearchSpace:
    """The preset `name`; `ValueError` listing the valid names otherwise."""
    return SEARCH_SPACES.get(name)
