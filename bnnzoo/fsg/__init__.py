r"""FSG: fast and slow learned gradients for binary weights (Chen et al., AAAI 2025).

A straight-through estimator hands every latent weight the gradient of its binarized
copy. FSG instead *generates* the gradient of each binary layer \(l\) with two small
networks that are trained through the task loss (the MetaQuant recipe):

\[
\begin{aligned}
g^{\text{fast}}_l &= g_l \odot \operatorname{FastNet}(W_l)
  && \text{FastNet: per-element MLP } 1 \to 100 \to 100 \to 1 \text{, no bias} \\
H_l &= [g_l^{(t-L)}, \dots, g_l^{(t-1)}]
  && \text{Historical Gradient Storage (FIFO, } L = 5\text{)} \\
g^{\text{slow}}_l &= \operatorname{SlowNet}([e_l; H_l])
  && e_l \text{: Layer Recognition Embedding} \\
c_l &= \frac{1 - \tanh^2(W_l)}{\max \lvert \tanh(W_l) \rvert} \\
G_l &= \alpha\, g^{\text{slow}}_l + (1 - \alpha)\, c_l \odot g^{\text{fast}}_l
  && \alpha = 0.9 \\
W^{\text{meta}}_l &= W_l - \eta\, G_l, \qquad \hat W_l = Q(W^{\text{meta}}_l)
\end{aligned}
\]

where \(g_l = \partial \mathcal{L} / \partial \hat W_l\) is the gradient with respect to
the *binarized* kernel of the previous step, \(Q\) is the layer's own kernel quantizer
(straight-through backward) and \(\eta\) the inner optimizer's learning rate. The
forward pass of a training step uses \(\hat W_l\), so back-propagating the task loss
reaches the fast and slow nets and the embeddings through \(W^{\text{meta}}\); the
latent weight \(W_l\) is then updated by the inner optimizer (Adam by default) with the
generated gradient \(G_l\). The inner optimizer also trains the generator and every
real-valued variable.

Implementation notes (details and the deviations from the paper are in
`docs/learned_gradients.md`):

- **Fast net, exactly and cheaply.** A bias-free ReLU MLP of a scalar is positively
  homogeneous, \(f(\lambda s) = \lambda f(s)\) for \(\lambda \ge 0\), so
  \(f(w) = \max(w, 0)\, f(1) + \max(-w, 0)\, f(-1)\): two MLP evaluations per step
  give the exact per-element output for every weight.
- **Slow net.** Mamba is not available in Keras; the slow net is a sequence model over
  the \(L + 1\) tokens \([e_l; H_l]\) of *each weight element* (weights shared across
  elements and layers): a GRU (`"gru"`) or one attention head whose query is the layer
  token (`"attention"`), registered in `SLOW_NETS`. Histories are divided by their
  per-layer RMS before the net and the output multiplied back (scale-free inputs),
  and the net predicts a correction to the latest gradient whose read-out starts at
  zero, so an untrained FSG starts as a one-step-delayed STE.
- **Step 0.** With an empty history the generated gradient is zero; slots of the
  history that are not filled yet are masked out of the slow net.
- **Memory.** The history holds \(L\) floats per binary weight
  (`FSG.history_memory_bytes()`), the generator a few thousand floats.

The model must run FSG's training step: wrap it with `bnnzoo.fsg.wrap(model)` before
`compile` (`bnnzoo.training.train` does this for `--optimizer fsg`: its
`OptimizerSpec` declares `wrap_model`).

**The authors' form.** The authors' public code (github.com/two-tiger/FSG) updates
the latent weight with \(c_l \odot g^{\text{fast}}_l\) only (the slow gradient
trains the generators through \(W^{\text{meta}}\)), uses a linear fast net on the
pre-quantized weight \(p \in [0, 1]\) and gives the generators Adam optimizers of
their own: `FSGAuthors` (`bnnzoo.fsg.authors`, registered as `fsg_authors`).

The package: `nets` (history store, fast and slow nets, `SLOW_NETS`), `optimizer`
(`FSG`), `authors` (`FSGAuthors`), `model` (`FSGModel`, `wrap`, `unwrap`: the
training step). The registered builders `fsg`, `fsg_attention` and `fsg_authors` live in
`bnnzoo.optimizers.fsg_builders`: this package imports nothing of `bnnzoo.optimizers`.

!!! example
    ```python
    import numpy as np
    import tensorflow as tf
    import bnnzoo

    data = bnnzoo.data.load_arrays("digits")
    model = bnnzoo.models.create_model("binarynet_mlp", input_shape=(8, 8, 1), units=64, hidden_layers=1)
    model = bnnzoo.fsg.wrap(model)
    model.compile(
        optimizer=bnnzoo.optimizers.FSG(
            inner=tf.keras.optimizers.legacy.Adam(1e-3), slow_net="gru", history=5, alpha=0.9
        ),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(data.x_train, data.y_train, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    # the history store: L = 5 float32 gradients per binary weight
    binary = sum(layer.kernel.shape.num_elements() for layer in bnnzoo.fsg.binary_kernel_layers(model))
    assert model.optimizer.history_memory_bytes() == 5 * 4 * binary
    ```

References:
    - [Fast and Slow Gradient Approximation for Binary Neural Network
      Optimization](https://arxiv.org/abs/2412.11777)
    - [MetaQuant: Learning to Quantize by Learning to Penetrate Non-differentiable
      Quantization](https://papers.nips.cc/paper/2019/hash/f8e59f4b2fe7c5705bf878bbd494ccdf-Abstract.html)
"""

from bnnzoo.fsg import nets
from bnnzoo.fsg.authors import FSGAuthors
from bnnzoo.fsg.model import FSGModel, unwrap, wrap
from bnnzoo.fsg.nets import (
    SLOW_NETS,
    AttentionSlowNet,
    FastNet,
    GRUSlowNet,
    HistoricalGradientStorage,
    SlowNet,
    binary_kernel_layers,
    register_slow_net,
)
from bnnzoo.fsg.optimizer import FSG

__all__ = ["FSG", "FSGAuthors", "FSGModel", "wrap", "unwrap"] + nets.__all__
