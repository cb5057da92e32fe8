"""Layer rewrites for Larq Compute Engine 0.16, applied to the inference form before an `lce` conversion.

LCE converts larq layers as they are, except in two places where 0.16 would be
wrong or wasteful; each has an exact replacement layer here:

- a zero-padded binary convolution on a feature map smaller than its kernel is
  computed wrongly: `OnePadCorrectedQuantConv2D`;
- a binary `QuantDense` is stored as float32 ±1 weights: `BinaryDenseAsConv2D`.

`lce_compatible_model` applies both; outputs are unchanged.
"""

from __future__ import annotations

import larq as lq
import numpy as np
import tensorflow as tf

from bnnzoo.export.errors import ExportError
from bnnzoo.export.inference import _all_layers

__all__ = ["BinaryDenseAsConv2D", "OnePadCorrectedQuantConv2D", "lce_compatible_model"]


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    effective = (kernel - 1) * dilation + 1
    total = max((-(-size // stride) - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


class OnePadCorrectedQuantConv2D(lq.layers.QuantConv2D):
    """A zero-padded binary convolution computed as LCE computes one-padding exactly.

    Measured here: LCE 0.16 computes a zero-padded (`padding="same"`, `pad_values=0`)
    binary convolution wrongly when the input feature map is smaller than the kernel
    (e.g. 3x3 on 2x2, as in BinaryNet on 8x8 digits). This layer pads with +1
    (larq's `pad_values=1.0`, exact in LCE) and subtracts the padded positions'
    contribution, a constant \\(C = \\operatorname{conv}(1 - \\operatorname{pad}_0(1), Q(W))\\),
    so its outputs equal the zero-padded layer's. The subtraction is done on a
    reshaped tensor so that LCE does not fuse the spatial constant into the
    convolution's per-channel bias (which its kernels reject).

    Built from the zero-padded layer's config with `pad_values=1.0`; it takes the
    same weights.
    """

    def call(self, inputs):
        outputs = super().call(inputs)
        height, width, channels = (int(d) for d in inputs.shape[1:])
        strides, dilation = self.strides, self.dilation_rate
        pad_h = _same_padding(height, self.kernel_size[0], strides[0], dilation[0])
        pad_w = _same_padding(width, self.kernel_size[1], strides[1], dilation[1])
        mask = 1.0 - tf.pad(tf.ones([1, height, width, channels]), [[0, 0], pad_h, pad_w, [0, 0]])
        kernel = tf.convert_to_tensor(self.kernel)  # a tensor: custom gradients reject variables
        kernel = self.kernel_quantizer(kernel) if self.kernel_quantizer else kernel
        correction = tf.nn.conv2d(mask, kernel, strides, "VALID", dilations=dilation)
        if self.activation is not None and self.activation is not tf.keras.activations.linear:
            raise ExportError(f"layer {self.name!r}: a fused activation cannot be corrected")
        n = int(np.prod(outputs.shape[1:]))
        flat = tf.reshape(outputs, [-1, n, 1]) - tf.reshape(correction, [1, n, 1])
        return tf.reshape(flat, [-1, *outputs.shape[1:]])


def _small_map_layers(model: tf.keras.Model) -> set[str]:
    """Names of `model`'s zero-padded binary convolutions on maps smaller than their kernel."""
    names = set()
    for layer in model.layers:
        if not isinstance(layer, lq.layers.QuantConv2D) or layer.input_quantizer is None:
            continue
        if layer.padding != "same" or getattr(layer, "pad_values", 0.0) != 0.0:
            continue
        if isinstance(layer, OnePadCorrectedQuantConv2D):
            continue
        height, width = layer.input_shape[1:3]
        kh, kw = layer.kernel_size
        if (height is not None and height < kh) or (width is not None and width < kw):
            names.add(layer.name)
    return names


class BinaryDenseAsConv2D(lq.layers.QuantConv2D):
    """A binary dense layer computed as a 1x1 binary convolution, for LCE.

    LCE 0.16 has binary convolutions but no binary fully-connected kernel: a
    `QuantDense` converts to a float `FULLY_CONNECTED` with ±1 weights stored as
    float32. This layer takes the same `(batch, features)` input, reshapes it to
    `(batch, 1, 1, features)`, applies a 1x1 `QuantConv2D` whose kernel is the dense
    kernel reshaped to `(1, 1, features, units)`, and flattens the result, so the
    outputs are identical and LCE converts it to a bit-packed `LceBconv2d`.

    !!! example
        ```python
        import larq as lq
        import numpy as np
        from bnnzoo.export import BinaryDenseAsConv2D

        dense = lq.layers.QuantDense(8, input_quantizer="ste_sign", kernel_quantizer="ste_sign")
        dense.build((None, 16))
        conv = BinaryDenseAsConv2D.from_dense(dense)
        x = np.random.default_rng(0).standard_normal((2, 16)).astype("float32")
        assert (conv(x).numpy() == dense(x).numpy()).all()
        ```
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.input_spec = tf.keras.layers.InputSpec(ndim=2)

    @classmethod
    def from_dense(cls, dense: lq.layers.QuantDense) -> "BinaryDenseAsConv2D":
        """The equivalent layer for `dense`.

        Args:
            dense: a `QuantDense` layer.

        Returns:
            A new layer with `dense`'s configuration; built and holding `dense`'s
            weights (the kernel reshaped) when `dense` is built.
        """
        config = dict(dense.get_config())
        config["filters"] = config.pop("units")
        config["kernel_size"] = 1
        layer = cls.from_config(config)
        if dense.built:
            features = int(dense.kernel.shape[0])
            layer.build(tf.TensorShape([None, features]))
            weights = dense.get_weights()
            layer.set_weights([weights[0].reshape(1, 1, *weights[0].shape), *weights[1:]])
        return layer

    def build(self, input_shape):
        features = int(tf.TensorShape(input_shape)[-1])
        super().build(tf.TensorShape([None, 1, 1, features]))
        self.input_spec = tf.keras.layers.InputSpec(ndim=2, axes={-1: features})

    def call(self, inputs):
        outputs = super().call(tf.reshape(inputs, [-1, 1, 1, inputs.shape[-1]]))
        return tf.reshape(outputs, [-1, self.filters])


def _binary_dense_layers(model: tf.keras.Model) -> set[str]:
    """Names of `model`'s QuantDense layers with binary inputs and kernels on 2-D inputs."""
    names = set()
    for layer in model.layers:
        if type(layer) is not lq.layers.QuantDense:
            continue
        if layer.input_quantizer is None or layer.kernel_quantizer is None:
            continue
        if any(getattr(q, "precision", 1) != 1 for q in (layer.input_quantizer, layer.kernel_quantizer)):
            continue
        if len(layer.input_shape) == 2:
            names.add(layer.name)
    return names


def lce_compatible_model(model: tf.keras.Model) -> tf.keras.Model:
    """`model` rewritten where LCE 0.16 would otherwise be wrong or wasteful (LCE only).

    - every zero-padded binary convolution on a feature map smaller than its kernel
      becomes the exact `OnePadCorrectedQuantConv2D`;
    - every binary `QuantDense` on a 2-D input becomes `BinaryDenseAsConv2D`, so it is
      stored bit-packed instead of as float32 ±1 weights.

    Dense layers inside nested models are left as they are.

    Args:
        model: an inference-form model (see `inference_model`).

    Returns:
        The rewritten copy, with the same outputs; `model` itself when nothing
        needs rewriting.

    Raises:
        ExportError: a nested model holds a small-map convolution (named).
    """
    for layer in _all_layers(model):
        if isinstance(layer, tf.keras.Model) and _small_map_layers(layer):
            name = sorted(_small_map_layers(layer))[0]
            raise ExportError(
                f"layer {name!r} in nested model {layer.name!r}: zero-padded binary convolution "
                "on a map smaller than its kernel is computed wrongly by LCE 0.16; use "
                "pad_values=1.0 or a larger input size"
            )
    small_maps = _small_map_layers(model)
    dense = _binary_dense_layers(model)
    if not small_maps and not dense:
        return model

    def clone(layer):
        if layer.name in small_maps:
            config = layer.get_config()
            config["pad_values"] = 1.0
            return OnePadCorrectedQuantConv2D.from_config(config)
        if layer.name in dense:
            return BinaryDenseAsConv2D.from_dense(layer)
        return layer.__class__.from_config(layer.get_config())

    new = tf.keras.models.clone_model(model, clone_function=clone)
    for old_layer, new_layer in zip(model.layers, new.layers):
        if old_layer.name not in dense:  # `from_dense` already copied those (reshaped)
            new_layer.set_weights(old_layer.get_weights())
    return new
