"""ImageNet-era binary networks, built on larq-zoo's own definitions.

Each family here configures a larq-zoo model factory (a zookeeper component) and
adds what larq-zoo lacks for a zoo: any input/kernel quantizer, any number of
classes and input size, and a `width` multiplier where the architecture has a
base width. With the default quantizers (`"family_default"`) the layers are
exactly larq-zoo's, so larq-zoo's ImageNet weights load
(`create_model("birealnet18", weights="imagenet")`, see `bnnzoo.pretrained`).

Small inputs: larq-zoo's BinaryResNetE18 and BinaryDenseNet already switch to a
stride-1 3×3 stem below 50 px. Bi-Real Net and QuickNet downsample by 32 and work
down to 32 px (a 1×1 final feature map). BinaryAlexNet (≥ 64 px), DoReFa-Net
(≥ 48 px) and XNOR-Net start with large strided kernels and valid-padded pooling
(XNOR-Net ≥ 217 px, as its first fully connected layer is a 6×6 valid conv);
the registry refuses smaller inputs with a `ValueError`.

!!! example
    ```python
    from bnnzoo.models import create_model

    # Bi-Real Net for CIFAR-sized inputs with BNN++-style quantizers and half width
    model = create_model("birealnet18", input_shape=(32, 32, 3), num_classes=10,
                         input_quantizer="ste_sign", kernel_quantizer="ste_sign", width=0.5)
    ```

References:
    - [Bi-Real Net](https://arxiv.org/abs/1808.00278)
    - [Back to Simplicity: How to Train Accurate BNNs from Scratch? (BinaryResNetE, BinaryDenseNet)](https://arxiv.org/abs/1906.08637)
    - [XNOR-Net](https://arxiv.org/abs/1603.05279)
    - [DoReFa-Net](https://arxiv.org/abs/1606.06160)
    - [Binarized Neural Networks (BinaryAlexNet)](https://arxiv.org/abs/1602.02830)
    - [larq-zoo QuickNet](https://docs.larq.dev/zoo/api/sota/#quicknet)
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
from larq_zoo.literature.binary_alex_net import BinaryAlexNetFactory
from larq_zoo.literature.birealnet import BiRealNetFactory
from larq_zoo.literature.densenet import BinaryDenseNet28Factory
from larq_zoo.literature.dorefanet import DoReFaNetFactory
from larq_zoo.literature.resnet_e import BinaryResNetE18Factory
from larq_zoo.literature.xnornet import XNORNetFactory
from larq_zoo.sota.quicknet import QuickNetFactory, QuickNetLargeFactory, QuickNetSmallFactory
from zookeeper import factory as _zookeeper_factory

from bnnzoo.models.registry import FAMILY_DEFAULT, quantizer_factory, register_model, scale_width
from bnnzoo.validation import check_positive

__all__ = [
    "binary_alexnet",
    "binary_densenet28",
    "binary_resnet_e18",
    "birealnet18",
    "build_larq_zoo_model",
    "dorefanet",
    "quicknet",
    "xnornet",
]

IMAGENET_SHAPE = (224, 224, 3)


def _register_imagenet_family(name: str, min_input_size: int, description: str, **defaults):
    """`register_model` for a larq-zoo family: 224 px, 1000 classes, larq-zoo's quantizers by default."""
    return register_model(
        name,
        default_input_shape=IMAGENET_SHAPE,
        min_input_size=min_input_size,
        default_num_classes=1000,
        description=description,
        input_quantizer=FAMILY_DEFAULT,
        kernel_quantizer=FAMILY_DEFAULT,
        **defaults,
    )


def _check_width(width: float) -> float:
    return check_positive("width", width)


def build_larq_zoo_model(
    factory_cls,
    *,
    input_shape,
    num_classes: int,
    input_quantizer: Any = FAMILY_DEFAULT,
    kernel_quantizer: Any = FAMILY_DEFAULT,
    overrides: dict[str, Any] | None = None,
    **fields,
) -> tf.keras.Model:
    """Build a larq-zoo factory's model with our quantizers, shape and classes.

    `"family_default"` keeps the factory's own quantizer; anything else (a name,
    an object, a config, `None` for full precision) replaces it in every binary
    layer, with a fresh quantizer object per layer. `fields` are the factory's
    zookeeper fields (e.g. `filters`, `section_filters`); `overrides` replace other
    class attributes or properties of the factory.
    """
    overrides = dict(overrides or {})
    for attr, identifier in (("input_quantizer", input_quantizer), ("kernel_quantizer", kernel_quantizer)):
        if identifier != FAMILY_DEFAULT:
            make = quantizer_factory(identifier)
            overrides[attr] = property(lambda self, make=make: make())
    configured = factory_cls
    if overrides:
        configured = _zookeeper_factory(type(factory_cls.__name__, (factory_cls,), overrides))
    return configured(
        input_shape=tuple(int(d) for d in input_shape),
        num_classes=int(num_classes),
        include_top=True,
        weights=None,
        **fields,
    ).build()


@_register_imagenet_family("birealnet18", 32, "Bi-Real Net 18 (larq-zoo): a real shortcut around every binary 3x3 conv.")
def birealnet18(input_shape, num_classes, input_quantizer=FAMILY_DEFAULT,
                kernel_quantizer=FAMILY_DEFAULT, width: float = 1.0, **fields):
    """Bi-Real Net 18; `width` scales the stem's 64 filters (and so every stage).

    Default quantizers: larq-zoo's `approx_sign` activations, `magnitude_aware_sign` weights.
    """
    return build_larq_zoo_model(
        BiRealNetFactory, input_shape=input_shape, num_classes=num_classes,
        input_quantizer=input_quantizer, kernel_quantizer=kernel_quantizer,
        filters=scale_width(64, _check_width(width)), **fields,
    )


@_register_imagenet_family("binary_resnet_e18", 8, "BinaryResNetE18 (larq-zoo): ResNet-18 with binary convs and real shortcuts.")
def binary_resnet_e18(input_shape, num_classes, input_quantizer=FAMILY_DEFAULT,
                      kernel_quantizer=FAMILY_DEFAULT, width: float = 1.0, **fields):
    """BinaryResNetE18; `width` scales the initial filters and every stage's filters.

    Below 50 px larq-zoo uses a stride-1 3×3 stem, so 8×8 inputs still work.
    Default quantizers: `SteSign(clip_value=1.25)` for both.
    """
    width = _check_width(width)
    overrides = {}
    if width != 1.0:
        base_spec = BinaryResNetE18Factory.spec.fget  # (blocks per stage, filters per stage)

        def spec(self):
            blocks, filters = base_spec(self)
            return blocks, [scale_width(f, width) for f in filters]

        overrides["spec"] = property(spec)
    return build_larq_zoo_model(
        BinaryResNetE18Factory, input_shape=input_shape, num_classes=num_classes,
        input_quantizer=input_quantizer, kernel_quantizer=kernel_quantizer, overrides=overrides,
        initial_filters=scale_width(64, width), **fields,
    )


@_register_imagenet_family("binary_densenet28", 8, "BinaryDenseNet28 (larq-zoo): densely connected binary 3x3 convs.")
def binary_densenet28(input_shape, num_classes, input_quantizer=FAMILY_DEFAULT,
                      kernel_quantizer=FAMILY_DEFAULT, width: float = 1.0, **fields):
    """BinaryDenseNet28; `width` scales the initial filters and the growth rate (64).

    Below 50 px larq-zoo uses a stride-1 3×3 stem; three 2×2 poolings need ≥ 8 px.
    Default quantizers: `SteSign(clip_value=1.3)` for both.
    """
    width = _check_width(width)
    return build_larq_zoo_model(
        BinaryDenseNet28Factory, input_shape=input_shape, num_classes=num_classes,
        input_quantizer=input_quantizer, kernel_quantizer=kernel_quantizer,
        initial_filters=scale_width(64, width), growth_rate=scale_width(64, width), **fields,
    )


_QUICKNET_FACTORIES = {"small": QuickNetSmallFactory, "default": QuickNetFactory, "large": QuickNetLargeFactory}


def quicknet(input_shape, num_classes, input_quantizer=FAMILY_DEFAULT, kernel_quantizer=FAMILY_DEFAULT,
             size: str = "default", width: float = 1.0, **fields):
    """QuickNet (larq-zoo's state of the art); `size` is `small`, `default` or `large`.

    `width` scales every section's filters (kept multiples of 8, as the stem needs
    multiples of 4). Default quantizers: `SteSign(clip_value=1.25)` for both.
    """
    if size not in _QUICKNET_FACTORIES:
        raise ValueError(f"size must be one of {sorted(_QUICKNET_FACTORIES)}, got {size!r}")
    width = _check_width(width)
    factory_cls = _QUICKNET_FACTORIES[size]
    if width != 1.0:
        fields["section_filters"] = tuple(
            scale_width(f, width, 8) for f in factory_cls().section_filters
        )
    return build_larq_zoo_model(
        factory_cls, input_shape=input_shape, num_classes=num_classes,
        input_quantizer=input_quantizer, kernel_quantizer=kernel_quantizer, **fields,
    )


for _size, _name in (("small", "quicknet_small"), ("default", "quicknet"), ("large", "quicknet_large")):
    _register_imagenet_family(
        _name,
        32,
        f"QuickNet{'' if _size == 'default' else ' ' + _size.capitalize()} (larq-zoo): "
        "binary 3x3 residual blocks, blur-pool transitions.",
        size=_size,
    )(quicknet)


@_register_imagenet_family("xnornet", 217, "XNOR-Net (larq-zoo): AlexNet layout with scaled binary weights.")
def xnornet(input_shape, num_classes, input_quantizer=FAMILY_DEFAULT,
            kernel_quantizer=FAMILY_DEFAULT, **fields):
    """XNOR-Net; needs ≥ 217 px: after the 11×11/4 stem and three valid 3×3/2
    poolings, its 6×6 valid conv (the first fully connected layer) needs a 6×6 map.

    Default quantizers: `ste_sign` activations, larq-zoo's `xnor_weight_scale` weights.
    larq-zoo's builder hands one quantizer object to all binary layers, so a
    stateful quantizer is shared by them here.
    """
    return build_larq_zoo_model(
        XNORNetFactory, input_shape=input_shape, num_classes=num_classes,
        input_quantizer=input_quantizer, kernel_quantizer=kernel_quantizer, **fields,
    )


@_register_imagenet_family("binary_alexnet", 64, "BinaryAlexNet (larq-zoo): AlexNet with binary convs and dense layers.")
def binary_alexnet(input_shape, num_classes, input_quantizer=FAMILY_DEFAULT,
                   kernel_quantizer=FAMILY_DEFAULT, width: int = 1, **fields):
    """BinaryAlexNet; `width` is larq-zoo's integer `inflation_ratio`. Needs ≥ 64 px.

    Default quantizers: `ste_sign` for both (the first conv keeps real inputs).
    """
    if not (isinstance(width, int) and width >= 1):
        raise ValueError(f"width (inflation ratio) must be an integer >= 1, got {width!r}")
    return build_larq_zoo_model(
        BinaryAlexNetFactory, input_shape=input_shape, num_classes=num_classes,
        input_quantizer=input_quantizer, kernel_quantizer=kernel_quantizer,
        inflation_ratio=width, **fields,
    )


@_register_imagenet_family("dorefanet", 48, "DoReFa-Net (larq-zoo): binary weights, k-bit (default 2) activations.")
def dorefanet(input_shape, num_classes, input_quantizer=FAMILY_DEFAULT,
              kernel_quantizer=FAMILY_DEFAULT, **fields):
    """DoReFa-Net; needs ≥ 48 px (12×12/4 stem and valid poolings).

    Default quantizers: `DoReFaQuantizer(k_bit=activations_k_bit)` activations
    (field `activations_k_bit`, default 2) and magnitude-aware sign weights.
    """
    return build_larq_zoo_model(
        DoReFaNetFactory, input_shape=input_shape, num_classes=num_classes,
        input_quantizer=input_quantizer, kernel_quantizer=kernel_quantizer, **fields,
    )
