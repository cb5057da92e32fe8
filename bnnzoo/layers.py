r"""Hyper-BinaryNet's HyperConv2D and HyperDense: binary layers with generated kernels.

Instead of storing a latent kernel, a HyperConv layer generates it from a small
auxiliary network (Wang et al., TPAMI 2022): each kernel slice \((o, i)\) has a learned
embedding \(z_{o,i} \in \mathbb{R}^{d}\) (\(d = 9\)), the layer shares one matrix
\(W_h \in \mathbb{R}^{k^2 \times d}\) and a scale \(s\), and

\[
W_{o,i} = \operatorname{reshape}_{k \times k}\left(s \cdot W_h z_{o,i}\right), \qquad
\hat W = Q(W),
\]

with \(Q\) the layer's kernel quantizer (any larq/bnnzoo quantizer, e.g. `ste_sign` or
`ste_warmup`); inputs are binarized by the input quantizer as in any larq layer.
Gradients reach every binary weight through \(z_{o,i}\), \(W_h\) and \(s\) ("hyper
accumulation"):
\(\partial\mathcal{L}/\partial z_{o,i} = s\, W_h^\top \operatorname{vec}(Q'(W_{o,i})
\odot \partial\mathcal{L}/\partial \hat W_{o,i})\) and
\(\partial\mathcal{L}/\partial W_h = s \sum_{o,i} \operatorname{vec}(Q'(W_{o,i}) \odot
\partial\mathcal{L}/\partial \hat W_{o,i})\, z_{o,i}^\top\).
`HyperDense` is the \(k = 1\) case (one embedding per weight).

For inference only \(\hat W\) matters: `to_inference_layer()` (one layer) and
`to_inference_model(model)` turn the hyper layers into plain `QuantConv2D` /
`QuantDense` layers with `ste_sign` quantizers and the generated binary kernel, which
`lq.models.summary` counts as binary and the LCE converter understands. In the
training form the generator parameters are real-valued, and summaries count them so.

!!! example
    ```python
    import bnnzoo

    layer = bnnzoo.layers.HyperConv2D(
        64, 3, padding="same", input_quantizer="ste_warmup", kernel_quantizer="ste_warmup"
    )
    model = bnnzoo.models.create("binarynet", input_shape=(28, 28, 1), hyper=True)
    inference = bnnzoo.layers.to_inference_model(model)
    ```

References:
    - [Gradient Matters: Designing Binarized Neural Networks via Enhanced
      Information-Flow](https://doi.org/10.1109/TPAMI.2021.3088904)
"""

from __future__ import annotations

import larq as lq
import numpy as np
import tensorflow as tf

from bnnzoo import quantizers as _quantizers

__all__ = ["HyperConv2D", "HyperDense", "is_hyper_layer", "to_inference_model"]


class _HyperKernel:
    """Shared part of the hyper layers: the generator weights and the kernel property."""

    def _init_hyper(self, embedding_dim, embedding_initializer, hyper_initializer, scale_initializer):
        if not (isinstance(embedding_dim, (int, np.integer)) and embedding_dim >= 1):
            raise ValueError(f"embedding_dim must be an integer >= 1, got {embedding_dim!r}")
        self.embedding_dim = int(embedding_dim)
        embedding_initializer = embedding_initializer or _HYPER_DEFAULTS["embedding_initializer"]
        scale_initializer = scale_initializer or _HYPER_DEFAULTS["scale_initializer"]
        self.embedding_initializer = tf.keras.initializers.get(embedding_initializer)
        self.hyper_initializer = tf.keras.initializers.get(hyper_initializer)
        self.scale_initializer = tf.keras.initializers.get(scale_initializer)

    def _build_hyper(self, slice_size: int, fan_in: int, fan_out: int):
        """Embeddings `(fan_in, fan_out, d)`, `W_h` `(slice_size, d)`, scalar scale."""
        self.embeddings = self.add_weight(
            name="embeddings", shape=(fan_in, fan_out, self.embedding_dim),
            initializer=self.embedding_initializer, trainable=True,
        )
        self.hyper_kernel = self.add_weight(
            name="hyper_kernel", shape=(slice_size, self.embedding_dim),
            initializer=self.hyper_initializer, trainable=True,
        )
        self.scale = self.add_weight(name="scale", shape=(), initializer=self.scale_initializer, trainable=True)

    def generated_kernel(self) -> tf.Tensor:
        """The real-valued kernel \\(s \\cdot W_h z_{o,i}\\) in Keras layout."""
        slices = tf.einsum("ke,ioe->kio", self.hyper_kernel, self.embeddings)
        return self.scale * tf.reshape(slices, self._kernel_shape)

    def binary_kernel(self) -> tf.Tensor:
        """The quantized kernel \\(Q(W)\\) that inference uses."""
        kernel = self.generated_kernel()
        return self.kernel_quantizer(kernel) if self.kernel_quantizer is not None else kernel

    @property
    def kernel(self):
        # Like larq's QuantizedVariable: quantized inside the layer's quantized scope.
        if lq.context.should_quantize():
            return self.binary_kernel()
        return self.generated_kernel()

    @kernel.setter
    def kernel(self, value):
        if value is not None:
            raise AttributeError("a hyper layer's kernel is generated and cannot be assigned")

    def _hyper_config(self):
        return {
            "embedding_dim": self.embedding_dim,
            "embedding_initializer": tf.keras.initializers.serialize(self.embedding_initializer),
            "hyper_initializer": tf.keras.initializers.serialize(self.hyper_initializer),
            "scale_initializer": tf.keras.initializers.serialize(self.scale_initializer),
        }

    def to_inference_layer(self, input_quantizer="ste_sign"):
        """A built plain larq layer with `ste_sign` kernel quantizer and the generated
        binary kernel as its weights.

        Args:
            input_quantizer: replaces the input quantizer where the layer has one.
                Predictions are identical when the layer's quantizers are sign in the
                forward pass (e.g. `ste_warmup` at the end of its schedule).
        """
        with _quantizers.nonbinary_expected():  # both quantizers are replaced below
            config = {k: v for k, v in self.get_config().items() if k not in self._hyper_config()}
        config.update(
            kernel_quantizer="ste_sign",
            input_quantizer=input_quantizer if self.input_quantizer is not None else None,
            kernel_constraint="weight_clip",
        )
        layer = self._inference_class.from_config(config)
        layer.build(self._built_input_shape)
        weights = [self.binary_kernel().numpy()]
        if self.use_bias:
            weights.append(self.bias.numpy())
        layer.set_weights(weights)
        return layer


# The authors' initialization (Hyper-BinaryNet code, `models/hyper_modules.py`):
# embeddings U(-2/3, 2/3), scale s = 1; W_h Glorot uniform.
_HYPER_DEFAULTS = dict(
    embedding_dim=9,
    embedding_initializer=tf.keras.initializers.RandomUniform(-2.0 / 3.0, 2.0 / 3.0),
    hyper_initializer="glorot_uniform",
    scale_initializer=tf.keras.initializers.Constant(1.0),
)


@lq.utils.register_keras_custom_object
class HyperConv2D(_HyperKernel, lq.layers.QuantConv2D):
    r"""2D binary convolution whose kernel is generated by a hypernetwork (HyperConv).

    \[
    W_{:,:,i,o} = \operatorname{reshape}_{k_h \times k_w}(s \cdot W_h z_{i,o}),
    \qquad y = \hat x * Q(W)
    \]

    Takes every `lq.layers.QuantConv2D` argument (so it drops in via a model's
    `conv_layer`), plus the generator's. `kernel_initializer` and
    `kernel_constraint` are accepted for that compatibility but unused: there is no
    latent kernel variable.

    !!! example
        ```python
        import numpy as np
        import bnnzoo

        x = np.ones((2, 8, 8, 3), "float32")
        y = bnnzoo.layers.HyperConv2D(32, 3, input_quantizer="ste_sign",
                                      kernel_quantizer="ste_sign")(x)
        assert y.shape == (2, 6, 6, 32)
        ```

    Args:
        embedding_dim: size \(d\) of each slice embedding \(z_{i,o}\) (paper: 9).
        embedding_initializer: initializer of the embeddings (default: uniform on
            \([-2/3, 2/3]\), as in the authors' code).
        hyper_initializer: initializer of \(W_h\) (Glorot uniform).
        scale_initializer: initializer of \(s\) (default 1, as in the authors' code).

    References:
        - [Gradient Matters: Designing Binarized Neural Networks via Enhanced
      Information-Flow](https://doi.org/10.1109/TPAMI.2021.3088904)
    """

    _inference_class = lq.layers.QuantConv2D

    def __init__(self, filters, kernel_size, embedding_dim=9, embedding_initializer=None,
                 hyper_initializer="glorot_uniform", scale_initializer=None, **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        self._init_hyper(embedding_dim, embedding_initializer, hyper_initializer, scale_initializer)

    def build(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        channels = self._get_input_channel(input_shape)
        if self.groups != 1:
            raise ValueError(f"groups must be 1 for HyperConv2D, got {self.groups}")
        self._kernel_shape = (*self.kernel_size, channels, self.filters)
        self.compute_output_shape(input_shape)
        self._build_hyper(int(np.prod(self.kernel_size)), channels, self.filters)
        self.bias = self.add_weight(
            name="bias", shape=(self.filters,), initializer=self.bias_initializer,
            regularizer=self.bias_regularizer, constraint=self.bias_constraint, trainable=True,
        ) if self.use_bias else None
        self.input_spec = tf.keras.layers.InputSpec(min_ndim=4, axes={self._get_channel_axis(): channels})
        self._built_input_shape = input_shape
        self.built = True

    def get_config(self):
        return {**super().get_config(), **self._hyper_config()}


@lq.utils.register_keras_custom_object
class HyperDense(_HyperKernel, lq.layers.QuantDense):
    r"""Binary dense layer whose kernel is generated by a hypernetwork.

    The \(k = 1\) case of HyperConv: \(W_{i,o} = s \cdot W_h z_{i,o}\) with
    \(W_h \in \mathbb{R}^{1 \times d}\). Takes every `lq.layers.QuantDense` argument;
    `kernel_initializer`/`kernel_constraint` are unused (no latent kernel).

    !!! example
        ```python
        import numpy as np
        import bnnzoo

        x = np.ones((2, 16), "float32")
        y = bnnzoo.layers.HyperDense(10, input_quantizer="ste_sign",
                                     kernel_quantizer="ste_sign")(x)
        assert y.shape == (2, 10)
        ```

    Args:
        embedding_dim: size \(d\) of each weight's embedding (default 9).
        embedding_initializer, hyper_initializer, scale_initializer: as in `HyperConv2D`.

    References:
        - [Gradient Matters: Designing Binarized Neural Networks via Enhanced
      Information-Flow](https://doi.org/10.1109/TPAMI.2021.3088904)
    """

    _inference_class = lq.layers.QuantDense

    def __init__(self, units, embedding_dim=9, embedding_initializer=None,
                 hyper_initializer="glorot_uniform", scale_initializer=None, **kwargs):
        super().__init__(units, **kwargs)
        self._init_hyper(embedding_dim, embedding_initializer, hyper_initializer, scale_initializer)

    def build(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        last_dim = input_shape[-1]
        if last_dim is None:
            raise ValueError(f"the last input dimension of HyperDense must be known, got {input_shape}")
        self._kernel_shape = (int(last_dim), self.units)
        self._build_hyper(1, int(last_dim), self.units)
        self.bias = self.add_weight(
            name="bias", shape=(self.units,), initializer=self.bias_initializer,
            regularizer=self.bias_regularizer, constraint=self.bias_constraint, trainable=True,
        ) if self.use_bias else None
        self.input_spec = tf.keras.layers.InputSpec(min_ndim=2, axes={-1: int(last_dim)})
        self._built_input_shape = input_shape
        self.built = True

    def get_config(self):
        return {**super().get_config(), **self._hyper_config()}


def is_hyper_layer(layer) -> bool:
    """Whether `layer` generates its kernel (`HyperConv2D` / `HyperDense`)."""
    return isinstance(layer, _HyperKernel)


def to_inference_model(model: tf.keras.Model, input_quantizer="ste_sign") -> tf.keras.Model:
    """A copy of functional `model` with every hyper layer replaced by its plain
    inference layer (`to_inference_layer`); other layers keep their weights.

    Args:
        model: a functional model (e.g. a bnnzoo family built with `hyper=True`).
        input_quantizer: the inference layers' input quantizer (see `to_inference_layer`).
    """
    if not getattr(model, "_is_graph_network", False):
        raise ValueError(f"model must be a functional Keras model, got {type(model).__name__}")
    replacements = {}

    def clone(layer):
        if is_hyper_layer(layer):
            replacements[layer.name] = layer.to_inference_layer(input_quantizer)
            return replacements[layer.name]
        return layer.__class__.from_config(layer.get_config())

    with _quantizers.nonbinary_expected():  # a copy through the layers' configs, not a save
        copy = tf.keras.models.clone_model(model, clone_function=clone)
    for old, new in zip(model.layers, copy.layers):
        if old.name not in replacements:
            new.set_weights(old.get_weights())
    return copy
