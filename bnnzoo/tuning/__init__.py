"""Hyperparameter search over quantizers, optimizers and their settings (keras-tuner).

`BNNHyperModel` turns a keras-tuner `HyperParameters` object into a bnnzoo
`TrainConfig` and trains it with `bnnzoo.training.train`, so every trial is an
ordinary run directory; `make_tuner` gives keras-tuner's random, Hyperband and
Bayesian tuners over it; `run_search` (the `bnnzoo tune` command) runs a whole
search, locally or in keras-tuner's chief/worker mode (`bnnzoo.tuning.distributed`),
and writes a ranked table, a plot and the best run.

# The `search_space(hp)` contract

Search spaces are declared once, next to the object they belong to, never in the
tuner. The choices come from the registries, so an optimizer or quantizer that
registers itself is searchable without edits here.

* **Quantizers**: the class registered with `bnnzoo.quantizers.register_quantizer`
  may define a classmethod `search_space(cls, hp) -> dict`.
* **Optimizers**: the registration may give one,
  `@bnnzoo.optimizers.register_optimizer(name, search_space=f)` with `f(hp) -> dict`
  (the `search_space` field of its `OptimizerSpec`).

The function declares its hyperparameters on `hp` (`hp.Float`, `hp.Int`,
`hp.Choice`, `hp.Boolean`) and returns the **constructor keyword arguments**
built from their values, e.g.
`{"threshold": hp.Float("threshold", 1e-8, 1e-4, sampling="log", default=1e-6)}`.
Rules:

1. Use plain names (`"threshold"`, `"beta"`); the tuner opens a name scope
   (`bop2ndorder/threshold`) and a `conditional_scope` on the `optimizer` /
   `quantizer` choice around the call, so names of different objects never
   clash and a hyperparameter is only active when its object is chosen.
2. `hp` values are JSON scalars: map them to Python values yourself (e.g.
   `hp.Choice("bias_correction", ["adam", "constant", "none"])` then `"none"` -> `None`).
3. Give `default=` the value the constructor uses by default, so a search's
   default point is the object as shipped; use `sampling="log"` for rates and thresholds.
4. Objects without `search_space` get no extra hyperparameters. larq classes
   bnnzoo reuses (`swish_sign`) have their space in `bnnzoo.tuning.spaces`.

!!! example
    ```python
    from bnnzoo.training import TrainConfig
    from bnnzoo.tuning import run_search

    run_search(TrainConfig(model="binarynet_mlp", dataset="digits", epochs=1,
                           model_kwargs={"units": 32, "hidden_layers": 1}),
               space="quantizers", tuner="random", max_trials=2, out="runs/tune-demo")
    ```
"""

from bnnzoo.tuning.hypermodel import OBJECTIVE, BNNHyperModel
from bnnzoo.tuning.search import SearchResult, run_search
from bnnzoo.tuning.spaces import (
    SEARCH_SPACES,
    SearchSpace,
    get_search_space,
    list_search_spaces,
    object_search_space,
)
from bnnzoo.tuning.tuners import TUNERS, list_tuners, make_tuner, oracle_seed

__all__ = [
    "BNNHyperModel",
    "OBJECTIVE",
    "SEARCH_SPACES",
    "SearchResult",
    "SearchSpace",
    "TUNERS",
    "get_search_space",
    "list_search_spaces",
    "list_tuners",
    "make_tuner",
    "oracle_seed",
    "object_search_space",
    "run_search",
]
