"""Pieces the bnnzoo-built families share: width scaling, binary-layer arguments, real stem and head.

Every registered family takes the same three binary-layer arguments
(`input_quantizer`, `kernel_quantizer`, `kernel_constraint`) and a `width`
multiplier. This module turns them into layer keyword arguments and channel counts
in one place, so the families (`binarynet.py`, `resnet.py`, `reactnet.py`) only
describe their topology.

!!! example
    ```python
    import larq as lq
    import tensorflow as tf
    from bnnzoo.models.blocks import BinaryLayerArgs, scaled_sizes

    binary = BinaryLayerArgs("ste_sign", "ste_sign", "weight_clip")
    (units,) = scaled_sizes("units", [512], width=0.5)
    assert units == 256
    layer = lq.layers.QuantDense(units, **binary.layer_kwargs(), name="dense")
    first, second = binary.layer_kwargs(), binary.layer_kwargs(binary_inputs=False)
    assert first["kernel_quantizer"] is not second["kernel_quantizer"]  # never shared between layers
    assert second["input_quantizer"] is None and first["use_bias"] is False
    ```
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import tensorflow as tf

from bnnzoo.models.registry import quantizer_factory, scale_width
from bnnzoo.validation import check_int, check_positive

__all__ = ["MAX_LAYER_SIZE", "BinaryLayerArgs", "real_classifier", "real_stem", "scaled_sizes"]

# Largest layer size accepted (units or filters): beyond it a typo exhausts memory.
MAX_LAYER_SIZE = 1 << 16


def scaled_sizes(name: str, values: Sequence[int], width: float, multiple: int = 1) -> list[int]:
    """`values` (positive integers, checked under `name`) scaled by `width`.

    Raises a one-line `ValueError` naming `width` (not > 0), `name` (not a non-empty
    sequence of integers in [1, MAX_LAYER_SIZE]) or `name * width` (out of range
    after scaling).
    """
    check_positive("width", width)
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"{name} must be a non-empty sequence of integers, got {values!r}")
    sizes = [check_int(name, v, 1, MAX_LAYER_SIZE) for v in values]
    return [check_int(f"{name} * width", scale_width(v, width, multiple), 1, MAX_LAYER_SIZE) for v in sizes]


@dataclass(frozen=True)
class BinaryLayerArgs:
    """A family's binary-layer arguments, handed to each `lq.layers.Quant*` layer.

    Args:
        input_quantizer: quantizer of the layers' inputs (any bnnzoo or larq quantizer).
        kernel_quantizer: quantizer of the layers' kernels.
        kernel_constraint: constraint of the latent kernels (`weight_clip`: [-1, 1]).
    """

    input_quantizer: Any = "ste_sign"
    kernel_quantizer: Any = "ste_sign"
    kernel_constraint: Any = "weight_clip"

    def layer_kwargs(self, binary_inputs: bool = True) -> dict[str, Any]:
        """Keyword arguments of one binary layer, without a bias.

        Each call makes fresh quantizer objects: layers must not share one (annealed
        state would be shared). `binary_inputs=False` keeps the inputs real-valued,
        as the first layer of a BinaryNet does.
        """
        return dict(
            input_quantizer=quantizer_factory(self.input_quantizer)() if binary_inputs else None,
            kernel_quantizer=quantizer_factory(self.kernel_quantizer)(),
            kernel_constraint=self.kernel_constraint,
            use_bias=False,
        )


def real_stem(inputs, filters: int):
    """The real-valued 3x3 stem convolution and batch norm of the residual families."""
    x = tf.keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                               name="stem_conv")(inputs)
    return tf.keras.layers.BatchNormalization(momentum=0.9, name="stem_bn")(x)


def real_classifier(x, num_classes: int):
    """Global average pooling, a real-valued dense classifier and a float32 softmax."""
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = tf.keras.layers.Dense(num_classes, name="classifier")(x)
    return tf.keras.layers.Activation("softmax", dtype="float32", name="softmax")(x)
