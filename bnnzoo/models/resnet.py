"""Binary ResNet-20 for CIFAR-sized inputs, as used in FSG's and IR-Net's experiments.

The CIFAR ResNet-20 of He et al. (3 stages of 3 basic blocks, 16/32/64 filters)
with every 3×3 conv inside the blocks binarized (activations and weights). As is
usual for binary ResNets, each binary conv has its own real-valued shortcut
(Bi-Real style: `y = BN(BinaryConv(x)) + shortcut(x)`), the stem conv and the
classifier stay real-valued, and down-sampling shortcuts are a 2×2 average pool
followed by a real 1×1 conv and batch norm.

!!! example
    ```python
    from bnnzoo.models import create_model

    model = create_model("binary_resnet20", input_shape=(32, 32, 3), num_classes=10,
                         input_quantizer="ste_sign", kernel_quantizer="ste_sign")
    ```

References:
    - [Deep Residual Learning for Image Recognition](https://arxiv.org/abs/1512.03385)
    - [Bi-Real Net](https://arxiv.org/abs/1808.00278)
    - [Fast and Slow Gradient Approximation for Binary Neural Network Optimization](https://arxiv.org/abs/2412.11777)
"""

from __future__ import annotations

from typing import Sequence

import larq as lq
import tensorflow as tf

from bnnzoo.models.blocks import BinaryLayerArgs, real_classifier, real_stem, scaled_sizes
from bnnzoo.models.registry import register_model
from bnnzoo.validation import check_int

__all__ = ["binary_resnet20"]


@register_model(
    "binary_resnet20",
    default_input_shape=(32, 32, 3),
    min_input_size=4,
    description="Binary ResNet-20 (CIFAR-style, 16/32/64 filters, real shortcuts).",
)
def binary_resnet20(
    input_shape, num_classes, input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
    width: float = 1.0,
    blocks_per_stage: int = 3,
    stage_filters: Sequence[int] = (16, 32, 64),
    conv_layer=None,
):
    """Binary ResNet-20: `blocks_per_stage` basic blocks (2 binary convs each) per stage.

    `width` scales `stage_filters`; `blocks_per_stage=5, 7, 9, 18` give ResNet-32/44/56/110.
    Stages 2 and 3 halve the resolution (stride 2), so inputs need ≥ 4 px.
    `conv_layer` substitutes another quantized conv class with QuantConv2D's signature.
    """
    check_int("blocks_per_stage", blocks_per_stage, 1, 1000)
    filters = scaled_sizes("stage_filters", stage_filters, width)
    conv_cls = conv_layer or lq.layers.QuantConv2D
    binary = BinaryLayerArgs(input_quantizer, kernel_quantizer, kernel_constraint)

    inputs = tf.keras.Input(shape=input_shape)
    x = real_stem(inputs, filters[0])
    for stage, f in enumerate(filters):
        for block in range(blocks_per_stage):
            for conv in range(2):
                prefix = f"stage{stage + 1}_block{block + 1}_conv{conv + 1}"
                strides = 2 if (stage > 0 and block == 0 and conv == 0) else 1
                shortcut = x
                if strides != 1 or int(x.shape[-1]) != f:
                    shortcut = tf.keras.layers.AvgPool2D(2, strides=strides, padding="same",
                                                         name=f"{prefix}_pool")(shortcut)
                    shortcut = tf.keras.layers.Conv2D(f, 1, use_bias=False, name=f"{prefix}_proj")(shortcut)
                    shortcut = tf.keras.layers.BatchNormalization(momentum=0.9, name=f"{prefix}_proj_bn")(
                        shortcut
                    )
                y = conv_cls(
                    f,
                    3,
                    strides=strides,
                    padding="same",
                    pad_values=1.0,
                    kernel_initializer="glorot_normal",
                    **binary.layer_kwargs(),
                    name=prefix,
                )(x)
                y = tf.keras.layers.BatchNormalization(momentum=0.9, name=f"{prefix}_bn")(y)
                x = tf.keras.layers.Add(name=f"{prefix}_add")([y, shortcut])
    return tf.keras.Model(inputs, real_classifier(x, num_classes), name="binary_resnet20")
