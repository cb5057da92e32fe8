"""`BNNHyperModel`: a keras-tuner hypermodel over any registered model family."""

from __future__ import annotations

import dataclasses
import errno
import inspect
from typing import Any, Sequence

import keras_tuner as kt

from bnnzoo import data as _data
from bnnzoo import models as _models
from bnnzoo import optimizers as _optimizers
from bnnzoo import quantizers as _quantizers
from bnnzoo import training as _training
from bnnzoo.tuning.spaces import SearchSpace, get_search_space, object_search_space

__all__ = ["BNNHyperModel", "OBJECTIVE"]

# Trials are ranked by validation accuracy; test accuracy is only reported.
OBJECTIVE = "val_accuracy"

# Metrics of `training.train` that a trial reports to the oracle.
TRIAL_METRICS = ("val_accuracy", "test_accuracy", "train_accuracy", "test_loss", "wall_seconds")


def _accepts(builder, name: str) -> bool:
    params = inspect.signature(builder).parameters
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class BNNHyperModel(kt.HyperModel):
    """Builds and trains a bnnzoo model family with searchable choices.

    Each `hp` draws a `TrainConfig`: the quantizer and the optimizer (choices
    from the registries, each with its own hyperparameters from its
    `search_space(hp)` inside a `conditional_scope` and a name scope, e.g.
    `bop/threshold`), the learning rate of real-valued variables, the width and
    the batch size, as the preset `space` says. `fit` trains through
    `bnnzoo.training.train`, so a trial is an ordinary bnnzoo run.

    Args:
        base: the `TrainConfig` every trial starts from (model, dataset, epochs,
            seed, fixed learning rate/batch size, model kwargs...).
        space: a `SearchSpace` or preset name (`bnnzoo.tuning.list_search_spaces()`).
        optimizers: restrict the optimizer choice to these names.
        quantizers: restrict the quantizer choice to these names.
        arrays: preloaded data, shared by all trials (loaded on first use otherwise).

    !!! example
        ```python
        import keras_tuner as kt
        from bnnzoo.training import TrainConfig
        from bnnzoo.tuning import BNNHyperModel

        hm = BNNHyperModel(TrainConfig(model="binarynet_mlp", dataset="digits", epochs=1),
                           space="quantizers")
        config = hm.config(kt.HyperParameters())  # defaults of every choice
        ```
    """

    def __init__(self, base: _training.TrainConfig, space: SearchSpace | str = "full", *,
                 optimizers: Sequence[str] | None = None, quantizers: Sequence[str] | None = None,
                 arrays: _data.ArraySplits | None = None):
        super().__init__(name=f"bnnzoo_{base.model}", tunable=True)
        if isinstance(space, str):
            space = get_search_space(space)
        self.space = space.resolve(optimizers, quantizers)
        self.base = base
        if not base.validation_fraction > 0:
            raise ValueError(
                f"validation_fraction must be > 0 for a search (the objective is {OBJECTIVE}), "
                f"got {base.validation_fraction}"
            )
        self._arrays = arrays
        builder = _models.get_model_spec(base.model).builder
        self._searches_width = bool(self.space.widths) and _accepts(builder, "width")

    # ------------------------------------------------------------------ space

    @property
    def arrays(self) -> _data.ArraySplits:
        if self._arrays is None:
            self._arrays = _data.load_arrays(
                self.base.dataset, validation_fraction=self.base.validation_fraction,
                data_dir=self.base.data_dir,
            )
        return self._arrays

    @staticmethod
    def _choose(hp, name: str, values: Sequence[Any]):
        if len(values) == 1:
            return hp.Fixed(name, values[0])
        return hp.Choice(name, list(values))

    @staticmethod
    def _object_kwargs(hp, parent: str, name: str, obj) -> dict[str, Any]:
        space = object_search_space(obj, name)
        if space is None:
            return {}
        with hp.conditional_scope(parent, [name]), hp.name_scope(name):
            kwargs = space(hp)
        if not isinstance(kwargs, dict):
            raise TypeError(f"search_space of {parent} {name!r} must return a dict, got {kwargs!r}")
        return kwargs

    def config(self, hp: kt.HyperParameters) -> _training.TrainConfig:
        """Declare this space's hyperparameters in `hp` and return the trial's config."""
        s, base = self.space, self.base
        quantizer = self._choose(hp, "quantizer", s.quantizers)
        q_kwargs = self._object_kwargs(hp, "quantizer", quantizer, _quantizers.quantizer_class(quantizer))
        optimizer = self._choose(hp, "optimizer", s.optimizers)
        o_kwargs = self._object_kwargs(hp, "optimizer", optimizer, _optimizers.optimizer_spec(optimizer))
        values: dict[str, Any] = {
            "quantizer": quantizer,
            "optimizer": optimizer,
            "quantizer_kwargs": {**base.quantizer_kwargs, **q_kwargs},
            "optimizer_kwargs": {**base.optimizer_kwargs, **o_kwargs},
        }
        if s.learning_rates:
            low, high = s.learning_rates
            default = min(max(base.learning_rate, low), high)
            values["learning_rate"] = hp.Float("learning_rate", low, high, sampling="log", default=default)
        if self._searches_width:
            widths = list(s.widths)
            default = base.model_kwargs.get("width", 1.0)
            values["model_kwargs"] = {
                **base.model_kwargs,
                "width": hp.Choice("width", widths, default=default if default in widths else widths[0]),
            }
        if s.batch_sizes:
            sizes = list(s.batch_sizes)
            default = base.batch_size if base.batch_size in sizes else sizes[0]
            values["batch_size"] = hp.Choice("batch_size", sizes, default=default)
        if "tuner/epochs" in hp.values:  # Hyperband's budget for this trial
            values["epochs"] = int(hp.values["tuner/epochs"])
        return dataclasses.replace(base, **values)

    def default_config(self) -> _training.TrainConfig:
        """The baseline: default choices with their constructors' own defaults.

        Unlike `config(kt.HyperParameters())`, the optimizer and quantizer get no
        keyword arguments here, so this is "the optimizer as shipped".
        """
        config = self.config(kt.HyperParameters())
        return dataclasses.replace(
            config,
            quantizer_kwargs=dict(self.base.quantizer_kwargs),
            optimizer_kwargs=dict(self.base.optimizer_kwargs),
        )

    # ------------------------------------------------------------------ keras-tuner API

    def build(self, hp: kt.HyperParameters):
        """The (compiled, untrained) model of `hp`, as keras-tuner expects."""
        config = self.config(hp)
        arrays = self.arrays
        model = _training.build_model(config, arrays.input_shape, arrays.num_classes)
        _training.compile_model(
            model, _optimizers.get_optimizer(config.optimizer, config.learning_rate, **config.optimizer_kwargs)
        )
        return model

    def fit(self, hp: kt.HyperParameters, model=None, *, out=None, callbacks=(), verbose: int = 0,
            **kwargs) -> dict[str, float]:
        """Train the config of `hp` with `bnnzoo.training.train`; return its metrics.

        `model`: the model keras-tuner built with `build(hp)` (a plain keras-tuner
        `Tuner` passes one), trained as it is; `None` (bnnzoo's tuners) lets `train`
        build it. Either way a trial resumes from its run directory `out` like any
        bnnzoo run. The returned dict holds `val_accuracy` (the objective) and the
        test accuracy, which is reported but never used for selection.
        """
        config = self.config(hp)
        try:
            result = _training.train(config, out, callbacks=list(callbacks), arrays=self.arrays,
                                     verbose=verbose, model=model)
        except OSError as err:
            if err.errno == errno.ENOSPC:  # every later trial would fail alike: end the search
                raise kt.errors.FatalError(str(err)) from err
            raise
        metrics = {name: result.metrics.get(name) for name in TRIAL_METRICS}
        return {k: float(v) for k, v in metrics.items() if v is not None}
