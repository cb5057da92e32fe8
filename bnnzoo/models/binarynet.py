"""BinaryNet (Courbariaux, Hubara et al., 2016) as an MLP and as a VGG-style CNN.

Both follow the literature's layer handling: the first layer sees full-precision
inputs (its kernel is binary), every later layer binarizes its inputs and kernel,
each binary layer is followed by batch normalization, and the classifier is a
binary dense layer with batch norm before the softmax.

References:
    - [Binarized Neural Networks: Training Deep Neural Networks with Weights and
      Activations Constrained to +1 or -1](https://arxiv.org/abs/1602.02830)
"""

from __future__ import annotations

from typing import Sequence

import larq as lq
import tensorflow as tf

from bnnzoo.layers import HyperConv2D, HyperDense
from bnnzoo.models.blocks import BinaryLayerArgs, scaled_sizes
from bnnzoo.models.registry import register_model
from bnnzoo.validation import check_int

__all__ = ["binarynet", "binarynet_mlp"]


def _binary_classifier(x, num_classes, dense_cls, binary: BinaryLayerArgs):
    """The binary head both families share: binary dense -> batch norm -> softmax."""
    x = dense_cls(num_classes, **binary.layer_kwargs(), name="classifier")(x)
    x = tf.keras.layers.BatchNormalization(momentum=0.9, scale=False, name="bn_classifier")(x)
    return tf.keras.layers.Activation("softmax", name="softmax")(x)


def _float_activation(activation: str | None, input_quantizer):
    """`(x, name) -> x` applying `activation` (identity for `None`), checked."""
    if activation is None:
        return lambda x, name: x
    if input_quantizer not in (None, "none"):
        raise ValueError(
            f"activation={activation!r} needs real-valued activations (input_quantizer=None or "
            f"'none'), got input_quantizer={input_quantizer!r}: a sign after it would see only "
            "its non-negative outputs")
    try:
        tf.keras.activations.get(activation)
    except ValueError:
        raise ValueError(f"activation must be a Keras activation name such as 'relu', got {activation!r}") from None
    return lambda x, name: tf.keras.layers.Activation(activation, name=name)(x)


@register_model("binarynet_mlp", default_input_shape=(8, 8, 1),
                description="BinaryNet multilayer perceptron: binary dense layers with batch norm.")
def binarynet_mlp(
    input_shape, num_classes, input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
    units: int = 512,
    hidden_layers: int = 3,
    width: float = 1.0,
    hyper: bool = False,
):
    """BinaryNet MLP: `hidden_layers` binary dense layers of `units * width` units.

    The first dense layer takes the real-valued pixels; its kernel is binary.
    `hyper=True` generates every binary kernel with `bnnzoo.layers.HyperDense`.
    """
    dense_cls = HyperDense if hyper else lq.layers.QuantDense
    check_int("hidden_layers", hidden_layers, 1, 1000)
    (n_units,) = scaled_sizes("units", [units], width)
    binary = BinaryLayerArgs(input_quantizer, kernel_quantizer, kernel_constraint)
    inputs = tf.keras.Input(shape=input_shape)
    x = tf.keras.layers.Flatten()(inputs)
    for i in range(hidden_layers):
        x = dense_cls(n_units, **binary.layer_kwargs(binary_inputs=i > 0), name=f"dense_{i}")(x)
        x = tf.keras.layers.BatchNormalization(momentum=0.9, scale=False, name=f"bn_{i}")(x)
    outputs = _binary_classifier(x, num_classes, dense_cls, binary)
    return tf.keras.Model(inputs, outputs, name="binarynet_mlp")


@register_model("binarynet", default_input_shape=(32, 32, 3),
                description="BinaryNet VGG-style CNN (conv pairs + max-pool, binary dense head).")
def binarynet(
    input_shape, num_classes, input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
    filters: Sequence[int] = (128, 128, 256, 256, 512, 512),
    dense_units: Sequence[int] = (1024, 1024),
    width: float = 1.0,
    conv_layer=None,
    hyper: bool = False,
    activation: str | None = None,
):
    """BinaryNet CNN: 3×3 binary convs in pairs, max-pool after each pair.

    `filters`/`dense_units` give the paper's CIFAR-10 layout; `width` scales all of
    them (e.g. `width=0.5` for 64-64-128-128-256-256). Pooling stops once the
    feature map is 1×1, so 8×8 inputs work. `conv_layer` lets a caller substitute
    another quantized conv class with QuantConv2D's signature; `hyper=True` uses
    `bnnzoo.layers.HyperConv2D` (Hyper-BinaryNet) for every conv.

    `activation` (e.g. `"relu"`) adds a float nonlinearity after every hidden batch
    norm, for weights-only binarization (`input_quantizer="none"`): without it such
    a network is linear (FSG's public code binarizes the weights of a ReLU ResNet).
    It is refused with binary activations, whose `sign` would follow it.
    """
    if hyper and conv_layer is not None:
        raise ValueError(f"give either hyper=True or conv_layer, got conv_layer={conv_layer!r} with hyper")
    conv_cls = HyperConv2D if hyper else (conv_layer or lq.layers.QuantConv2D)
    filters, dense_units = scaled_sizes("filters", filters, width), scaled_sizes("dense_units", dense_units, width)
    nonlinearity = _float_activation(activation, input_quantizer)
    binary = BinaryLayerArgs(input_quantizer, kernel_quantizer, kernel_constraint)
    inputs = tf.keras.Input(shape=input_shape)
    x = inputs
    for i, f in enumerate(filters):
        x = conv_cls(f, 3, padding="same", **binary.layer_kwargs(binary_inputs=i > 0), name=f"conv_{i}")(x)
        if i % 2 == 1 and min(x.shape[1], x.shape[2]) >= 2:
            x = tf.keras.layers.MaxPool2D(2, name=f"pool_{i // 2}")(x)
        x = tf.keras.layers.BatchNormalization(momentum=0.9, scale=False, name=f"bn_conv_{i}")(x)
        x = nonlinearity(x, f"act_conv_{i}")
    x = tf.keras.layers.Flatten()(x)
    for j, units in enumerate(dense_units):
        x = lq.layers.QuantDense(units, **binary.layer_kwargs(), name=f"dense_{j}")(x)
        x = tf.keras.layers.BatchNormalization(momentum=0.9, scale=False, name=f"bn_dense_{j}")(x)
        x = nonlinearity(x, f"act_dense_{j}")
    outputs = _binary_classifier(x, num_classes, lq.layers.QuantDense, binary)
    return tf.keras.Model(inputs, outputs, name="binarynet")
