"""Gradient approximations for binarization, as Larq quantizers.

Every quantizer here is a `larq.quantizers.BaseQuantizer` usable by string alias or
as an object in any `lq.layers.Quant*` layer. One registry maps bnnzoo names to the
classes that build them, so comparisons, the CLI and the tuner can name every
method, including larq's own `ste_sign`, `approx_sign` and `swish_sign`, which are
reused as they are rather than re-implemented.

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

import functools
from typing import Any, Callable, NamedTuple

import larq as lq
import numpy as np
import tensorflow as tf

from bnnzoo.registry import Registry
from bnnzoo.validation import check_positive

__all__ = [
    "BNN",
    "BNNPlus",
    "BNNPlusPlus",
    "BinaryConnect",
    "ForwardBackwardQuantizer",
    "ProxConnect",
    "SteWarmup",
    "annealable_quantizers",
    "binary_forward",
    "clone_quantizer",
    "DoReFaWeights",
    "finalize",
    "get_quantizer",
    "list_quantizers",
    "quantizer_class",
    "register_quantizer",
]

_QUANTIZERS: Registry[Callable[..., Any]] = Registry("quantizer")


def register_quantizer(name: str, factory: Callable[..., Any] | None = None):
    """Register a quantizer class (or factory) under a bnnzoo name.

    Usable as a decorator (`@register_quantizer("bnnpp")`) or a call. The factory
    takes the quantizer's keyword arguments and returns a new quantizer object.
    A class may define a `search_space(hp)` classmethod that the tuner uses.
    """
    return _QUANTIZERS.register(name, factory)


def list_quantizers() -> list[str]:
    """Sorted names of every registered quantizer."""
    return _QUANTIZERS.names()


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
        _check_larq_parameters(type(quantizer), quantizer.get_config())
    return quantizer


def clone_quantizer(quantizer):
    """A fresh copy of a quantizer object (functions and `None` are returned as they are)."""
    if quantizer is None or not isinstance(quantizer, tf.keras.layers.Layer):
        return quantizer
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
    anneal_direction: str | None  # "up"/"down": how the parameter moves towards sign


class _Backward(NamedTuple):
    """A backward B' of a ProxConnect++ pair."""

    derivative: Callable | None  # B'(x, parameter); None: identity, or the forward's own
    parameter: str | None


_FORWARDS: dict[str, _Forward] = {
    "sign": _Forward(lambda x: lq.math.sign(x), None, None, True, None),
    "identity": _Forward(lambda x: x, lambda x: tf.ones_like(x), None, False, None),
    "sign_swish": _Forward(_sign_swish, _sign_swish_derivative, "mu", False, "up"),
    "hardtanh": _Forward(_hardtanh, _hardtanh_derivative, "temperature", False, "down"),
    "prox": _Forward(_prox, _prox_derivative, "mu", False, "up"),
}
_BACKWARDS: dict[str, _Backward] = {
    "identity": _Backward(None, None),
    "ste": _Backward(_clipped_identity_derivative, "clip_value"),
    "sign_swish": _Backward(_sign_swish_derivative, "beta"),
    "forward": _Backward(None, None),  # the exact derivative of the forward function
}
_DEFAULT_PARAMETERS = {"mu": 1.0, "temperature": 1.0, "clip_value": 1.0, "beta": 5.0}
FORWARDS = tuple(_FORWARDS)
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
    of checkpoints and saved models. With `exact_sign=True` (also a variable, set by
    the annealing callback at the end of its schedule) the forward is exactly
    \\(\operatorname{sign}\\) whatever the parameter; the backward is unchanged. The
    annealed variables are kept out of `layer.weights` (as larq does for its
    metrics), so a trained model's weights load into the same network built with
    plain `ste_sign`; `get_config` reports their current values.

    `precision` is 1 (binary, so `lq.optimizers.Bop` trains the kernel and
    `lq.models.summary` counts it as 1-bit) for every forward but `identity`: the
    annealed forwards are binary once `exact_sign` is set, which is the model that
    is deployed.

    !!! example
        ```python
        import larq as lq
        from bnnzoo.quantizers import ForwardBackwardQuantizer

        # STE-Warmup's pair written out: hardtanh(x / T) forward, 1{|x|<=1} backward
        q = ForwardBackwardQuantizer(forward="hardtanh", backward="ste", temperature=0.5)
        layer = lq.layers.QuantDense(64, kernel_quantizer=q, input_quantizer="bnnpp")
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
    def annealed_parameter(self) -> str | None:
        """Name of the forward's parameter (`mu`, `temperature`) or `None`."""
        return _FORWARDS[self.forward].parameter

    @property
    def anneal_direction(self) -> str | None:
        """`"up"` or `"down"`: the way the parameter moves the forward towards sign."""
        return _FORWARDS[self.forward].anneal_direction

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
        return {**super().get_config(), **config}


def _log_uniform_space(name: str, low: float, high: float, default: float, doc: str):
    """A `search_space(hp)` classmethod drawing the constructor argument `name`
    log-uniformly from [low, high] (what `bnnzoo.tuning` calls on registered classes)."""

    def search_space(cls, hp):
        return {name: hp.Float(name, low, high, sampling="log", default=default)}

    search_space.__doc__ = f"keras-tuner space: {doc}"
    return classmethod(search_space)


class _NamedPair(ForwardBackwardQuantizer):
    """A member of the family with its forward and backward fixed."""

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


@lq.utils.register_alias("binary_connect")
@lq.utils.register_keras_custom_object
class BinaryConnect(_NamedPair):
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
        y = layer(np.ones((2, 16), "float32"))  # kernel binarized with sign
        ```

    References:
        - [BinaryConnect: Training Deep Neural Networks with binary weights during
          propagations](https://arxiv.org/abs/1511.00363)
    """

    _forward, _backward = "sign", "identity"


@lq.utils.register_alias("bnn")
@lq.utils.register_keras_custom_object
class BNN(_NamedPair):
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


@lq.utils.register_alias("bnn_plus")
@lq.utils.register_keras_custom_object
class BNNPlus(_NamedPair):
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


@lq.utils.register_alias("bnnpp")
@lq.utils.register_keras_custom_object
class BNNPlusPlus(_NamedPair):
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


@lq.utils.register_alias("proxconnect")
@lq.utils.register_keras_custom_object
class ProxConnect(_NamedPair):
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


@lq.utils.register_alias("ste_warmup")
@lq.utils.register_keras_custom_object
class SteWarmup(_NamedPair):
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
    another quantizer is not binary.

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


@lq.utils.register_alias("dorefa_weights")
@lq.utils.register_keras_custom_object
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
        print(q(np.array([-0.3, 0.2], "float32")).numpy())  # [-1.  1.]
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


register_quantizer("dorefa_weights", DoReFaWeights)

for _name, _cls in (("binary_connect", BinaryConnect), ("bnn", BNN), ("bnn_plus", BNNPlus),
                    ("bnnpp", BNNPlusPlus), ("proxconnect", ProxConnect), ("ste_warmup", SteWarmup)):
    register_quantizer(_name, _cls)
