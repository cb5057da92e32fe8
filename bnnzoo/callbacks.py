"""Training callbacks: quantizer annealing schedules, and what each epoch cost.

`QuantizerAnnealing` drives the annealed parameter of every matching quantizer in a
model (BNN++'s and ProxConnect's \\(\\mu\\), STE-Warmup's temperature \\(T\\)) from a
schedule, per epoch or per step, and logs the current value into `logs` (so it lands
in `history.json` and TensorBoard). The value is a function of the epoch (or global
step) index that Keras passes, so a resumed run continues the schedule. The
parameter lives in a variable inside the quantizer, so it is saved with checkpoints
and `model.keras` too.

`bnnzoo.training.train` attaches default schedules automatically (see
`default_annealing` and `default_schedule`): every quantizer in the model that declares
an `annealing` (`bnnzoo.quantizers.list_quantizers(annealed=True)`: BNN++,
ProxConnect, STE-Warmup, ...) is annealed over `config.epochs` by its own declaration
with the rule `config.annealing` (`"default"`: the papers' rules, bounded;
`"compressed"`: the warm-up squeezed into short runs; `"none"`), and its last epoch
runs with the forward exactly `sign`.

!!! example
    ```python
    import numpy as np
    import bnnzoo
    from bnnzoo.callbacks import QuantizerAnnealing, ExponentialSchedule

    # the Hyper-BinaryNet CIFAR schedule T = 1.0 * 0.95^epoch, exact sign from epoch 199
    annealing = QuantizerAnnealing(
        ExponentialSchedule(1.0, 0.95), parameter="temperature", final_epoch=199
    )
    data = bnnzoo.data.load_arrays("digits")
    model = bnnzoo.models.create_model("binarynet_mlp", input_shape=(8, 8, 1), units=64,
                                       input_quantizer="ste_warmup", kernel_quantizer="ste_warmup")
    model.compile("adam", "sparse_categorical_crossentropy")
    history = model.fit(data.x_train, data.y_train, epochs=2, callbacks=[annealing], verbose=0)
    # each epoch trains with T = 1.0 * 0.95^epoch, the forward still smooth (epoch < 199)
    assert np.allclose(history.history["quantizer_temperature"], [1.0 * 0.95**e for e in range(2)])
    assert history.history["quantizer_temperature_exact_sign"] == [0.0, 0.0]
    quantizers = bnnzoo.quantizers.annealable_quantizers(model)
    assert quantizers and all(np.isclose(q.annealed_value(), 0.95) for q in quantizers)
    ```
"""

from __future__ import annotations

import math
import os
import time
from typing import Callable

import tensorflow as tf

from bnnzoo import quantizers as _quantizers
from bnnzoo.optimizers.flip_rate import FlipRate
# The schedules live with the quantizers' `annealing` rules that build them; kept here by name.
from bnnzoo.quantizers import ExponentialSchedule, GeometricSchedule

__all__ = [
    "ExponentialSchedule",
    "GeometricSchedule",
    "ANNEALING_RULES",
    "QuantizerAnnealing",
    "FlipRate",
    "EpochStats",
    "check_annealing_rule",
    "default_annealing",
    "default_schedule",
    "exact_sign_epoch",
]


class QuantizerAnnealing(tf.keras.callbacks.Callback):
    """Anneal a quantizer parameter (`mu`, `temperature`) on every quantizer that has it.

    Per epoch (default) the value for epoch `e` is `schedule(e)`, set at the start of
    the epoch; with `per_step=True` it is `schedule(e * steps_per_epoch + batch)`,
    set before every step. From `final_epoch` (or `final_step`) on, the quantizers'
    forward is exactly `sign` (`exact_sign`); their backward keeps the scheduled
    parameter. At each epoch end the current value is written to `logs[log_name]`
    (default `quantizer_<parameter>`) and the switch to `logs[log_name + "_exact_sign"]`.

    Args:
        schedule: `index -> value` (a callable, e.g. `ExponentialSchedule`, or a
            Keras `LearningRateSchedule`); values must be finite and > 0.
        parameter: `"mu"` or `"temperature"`; quantizers whose annealed parameter has
            another name are left alone. `None`: every annealable quantizer.
        per_step: index the schedule by global step instead of epoch.
        steps_per_epoch: for `per_step`; default: from `model.fit`'s parameters.
        final_epoch: first epoch with an exact-sign forward (`None`: never).
        final_step: first global step with an exact-sign forward (`per_step` only).
        quantizers: the quantizers to drive; default: found in the model at train start.
        log_name: key for the logged value.
    """

    def __init__(
        self,
        schedule: Callable[[int], float],
        parameter: str | None = None,
        *,
        per_step: bool = False,
        steps_per_epoch: int | None = None,
        final_epoch: int | None = None,
        final_step: int | None = None,
        quantizers=None,
        log_name: str | None = None,
    ):
        super().__init__()
        if not callable(schedule):
            raise ValueError(f"schedule must be callable (index -> value), got {schedule!r}")
        if final_step is not None and not per_step:
            raise ValueError("final_step needs per_step=True (use final_epoch per epoch)")
        for name, value in (("final_epoch", final_epoch), ("final_step", final_step),
                            ("steps_per_epoch", steps_per_epoch)):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        self.schedule = schedule
        self.parameter = parameter
        self.per_step = per_step
        self.steps_per_epoch = steps_per_epoch
        self.final_epoch = final_epoch
        self.final_step = final_step
        self.quantizers = list(quantizers) if quantizers is not None else None
        self.log_name = log_name or f"quantizer_{parameter or 'annealed'}"
        self._epoch = 0
        self._value = None
        self._exact = False
        # Batch hooks only when needed: Keras skips them (and their per-step sync) otherwise.
        self._supports_tf_logs = True

    def _implements_train_batch_hooks(self):
        return self.per_step

    def value_at(self, index: int) -> float:
        """The schedule's value at `index`, checked to be finite and > 0."""
        value = self.schedule(index)
        value = float(value.numpy() if hasattr(value, "numpy") else value)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(
                f"schedule gave {self.parameter or 'value'}={value} at index {index}; "
                "allowed range (0, inf)"
            )
        return value

    def _apply(self, index: int, exact: bool) -> None:
        self._value = self.value_at(index)
        self._exact = exact
        for quantizer in self.quantizers:
            quantizer.set_annealed(self._value, exact_sign=exact)

    def on_train_begin(self, logs=None):
        if self.quantizers is None:
            self.quantizers = [
                q for q in _quantizers.annealable_quantizers(self.model)
                if self.parameter is None or q.annealed_parameter == self.parameter
            ]
        if not self.quantizers:
            raise ValueError(
                f"QuantizerAnnealing(parameter={self.parameter!r}) found no quantizer to anneal "
                f"in the model (annealed: {', '.join(_quantizers.list_quantizers(annealed=True))}, "
                "or a ForwardBackwardQuantizer whose forward has a parameter)"
            )
        if self.per_step and self.steps_per_epoch is None:
            steps = (self.params or {}).get("steps")
            if not steps:
                raise ValueError("per_step annealing needs steps_per_epoch (fit gave no step count)")
            self.steps_per_epoch = int(steps)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if not self.per_step:
            self._apply(epoch, self.final_epoch is not None and epoch >= self.final_epoch)

    def on_train_batch_begin(self, batch, logs=None):
        if self.per_step:
            step = self._epoch * self.steps_per_epoch + batch
            exact = (self.final_step is not None and step >= self.final_step) or (
                self.final_epoch is not None and self._epoch >= self.final_epoch
            )
            self._apply(step, exact)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self._value is not None:
            logs[self.log_name] = self._value
            logs[self.log_name + "_exact_sign"] = float(self._exact)


# ----------------------------------------------------------------- default schedules

# The annealing rules `train` can attach (`TrainConfig.annealing`): the rules every
# quantizer's `annealing` knows (`bnnzoo.quantizers.ANNEALING_RULES`: "default", the
# papers' rules, bounded so the backward stays informative; "compressed", the whole
# warm-up squeezed into the run), and "none": no automatic annealing (add your own
# `QuantizerAnnealing`).
ANNEALING_RULES = (*_quantizers.ANNEALING_RULES, "none")


# The "default" rule's cap on mu per forward, read from the forwards' declared rules
# (`bnnzoo.quantizers.SIGN_SWISH_ANNEALING`, `PROX_ANNEALING`, where the evidence for
# each value is written): a summary for readers and tests, not a list to keep.
MU_MAX = {forward: annealing.end for forward, annealing in _quantizers.FORWARDS_ANNEALING.items()
          if isinstance(annealing, _quantizers.GeometricAnnealing)}


class EpochStats(tf.keras.callbacks.Callback):
    """What each epoch cost: its wall-clock seconds and the machine's load, into `logs`.

    At each epoch end it adds `epoch_seconds` (from this callback's `on_epoch_begin`
    to its `on_epoch_end`: training, validation and the `on_epoch_end` work of the
    callbacks before it) and `load_1min` (`os.getloadavg()[0]`, left out where the
    platform has no load average), so both land in `history.json`. A timing is
    only worth quoting from an otherwise idle machine: the load says whether it was.
    `bnnzoo.training.train` attaches it to every run, just before its checkpoint
    callback, so the seconds of a run resumed several times still add up
    (`metrics.json`'s `train_seconds` is their sum).

    !!! example
        ```python
        import bnnzoo
        from bnnzoo.callbacks import EpochStats

        data = bnnzoo.data.load_arrays("digits")
        model = bnnzoo.models.create_model("binarynet_mlp", input_shape=(8, 8, 1), units=16)
        model.compile("adam", "sparse_categorical_crossentropy")
        history = model.fit(data.x_train, data.y_train, epochs=2, callbacks=[EpochStats()], verbose=0)
        assert len(history.history["epoch_seconds"]) == 2
        assert all(s > 0 for s in history.history["epoch_seconds"])
        ```
    """

    def __init__(self):
        super().__init__()
        self._started: float | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or self._started is None:
            return
        logs["epoch_seconds"] = time.perf_counter() - self._started
        if hasattr(os, "getloadavg"):
            logs["load_1min"] = os.getloadavg()[0]


def check_annealing_rule(rule: str) -> str:
    """`rule` if it is one of `ANNEALING_RULES`, else a `ValueError` naming them."""
    if rule not in ANNEALING_RULES:
        raise ValueError(f"annealing must be one of {', '.join(ANNEALING_RULES)}, got {rule!r}")
    return rule


def exact_sign_epoch(epochs: int, fraction: float = 0.0) -> int:
    """First epoch (0-based) of the exact-sign phase: the last `max(1, ceil(fraction *
    epochs))` epochs of a run of `epochs` run with an exact-sign forward.

    !!! example
        ```python
        from bnnzoo.callbacks import exact_sign_epoch

        assert exact_sign_epoch(15) == 14 and exact_sign_epoch(15, 0.2) == 12
        ```
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    if not (isinstance(fraction, (int, float)) and 0 <= fraction < 1):
        raise ValueError(f"exact_sign_fraction must be a number in [0, 1), got {fraction!r}")
    return epochs - max(1, math.ceil(round(fraction * epochs, 9)))


def default_schedule(quantizer, epochs: int, rule: str = "default", mu_max: float | None = None):
    """The per-epoch schedule `train` uses for `quantizer` over `epochs` epochs: the one
    its `annealing` declares (`quantizer.annealing_schedule`), from its constructor value.

    For the forwards bnnzoo ships (`bnnzoo.quantizers.FORWARDS_ANNEALING`):

    - `rule="default"`: `mu` grows geometrically to `mu_max` (default `MU_MAX[forward]`,
      the forward's `GeometricAnnealing.end`) by the last epoch (BNN++: 1 -> 5, the best
      cap on Fashion-MNIST validation data among 2-100, `python benchmarks/bnnpp_mu.py`;
      never decreasing when the start is already above the cap); `temperature` decays
      as Hyper-BinaryNet's \\(T_0 \\cdot 0.95^{epoch}\\).
    - `rule="compressed"`: the warm-up squeezed into short runs: `mu` grows by the
      forward's `compressed_growth` (BNN++ 1 -> 100, ProxConnect 10x);
      \\(T = T_0 \\cdot r^{epoch}\\) with \\(r = \\min(0.95, 0.01^{1/(epochs-1)})\\), so T
      reaches 1 % of T0.

    !!! example
        ```python
        import bnnzoo
        from bnnzoo.callbacks import default_schedule

        q = bnnzoo.quantizers.get_quantizer("bnnpp")
        schedule = default_schedule(q, epochs=50)
        assert (schedule(0), schedule(49)) == (1.0, 5.0)
        ```

    Args:
        quantizer: a quantizer with an `annealing` (`annealable_quantizers(model)`).
        epochs: the run's length, >= 1.
        rule: `"default"` or `"compressed"`.
        mu_max: the cap of a growing parameter under `"default"` (`None`: the declared one).

    Raises:
        ValueError: `rule` is not `"default"`/`"compressed"`, or the quantizer is not annealed.
    """
    if rule not in _quantizers.ANNEALING_RULES:
        raise ValueError(f"rule must be one of {', '.join(_quantizers.ANNEALING_RULES)}, got {rule!r}")
    return quantizer.annealing_schedule(epochs, rule, mu_max)


def default_annealing(model, config, steps_per_epoch) -> list[tf.keras.callbacks.Callback]:
    """What `bnnzoo.training.train` attaches for the model's quantizers: annealing.

    Every quantizer in `model` that declares an `annealing` is annealed by it; there is
    no list of annealed quantizers to keep. One `QuantizerAnnealing` per (forward,
    parameter, starting value, annealing) with the rule `config.annealing` (none for
    `"none"`) and `config.mu_max`; the epochs from
    `exact_sign_epoch(config.epochs, config.exact_sign_fraction)` on (by default the
    last fifth, at least the last one) run with the forward exactly `sign`. Logged as
    `<forward>_<parameter>` (e.g. `sign_swish_mu`, `hardtanh_temperature`) and
    `<forward>_<parameter>_exact_sign`.

    !!! example
        ```python
        import bnnzoo
        from bnnzoo.callbacks import default_annealing
        from bnnzoo.training import TrainConfig, build_model

        config = TrainConfig(quantizer="bnnpp", epochs=4, model_kwargs={"units": 8})
        (annealing,) = default_annealing(build_model(config, (8, 8, 1), 10), config, 10)
        assert annealing.log_name == "sign_swish_mu" and annealing.final_epoch == 3
        ```

    Args:
        model: the Keras model to train.
        config: its `TrainConfig` (`epochs`, `annealing`, `mu_max`, `exact_sign_fraction`).
        steps_per_epoch: training steps per epoch (unused by the per-epoch rules).
    """
    rule = check_annealing_rule(getattr(config, "annealing", "default"))
    if rule == "none":
        return []
    groups: dict[tuple, list] = {}
    for q in _quantizers.annealable_quantizers(model):
        key = (q.forward, q.annealed_parameter, q._initial_parameter, q.annealing)
        groups.setdefault(key, []).append(q)
    callbacks = []
    for (forward, parameter, _, _), members in groups.items():
        callbacks.append(QuantizerAnnealing(
            default_schedule(members[0], config.epochs, rule, getattr(config, "mu_max", None)),
            parameter,
            final_epoch=exact_sign_epoch(config.epochs, config.exact_sign_fraction),
            quantizers=members,
            log_name=f"{forward}_{parameter}",
        ))
    return callbacks
