"""The model registry: `register_model`, `create_model`, `list_models`.

Modeled on timm: each family registers a builder with its default input shape and
the smallest input it supports; `create_model` builds it for any input shape,
number of classes and pair of quantizers, and optionally loads weights.
"""

from __future__ import annotations

import inspect
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import tensorflow as tf

from bnnzoo import pretrained as _pretrained
from bnnzoo import quantizers as _quantizers
from bnnzoo.pretrained import FAMILY_DEFAULT
from bnnzoo.registry import Registry
from bnnzoo.validation import check_int, check_positive

__all__ = ["FAMILY_DEFAULT", "ModelSpec", "create_model", "get_model_spec", "list_models", "quantizer_factory",
           "register_model", "scale_width"]



@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows of a model family."""

    name: str
    builder: Callable[..., tf.keras.Model]
    default_input_shape: tuple[int, ...]
    min_input_size: int = 1
    default_num_classes: int = 10
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)


_MODELS: Registry[ModelSpec] = Registry("model")


def register_model(
    name: str,
    *,
    default_input_shape: tuple[int, ...],
    min_input_size: int = 1,
    default_num_classes: int = 10,
    description: str = "",
    **defaults,
):
    """Decorator registering `builder(input_shape, num_classes, input_quantizer,
    kernel_quantizer, **kwargs) -> tf.keras.Model` as model family `name`.

    `defaults` are keyword arguments bound to this name (so one builder can
    register several sizes, e.g. `quicknet_small` / `quicknet_large`).
    """

    def add(builder):
        if name in _MODELS:  # a spec is new each time: a second registration is a clash
            raise ValueError(f"model {name!r} is already registered")
        _MODELS.register(name, ModelSpec(
            name=name,
            builder=builder,
            default_input_shape=tuple(default_input_shape),
            min_input_size=min_input_size,
            default_num_classes=default_num_classes,
            description=description or (builder.__doc__ or "").strip().split("\n")[0],
            defaults=dict(defaults),
        ))
        return builder

    return add


def list_models(filter: str = "*", pretrained: bool = False) -> list[str]:
    """Sorted registered model names matching a shell-style `filter`.

    With `pretrained=True`, only families that have at least one shipped artifact.
    """
    names = _MODELS.names(filter)
    if pretrained:
        names = [n for n in names if _pretrained.list_pretrained(n)]
    return names


def get_model_spec(name: str) -> ModelSpec:
    """What the registry knows of family `name`; `ValueError` listing the valid names otherwise."""
    return _MODELS.get(name)


# Upper bounds on model sizes: beyond them a typo would exhaust memory, not build a model.
MAX_INPUT_SIZE = 4096
MAX_CHANNELS = 4096
MAX_NUM_CLASSES = 1_000_000
# Values per input image (height x width x channels): a 4096x4096 one-channel image;
# 4096x4096x4096, allowed dimension by dimension, would need 256 GiB per float32 image.
MAX_INPUT_ELEMENTS = MAX_INPUT_SIZE * MAX_INPUT_SIZE


def _check_input_shape(spec: ModelSpec, input_shape) -> tuple[int, ...]:
    try:
        dims = tuple(input_shape)
    except TypeError:
        dims = ()
    if len(dims) != 3 or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in dims):
        raise ValueError(f"input_shape must be 3 integers (height, width, channels), got {input_shape!r}")
    shape = tuple(int(d) for d in dims)
    if any(d <= 0 for d in shape) or max(shape[:2]) > MAX_INPUT_SIZE or shape[2] > MAX_CHANNELS:
        raise ValueError(f"input_shape must have height and width in [1, {MAX_INPUT_SIZE}] and channels "
                         f"in [1, {MAX_CHANNELS}], got {input_shape!r}")
    if shape[0] * shape[1] * shape[2] > MAX_INPUT_ELEMENTS:
        raise ValueError(f"input_shape {input_shape!r} has {shape[0] * shape[1] * shape[2]} values per image; "
                         f"at most {MAX_INPUT_ELEMENTS} (height x width x channels) are allowed")
    if min(shape[:2]) < spec.min_input_size:
        raise ValueError(
            f"{spec.name} needs inputs of at least {spec.min_input_size}x{spec.min_input_size} "
            f"pixels, got {shape[0]}x{shape[1]}; resize the data or pick a smaller family."
        )
    return shape


def create_model(
    name: str,
    *,
    input_shape=None,
    num_classes: int | None = None,
    input_quantizer=FAMILY_DEFAULT,
    kernel_quantizer=FAMILY_DEFAULT,
    weights: str | Path | None = None,
    **kwargs,
) -> tf.keras.Model:
    """Build a registered model family.

    Args:
        name: a name from `list_models()`.
        input_shape: `(height, width, channels)`; the family's default if omitted.
        num_classes: number of output classes; the family's default if omitted.
        input_quantizer: quantizer of the binarized activations (name, object or None);
            by default the pretrained card's, else the family's (`ste_sign` unless
            the family registers another, e.g. larq-zoo's choices for its models).
        kernel_quantizer: quantizer of the binarized weights (name, object or None).
        weights: `None`, a pretrained tag (see `bnnzoo list`), or a path to a weights file.
        **kwargs: family-specific options (e.g. `width`).

    !!! example
        ```python
        import bnnzoo

        model = bnnzoo.models.create_model("binarynet_mlp", input_shape=(8, 8, 1))
        pretrained = bnnzoo.models.create_model("binarynet_mlp", weights="digits")
        ```
    """
    spec = get_model_spec(name)
    card_kwargs = {}
    if weights is not None and not Path(str(weights)).is_file():
        # Rebuild the architecture the weights were trained with.
        card = _pretrained.get_card(name, str(weights))
        input_shape = input_shape or card.input_shape
        num_classes = card.num_classes if num_classes is None else num_classes
        card_kwargs = dict(card.model_kwargs)
        if input_quantizer == FAMILY_DEFAULT:
            input_quantizer = card.input_quantizer
        if kernel_quantizer == FAMILY_DEFAULT:
            kernel_quantizer = card.kernel_quantizer
    shape = _check_input_shape(spec, input_shape or spec.default_input_shape)
    classes = check_int("num_classes", spec.default_num_classes if num_classes is None else num_classes,
                        2, MAX_NUM_CLASSES)
    options = {**spec.defaults, **card_kwargs, **kwargs}
    try:
        _check_options(spec, options)
    except ValueError as err:
        if not card_kwargs:
            raise
        raise ValueError(f"{err} (model_kwargs of the card of {name}/{weights}: {card_kwargs})") from None
    family_iq = options.pop("input_quantizer", "ste_sign")
    family_kq = options.pop("kernel_quantizer", "ste_sign")
    if input_quantizer == FAMILY_DEFAULT:
        input_quantizer = family_iq
    if kernel_quantizer == FAMILY_DEFAULT:
        kernel_quantizer = family_kq
    model = spec.builder(
        input_shape=shape,
        num_classes=classes,
        input_quantizer=input_quantizer,
        kernel_quantizer=kernel_quantizer,
        **options,
    )
    if weights is not None:
        if Path(str(weights)).is_file():
            model.load_weights(str(weights))
        else:
            _pretrained.load_pretrained_weights(model, name, str(weights))
    return model


def _check_options(spec: ModelSpec, options: dict) -> None:
    """`ValueError` naming the options family `spec` does not take (else its builder's TypeError)."""
    parameters = inspect.signature(spec.builder).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    taken = [n for n in parameters if n not in ("input_shape", "num_classes")]
    unknown = sorted(set(options) - set(taken))
    if unknown:
        raise ValueError(f"model {spec.name!r} does not take {', '.join(map(repr, unknown))}; "
                         f"it takes: {', '.join(taken)}")


def scale_width(value: int, width: float, multiple: int = 1) -> int:
    """`value * width` rounded to a multiple of `multiple` (at least `multiple`): the
    channel count of a layer under a family's width multiplier."""
    return max(multiple, int(round(value * width / multiple)) * multiple)


def quantizer_factory(identifier):
    """A zero-argument callable returning a fresh quantizer per layer.

    Layers must not share a quantizer object: annealed state would be shared and
    serialization would duplicate it anyway.
    """
    if isinstance(identifier, str) and identifier not in _quantizers.list_quantizers():
        return lambda: identifier  # a larq alias bnnzoo does not register: larq resolves it
    return lambda: _quantizers.get_quantizer(identifier)
