"""Gradient approximations for binarization, as Larq quantizers.

Every quantizer here is a `larq.quantizers.BaseQuantizer` usable by string alias or
as an object in any `lq.layers.Quant*` layer. One registry maps bnnzoo names to the
classes that build them, so comparisons, the CLI and the tuner can name every
method, including larq's own `ste_sign`, `approx_sign` and `swish_sign`, which are
reused as they are rather than re-implemented. `@register_quantizer("name")` is the
one statement that registers a class: bnnzoo name, larq string alias and Keras
custom object. A quantizer whose forward has a parameter declares how training
anneals it (`annealing`: a `GeometricAnnealing` or `ExponentialAnnealing`), and
`bnnzoo.callbacks.default_annealing` reads that declaration.

!!! example
    ```python
    import larq as lq
    import bnnzoo

    layer = lq.layers.QuantDense(
        64, input_quantizer="ste_sign", kernel_quantizer="ste_sign"
    )
    q = bnnzoo.quantizers.get_quantizer("swish_sign", beta=5.0)
    ```
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import warnings
from dataclasses import dataclass, fields
from typing import Any, Callable, NamedTuple

import larq as lq
import numpy as np
import tensorflow as tf

from bnnzoo.registry import Registry
from bnnzoo.validation import check_positive

__all__ = [
    "ANNEALING_RULES",
    "Annealing",
    "BNN",
    "BNNPlus",
    "BNNPlusPlus",
    "BinaryConnect",
    "ForwardBackwardQuantizer",
    "NamedPair",
    "NonBinaryForwardWarning",
    "ProxConnect",
    "SteWarmup",
    "annealable_quantizers",
    "binary_forward",
    "clone_quantizer",
    "DoReFaWeights",
    "ExponentialAnnealing",
    "ExponentialSchedule",
    "GeometricAnnealing",
    "GeometricSchedule",
    "finalize",
    "get_quantizer",
    "list_quantizers",
    "nonbinary_expected",
    "quantizer_class",
    "register_quantizer",
]

_QUANTIZERS: Registry[Callable[..., Any]] = Registry("quantizer")


def _add_keras_name(name: str, cls) -> None:
    """Register `cls` as Keras custom object `name`; `ValueError` if another object holds it."""
    custom = tf.keras.utils.get_custom_objects()
    held = custom.get(name)
    # The same class, or a class of the same module and name (a reloaded module), may re-register.
    if held is not None and held is not cls and (getattr(held, "__module__", None), getattr(
            held, "__qualname__", None)) != (getattr(cls, "__module__", None), getattr(cls, "__qualname__", None)):
        raise ValueError(f"quantizer name {name!r} is already a Keras custom object ({held!r}); choose another name")
    custom[name] = cls


def register_quantizer(name: str, cls: type | None = None):
    """Register a quantizer class under `name` everywhere a quantizer is looked up by name.

    One statement makes three registrations:

    - the bnnzoo registry (`get_quantizer(name)`, `list_quantizers()`, the CLI's
      `--quantizer`, the tuner, `TrainConfig.quantizer`);
    - larq's string alias (`lq.layers.QuantDense(..., input_quantizer=name)`);
    - a Keras custom object under the class's own name (`cls.__name__`), so saved
      `.keras`/`.h5` models reload with `import bnnzoo` and nothing else.

    Usable as a decorator (`@register_quantizer("bnnpp")` above the class) or as a
    call (`register_quantizer("ste_sign", lq.quantizers.SteSign)` for a class defined
    elsewhere). The class takes its keyword arguments and returns a new quantizer; it may
    define a `search_space(hp)` classmethod (the tuner's space) and, as a
    `ForwardBackwardQuantizer`, an `annealing` attribute (how training anneals it).
    Registering the same class again under the same name is a no-op.

    !!! example
        ```python
        import larq as lq
        import tensorflow as tf
        from bnnzoo.quantizers import BNN, quantizer_class, register_quantizer

        # What `@register_quantizer("bnn")` above `class BNN` registered (again: a no-op):
        assert register_quantizer("bnn", BNN) is BNN
        assert quantizer_class("bnn") is BNN  # bnnzoo name
        assert type(lq.quantizers.get("bnn")) is BNN  # larq string alias
        assert tf.keras.utils.get_custom_objects()["BNN"] is BNN  # Keras custom object
        ```

    Args:
        name: the quantizer's name (bnnzoo name and larq alias), a non-empty string.
        cls: the class; omitted, a decorator that registers the class it decorates.

    Returns:
        `cls` (the decorator returns the class it decorates unchanged).

    Raises:
        ValueError: `name` is empty, `cls` is not a class, or `name` / the class name is
            taken by another object.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"quantizer name must be a non-empty string, got {name!r}")

    def add(item):
        if not isinstance(item, type):
            raise ValueError(f"register_quantizer({name!r}) takes a quantizer class, got {item!r}")
        if name in _QUANTIZERS and _QUANTIZERS.get(name) is not item:
            raise ValueError(f"quantizer {name!r} is already registered ({_QUANTIZERS.get(name).__name__})")
        _add_keras_name(name, item)
        _add_keras_name(item.__name__, item)
        return _QUANTIZERS.register(name, item)

    return add(cls) if cls is not None else add


def list_quantizers(filter: str = "*", annealed: bool = False) -> list[str]:
    """Sorted names of the registered quantizers matching the shell-style `filter`.

    With `annealed=True`, only those whose default object training anneals (an
    `annealing` that is not `None`: BNN++, ProxConnect, STE-Warmup, ...).
    """
    names = _QUANTIZERS.names(filter)
    if annealed:
        names = [n for n in names if getattr(_QUANTIZERS.get(n)(), "annealing", None) is not None]
    return names


def quantizer_class(name: str):
    """The class (or factory) registered under `name`; `ValueError` listing the valid names otherwise."""
    return _QUANTIZERS.get(name)


def get_quantizer(identifier, **kwargs):
    """A new quantizer object from a registered name, a config dict or an object.

    `None` stays `None` (a full-precision input or kernel). An object is cloned
    through its config so that layers never share quantizer state.
    """
    if identifier is None:
        if kwargs:
            raise ValueError("quantizer keyword arguments given without a quantizer")
        return None
    if isinstance(identifier, str):
        cls = quantizer_class(identifier)
        _check_larq_parameters(cls, kwargs)
        try:
            return cls(**kwargs)
        except TypeError as err:
            raise ValueError(f"quantizer {identifier!r} does not take the arguments {sorted(kwargs)}: "
                             f"{err}") from None
    if kwargs:
        raise ValueError("quantizer keyword arguments are only accepted with a quantizer name")
    quantizer = lq.quantizers.deserialize(identifier) if isinstance(identifier, dict) else clone_quantizer(identifier)
    if isinstance(quantizer, tf.keras.layers.Layer):
        with nonbinary_expected():  # a check, not a save
            _check_larq_parameters(type(quantizer), quantizer.get_config())
    return quantizer


def clone_quantizer(quantizer):
    """A fresh copy of a quantizer object (functions and `None` are returned as they are)."""
    if quantizer is None or not isinstance(quantizer, tf.keras.layers.Layer):
        return quantizer
    with nonbinary_expected():  # a copy, not a save
        return type(quantizer).from_config(quantizer.get_config())


# larq's own straight-through family, reused unchanged.
register_quantizer("ste_sign", lq.quantizers.SteSign)
register_quantizer("approx_sign", lq.quantizers.ApproxSign)
register_quantizer("swish_sign", lq.quantizers.SwishSign)

# larq does not check these parameters (a negative clip_value or beta trains
# silently wrong), so `get_quantizer` does; the objects stay larq's own classes,
# which the Larq Compute Engine converter recognizes. name -> whether None is allowed.
_LARQ_PARAMETERS: dict[type, dict[str, bool]] = {
    lq.quantizers.SteSign: {"clip_value": True},
    lq.quantizers.SwishSign: {"beta": False},
}


def _check_larq_parameters(cls, params: dict[str, Any]) -> None:
    """`ValueError` naming the parameter unless each checked one is finite and > 0."""
    for key, none_ok in _LARQ_PARAMETERS.get(cls, {}).items():
        if key in params and not (none_ok and params[key] is None):
            check_positive(key, params[key], convert=True)


# --------------------------------------------------------------------------- annealing
#
# A quantizer whose forward has a parameter (BNN++'s mu, STE-Warmup's temperature)
# declares how training moves that parameter towards sign: its `annealing`, one of the
# rules below. `bnnzoo.callbacks.default_annealing` reads it from every quantizer it
# finds in a model; nothing else lists which quantizers anneal.


class ExponentialSchedule:
    r"""\\(v(i) = v_0 \cdot r^{\lfloor \max(0, i - \text{offset}) / \text{every} \rfloor}\\).

    With `every=1, offset=0` it is Hyper-BinaryNet's per-epoch CIFAR schedule
    (\\(T_0 \cdot 0.95^{epoch}\\)); with `rate=0.985, every=1000, offset=50000`
    applied per step, its ImageNet schedule. Also `bnnzoo.callbacks.ExponentialSchedule`.

    !!! example
        ```python
        from bnnzoo.quantizers import ExponentialSchedule

        schedule = ExponentialSchedule(2.0, 0.5, every=2)
        assert [schedule(i) for i in range(5)] == [2.0, 2.0, 1.0, 1.0, 0.5]
        ```
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
    Also `bnnzoo.callbacks.GeometricSchedule`.

    !!! example
        ```python
        from bnnzoo.quantizers import GeometricSchedule

        schedule = GeometricSchedule(1.0, 100.0, 3)
        assert [round(schedule(i), 9) for i in range(4)] == [1.0, 10.0, 100.0, 100.0]
        ```
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


# The rules an `Annealing` knows (`TrainConfig.annealing`, less "none", which attaches nothing):
#   "default":    the papers' rules, bounded so the backward stays informative;
#   "compressed": the whole warm-up squeezed into the run (for runs of a few epochs).
ANNEALING_RULES = ("default", "compressed")


@dataclass(frozen=True)
class Annealing:
    """How training moves a quantizer's forward parameter towards sign (base class).

    A `ForwardBackwardQuantizer` subclass sets a class attribute
    `annealing = GeometricAnnealing(...)` or `ExponentialAnnealing(...)` (or its own
    subclass of `Annealing` with another `schedule`); `bnnzoo.callbacks.default_annealing`
    builds the per-epoch callback from it. `None`: not annealed.

    !!! example
        ```python
        from bnnzoo.quantizers import Annealing, BNNPlusPlus, SteWarmup

        assert isinstance(BNNPlusPlus().annealing, Annealing)
        assert BNNPlusPlus().annealing.parameter == "mu" and BNNPlusPlus().annealing.direction == "up"
        assert SteWarmup().annealing.direction == "down"
        ```

    Args:
        parameter: the forward's parameter it moves (`"mu"`, `"temperature"`).
    """

    parameter: str
    direction = None  # "up" / "down": the way the parameter moves the forward towards sign

    def __post_init__(self):
        if not isinstance(self.parameter, str) or not self.parameter:
            raise ValueError(f"parameter must be a non-empty string, got {self.parameter!r}")
        for item in fields(self)[1:]:  # the rule's numbers
            check_positive(item.name, getattr(self, item.name))

    def schedule(self, start: float, epochs: int, rule: str = "default",
                 mu_max: float | None = None) -> Callable[[int], float]:
        """The per-epoch schedule (`epoch -> value`) over a run of `epochs` from `start`."""
        raise NotImplementedError

    def _check(self, start, epochs, rule):
        if rule not in ANNEALING_RULES:
            raise ValueError(f"rule must be one of {', '.join(ANNEALING_RULES)}, got {rule!r}")
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
        return check_positive(self.parameter, start, convert=True)


@dataclass(frozen=True)
class GeometricAnnealing(Annealing):
    r"""Grow the parameter geometrically over the run (\\(\mu\\): larger is closer to sign).

    - rule `"default"`: from the constructor's value to `end` by the last epoch
      (`GeometricSchedule`), to `mu_max` instead where the run gives one; never
      decreasing when the start is already above it;
    - rule `"compressed"`: to `compressed_growth` times the start by the last epoch.

    !!! example
        ```python
        from bnnzoo.quantizers import GeometricAnnealing

        annealing = GeometricAnnealing("mu", end=5.0, compressed_growth=100.0)
        assert annealing.schedule(1.0, epochs=3)(2) == 5.0
        assert annealing.schedule(1.0, epochs=3, mu_max=2.0)(2) == 2.0
        assert annealing.schedule(1.0, epochs=3, rule="compressed")(2) == 100.0
        ```

    Args:
        parameter: the parameter grown (`"mu"`).
        end: the value the `"default"` rule reaches at the last epoch, > 0.
        compressed_growth: the factor the `"compressed"` rule grows the start by, > 0.
    """

    end: float = 1.0
    compressed_growth: float = 10.0
    direction = "up"

    def schedule(self, start, epochs, rule="default", mu_max=None):
        start = self._check(start, epochs, rule)
        if rule == "compressed":
            return GeometricSchedule(start, start * self.compressed_growth, epochs)
        end = self.end if mu_max is None else check_positive("mu_max", mu_max)
        return GeometricSchedule(start, max(start, end), epochs)


@dataclass(frozen=True)
class ExponentialAnnealing(Annealing):
    r"""Decay the parameter exponentially per epoch (temperature: smaller is closer to sign).

    - rule `"default"`: \\(v_0 \cdot r^{epoch}\\) with `rate` \\(r\\), whatever the run length;
    - rule `"compressed"`: \\(v_0 \cdot r'^{epoch}\\) with
      \\(r' = \min(r, f^{1/(epochs-1)})\\), so the value reaches `compressed_floor`
      \\(f\\) times the start by the last epoch (\\(r\\) for a 1-epoch run).

    !!! example
        ```python
        from bnnzoo.quantizers import ExponentialAnnealing

        annealing = ExponentialAnnealing("temperature", rate=0.95, compressed_floor=0.01)
        assert annealing.schedule(2.0, epochs=10)(1) == 2.0 * 0.95
        assert round(annealing.schedule(2.0, epochs=3, rule="compressed")(2), 9) == 0.02
        ```

    Args:
        parameter: the parameter decayed (`"temperature"`).
        rate: the per-epoch factor of the `"default"` rule, > 0.
        compressed_floor: the fraction of the start the `"compressed"` rule reaches, > 0.
    """

    rate: float = 0.95
    compressed_floor: float = 0.01
    direction = "down"

    def schedule(self, start, epochs, rule="default", mu_max=None):
        start = self._check(start, epochs, rule)
        if rule == "default" or epochs < 2:
            return ExponentialSchedule(start, self.rate)
        return ExponentialSchedule(start, min(self.rate, self.compressed_floor ** (1.0 / (epochs - 1))))


# BNN++'s sign-Swish backward is the derivative of SS_mu: for mu >~ 20 it is near zero or
# negative for most inputs. On Fashion-MNIST (3x256 binary MLP, 10 epochs, one seed) the
# final validation accuracy is 88.57 / 88.65 / 88.92 / 88.37 / 87.17 / 85.78 % for caps
# 2 / 3 / 5 / 10 / 20 / 100 (`python benchmarks/bnnpp_mu.py`, docs/benchmarks/bnnpp_mu.md),
# so mu is bounded at 5 (BNN+ keeps its beta at 5 for the same reason); "compressed" grows
# it 100x.
SIGN_SWISH_ANNEALING = GeometricAnnealing("mu", end=5.0, compressed_growth=100.0)
# ProxConnect's P^mu equals sign on [-1, 1] from mu = 1 on; "compressed" grows mu 10x.
PROX_ANNEALING = GeometricAnnealing("mu", end=1.0, compressed_growth=10.0)
# Hyper-BinaryNet's CIFAR rule T0 * 0.95^epoch (authors' code, `main.py`); "compressed"
# decays T at least to 1 % of T0 by the last epoch.
HARDTANH_ANNEALING = ExponentialAnnealing("temperature", rate=0.95, compressed_floor=0.01)


# --------------------------------------------------------------------------- ProxConnect++ pairs
#
# A quantizer here is a pair (F, B'): the forward F maps latent weights or
# activations to what the layer uses, and B' replaces dF/dx on the backward pass:
#     w = F(theta);   dL/dtheta = B'(theta) * dL/dw.
# Forwards and backwards are named so that a pair is a serializable config.


def _sigmoid_pair(x, scale):
    # sigma(z) and 1 - sigma(z) = sigma(-z), each accurate far into the tails
    z = scale * x
    return tf.math.sigmoid(z), tf.math.sigmoid(-z), z


def _sign_swish(x, mu):
    # SS_mu(x) = 2 sigma(mu x) [1 + mu x (1 - sigma(mu x))] - 1
    s, t, z = _sigmoid_pair(x, mu)
    return 2.0 * s * (1.0 + z * t) - 1.0


def _sign_swish_derivative(x, mu):
    # d/dx SS_mu(x) = 2 mu sigma (1 - sigma) [2 + mu x (1 - 2 sigma)], finite for all x
    s, t, z = _sigmoid_pair(x, mu)
    return 2.0 * mu * s * t * (2.0 + z * (t - s))


def _hardtanh(x, temperature):
    return tf.clip_by_value(x / temperature, -1.0, 1.0)


def _hardtanh_derivative(x, temperature):
    return tf.cast(tf.abs(x) <= temperature, x.dtype) / temperature


def _prox(x, mu):
    # Proximal map of mu * dist(x, {-1, +1}): move |x| towards 1 by at most mu.
    shifted = tf.abs(x) - 1.0
    shrunk = tf.sign(shifted) * tf.maximum(tf.abs(shifted) - mu, 0.0)
    return lq.math.sign(x) * (1.0 + shrunk)


def _prox_derivative(x, mu):
    return tf.cast(tf.abs(tf.abs(x) - 1.0) > mu, x.dtype)


def _clipped_identity_derivative(x, clip_value):
    return tf.cast(tf.abs(x) <= clip_value, x.dtype)


class _Forward(NamedTuple):
    """A forward function F of a ProxConnect++ pair."""

    function: Callable  # function(x[, parameter])
    derivative: Callable | None  # dF/dx(x[, parameter]); None: not differentiable (sign)
    parameter: str | None  # name of its parameter
    binary: bool  # whether the output is +-1
    annealing: Annealing | None  # how training moves the parameter towards sign


class _Backward(NamedTuple):
    """A backward B' of a ProxConnect++ pair."""

    derivative: Callable | None  # B'(x, parameter); None: identity, or the forward's own
    parameter: str | None


_FORWARDS: dict[str, _Forward] = {
    "sign": _Forward(lambda x: lq.math.sign(x), None, None, True, None),
    "identity": _Forward(lambda x: x, lambda x: tf.ones_like(x), None, False, None),
    "sign_swish": _Forward(_sign_swish, _sign_swish_derivative, "mu", False, SIGN_SWISH_ANNEALING),
    "hardtanh": _Forward(_hardtanh, _hardtanh_derivative, "temperature", False, HARDTANH_ANNEALING),
    "prox": _Forward(_prox, _prox_derivative, "mu", False, PROX_ANNEALING),
}
_BACKWARDS: dict[str, _Backward] = {
    "identity": _Backward(None, None),
    "ste": _Backward(_clipped_identity_derivative, "clip_value"),
    "sign_swish": _Backward(_sign_swish_derivative, "beta"),
    "forward": _Backward(None, None),  # the exact derivative of the forward function
}
_DEFAULT_PARAMETERS = {"mu": 1.0, "temperature": 1.0, "clip_value": 1.0, "beta": 5.0}
FORWARDS = tuple(_FORWARDS)
# forward -> its annealing rule, for the forwards that have a parameter.
FORWARDS_ANNEALING = {name: f.annealing for name, f in _FORWARDS.items() if f.annealing is not None}
BACKWARDS = tuple(_BACKWARDS)


# Each pair's element-wise formulas run as one XLA-fused loop (`jit_compile`): as
# separate TensorFlow ops, sign-Swish's ~10 passes over every kernel and activation
# cost more than the layer's matmul on CPU. Set to False where XLA is unavailable.
FUSE_WITH_XLA = True


@functools.lru_cache(maxsize=None)
def _kernels(forward: str, backward: str, fuse: bool):
    """`(forward_kernel, backward_kernel)` of a pair.

    For a forward with an annealed parameter: `forward_kernel(x, value, exact, b) ->
    (y, dF)` returns the output and the backward derivative together (computed in one
    pass; `dF` is `None` for the identity backward). Otherwise `backward_kernel(x, dy,
    b) -> dy * B'(x)` (or `None` for the identity backward).
    """
    f = _FORWARDS[forward]
    fn, derivative, name = f.function, f.derivative, f.parameter
    b_fn = _BACKWARDS[backward].derivative
    compile_ = (lambda f: tf.function(f, jit_compile=True)) if fuse else (lambda f: f)

    def b_derivative(x, value, b):
        if backward == "forward":
            return derivative(x, value) if name is not None else derivative(x)
        return None if b_fn is None else b_fn(x, b)

    if name is not None:

        def forward_kernel(x, value, exact, b):
            y = tf.where(exact, lq.math.sign(x), fn(x, value))
            return y, b_derivative(x, value, b)

        return compile_(forward_kernel), None
    if backward == "identity" or (backward == "forward" and forward == "identity"):
        return None, None
    return None, compile_(lambda x, dy, b: dy * b_derivative(x, None, b))


# The general pair has no bnnzoo name (its forward and backward are arguments): a Keras
# custom object only, so saved models reload.
@lq.utils.register_keras_custom_object
class ForwardBackwardQuantizer(lq.quantizers._BaseQuantizer):
    r"""A ProxConnect++ forward/backward pair: forward \\(F\\), backward \\(B'\\).

    \\[
    w = F(\theta), \qquad
    \frac{\partial \ell}{\partial \theta} = B'(\theta) \odot \frac{\partial \ell}{\partial w}
    \\]

    Forwards (`forward=`):

    | name | \\(F(x)\\) | parameter |
    | --- | --- | --- |
    | `sign` | \\(\operatorname{sign}(x)\\) (with \\(\operatorname{sign}(0) = 1\\)) | |
    | `identity` | \\(x\\) | |
    | `sign_swish` | \\(SS_\mu(x) = 2\sigma(\mu x)[1 + \mu x (1 - \sigma(\mu x))] - 1\\) | `mu` |
    | `hardtanh` | \\(\operatorname{clip}(x / T, -1, 1)\\) | `temperature` |
    | `prox` | \\(P^\mu(x) = \operatorname{sign}(x)\,(1 + \operatorname{shrink}_\mu(\lvert x\rvert - 1))\\), the proximal map of \\(\mu \operatorname{dist}(x, \\{-1, 1\\})\\) | `mu` |

    Backwards (`backward=`), the derivative used on the backward pass:

    | name | \\(B'(x)\\) | parameter |
    | --- | --- | --- |
    | `identity` | \\(1\\) | |
    | `ste` | \\(1_{\lvert x\rvert \le c}\\) | `clip_value` |
    | `sign_swish` | \\(\frac{d}{dx} SS_\beta(x) = 2\beta\sigma(\beta x)(1-\sigma(\beta x))[2 + \beta x (1 - 2\sigma(\beta x))]\\) | `beta` |
    | `forward` | \\(F'(x)\\), the exact derivative of the forward (not for `sign`) | |

    A forward with a parameter (`mu`, `temperature`) keeps it in a non-trainable
    variable, so `QuantizerAnnealing` can anneal it during training and it is part
    of checkpoints and saved models. How training anneals it is the quantizer's
    `annealing` (the forward's rule: `sign_swish` and `prox` grow \(\mu\) with a
    `GeometricAnnealing`, `hardtanh` decays \(T\) with an `ExponentialAnnealing`); a
    subclass may declare its own as a class attribute, and
    `bnnzoo.callbacks.default_annealing` follows whatever it declares. With `exact_sign=True` (also a variable, set by
    the annealing callback at the end of its schedule) the forward is exactly
    \\(\operatorname{sign}\\) whatever the parameter; the backward is unchanged. The
    annealed variables are kept out of `layer.weights` (as larq does for its
    metrics), so a trained model's weights load into the same network built with
    plain `ste_sign`; `get_config` reports their current values. Serializing an
    annealed quantizer whose `exact_sign` is still off (`model.save` in a plain Keras
    script) warns once per process (`NonBinaryForwardWarning`): the saved model is not
    binary until `finalize(model)`.

    `precision` is 1 (binary, so `lq.optimizers.Bop` trains the kernel and
    `lq.models.summary` counts it as 1-bit) for every forward but `identity`: the
    annealed forwards are binary once `exact_sign` is set, which is the model that
    is deployed.

    !!! example
        ```python
        import larq as lq
        import numpy as np
        from bnnzoo.quantizers import ForwardBackwardQuantizer

        # STE-Warmup's pair written out: hardtanh(x / T) forward, 1{|x|<=1} backward
        q = ForwardBackwardQuantizer(forward="hardtanh", backward="ste", temperature=0.5)
        layer = lq.layers.QuantDense(64, kernel_quantizer=q, input_quantizer="bnnpp")
        x = np.array([-2.0, -0.25, 0.0, 0.3, 1.0], "float32")
        np.testing.assert_allclose(q(x).numpy(), np.clip(x / 0.5, -1.0, 1.0), rtol=1e-6)
        ```

    Args:
        forward: name of the forward function \\(F\\) (see the table).
        backward: name of the backward derivative \\(B'\\) (see the table).
        mu: parameter of the `sign_swish` / `prox` forwards, > 0.
        temperature: parameter \\(T\\) of the `hardtanh` forward, > 0.
        beta: parameter of the `sign_swish` backward, > 0.
        clip_value: parameter \\(c\\) of the `ste` backward, > 0.
        exact_sign: use \\(\operatorname{sign}\\) as the forward (annealing finished).
        metrics: larq quantizer metrics (`["flip_ratio"]`).

    References:
        - [Understanding Neural Network Binarization with Forward and Backward
          Proximal Quantizers](https://arxiv.org/abs/2402.17710) (ProxConnect++)
        - [Demystifying and Generalizing BinaryConnect](https://arxiv.org/abs/2110.13220)
    """

    precision = 1

    def __init__(
        self,
        forward: str = "sign",
        backward: str = "ste",
        *,
        mu: float | None = None,
        temperature: float | None = None,
        beta: float | None = None,
        clip_value: float | None = None,
        exact_sign: bool = False,
        **kwargs,
    ):
        if forward not in _FORWARDS:
            raise ValueError(f"Unknown forward {forward!r}. Valid: {', '.join(FORWARDS)}")
        if backward not in _BACKWARDS:
            raise ValueError(f"Unknown backward {backward!r}. Valid: {', '.join(BACKWARDS)}")
        if backward == "forward" and _FORWARDS[forward].derivative is None:
            raise ValueError(f"backward='forward' needs a differentiable forward, got forward={forward!r}")
        given = {"mu": mu, "temperature": temperature, "beta": beta, "clip_value": clip_value}
        needed = {_FORWARDS[forward].parameter, _BACKWARDS[backward].parameter} - {None}
        for name, value in given.items():
            if value is not None and name not in needed:
                raise ValueError(
                    f"{name} is not a parameter of forward={forward!r}, backward={backward!r}; "
                    f"its parameters are: {', '.join(sorted(needed)) or 'none'}"
                )
        self.forward = forward
        self.backward = backward
        annealed = self.annealing.parameter if self.annealing is not None else None
        if annealed != _FORWARDS[forward].parameter:
            raise ValueError(
                f"annealing of {type(self).__name__} must move the parameter "
                f"{_FORWARDS[forward].parameter!r} of forward {forward!r}, got {self.annealing!r}"
            )
        self.parameters = {
            name: check_positive(name, _DEFAULT_PARAMETERS[name] if given[name] is None else given[name], convert=True)
            for name in sorted(needed)
        }
        self.exact_sign = bool(exact_sign)
        # The constructor's value: where default annealing schedules start.
        self._initial_parameter = self.parameters.get(_FORWARDS[forward].parameter)
        if not _FORWARDS[forward].binary and _FORWARDS[forward].parameter is None:
            self.precision = None  # e.g. `identity`: never binary
        super().__init__(**kwargs)

    # ----------------------------------------------------------------- annealing

    @property
    def annealing(self) -> Annealing | None:
        """How training anneals the forward's parameter (`None`: not annealed).

        The forward's rule; a subclass overrides it with a class attribute
        (`annealing = GeometricAnnealing("mu", end=3.0)`), which must move the forward's
        parameter.
        """
        return _FORWARDS[self.forward].annealing

    @property
    def annealed_parameter(self) -> str | None:
        """Name of the forward's parameter (`mu`, `temperature`) or `None`."""
        return _FORWARDS[self.forward].parameter

    @property
    def anneal_direction(self) -> str | None:
        """`"up"` or `"down"`: the way the parameter moves the forward towards sign."""
        return None if self.annealing is None else self.annealing.direction

    def annealing_schedule(self, epochs: int, rule: str = "default",
                           mu_max: float | None = None) -> Callable[[int], float]:
        """The per-epoch schedule of the annealed parameter over `epochs`, from the
        constructor's value, by `rule` (see `annealing`)."""
        if self.annealing is None:
            raise ValueError(f"forward {self.forward!r} has no annealed parameter")
        return self.annealing.schedule(self._initial_parameter, epochs, rule, mu_max)

    def build(self, input_shape):
        name = self.annealed_parameter
        if name is not None and not hasattr(self, "_annealed"):
            self._annealed = self.add_weight(
                name=name,
                shape=(),
                dtype=tf.float32,
                initializer=tf.keras.initializers.Constant(self.parameters[name]),
                trainable=False,
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )
            self._exact = self.add_weight(
                name="exact_sign",
                shape=(),
                dtype=tf.float32,
                initializer=tf.keras.initializers.Constant(float(self.exact_sign)),
                trainable=False,
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )
        super().build(input_shape)

    def annealed_value(self) -> float:
        """Current value of the annealed parameter."""
        name = self.annealed_parameter
        if name is None:
            raise ValueError(f"forward {self.forward!r} has no annealed parameter")
        if hasattr(self, "_annealed"):
            return float(tf.keras.backend.get_value(self._annealed))
        return self.parameters[name]

    def is_exact_sign(self) -> bool:
        """Whether the forward is exactly sign (annealing finished)."""
        if hasattr(self, "_exact"):
            return bool(tf.keras.backend.get_value(self._exact) > 0.5)
        return self.exact_sign

    def set_annealed(self, value: float | None = None, exact_sign: bool | None = None) -> None:
        """Set the annealed parameter and/or the exact-sign switch (outside `tf.function`)."""
        name = self.annealed_parameter
        if name is None:
            raise ValueError(f"forward {self.forward!r} has no annealed parameter")
        if value is not None:
            value = check_positive(name, value, convert=True)
            if hasattr(self, "_annealed"):
                self._annealed.assign(value)
            else:
                self.parameters[name] = value
        if exact_sign is not None:
            if hasattr(self, "_exact"):
                self._exact.assign(float(bool(exact_sign)))
            else:
                self.exact_sign = bool(exact_sign)

    # ----------------------------------------------------------------- computation

    def call(self, inputs):
        dtype = inputs.dtype
        param = _BACKWARDS[self.backward].parameter
        b_param = tf.constant(self.parameters[param] if param else 0.0, dtype)
        forward_kernel, backward_kernel = _kernels(self.forward, self.backward, FUSE_WITH_XLA)
        if self.annealed_parameter is not None:
            value, exact = tf.cast(self._annealed, dtype), self._exact > 0.5

            @tf.custom_gradient
            def quantize(x):
                y, d = forward_kernel(x, value, exact, b_param)
                return y, (lambda dy: dy) if d is None else (lambda dy: dy * d)

        else:

            @tf.custom_gradient
            def quantize(x):
                # Forward graph as larq's (`lq.math.sign`), so converters recognize it.
                y = _FORWARDS[self.forward].function(x)
                if backward_kernel is None:
                    return y, lambda dy: dy
                return y, lambda dy: backward_kernel(x, dy, b_param)

        return super().call(quantize(inputs))

    def get_config(self):
        config = {"forward": self.forward, "backward": self.backward, **self.parameters}
        if self.annealed_parameter is not None:
            config[self.annealed_parameter] = self.annealed_value()
            config["exact_sign"] = self.is_exact_sign()
            if not config["exact_sign"]:
                _warn_nonbinary(self, config[self.annealed_parameter])
        return {**super().get_config(), **config}


def _log_uniform_space(name: str, low: float, high: float, default: float, doc: str):
    """A `search_space(hp)` classmethod drawing the constructor argument `name`
    log-uniformly from [low, high] (what `bnnzoo.tuning` calls on registered classes)."""

    def search_space(cls, hp):
        return {name: hp.Float(name, low, high, sampling="log", default=default)}

    search_space.__doc__ = f"keras-tuner space: {doc}"
    return classmethod(search_space)


class NamedPair(ForwardBackwardQuantizer):
    """A member of the ProxConnect++ family with its forward and backward fixed: the base
    of every named pair (`BNN`, `BNNPlusPlus`, `SteWarmup`, ...).

    A subclass sets `_forward` and `_backward` (names from `ForwardBackwardQuantizer`'s
    tables) and, to anneal its forward's parameter otherwise than the forward's rule, an
    `annealing`; its constructor takes the pair's parameters, and its config omits the
    fixed names.

    !!! example
        ```python
        from bnnzoo.quantizers import ExponentialAnnealing, NamedPair

        class FastWarmup(NamedPair):  # STE-Warmup's pair, T halved every epoch
            _forward, _backward = "hardtanh", "ste"
            annealing = ExponentialAnnealing("temperature", rate=0.5)

        q = FastWarmup(temperature=2.0)
        assert q.annealing_schedule(epochs=10)(2) == 0.5
        assert FastWarmup.from_config(q.get_config()).get_config() == q.get_config()
        ```
    """

    _forward = "sign"
    _backward = "ste"

    def __init__(self, **kwargs):
        kwargs.pop("forward", None)
        kwargs.pop("backward", None)
        super().__init__(forward=self._forward, backward=self._backward, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.pop("forward")
        config.pop("backward")
        return config


@register_quantizer("binary_connect")
class BinaryConnect(NamedPair):
    r"""BinaryConnect: sign forward, identity backward.

    \\[
    q(x) = \operatorname{sign}(x), \qquad \frac{\partial q}{\partial x} := 1
    \\]

    The plain straight-through estimator without clipping (larq's
    `SteSign(clip_value=None)`), written as the ProxConnect++ pair (sign, identity).

    !!! example
        ```python
        import larq as lq
        import numpy as np
        import bnnzoo  # registers the string aliases

        layer = lq.layers.QuantDense(64, kernel_quantizer="binary_connect")
        x = np.ones((2, 16), "float32")
        y = layer(x)
        binary = np.where(layer.kernel.numpy() >= 0, 1.0, -1.0)  # the kernel binarized with sign
        np.testing.assert_allclose(y.numpy(), x @ binary, rtol=1e-6)
        ```

    References:
        - [BinaryConnect: Training Deep Neural Networks with binary weights during
          propagations](https://arxiv.org/abs/1511.00363)
    """

    _forward, _backward = "sign", "identity"


@register_quantizer("bnn")
class BNN(NamedPair):
    r"""BNN: sign forward, clipped identity backward.

    \\[
    q(x) = \operatorname{sign}(x), \qquad
    \frac{\partial q}{\partial x} := 1_{\lvert x \rvert \le c}
    \\]

    The same pair as larq's `ste_sign` (kept as the ProxConnect++ member "BNN").

    !!! example
        ```python
        import tensorflow as tf
        from bnnzoo.quantizers import BNN

        x = tf.constant([-2.0, -0.5, 0.5, 2.0])
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = BNN()(x)
        assert y.numpy().tolist() == [-1.0, -1.0, 1.0, 1.0]
        assert tape.gradient(y, x).numpy().tolist() == [0.0, 1.0, 1.0, 0.0]  # 1 inside |x| <= c
        ```

    Args:
        clip_value: \\(c\\), > 0 (default 1).

    References:
        - [Binarized Neural Networks](https://arxiv.org/abs/1602.02830)
    """

    _forward, _backward = "sign", "ste"


@register_quantizer("bnn_plus")
class BNNPlus(NamedPair):
    r"""BNN+: sign forward, sign-Swish derivative backward.

    \\[
    q(x) = \operatorname{sign}(x), \qquad
    \frac{\partial q}{\partial x} := \frac{d}{dx} SS_\beta(x)
      = 2\beta\sigma(\beta x)(1-\sigma(\beta x))\,[2 + \beta x (1 - 2\sigma(\beta x))]
    \\]

    with \\(SS_\beta(x) = 2\sigma(\beta x)[1 + \beta x(1 - \sigma(\beta x))] - 1\\).
    The same pair as larq's `swish_sign`.

    !!! example
        ```python
        import larq as lq
        from bnnzoo.quantizers import BNNPlus

        layer = lq.layers.QuantDense(64, kernel_quantizer=BNNPlus(beta=5.0))
        assert BNNPlus(beta=5.0).get_config()["beta"] == 5.0
        ```

    Args:
        beta: \\(\beta\\), > 0 (default 5).

    References:
        - [BNN+: Improved Binary Network Training](https://arxiv.org/abs/1812.11800)
    """

    _forward, _backward = "sign", "sign_swish"

    search_space = _log_uniform_space("beta", 1.0, 20.0, 5.0, "the sign-Swish steepness beta.")


@register_quantizer("bnnpp")
class BNNPlusPlus(NamedPair):
    r"""BNN++: sign-Swish forward and its exact derivative backward, \\(\mu\\) annealed up.

    Not binary until finalized: the forward is the smooth \\(SS_\mu\\), not \\(\pm 1\\),
    until `exact_sign` is set (the annealing callback's last phase, which
    `bnnzoo.training.train` attaches, or `bnnzoo.quantizers.finalize(model)`);
    `binary_forward(model)` says which a model has.

    \\[
    q(x) = SS_\mu(x) = 2\sigma(\mu x)[1 + \mu x(1 - \sigma(\mu x))] - 1, \qquad
    \frac{\partial q}{\partial x} = 2\mu\sigma(\mu x)(1-\sigma(\mu x))\,[2 + \mu x (1 - 2\sigma(\mu x))]
    \\]

    \\(SS_\mu \to \operatorname{sign}\\) as \\(\mu \to \infty\\); `QuantizerAnnealing`
    (attached automatically by `bnnzoo.training.train`) raises \\(\mu\\) during
    training and sets `exact_sign` for the last epoch, so the final model uses
    \\(\operatorname{sign}\\) exactly.

    !!! example
        ```python
        import larq as lq
        from bnnzoo.quantizers import BNNPlusPlus

        # by alias (mu = 1, raised by training) or as an object with its own mu
        layer = lq.layers.QuantDense(64, input_quantizer="bnnpp", kernel_quantizer=BNNPlusPlus(mu=3.0))
        assert layer.kernel_quantizer.get_config()["mu"] == 3.0
        ```

    Args:
        mu: current \\(\mu\\), > 0 (default 1).
        exact_sign: forward is exactly sign.

    References:
        - [Understanding Neural Network Binarization with Forward and Backward
          Proximal Quantizers](https://arxiv.org/abs/2402.17710)
    """

    _forward, _backward = "sign_swish", "forward"

    search_space = _log_uniform_space("mu", 0.25, 4.0, 1.0, "the starting mu (the default schedule grows it to MU_MAX = 5).")


@register_quantizer("proxconnect")
class ProxConnect(NamedPair):
    r"""ProxConnect: proximal-map forward, identity backward.

    Not binary until finalized: the forward \\(P^\mu\\) is not \\(\pm 1\\) off
    \\([-1, 1]\\) until `exact_sign` is set (the annealing callback's last phase, which
    `bnnzoo.training.train` attaches, or `bnnzoo.quantizers.finalize(model)`);
    `binary_forward(model)` says which a model has.

    \\[
    q(x) = P^\mu(x) = \operatorname{sign}(x)\,\bigl(1 + \operatorname{shrink}_\mu(\lvert x\rvert - 1)\bigr),
    \qquad \frac{\partial q}{\partial x} := 1
    \\]

    where \\(\operatorname{shrink}_\mu(z) = \operatorname{sign}(z)\max(\lvert z\rvert - \mu, 0)\\):
    \\(P^\mu\\) is the proximal map of \\(\mu\,\operatorname{dist}(x, \\{-1, 1\\})\\) (ProxQuant's
    W-shaped regularizer), which moves \\(\lvert x \rvert\\) towards 1 by at most
    \\(\mu\\). For \\(\mu \ge 1\\) it equals sign on \\([-1, 1]\\) (clipped weights).
    \\(\mu\\) is annealed upward by `QuantizerAnnealing`, which sets `exact_sign` at
    the end. The regularizer family of the ProxConnect paper is more general; this
    is the member it is usually illustrated with.

    !!! example
        ```python
        import larq as lq
        from bnnzoo.quantizers import ProxConnect

        layer = lq.layers.QuantDense(64, kernel_quantizer=ProxConnect(mu=0.1))
        ```

    Args:
        mu: current \\(\mu\\), > 0 (default 0.1).
        exact_sign: forward is exactly sign.

    References:
        - [Demystifying and Generalizing BinaryConnect](https://arxiv.org/abs/2110.13220)
        - [ProxQuant: Quantized Neural Networks via Proximal
          Operators](https://arxiv.org/abs/1810.00861)
    """

    _forward, _backward = "prox", "identity"

    search_space = _log_uniform_space("mu", 0.02, 0.5, 0.1, "the starting mu (the default schedule grows it 10x).")

    def __init__(self, mu: float = 0.1, **kwargs):
        super().__init__(mu=mu, **kwargs)


@register_quantizer("ste_warmup")
class SteWarmup(NamedPair):
    r"""STE-Warmup (Hyper-BinaryNet): hardtanh(x / T) forward, clipped identity backward.

    Not binary until finalized: the forward \\(\operatorname{clip}(x / T, -1, 1)\\) takes
    every value in \\([-1, 1]\\) until `exact_sign` is set (the annealing callback's last
    phase, which `bnnzoo.training.train` attaches, or
    `bnnzoo.quantizers.finalize(model)`); `binary_forward(model)` says which a model has.

    \\[
    q(x) = \operatorname{clip}\left(\frac{x}{T}, -1, 1\right), \qquad
    \frac{\partial q}{\partial x} := 1_{\lvert x \rvert \le c}
    \\]

    The temperature \\(T\\) decays during training (`QuantizerAnnealing`; the
    paper's CIFAR schedule is \\(T_0 \cdot 0.95^{\text{epoch}}\\), its ImageNet one
    \\(T_0 \cdot 0.985^{\lfloor\max(0, t - 50000)/1000\rfloor}\\)), so the forward goes
    from a clipped identity (32-bit-like) to sign; at the end of the schedule
    `exact_sign` makes it exactly \\(\operatorname{sign}\\).

    Weights and activations alike: the authors' code (`main.py`, `adjust_temperoture`)
    sets the same \\(T = T_0 \\cdot 0.95^{\\text{epoch}}\\) on every `Softsign_W` (kernels)
    and `Softsign_A` (activations) module, so a `TrainConfig` whose shared `quantizer`
    is `ste_warmup` anneals both. For a weights-only warm-up give the activations
    another quantizer (`input_quantizer="ste_sign"`).

    !!! example
        ```python
        import larq as lq
        import numpy as np
        import bnnzoo  # registers the string aliases

        layer = lq.layers.QuantConv2D(
            64, 3, input_quantizer="ste_warmup", kernel_quantizer="ste_warmup"
        )
        y = layer(np.ones((1, 8, 8, 3), "float32"))
        ```

    Args:
        temperature: current \\(T\\), > 0 (default 1).
        clip_value: \\(c\\) of the backward, > 0 (default 1).
        exact_sign: forward is exactly sign.

    References:
        - [Gradient Matters: Designing Binarized Neural Networks via Enhanced
          Information-Flow](https://doi.org/10.1109/TPAMI.2021.3088904)
    """

    _forward, _backward = "hardtanh", "ste"

    search_space = _log_uniform_space("temperature", 0.25, 4.0, 1.0, "the starting temperature T0.")


def annealable_quantizers(model) -> list[ForwardBackwardQuantizer]:
    """Every quantizer in `model` (nested layers included) with an annealed parameter."""
    found, seen = [], set()
    for module in getattr(model, "submodules", ()):
        if (isinstance(module, ForwardBackwardQuantizer) and module.annealed_parameter is not None
                and id(module) not in seen):
            seen.add(id(module))
            found.append(module)
    return found


def finalize(model):
    """Switch every annealed quantizer of `model` to its exact-sign forward; returns `model`.

    What the annealing callback's last phase does (`QuantizerAnnealing`), for a model
    trained without it (`annealing="none"`, a plain Keras `fit`) or stopped early.
    The backward pass is unchanged. Afterwards `binary_forward(model)` is True unless
    another quantizer is not binary, and saving the model no longer warns
    (`NonBinaryForwardWarning`).

    !!! example
        ```python
        import numpy as np
        import bnnzoo

        model = bnnzoo.models.create_model("binarynet_mlp", input_shape=(8, 8, 1), units=16,
                                           input_quantizer="bnnpp", kernel_quantizer="bnnpp")
        assert not bnnzoo.quantizers.binary_forward(model)  # smooth SS_mu forward
        bnnzoo.quantizers.finalize(model)
        assert bnnzoo.quantizers.binary_forward(model)
        ```

    Args:
        model: a Keras model (nested models and wrappers included).
    """
    for quantizer in annealable_quantizers(model):
        quantizer.set_annealed(exact_sign=True)
    return model


# Layer attributes that hold a larq quantizer.
_QUANTIZER_ATTRS = ("input_quantizer", "kernel_quantizer", "depthwise_quantizer", "pointwise_quantizer")
# larq's quantizer functions with a sign forward (a layer keeps a function given to it as it is).
_SIGN_FUNCTIONS = frozenset({"ste_sign", "approx_sign", "swish_sign", "sign", "magnitude_aware_sign"})


def _model_quantizers(model) -> list:
    found, seen = [], set()
    for module in [model, *getattr(model, "submodules", ())]:
        for attr in _QUANTIZER_ATTRS:
            quantizer = getattr(module, attr, None)
            if quantizer is not None and id(quantizer) not in seen:
                seen.add(id(quantizer))
                found.append(quantizer)
    return found


def _binary_now(quantizer) -> bool | None:
    """True/False: a 1-bit quantizer whose forward is/is not binary now; None: not 1-bit."""
    if isinstance(quantizer, ForwardBackwardQuantizer):
        if quantizer.annealed_parameter is not None:
            return quantizer.is_exact_sign()
        return True if _FORWARDS[quantizer.forward].binary else None
    # larq's 1-bit quantizers (objects, and functions larq tags with `precision`).
    if getattr(quantizer, "precision", None) == 1 or getattr(quantizer, "__name__", None) in _SIGN_FUNCTIONS:
        return True
    return None


def binary_forward(model) -> bool:
    """Whether `model` is binary as it stands: it has 1-bit quantizers and each has a binary forward now.

    False for a model with an annealed quantizer (BNN++, STE-Warmup, ProxConnect)
    whose `exact_sign` is still off: its forward is smooth, so its accuracy is not
    that of the binary model an export makes (`finalize` switches them). Also False
    for a model with no 1-bit quantizer at all (a float model). Multi-bit
    quantizers (e.g. DoReFa's k-bit activations) are neither: they are not counted
    as binary anywhere, so they do not make this False.

    !!! example
        ```python
        import bnnzoo

        model = bnnzoo.models.create_model("binarynet_mlp", input_shape=(8, 8, 1), units=16)
        assert bnnzoo.quantizers.binary_forward(model)  # ste_sign: sign forward
        ```

    Args:
        model: a Keras model (nested models and wrappers included).
    """
    states = [_binary_now(q) for q in _model_quantizers(model)]
    states = [state for state in states if state is not None]
    return bool(states) and all(states)


# ----------------------------------------------------------------------- saving a non-binary model


class NonBinaryForwardWarning(UserWarning):
    """An annealed quantizer was serialized before its forward became sign.

    Warned, once per process, when `get_config` of a quantizer whose forward is
    not binary yet (BNN++, ProxConnect, STE-Warmup or another annealed
    `ForwardBackwardQuantizer` with `exact_sign` off) runs outside bnnzoo's own
    training and exports, that is when a plain Keras script saves the model
    (`model.save`, `to_json`): the saved model is the smooth one, not the binary
    model that `bnnzoo.quantizers.finalize(model)` (or training with bnnzoo's
    annealing callback, `bnnzoo.callbacks.QuantizerAnnealing`) makes. The one-line
    message names the quantizer, its current parameter and that remedy.
    `bnnzoo.training.train` (checkpoints and `model.keras` written mid-annealing,
    labelled by `binary_forward` in `metrics.json`) and `bnnzoo.export` do not warn;
    neither does code inside `nonbinary_expected()`.

    `shown` records that it was warned; set it back to `False` to be warned again
    (tests do, with `monkeypatch.setattr(NonBinaryForwardWarning, "shown", False)`).

    !!! example
        ```python
        import warnings
        import bnnzoo
        from bnnzoo.quantizers import NonBinaryForwardWarning

        model = bnnzoo.models.create_model("binarynet_mlp", input_shape=(8, 8, 1), units=16,
                                           input_quantizer="bnnpp", kernel_quantizer="bnnpp")
        NonBinaryForwardWarning.shown = False  # as in a fresh process
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.to_json()  # BNN++ at mu = 1: not sign yet
            model.to_json()
        found = [w for w in caught if issubclass(w.category, NonBinaryForwardWarning)]
        assert len(found) == 1 and "quantizer 'bnnpp' (BNNPlusPlus, mu=1)" in str(found[0].message)
        assert "bnnzoo.quantizers.finalize(model)" in str(found[0].message)
        ```
    """

    shown = False


# True inside `nonbinary_expected()`: serializing a non-binary quantizer is not warned of.
_NONBINARY_EXPECTED = contextvars.ContextVar("bnnzoo_nonbinary_expected", default=False)


@contextlib.contextmanager
def nonbinary_expected():
    """A `with` block in which serializing a not yet binary quantizer does not warn.

    For saves of models that are meant to be mid-annealing (checkpoints of a run
    that goes on) and for copies made through `get_config`: the `model.keras` that
    `bnnzoo.training.train` writes, the inference copy `bnnzoo.export` makes, the
    quantizer records of `bnnzoo.zoo` and `clone_quantizer` run inside it. It does not
    mark the warning as shown; a save after the block still warns (once).

    !!! example
        ```python
        import warnings
        import bnnzoo
        from bnnzoo.quantizers import NonBinaryForwardWarning, nonbinary_expected

        model = bnnzoo.models.create_model("binarynet_mlp", input_shape=(8, 8, 1), units=16,
                                           kernel_quantizer="ste_warmup")
        NonBinaryForwardWarning.shown = False  # as in a fresh process
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with nonbinary_expected():
                model.save("mid_annealing.keras")  # a checkpoint of a run that goes on
        assert not any(issubclass(w.category, NonBinaryForwardWarning) for w in caught)
        assert not NonBinaryForwardWarning.shown
        ```
    """
    token = _NONBINARY_EXPECTED.set(True)
    try:
        yield
    finally:
        _NONBINARY_EXPECTED.reset(token)


def _quantizer_label(quantizer: ForwardBackwardQuantizer, value: float) -> str:
    """`quantizer 'bnnpp' (BNNPlusPlus, mu=1)`: its bnnzoo name, class and annealed parameter."""
    cls = type(quantizer)
    parameter = f"{quantizer.annealed_parameter}={value:g}"
    name = next((n for n, item in _QUANTIZERS.items() if item is cls), None)
    if name is None:
        return f"quantizer {cls.__name__} (forward {quantizer.forward!r}, {parameter})"
    return f"quantizer {name!r} ({cls.__name__}, {parameter})"


def _warn_nonbinary(quantizer: ForwardBackwardQuantizer, value: float) -> None:
    """`NonBinaryForwardWarning` for `quantizer` (serialized with `exact_sign` off), once per process."""
    if NonBinaryForwardWarning.shown or _NONBINARY_EXPECTED.get():
        return
    NonBinaryForwardWarning.shown = True
    warnings.warn(
        f"{_quantizer_label(quantizer, value)} serialized with a non-binary forward (exact_sign off), so "
        "the saved model is not binary; call bnnzoo.quantizers.finalize(model) before saving it, or train "
        "with bnnzoo's annealing callback (bnnzoo.callbacks.QuantizerAnnealing); warned once per process",
        NonBinaryForwardWarning, stacklevel=_caller_level())


# Packages a save goes through between the script's call and `get_config`.
_SAVING_PACKAGES = ("keras", "tf_keras", "tensorflow", "larq")


def _caller_level() -> int:
    """The `stacklevel` (for a `warnings.warn` in this module's caller) of the first frame
    outside this module, Keras, TensorFlow and larq: the script line that saved the model."""
    frame, level = inspect.currentframe().f_back.f_back, 2
    while frame.f_back is not None:
        module = frame.f_globals.get("__name__", "")
        if module != __name__ and module.split(".")[0] not in _SAVING_PACKAGES:
            break
        frame, level = frame.f_back, level + 1
    return level


@register_quantizer("dorefa_weights")
class DoReFaWeights(lq.quantizers.DoReFa):
    r"""DoReFa-Net's 1-bit weight quantizer: larq's `DoReFa` with `k_bit=1, mode="weights"`.

    \\[
    q(w) = 2\,\operatorname{round}\Bigl(\frac{\tanh w}{2\max\lvert\tanh w\rvert} + \frac12\Bigr) - 1
    \\in \\{-1, 1\\}, \qquad
    \frac{\partial q}{\partial w} := \frac{\partial}{\partial w}\,\frac{\tanh w}{\max\lvert\tanh w\rvert}
    \\]

    (straight-through over the rounding). The weight quantizer of FSG's public code
    (weights-only binarization). Registered as `"dorefa_weights"`.

    !!! example
        ```python
        import numpy as np
        from bnnzoo.quantizers import get_quantizer

        q = get_quantizer("dorefa_weights")
        w = np.array([-0.9, -0.3, 0.05, 0.2], "float32")
        p = np.tanh(w) / (2 * np.abs(np.tanh(w)).max()) + 0.5  # the pre-quantized weight in [0, 1]
        assert np.array_equal(q(w).numpy(), 2 * np.round(p) - 1)
        assert np.array_equal(q(w).numpy(), np.sign(w))  # 1 bit: the sign (w != 0)
        ```

    Args:
        k_bit: bits (1; larq's `DoReFa` for more).
        mode: `"weights"`.

    References:
        - [DoReFa-Net](https://arxiv.org/abs/1606.06160)
    """

    def __init__(self, k_bit: int = 1, mode: str = "weights", **kwargs):
        if not (isinstance(k_bit, (int, np.integer)) and not isinstance(k_bit, bool) and 1 <= k_bit <= 8):
            raise ValueError(f"k_bit must be an integer in [1, 8], got {k_bit!r}")
        if mode not in ("weights", "activations"):
            raise ValueError(f"mode must be 'weights' or 'activations', got {mode!r}")
        super().__init__(k_bit=int(k_bit), mode=mode, **kwargs)

