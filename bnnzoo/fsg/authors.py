r"""`FSGAuthors`: FSG in the form of the authors' public code (github.com/two-tiger/FSG).

bnnzoo's `FSG` follows the paper's equations; the authors' training script
(`meta-quantize.py` with `meta_utils/`, method `MetaFastAndSlow`) differs in three
ways, and `FSGAuthors` (registered as `fsg_authors`) takes all three:

1. **Latent update from the fast gradient only.** The latent weight is updated by the
   main optimizer with \(c \odot g^{\text{fast}}\); the slow gradient enters only
   \(W^{\text{meta}} = W - \eta\,(\alpha g^{\text{slow}} + (1-\alpha)\, c \odot
   g^{\text{fast}})\), i.e. it only trains the generators through the task loss.
2. **Linear fast net on the pre-quantized weight.** The fast net has no nonlinearity
   (bias-free \(1 \to 100 \to 100 \to 1\), so it is one learned scalar times its input)
   and reads DoReFa's pre-quantized weight
   \(p = \tanh W / (2 \max\lvert\tanh W\rvert) + 1/2 \in [0, 1]\) instead of \(W\):
   \(g^{\text{fast}} = g \odot \operatorname{FastNet}(p)\).
3. **The generators have their own optimizers**: Adam 1e-3 for the slow net (and the
   Layer Recognition Embeddings), Adam 1e-2 for the fast net (PyTorch's defaults
   otherwise: \(\beta = (0.9, 0.999)\), \(\epsilon = 10^{-8}\)). The main optimizer
   (`inner`) trains the latent weights and every real-valued variable of the model;
   its learning rate \(\eta\) (schedules included) is also the step of \(W^{\text{meta}}\).

Everything else is bnnzoo's FSG: \(c = (1 - \tanh^2 W)/\max\lvert\tanh W\rvert\), the
history of the last \(L\) gradients \(g = \partial\mathcal{L}/\partial\hat W\), the
pluggable slow net (GRU or attention standing in for the authors' Mamba block, see
`bnnzoo.fsg`), the training step of `bnnzoo.fsg.wrap`. What remains different from
the authors' code is listed in `docs/learned_gradients.md`.

!!! example
    ```python
    import math
    import bnnzoo

    data = bnnzoo.data.load_arrays("digits")
    model = bnnzoo.models.create_model("binarynet_mlp", input_shape=(8, 8, 1), units=64, hidden_layers=1)
    model = bnnzoo.fsg.wrap(model)
    optimizer = bnnzoo.optimizers.get_optimizer("fsg_authors", 1e-3)
    assert type(optimizer) is bnnzoo.fsg.FSGAuthors
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data.x_train[:128], data.y_train[:128], batch_size=64, epochs=1, verbose=0)
    # the generators' own Adams (1e-3 slow, 1e-2 fast) took each of the 2 steps too
    assert math.isclose(float(optimizer.slow_optimizer.learning_rate), 1e-3, rel_tol=1e-6)
    assert math.isclose(float(optimizer.fast_optimizer.learning_rate), 1e-2, rel_tol=1e-6)
    assert [int(o.iterations) for o in optimizer.optimizers] == [2, 2, 2]
    ```
"""

from __future__ import annotations

import larq as lq
import tensorflow as tf

from bnnzoo.fsg.optimizer import FSG, _legacy_optimizer

__all__ = ["FSGAuthors"]


def _authors_adam(learning_rate: float) -> tf.keras.optimizers.legacy.Adam:
    """`torch.optim.Adam(lr=learning_rate)` as a legacy Keras Adam (ε = 1e-8)."""
    return tf.keras.optimizers.legacy.Adam(learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8)


@lq.utils.register_keras_custom_object
class FSGAuthors(FSG):
    r"""FSG as the authors' code runs it: the latent weight learns from
    \(c \odot g^{\text{fast}}\) only, a linear fast net on the pre-quantized weight
    \(p \in [0, 1]\), and generators with optimizers of their own.

    The differences from `FSG` are in the `bnnzoo.fsg.authors` module docstring. Use it
    like `FSG`: with a model wrapped by `bnnzoo.fsg.wrap`.

    Gradients: the latent kernel gets \(c \odot g^{\text{fast}}\) (applied by `inner`);
    the slow net, the fast net and the embeddings \(\theta\) get
    \(\partial\mathcal{L}/\partial\theta = -\eta\,(\partial\mathcal{L}/\partial
    W^{\text{meta}})\, \partial G/\partial\theta\) with
    \(G = \alpha g^{\text{slow}} + (1 - \alpha)\, c \odot g^{\text{fast}}\), applied by
    `slow_optimizer` and `fast_optimizer`.

    Args:
        inner: the main optimizer of the latent weights and the model's real-valued
            variables (default Adam 1e-3, ε = 1e-8).
        slow_net: a name in `SLOW_NETS` (`"gru"`, `"attention"`).
        history: \(L\), gradients kept per layer, 1 ≤ L ≤ 64.
        alpha: \(\alpha\), weight of the slow gradient in \(W^{\text{meta}}\), in [0, 1].
        embedding_dim: size of each Layer Recognition Embedding, ≥ 1.
        units: hidden size of the slow net, ≥ 1.
        fast_hidden: hidden widths of the (linear) fast net (default `(100, 100)`).
        slow_optimizer: optimizer of the slow net and the embeddings (default Adam 1e-3,
            ε = 1e-8).
        fast_optimizer: optimizer of the fast net (default Adam 1e-2, ε = 1e-8).
        name: optimizer name.

    !!! example
        ```python
        import math
        import tensorflow as tf
        import bnnzoo

        model = bnnzoo.models.create_model("binarynet_mlp", input_shape=(8, 8, 1), units=64)
        model = bnnzoo.fsg.wrap(model)
        optimizer = bnnzoo.fsg.FSGAuthors(inner=tf.keras.optimizers.legacy.Adam(1e-3), slow_net="gru")
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
        inner, slow, fast = optimizer.optimizers
        assert (slow, fast) == (optimizer.slow_optimizer, optimizer.fast_optimizer)
        # the defaults of the authors' code: Adam 1e-3 (slow net), Adam 1e-2 (fast net), eps 1e-8
        assert math.isclose(float(slow.learning_rate), 1e-3, rel_tol=1e-6)
        assert math.isclose(float(fast.learning_rate), 1e-2, rel_tol=1e-6)
        assert all(type(o) is tf.keras.optimizers.legacy.Adam and o.epsilon == 1e-8 for o in (slow, fast))
        ```

    References:
        - [Fast and Slow Gradient Approximation for Binary Neural Network
      Optimization](https://arxiv.org/abs/2412.11777), code: github.com/two-tiger/FSG
    """

    _FAST_ACTIVATION = None
    _OPTIMIZER_ARGS = ("inner", "slow_optimizer", "fast_optimizer")

    def __init__(self, inner=None, *, slow_optimizer=None, fast_optimizer=None, name: str = "FSGAuthors",
                 **kwargs):
        # slow_net, history, alpha, embedding_dim, units, fast_hidden: as for FSG.
        inner = _authors_adam(1e-3) if inner is None else inner
        super().__init__(inner=inner, name=name, **kwargs)
        self.slow_optimizer = _legacy_optimizer("slow_optimizer", slow_optimizer, lambda: _authors_adam(1e-3))
        self.fast_optimizer = _legacy_optimizer("fast_optimizer", fast_optimizer, lambda: _authors_adam(1e-2))
        if len({id(o) for o in self.optimizers}) != 3:
            raise ValueError("inner, slow_optimizer and fast_optimizer must be three distinct optimizers")
        self._track_trackable(self.slow_optimizer, name="slow_optimizer")
        self._track_trackable(self.fast_optimizer, name="fast_optimizer")

    @property
    def optimizers(self) -> list[tf.keras.optimizers.legacy.Optimizer]:
        """`inner`, `slow_optimizer`, `fast_optimizer`."""
        return [self.inner, self.slow_optimizer, self.fast_optimizer]

    def generator_optimizers(self):
        """`slow_optimizer` trains the slow net and the embeddings, `fast_optimizer` the fast net."""
        if not self.built:
            return []
        slow = [*self.slow_net.trainable_variables, *[s.layer_embedding for s in self.layer_states]]
        return [(self.slow_optimizer, slow), (self.fast_optimizer, list(self.fast_net.trainable_variables))]

    def _fast_input(self, w, tanh_w, max_tanh):
        """DoReFa's pre-quantized weight \\(p = \\tanh W / (2 \\max\\lvert\\tanh W\\rvert) + 1/2\\)."""
        return tanh_w / (2.0 * max_tanh) + 0.5

    def _combine(self, g_slow, g_fast, c):
        """(\\(G = \\alpha g^{\\text{slow}} + (1 - \\alpha)\\, c \\odot g^{\\text{fast}}\\),
        the latent kernel's gradient \\(c \\odot g^{\\text{fast}}\\))."""
        latent = c * g_fast
        return self.alpha * g_slow + (1.0 - self.alpha) * latent, latent

    def get_config(self):
        return {
            **super().get_config(),
            "slow_optimizer": tf.keras.optimizers.serialize(self.slow_optimizer),
            "fast_optimizer": tf.keras.optimizers.serialize(self.fast_optimizer),
        }
