"""Train any functional binary model with FSG's learned gradients.

`wrap(model)` returns an `FSGModel`: the same layers and weights, with a training
step that, when compiled with `bnnzoo.optimizers.FSG`, runs the forward pass on the
meta kernels \\(\\hat W_l = Q(W_l - \\eta G_l)\\) and lets the optimizer update the
histories, the generator and the weights. With any other optimizer it trains like
the plain model, and inference (`predict`, `evaluate`) always uses the model's own
quantized kernels. A normal `model.fit` script changes in two lines:

!!! example
    ```python
    import numpy as np
    import bnnzoo

    data = bnnzoo.data.load_arrays("digits")
    model = bnnzoo.models.create_model("binarynet_mlp", input_shape=(8, 8, 1), units=64, hidden_layers=1)
    model = bnnzoo.fsg.wrap(model)                                    # line one: FSG's training step
    model.compile(optimizer=bnnzoo.optimizers.FSG(slow_net="gru"),    # line two: its optimizer
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, epochs=1, verbose=0)
    plain = bnnzoo.fsg.unwrap(model)  # a plain functional model for export
    assert type(plain) is not bnnzoo.fsg.FSGModel and all(a is b for a, b in zip(plain.layers, model.layers))
    # inference uses the model's own quantized kernels: the same predictions
    np.testing.assert_array_equal(plain.predict(data.x_test, verbose=0), model.predict(data.x_test, verbose=0))
    ```

How the kernels are substituted: during the (traced) training step each binary
layer's `kernel` attribute is pointed at the tensor \\(\\hat W_l\\) and restored right
after the forward pass, so the layer's own `call` (and any kernel-side logic it has)
runs unchanged. The latent variables are never modified by this.
"""

from __future__ import annotations

import contextlib

import larq as lq
import tensorflow as tf

from bnnzoo.fsg.optimizer import FSG

__all__ = ["FSGModel", "unwrap", "wrap"]


@contextlib.contextmanager
def _kernels_replaced(layers, kernels):
    originals = [vars(layer)["kernel"] for layer in layers]
    try:
        for layer, kernel in zip(layers, kernels):
            # object.__setattr__: Keras attribute tracking must not drop the variable.
            object.__setattr__(layer, "kernel", kernel)
        yield
    finally:
        for layer, kernel in zip(layers, originals):
            object.__setattr__(layer, "kernel", kernel)


@lq.utils.register_keras_custom_object
class FSGModel(tf.keras.Model):
    """A functional model whose training step runs FSG when compiled with `FSG`.

    Build it with `wrap(model)`; it saves and reloads like any functional model.
    """

    def compile(self, optimizer="rmsprop", *args, **kwargs):
        super().compile(optimizer, *args, **kwargs)
        if isinstance(self.optimizer, FSG):
            self.optimizer.build_for(self)

    def get_compile_config(self):
        return super().get_compile_config()

    def compile_from_config(self, config):
        # Keras skips models with a custom compile() unless this is overridden.
        self.compile(**tf.keras.saving.deserialize_keras_object(config))

    def train_step(self, data):
        optimizer = self.optimizer
        if not isinstance(optimizer, FSG):
            return super().train_step(data)
        x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        layers = optimizer.binary_layers
        kernel_ids = {id(layer.kernel) for layer in layers}
        others = [v for v in self.trainable_variables if id(v) not in kernel_ids]
        meta = optimizer.meta_variables
        with tf.GradientTape() as tape:
            generated, latent = optimizer.generate()
            quantized = [layer.kernel_quantizer(w) for layer, w in
                         zip(layers, optimizer.meta_kernels(generated))]
            with _kernels_replaced(layers, quantized):
                y_pred = self(x, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight)
        grads = tape.gradient(loss, [*quantized, *meta, *others])
        n = len(layers)
        optimizer.apply_fsg(grads[:n], latent, list(zip(grads[n:], [*meta, *others])))
        return self.compute_metrics(x, y, y_pred, sample_weight)


def wrap(model: tf.keras.Model) -> FSGModel:
    """`model`'s layers (shared, not copied) as an `FSGModel`.

    Args:
        model: a functional Keras model (every registered bnnzoo family is one).
    """
    if isinstance(model, FSGModel):
        return model
    if not getattr(model, "_is_graph_network", False):
        raise ValueError(
            f"model must be a functional Keras model, got {type(model).__name__} {model.name!r}"
        )
    return FSGModel(inputs=model.inputs, outputs=model.outputs, name=model.name)


def unwrap(model: tf.keras.Model) -> tf.keras.Model:
    """A plain functional model sharing `model`'s layers (for export and inference)."""
    return tf.keras.Model(inputs=model.inputs, outputs=model.outputs, name=model.name)
