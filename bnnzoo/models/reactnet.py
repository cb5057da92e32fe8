"""ReActNet-style binary ResNet for small inputs (8x8 digits to 32x32 CIFAR).

A CIFAR-layout ResNet (three stages of `c`, `2c`, `4c` channels, the second and
third halving the resolution) in the modern binary style:

- **Bi-Real Net blocks**: every binary 3x3 convolution has its own real-valued
  shortcut, `x <- RPReLU(α ⊙ BN(BConv(RSign(x))) + shortcut(x))`, so the
  real-valued activations flow past each binarization.
- **ReActNet activations**: `RSign` binarizes with a learned per-channel threshold,
  `sign(x − τ)`, and `RPReLU` is a PReLU with a learned per-channel shift before
  and after it, `PReLU_β(x − γ) + ζ`.
- **Per-channel scaling**: the binary branch's output is multiplied by a learned
  per-channel factor α (`ChannelScale`) after a shift-only batch norm.

Fully binary: every convolution but the real-valued 3x3 stem binarizes its inputs
and its kernel; the classifier (global average pool + dense) is real-valued.
Down-sampling shortcuts have no weights (2x2 average pool, then the channels are
duplicated), so there are no real-valued 1x1 convolutions anywhere.

What differs from the papers:

| | Bi-Real Net | ReActNet | here |
| --- | --- | --- | --- |
| backbone | ResNet-18/34 (ImageNet) | MobileNet-V1 (ReActNet-A), ResNet-18 | CIFAR ResNet, 3 stages, depth `3k + 2` |
| stem | real 7x7 conv + max-pool | real 3x3 conv, stride 2 | real 3x3 conv, stride 1 |
| down-sampling shortcut | avg-pool + **real** 1x1 conv + BN | avg-pool; channels doubled by two binary 1x1 convs and a duplicated shortcut | avg-pool + duplicated channels (no weights); the strided binary 3x3 conv doubles the channels |
| activation after a block | none | RPReLU | RPReLU |
| activation binarization | ApproxSign (piecewise polynomial STE) | RSign, ApproxSign-like backward | the family's `input_quantizer` applied to `x − τ` (default `ste_sign`) |
| weight scaling | mean \\|W\\| per output channel, in the kernel | mean \\|W\\| per output channel, in the kernel | learned α per channel after BN (no statistics of W); the kernel quantizer is the family's (default `ste_sign`) |
| training | two-step (real activations first), Adam | two-step + distillation from a real-valued ResNet | one step, plain cross-entropy (`bnnzoo train`) |

The learned α after a shift-only batch norm is, as a function, the same as the
batch norm's own γ; it is its own layer so that the scale is explicit, can be
initialized on its own (`scale_init`, e.g. small so that each block starts close to
its real-valued shortcut) and is not divided out by the batch norm (an α *before*
a batch norm gets no gradient). LCE folds batch norm and α into the binary
convolution's output multiplier.

!!! example
    ```python
    import numpy as np
    from bnnzoo.models import create_model

    model = create_model("reactnet", input_shape=(8, 8, 1), num_classes=10, width=0.25, depth=8)
    probs = model(np.zeros((2, 8, 8, 1), "float32"), training=False)
    assert probs.shape == (2, 10)
    ```

References:
    - [Bi-Real Net: Enhancing the Performance of 1-bit CNNs With Improved
      Representational Capability and Advanced Training Algorithm](https://arxiv.org/abs/1808.00278)
    - [ReActNet: Towards Precise Binary Neural Network with Generalized Activation
      Functions](https://arxiv.org/abs/2003.03488)
    - [XNOR-Net++: Improved Binary Neural Networks](https://arxiv.org/abs/1909.13863)
      (learned scaling factors)
    - [Deep Residual Learning for Image Recognition](https://arxiv.org/abs/1512.03385)
      (the CIFAR layout)
"""

from __future__ import annotations

import numbers

import larq as lq
import tensorflow as tf

from bnnzoo.models.blocks import BinaryLayerArgs, real_classifier, real_stem
from bnnzoo.models.registry import register_model, scale_width
from bnnzoo.validation import check_positive

__all__ = ["ChannelScale", "RPReLU", "RSign", "reactnet"]

BASE_FILTERS = 64  # channels of the first stage at width 1 (then 128, 256)
MIN_INPUT_SIZE = 4  # two stride-2 stages: 4x4 -> 2x2 -> 1x1
MAX_DEPTH = 302  # 300 binary convs: beyond that a typo, not a model


def _channels(input_shape) -> int:
    channels = tf.TensorShape(input_shape)[-1]
    if channels is None:
        raise ValueError(f"the channel dimension of the inputs must be known, got shape {input_shape}")
    return int(channels)


class _PerChannel(tf.keras.layers.Layer):
    """A layer with learned per-channel (last axis) vectors named in `_vectors`."""

    _vectors: tuple[tuple[str, str], ...] = ()  # (weight name, initializer attribute)

    def build(self, input_shape):
        channels = _channels(input_shape)
        for name, init_attr in self._vectors:
            setattr(self, name, self.add_weight(name=name, shape=(channels,),
                                                initializer=getattr(self, init_attr), trainable=True))
        self.input_spec = tf.keras.layers.InputSpec(min_ndim=2, axes={-1: channels})
        super().build(input_shape)

    def get_config(self):
        config = super().get_config()
        for _, init_attr in self._vectors:
            config[init_attr] = tf.keras.initializers.serialize(getattr(self, init_attr))
        return config

    def compute_output_shape(self, input_shape):
        return input_shape


@lq.utils.register_keras_custom_object
class RSign(_PerChannel):
    """ReActNet's RSign: binarization with a learned per-channel threshold τ.

    Forward: \\(y = q(x - \\tau)\\), with \\(q\\) the quantizer (\\(\\operatorname{sign}\\)
    for `ste_sign`) and one τ per channel (last axis), initialized to 0.

    Backward (for `ste_sign`, clip 1): \\(\\partial y / \\partial x = 1_{|x - \\tau| \\le 1}\\)
    and \\(\\partial y / \\partial \\tau = -1_{|x - \\tau| \\le 1}\\); other quantizers
    bring their own pseudo-gradient \\(q'\\) in place of the indicator.

    With `quantizer=None` the layer applies only the threshold, \\(y = x - \\tau\\).
    That is how the `reactnet` family uses it: the sign is left to the next binary
    convolution's `input_quantizer`, where larq counts the layer as binary and LCE
    fuses the binarization into the bit-packed convolution.

    Args:
        quantizer: a larq/bnnzoo quantizer (name, config or object), or `None` for
            the threshold shift alone.
        threshold_initializer: initializer of τ.
        **kwargs: Keras layer arguments (`name`, ...).

    !!! example
        ```python
        import numpy as np
        from bnnzoo.models.reactnet import RSign

        layer = RSign("ste_sign")
        x = np.array([[-0.5, 0.2, 1.5]], "float32")
        layer.build(x.shape)
        layer.threshold.assign([-1.0, 0.5, 1.0])
        assert layer(x).numpy().tolist() == [[1.0, -1.0, 1.0]]
        ```

    References:
        - [ReActNet](https://arxiv.org/abs/2003.03488), eq. (2)
    """

    _vectors = (("threshold", "threshold_initializer"),)

    def __init__(self, quantizer="ste_sign", threshold_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.quantizer = lq.quantizers.get(quantizer) if quantizer is not None else None
        self.threshold_initializer = tf.keras.initializers.get(threshold_initializer)

    def call(self, inputs):
        shifted = inputs - self.threshold
        return self.quantizer(shifted) if self.quantizer is not None else shifted

    def get_config(self):
        return {**super().get_config(), "quantizer": lq.quantizers.serialize(self.quantizer)}


@lq.utils.register_keras_custom_object
class RPReLU(_PerChannel):
    """ReActNet's RPReLU: a PReLU with learned per-channel shifts before and after it.

    Forward: \\(y = \\operatorname{PReLU}_\\beta(x - \\gamma) + \\zeta\\), where
    \\(\\operatorname{PReLU}_\\beta(z) = z\\) for \\(z > 0\\) and \\(\\beta z\\) otherwise;
    γ, β and ζ are per channel (last axis), initialized to 0, 0.25 and 0.

    Backward, with \\(z = x - \\gamma\\) and \\(s = 1\\) if \\(z > 0\\) else β:
    \\(\\partial y / \\partial x = s\\), \\(\\partial y / \\partial \\gamma = -s\\),
    \\(\\partial y / \\partial \\beta = \\min(z, 0)\\), \\(\\partial y / \\partial \\zeta = 1\\).

    Args:
        shift_in_initializer: initializer of γ.
        slope_initializer: initializer of β (0.25, as PyTorch's and ReActNet's PReLU).
        shift_out_initializer: initializer of ζ.
        **kwargs: Keras layer arguments.

    !!! example
        ```python
        import numpy as np
        from bnnzoo.models.reactnet import RPReLU

        layer = RPReLU()
        y = layer(np.array([[-2.0, 3.0]], "float32"))
        np.testing.assert_allclose(y.numpy(), [[-0.5, 3.0]])  # slope 0.25 below 0
        ```

    References:
        - [ReActNet](https://arxiv.org/abs/2003.03488), eq. (3)
    """

    _vectors = (("shift_in", "shift_in_initializer"), ("slope", "slope_initializer"),
                ("shift_out", "shift_out_initializer"))

    def __init__(self, shift_in_initializer="zeros", slope_initializer=None,
                 shift_out_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.shift_in_initializer = tf.keras.initializers.get(shift_in_initializer)
        self.slope_initializer = tf.keras.initializers.get(
            slope_initializer if slope_initializer is not None else tf.keras.initializers.Constant(0.25))
        self.shift_out_initializer = tf.keras.initializers.get(shift_out_initializer)

    def call(self, inputs):
        z = inputs - self.shift_in
        # max(z, 0) + β min(z, 0): the fewest TFLite ops (RELU, MINIMUM, MUL, ADD).
        return tf.nn.relu(z) + self.slope * tf.minimum(z, 0.0) + self.shift_out


@lq.utils.register_keras_custom_object
class ChannelScale(_PerChannel):
    """A learned per-channel scale: \\(y = \\alpha \\odot x\\), one α per channel (last axis).

    Backward: \\(\\partial y / \\partial x = \\alpha\\), \\(\\partial y / \\partial \\alpha = x\\)
    (summed over every axis but the last).

    Args:
        scale_initializer: initializer of α (ones by default).
        **kwargs: Keras layer arguments.

    !!! example
        ```python
        import numpy as np
        from bnnzoo.models.reactnet import ChannelScale

        layer = ChannelScale(scale_initializer="ones")
        layer.build((None, 3))
        layer.scale.assign([0.5, 1.0, 2.0])
        assert layer(np.ones((1, 3), "float32")).numpy().tolist() == [[0.5, 1.0, 2.0]]
        ```

    References:
        - [XNOR-Net++](https://arxiv.org/abs/1909.13863) (learned scaling factors)
    """

    _vectors = (("scale", "scale_initializer"),)

    def __init__(self, scale_initializer="ones", **kwargs):
        super().__init__(**kwargs)
        self.scale_initializer = tf.keras.initializers.get(scale_initializer)

    def call(self, inputs):
        return inputs * self.scale


def _allowed_depths() -> str:
    return ", ".join(str(3 * k + 2) for k in range(1, 7)) + ", ..."


def _check_options(input_shape, width, depth, scale_init) -> None:
    check_positive("width", width)
    check_positive("scale_init", scale_init)
    if (isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or not 5 <= depth <= MAX_DEPTH
            or (depth - 2) % 3):
        raise ValueError(f"depth must be 3k + 2 in [5, {MAX_DEPTH}] ({_allowed_depths()}), got {depth!r}")
    if len(input_shape) != 3 or min(input_shape[:2]) < MIN_INPUT_SIZE:
        raise ValueError(f"input_shape must be (height, width, channels) with height and width "
                         f">= {MIN_INPUT_SIZE}, got {tuple(input_shape)}")


def _binary_block(x, filters, strides, binary: BinaryLayerArgs, scale_init, prefix):
    """RPReLU(α ⊙ BN(BConv(RSign(x))) + shortcut(x)); the shortcut has no weights."""
    shortcut = x
    if strides != 1:
        shortcut = tf.keras.layers.AvgPool2D(2, strides=strides, padding="same", name=f"{prefix}_pool")(shortcut)
    in_channels = int(x.shape[-1])
    if filters != in_channels:  # stages double the channels: duplicate them
        shortcut = tf.keras.layers.Concatenate(name=f"{prefix}_expand")([shortcut] * (filters // in_channels))
    y = RSign(quantizer=None, name=f"{prefix}_rsign")(x)
    y = lq.layers.QuantConv2D(
        filters,
        3,
        strides=strides,
        padding="same",
        pad_values=1.0,  # LCE computes +1 padding exactly and fastest
        kernel_initializer="glorot_normal",
        **binary.layer_kwargs(),
        name=f"{prefix}_conv",
    )(y)
    y = tf.keras.layers.BatchNormalization(momentum=0.9, scale=False, name=f"{prefix}_bn")(y)
    y = ChannelScale(scale_initializer=tf.keras.initializers.Constant(scale_init), name=f"{prefix}_scale")(y)
    x = tf.keras.layers.Add(name=f"{prefix}_add")([y, shortcut])
    return RPReLU(name=f"{prefix}_rprelu")(x)


@register_model(
    "reactnet",
    default_input_shape=(32, 32, 3),
    min_input_size=MIN_INPUT_SIZE,
    description="ReActNet-style binary ResNet for small inputs (Bi-Real shortcuts, RSign/RPReLU, "
                "learned per-channel scaling); fully binary but stem and classifier.",
)
def reactnet(
    input_shape, num_classes, input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
    width: float = 1.0,
    depth: int = 20,
    scale_init: float = 1.0,
):
    """ReActNet-style binary ResNet: a real 3x3 stem, `depth − 2` binary blocks, a real classifier.

    The `depth − 2` binary 3x3 convolutions are split evenly over three stages of
    `c`, `2c`, `4c` channels with `c = round(64 · width)`; the first convolution of
    stages 2 and 3 has stride 2. Each convolution is one block (see the module
    docstring): RSign threshold, binary conv (`input_quantizer`, `kernel_quantizer`),
    shift-only batch norm, learned scale, real-valued shortcut, RPReLU.

    Args:
        input_shape: `(height, width, channels)`, height and width >= 4.
        num_classes: number of classes of the softmax classifier.
        input_quantizer: quantizer of every binary convolution's inputs (applied to
            `x − τ`, τ learned by `RSign`): any bnnzoo or larq quantizer.
        kernel_quantizer: quantizer of every binary convolution's kernel.
        kernel_constraint: constraint of the latent kernels (`weight_clip`: [-1, 1]).
        width: channel multiplier (> 0) of the 64-128-256 layout.
        depth: weight layers in all, `3k + 2` (k >= 1): stem + `3k` binary convs +
            classifier, e.g. 8, 14 or 20 (default, 18 binary convs).
        scale_init: initial value (> 0) of the per-channel scale of every binary branch.

    Returns:
        A `tf.keras.Model` named `reactnet` with softmax outputs.

    Raises:
        ValueError: `width <= 0`, a depth that is not `3k + 2`, `scale_init <= 0`, or
            inputs smaller than 4x4.

    !!! example
        ```python
        from bnnzoo.models.reactnet import reactnet

        model = reactnet((8, 8, 1), 10, input_quantizer="approx_sign", width=0.25, depth=8)
        assert model.input_shape == (None, 8, 8, 1) and model.output_shape == (None, 10)
        ```
    """
    input_shape = tuple(int(d) for d in input_shape)
    _check_options(input_shape, width, depth, scale_init)
    base = scale_width(BASE_FILTERS, width)
    blocks_per_stage = (depth - 2) // 3
    binary = BinaryLayerArgs(input_quantizer, kernel_quantizer, kernel_constraint)

    inputs = tf.keras.Input(shape=input_shape)
    x = real_stem(inputs, base)
    for stage in range(3):
        for block in range(blocks_per_stage):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _binary_block(x, base * 2**stage, strides, binary, scale_init,
                              prefix=f"stage{stage + 1}_block{block + 1}")
    return tf.keras.Model(inputs, real_classifier(x, num_classes), name="reactnet")
