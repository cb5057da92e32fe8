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

from typing import Any, Callable

import larq as lq
import tensorflow as tf

__all__ = ["get_quantizer", "list_quantizers", "register_quantizer", "clone_quantizer"]

_QUANTIZERS: dict[str, Callable[..., Any]] = {}


def register_quantizer(name: str, factory: Callable[..., Any] | None = None):
    """Register a quantizer class (or factory) under a bnnzoo name.

    Usable as a decorator (`@register_quantizer("bnnpp")`) or a call. The factory
    takes the quantizer's keyword arguments and returns a new quantizer object.
    A class may define a `search_space(hp)` classmethod that the tuner uses.
    """

    def add(obj):
        if name in _QUANTIZERS and _QUANTIZERS[name] is not obj:
            raise ValueError(f"quantizer {name!r} is already registered")
        _QUANTIZERS[name] = obj
        return obj

    return add(factory) if factory is not None else add


def list_quantizers() -> list[str]:
    """Sorted names of every registered quantizer."""
    return sorted(_QUANTIZERS)


def quantizer_class(name: str):
    """The class (or factory) registered under `name`."""
    try:
        return _QUANTIZERS[name]
    except KeyError:
        raise ValueError(
            f"Unknown quantizer {name!r}. Valid names: {', '.join(list_quantizers())}"
        ) from None


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
        return quantizer_class(identifier)(**kwargs)
    if kwargs:
        raise ValueError("quantizer keyword arguments are only accepted with a quantizer name")
    if isinstance(identifier, dict):
        return lq.quantizers.deserialize(identifier)
    return clone_quantizer(identifier)


def clone_quantizer(quantizer):
    """A fresh copy of a quantizer object (functions and `None` are returned as they are)."""
    if quantizer is None or not isinstance(quantizer, tf.keras.layers.Layer):
        return quantizer
    return type(quantizer).from_config(quantizer.get_config())


# larq's own straight-through family, reused unchanged.
register_quantizer("ste_sign", lq.quantizers.SteSign)
register_quantizer("approx_sign", lq.quantizers.ApproxSign)
register_quantizer("swish_sign", lq.quantizers.SwishSign)
