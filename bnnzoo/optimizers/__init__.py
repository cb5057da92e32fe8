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
| `fsg`, `fsg_attention` | `FSG`: Adam on latent weights with learned gradients (`bnnzoo.fsg`) | Adam |
| `fsg_authors` | `FSGAuthors`: the form of the FSG authors' code (latent update by the fast gradient only, generators with their own Adams) | Adam |

An optimizer is registered as data: `@register_optimizer(name, **fields)` on a builder
`builder(learning_rate, **kwargs) -> optimizer` stores an `OptimizerSpec` whose fields
say what a run with it needs. `bnnzoo.training.train`, the tuner and the CLI read
these fields (`optimizer_spec(name)`), never the optimizer module or the builder:

| field | called as | used by |
| --- | --- | --- |
| `search_space` | `search_space(hp) -> dict` of builder kwargs | `bnnzoo.tuning` |
| `training_callbacks` | `training_callbacks(model, config, steps_per_epoch) -> list[Callback]` | `train` (`bop`, `bop2ndorder`: `FlipRate`) |
| `wrap_model` | `wrap_model(model) -> model`, before compile | `train` (`fsg`: its training step) |
| `cli_flags` | a tuple of `BuilderFlag`: `bnnzoo train --<name>` flags for builder kwargs | `bnnzoo.cli` |

!!! example
    ```python
    from bnnzoo.optimizers import applying_optimizers, get_optimizer, optimizer_spec

    opt = get_optimizer("bop2ndorder", 1e-3, threshold=1e-6, gamma=1e-3)
    # a CaseOptimizer: Bop2ndOrder on the binary variables, Adam on the rest
    assert [type(o).__name__ for o in applying_optimizers(opt)] == ["Bop2ndOrder", "Adam"]
    spec = optimizer_spec("bop2ndorder")
    assert "threshold" in [f.name for f in spec.cli_flags]
    assert all(spec.accepts(f.name) for f in spec.cli_flags)  # every --flag is a builder argument
    ```
"""

from bnnzoo.fsg import FSG, FSGAuthors
from bnnzoo.optimizers.bop2ndorder import BIAS_CORRECTIONS, Bop2ndOrder, bop2ndorder
from bnnzoo.optimizers.builders import (
    PAPER_SCHEDULES,
    SCHEDULES,
    BuilderFlag,
    OptimizerSpec,
    adam,
    bop,
    builder_flags,
    check_schedule,
    get_optimizer,
    list_optimizers,
    optimizer_builder,
    optimizer_spec,
    paper_schedule,
    register_optimizer,
)
from bnnzoo.optimizers.flip_rate import FlipRate, ThresholdBlocking, binary_kernels
from bnnzoo.optimizers.fsg_builders import fsg, fsg_attention, fsg_authors
from bnnzoo.optimizers.variables import applying_optimizers, create_optimizer_variables

__all__ = [
    "Bop2ndOrder",
    "FSG",
    "FSGAuthors",
    "FlipRate",
    "ThresholdBlocking",
    "BIAS_CORRECTIONS",
    "BuilderFlag",
    "OptimizerSpec",
    "PAPER_SCHEDULES",
    "SCHEDULES",
    "adam",
    "applying_optimizers",
    "binary_kernels",
    "bop",
    "bop2ndorder",
    "builder_flags",
    "check_schedule",
    "create_optimizer_variables",
    "fsg",
    "fsg_attention",
    "fsg_authors",
    "get_optimizer",
    "list_optimizers",
    "optimizer_builder",
    "optimizer_spec",
    "paper_schedule",
    "register_optimizer",
]
