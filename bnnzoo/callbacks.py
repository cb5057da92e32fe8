"""Training callbacks: quantizer annealing schedules.

`QuantizerAnnealing` drives the annealed parameter of every matching quantizer in a
model (BNN++'s and ProxConnect's \\(\\mu\\), STE-Warmup's temperature \\(T\\)) from a
schedule, per epoch or per step, and logs the current value into `logs` (so it lands
in `history.json` and TensorBoard). The value is a function of the epoch (or global
step) index that Keras passes, so a resumed run continues the schedule. The
parameter lives in a variable inside the quantizer, so it is saved with checkpoints
and `model.keras` too.

`bnnzoo.training.train` attaches default schedules automatically (see
`default_annealing` and `default_schedule`): a model with `bnnpp`, `proxconnect` or
`ste_warmup` quantizers is annealed over `config.epochs` with the rule
`config.annealing` (`"default"`: the papers' rules, bounded; `"compressed"`: the
warm-up squeezed into short runs; `"none"`), and its last epoch runs with the forward
exactly `sign`.

!!! example
    ```python
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
    print(history.history["quantizer_temperature"])  # value used in each epoch: [1.0, 0.95]
    ```
"""

from __future__ import annotations

import math
from typing import Callable

import tensorflow as tf

from bnnzoo import quantizers as _quantizers
from bnnzoo.optimizers.flip_rate import FlipRate
from bnnzoo.validation import check_positive

__all__ = [
    "ExponentialSchedule",
    "GeometricSchedule",
    "ANNEALING_RULES",
    "QuantizerAnnealing",
    "FlipRate",
    "check_annealing_rule",
    "default_annealing",
    "default_schedule",
    "exact_sign_epoch",
]


class ExponentialSchedule:
    r"""\\(v(i) = v_0 \cdot r^{\lfloor \max(0, i - \text{offset}) / \text{every} \rfloor}\\).

    With `every=1, offset=0` it is Hyper-BinaryNet's per-epoch CIFAR schedule
    (\\(T_0 \cdot 0.95^{epoch}\\)); with `rate=0.985, every=1000, offset=50000`
    applied per step, its ImageNet schedule.
    """

    def __init__(self, initial: float, rate: float, every: int = 1, offset: int = 0):
        self.initial = check_positive("initial", initial)
        self.rate = check_positive("rate", rate)
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an integer >= 1, got {every!r}")
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be an integer >= 0, got {offset!r}")
        self.every, self.offset = every, offset

    def __call__(self, index: int) -> float:
        return self.initial * self.rate ** (max(0, index - self.offset) // self.every)

    def __repr__(self):
        return (f"ExponentialSchedule(initial={self.initial}, rate={self.rate}, "
                f"every={self.every}, offset={self.offset})")


class GeometricSchedule:
    r"""From `start` to `end` in `length` steps, evenly in log space, then constant.

    \\(v(i) = \text{start} \cdot (\text{end}/\text{start})^{\min(i, n-1)/(n-1)}\\)
    with \\(n\\) = `length` (`end` from the first index when `length` is 1).
    """

    def __init__(self, start: float, end: float, length: int):
        self.start = check_positive("start", start)
        self.end = check_positive("end", end)
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"length must be an integer >= 1, got {length!r}")
        self.length = length

    def __call__(self, index: int) -> float:
        if self.length == 1:
            return self.end
        fraction = min(max(index, 0), self.length - 1) / (self.length - 1)
        return self.start * (self.end / self.start) ** fraction

    def __repr__(self):
        return f"GeometricSchedule(start={self.start}, end={self.end}, length={self.length})"


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
                "in the model (annealable: bnnpp, proxconnect, ste_warmup, ForwardBackwardQuantizer "
                "with a sign_swish/hardtanh/prox forward)"
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

# The annealing rules `train` can attach (`TrainConfig.annealing`):
#   "default":    the papers' rules, bounded so the backward stays informative
#                 (see `default_schedule`);
#   "compressed": the whole warm-up squeezed into the run (for runs of a few epochs);
#   "none":       no automatic annealing (add your own `QuantizerAnnealing`).
ANNEALING_RULES = ("default", "compressed", "none")

# "default" rule for mu (an upward parameter): geometric growth from the constructor's
# value to MU_MAX[forward] over the run. BNN++'s sign-Swish backward is the derivative
# of SS_mu: for mu >~ 20 it is near zero or negative for most inputs. On Fashion-MNIST
# (3x256 binary MLP, 10 epochs, one seed) the final validation accuracy is 88.57 /
# 88.65 / 88.92 / 88.37 / 87.17 / 85.78 % for caps 2 / 3 / 5 / 10 / 20 / 100
# (`python benchmarks/bnnpp_mu.py`, docs/benchmarks/bnnpp_mu.md), so mu is bounded at 5
# (BNN+ keeps its beta at 5 for the same reason). ProxConnect's P^mu equals sign on [-1, 1]
# from mu = 1 on.
MU_MAX = {"sign_swish": 5.0, "prox": 1.0}
# "default" rule for the temperature: Hyper-BinaryNet's CIFAR rule T0 * 0.95^epoch
# (authors' code, `main.py`), whatever the run length.
TEMPERATURE_RATE = 0.95
# "compressed" rule: mu grows 100x (sign_swish) or 10x (prox) over the run; T decays at
# least to 1% of T0 by the last epoch (0.95/epoch when the run is long enough).
MU_GROWTH = {"sign_swish": 100.0, "prox": 10.0}
TEMPERATURE_FLOOR = 0.01


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
    """The per-epoch schedule `train` uses for `quantizer` over `epochs` epochs.

    Both rules start at the quantizer's constructor value.

    - `rule="default"`: `mu` grows geometrically to `mu_max` (default
      `MU_MAX[forward]`) by the last epoch (BNN++: 1 -> 5, the best cap on Fashion-MNIST validation data among 2-100,
      `python benchmarks/bnnpp_mu.py`; never decreasing when the start is already above
      the cap);
      `temperature` decays as Hyper-BinaryNet's \\(T_0 \\cdot 0.95^{epoch}\\).
    - `rule="compressed"`: the warm-up squeezed into short runs: `mu` grows
      `MU_GROWTH[forward]`-fold (BNN++ 1 -> 100); \\(T = T_0 \\cdot r^{epoch}\\) with
      \\(r = \\min(0.95, 0.01^{1/(epochs-1)})\\), so T reaches 1 % of T0.

    !!! example
        ```python
        import bnnzoo
        from bnnzoo.callbacks import default_schedule

        q = bnnzoo.quantizers.get_quantizer("bnnpp")
        schedule = default_schedule(q, epochs=50)
        print(schedule(0), schedule(49))  # 1.0 5.0
        ```
    """
    check_annealing_rule(rule)
    start = quantizer._initial_parameter
    if quantizer.anneal_direction == "up":
        if rule == "default":
            cap = MU_MAX.get(quantizer.forward, start) if mu_max is None else check_positive("mu_max", mu_max)
            return GeometricSchedule(start, max(start, cap), epochs)
        return GeometricSchedule(start, start * MU_GROWTH.get(quantizer.forward, 10.0), epochs)
    if rule == "default" or epochs < 2:
        return ExponentialSchedule(start, TEMPERATURE_RATE)
    return ExponentialSchedule(start, min(TEMPERATURE_RATE, TEMPERATURE_FLOOR ** (1.0 / (epochs - 1))))


def default_annealing(model, config, steps_per_epoch) -> list[tf.keras.callbacks.Callback]:
    """What `bnnzoo.training.train` attaches for the model's quantizers: annealing.

    One `QuantizerAnnealing` per (quantizer kind, parameter, starting value) with the
    rule `config.annealing` (none for `"none"`) and `config.mu_max`; the epochs from
    `exact_sign_epoch(config.epochs, config.exact_sign_fraction)` on (by default the
    last one) run with the forward exactly `sign`. Logged as `<forward>_<parameter>`
    (e.g. `sign_swish_mu`, `hardtanh_temperature`) and `<forward>_<parameter>_exact_sign`.
    """
    rule = check_annealing_rule(getattr(config, "annealing", "default"))
    if rule == "none":
        return []
    groups: dict[tuple, list] = {}
    for q in _quantizers.annealable_quantizers(model):
        key = (q.forward, q.annealed_parameter, q._initial_parameter)
        groups.setdefault(key, []).append(q)
    callbacks = []
    for (forward, parameter, _), members in groups.items():
        callbacks.append(QuantizerAnnealing(
            default_schedule(members[0], config.epochs, rule, getattr(config, "mu_max", None)),
            parameter,
            final_epoch=exact_sign_epoch(config.epochs, getattr(config, "exact_sign_fraction", 0.0)),
            quantizers=members,
            log_name=f"{forward}_{parameter}",
        ))
    return callbacks

