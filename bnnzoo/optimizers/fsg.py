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
`compile` (`bnnzoo.training.train` does this for `--optimizer fsg`).

!!! example
    ```python
    import tensorflow as tf
    import bnnzoo

    data = bnnzoo.data.load_arrays("digits")
    model = bnnzoo.models.create_model("binarynet_mlp", input_shape=(8, 8, 1), units=64)
    model = bnnzoo.fsg.wrap(model)
    model.compile(
        optimizer=bnnzoo.optimizers.FSG(
            inner=tf.keras.optimizers.legacy.Adam(1e-3), slow_net="gru", history=5, alpha=0.9
        ),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(data.x_train, data.y_train, epochs=1, verbose=0)
    ```

# References
- [Fast and Slow Gradient Approximation for Binary Neural Network
  Optimization](https://arxiv.org/abs/2412.11777)
- [MetaQuant: Learning to Quantize by Learning to Penetrate Non-differentiable
  Quantization](https://papers.nips.cc/paper/2019/hash/f8e59f4b2fe7c5705bf878bbd494ccdf-Abstract.html)
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import larq as lq
import tensorflow as tf

from bnnzoo.optimizers import register_optimizer

__all__ = [
    "FSG",
    "FastNet",
    "GRUSlowNet",
    "AttentionSlowNet",
    "HistoricalGradientStorage",
    "SLOW_NETS",
    "binary_kernel_layers",
    "fsg",
    "fsg_attention",
    "register_slow_net",
]

_EPS = 1e-12


def binary_kernel_layers(model: tf.keras.Model) -> list[tf.keras.layers.Layer]:
    """Layers of `model` whose kernel is a trainable latent variable read through a
    larq kernel quantizer (the layers FSG generates gradients for).

    Layers that generate their kernel (e.g. `bnnzoo.layers.HyperConv2D`) have no
    latent kernel variable and are left to the ordinary gradient.
    """
    found = []
    for layer in model.submodules:
        kernel = vars(layer).get("kernel")
        if (isinstance(kernel, lq.quantized_variable.QuantizedVariable) and kernel.trainable
                and getattr(layer, "kernel_quantizer", None) is not None):
            found.append(layer)
    return found


def _glorot(shape, name):
    limit = math.sqrt(6.0 / (shape[0] + shape[-1]))
    return tf.Variable(tf.random.uniform(shape, -limit, limit), name=name)


class HistoricalGradientStorage(tf.Module):
    """FIFO of the last `length` gradients of one binary kernel (non-trainable).

    `buffer[0]` is the oldest gradient, `buffer[-1]` the newest; unfilled slots are
    zero. Memory: `length * kernel.size` floats.
    """

    def __init__(self, shape, length: int, name: str | None = None):
        super().__init__(name=name)
        self.length = int(length)
        self.buffer = tf.Variable(
            tf.zeros((self.length, *shape)),
            trainable=False,
            name="buffer",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )

    def push(self, gradient: tf.Tensor):
        """Append `gradient`, dropping the oldest entry."""
        return self.buffer.assign(tf.concat([self.buffer[1:], gradient[None]], axis=0))

    @property
    def memory_bytes(self) -> int:
        return int(self.buffer.shape.num_elements()) * self.buffer.dtype.size


class FastNet(tf.Module):
    r"""Per-element bias-free ReLU MLP \(1 \to h_1 \to \dots \to 1\) of the latent weight.

    Evaluated exactly through positive homogeneity:
    \(f(w) = \max(w, 0) f(1) + \max(-w, 0) f(-1)\).
    """

    def __init__(self, hidden: Sequence[int] = (100, 100), name: str | None = None):
        super().__init__(name=name)
        sizes = [1, *hidden, 1]
        self.kernels = [_glorot((a, b), f"kernel_{i}") for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]

    def mlp(self, x: tf.Tensor) -> tf.Tensor:
        """The MLP on a column `x` of shape `(n, 1)` (the reference evaluation)."""
        for i, kernel in enumerate(self.kernels):
            x = tf.matmul(x, kernel)
            if i < len(self.kernels) - 1:
                x = tf.nn.relu(x)
        return x

    def __call__(self, w: tf.Tensor) -> tf.Tensor:
        ends = self.mlp(tf.constant([[1.0], [-1.0]]))[:, 0]
        return tf.nn.relu(w) * ends[0] + tf.nn.relu(-w) * ends[1]


class SlowNet(tf.Module):
    """Base of the slow nets: a sequence model over `[e_l; H_l]` per weight element.

    Subclasses implement `correction(tokens, mask, embedding) -> (n,)`; the slow
    gradient (in units of the history's RMS) is `tokens[-1] + correction`.

    Args:
        embedding_dim: size of the Layer Recognition Embedding token.
        units: hidden size of the sequence model.
    """

    def __init__(self, embedding_dim: int = 8, units: int = 4, name: str | None = None):
        super().__init__(name=name)
        self.embedding_dim, self.units = int(embedding_dim), int(units)

    def __call__(self, tokens: tf.Tensor, mask: tf.Tensor, embedding: tf.Tensor):
        """`tokens`: `(L, n)` normalized gradients, oldest first; `mask`: `(L,)` 1 for
        filled slots; `embedding`: the layer's `(embedding_dim,)` LRE."""
        return tokens[-1] + self.correction(tf.unstack(tokens, axis=0), mask, embedding)

    def correction(self, tokens, mask, embedding):
        raise NotImplementedError


class GRUSlowNet(SlowNet):
    r"""GRU over \([e_l; g^{(t-L)}, \dots, g^{(t-1)}]\), linear read-out of the last state.

    Keras' gate layout: \(z = \sigma(x W_z + h U_z + b_z)\), \(r = \sigma(x W_r + h U_r
    + b_r)\), \(\tilde h = \tanh(x W_h + r \odot (h U_h) + b_h)\),
    \(h' = z \odot h + (1 - z) \odot \tilde h\). The first step (the layer token) is
    the same for every element of a layer, so it runs once per layer; the gradient
    steps run over all elements at once, one gate at a time (no slicing copies).
    """

    def __init__(self, embedding_dim: int = 8, units: int = 4, name: str | None = None):
        super().__init__(embedding_dim, units, name=name)
        u = self.units
        gates = ("z", "r", "h")
        # From the zero state the reset gate has no effect, so the layer token feeds z and h̃.
        self.embedding_kernels = [_glorot((self.embedding_dim, u), f"embedding_kernel_{g}") for g in ("z", "h")]
        self.input_kernels = [_glorot((1, u), f"input_kernel_{g}") for g in gates]
        self.recurrent_kernels = [_glorot((u, u), f"recurrent_kernel_{g}") for g in gates]
        self.biases = [tf.Variable(tf.zeros((u,)), name=f"bias_{g}") for g in gates]
        self.readout = tf.Variable(tf.zeros((u, 1)), name="readout")

    def _cell(self, inputs, h):
        # inputs: the three input projections (z, r, h), biases included.
        uz, ur, uh = (tf.matmul(h, k) for k in self.recurrent_kernels)
        z = tf.sigmoid(inputs[0] + uz)
        r = tf.sigmoid(inputs[1] + ur)
        candidate = tf.tanh(inputs[2] + r * uh)
        return candidate + z * (h - candidate)

    def correction(self, tokens, mask, embedding):
        e = embedding[None]
        (kz, kh), (bz, br, bh) = self.embedding_kernels, self.biases
        h = self._cell([tf.matmul(e, kz) + bz, br[None], tf.matmul(e, kh) + bh], tf.zeros((1, self.units)))
        h = tf.broadcast_to(h, (tf.shape(tokens[0])[0], self.units))
        for j, x in enumerate(tokens):
            x = x[:, None]
            new = self._cell([x * k + b for k, b in zip(self.input_kernels, self.biases)], h)
            h = h + mask[j] * (new - h)  # unfilled slots leave the state unchanged
        return tf.matmul(h, self.readout)[:, 0]


class AttentionSlowNet(SlowNet):
    r"""One attention head whose query is the layer token \(e_l\).

    Tokens \(t_j = \tanh(g_j a + p_j)\) (scalar gradient times a learned vector plus a
    position embedding), keys \(t_j W_K\), values \(t_j W_V\), query \(e_l W_Q\); the
    layer token is itself a key/value. Output \(\sum_j \operatorname{softmax}_j(q
    \cdot k_j / \sqrt{d})\, v_j \cdot w_o\). The products with \(q\) and \(w_o\) are
    folded into per-layer vectors first (associativity), so each element costs
    \(O(L d)\).
    """

    def __init__(self, embedding_dim: int = 8, units: int = 8, name: str | None = None, history: int = 5):
        super().__init__(embedding_dim, units, name=name)
        d = self.embedding_dim
        self.token_vector = _glorot((1, d), "token_vector")
        self.positions = tf.Variable(tf.random.normal((history, d), stddev=0.1), name="positions")
        self.query_kernel = _glorot((d, self.units), "query_kernel")
        self.key_kernel = _glorot((d, self.units), "key_kernel")
        self.value_kernel = _glorot((d, self.units), "value_kernel")
        self.readout = tf.Variable(tf.zeros((self.units, 1)), name="readout")

    def correction(self, tokens, mask, embedding):
        d = float(self.units)
        query = tf.matmul(embedding[None], self.query_kernel)  # (1, u)
        key_dir = tf.matmul(self.key_kernel, query, transpose_b=True)[:, 0] / math.sqrt(d)  # (d,)
        value_dir = tf.matmul(self.value_kernel, self.readout)[:, 0]  # (d,)
        scores = [tf.fill(tf.shape(tokens[0]), tf.tensordot(embedding, key_dir, 1))]
        values = [tf.fill(tf.shape(tokens[0]), tf.tensordot(embedding, value_dir, 1))]
        for j, x in enumerate(tokens):
            t = tf.tanh(x[:, None] * self.token_vector + self.positions[j])
            scores.append(tf.linalg.matvec(t, key_dir) + (mask[j] - 1.0) * 1e9)
            values.append(tf.linalg.matvec(t, value_dir))
        weights = tf.nn.softmax(tf.stack(scores, axis=1), axis=1)
        return tf.reduce_sum(weights * tf.stack(values, axis=1), axis=1)


SLOW_NETS: dict[str, Callable[..., SlowNet]] = {}


def register_slow_net(name: str, factory: Callable[..., SlowNet]) -> None:
    """Register `factory(embedding_dim, units, history) -> SlowNet` under `name`."""
    if name in SLOW_NETS and SLOW_NETS[name] is not factory:
        raise ValueError(f"slow net {name!r} is already registered")
    SLOW_NETS[name] = factory


register_slow_net("gru", lambda embedding_dim, units, history: GRUSlowNet(embedding_dim, units, name="gru"))
register_slow_net(
    "attention",
    lambda embedding_dim, units, history: AttentionSlowNet(embedding_dim, units, name="attention", history=history),
)


class _LayerState(tf.Module):
    """Per binary layer: its Layer Recognition Embedding and gradient history."""

    def __init__(self, layer, history: int, embedding_dim: int):
        super().__init__(name=layer.name)
        self.lre = tf.Variable(tf.random.normal((embedding_dim,)), name="layer_recognition_embedding")
        self.hgs = HistoricalGradientStorage(layer.kernel.shape, history, name="hgs")


@lq.utils.register_keras_custom_object
class FSG(tf.keras.optimizers.legacy.Optimizer):
    r"""Fast and slow learned gradients for binary kernels, applied by an inner optimizer.

    See the module docstring for the equations. Use with a model wrapped by
    `bnnzoo.fsg.wrap` (its training step computes \(W^{\text{meta}}\) and calls
    `apply_fsg`); every variable (latent kernels with the generated gradient, the
    generator, real-valued variables) is updated by `inner`.

    Gradient: for the generator parameters \(\theta\),
    \(\partial\mathcal{L}/\partial\theta = -\eta\, (\partial\mathcal{L}/\partial
    W^{\text{meta}})\, \partial G/\partial\theta\) with the quantizer's straight-through
    derivative inside \(\partial\mathcal{L}/\partial W^{\text{meta}}\).

    Args:
        inner: a legacy Keras optimizer (default `Adam(1e-3)`, the paper's choice).
        slow_net: a name in `SLOW_NETS` (`"gru"`, `"attention"`).
        history: \(L\), gradients kept per layer, 1 ≤ L ≤ 64.
        alpha: \(\alpha\), weight of the slow gradient, in [0, 1].
        embedding_dim: size of each Layer Recognition Embedding, ≥ 1.
        units: hidden size of the slow net, ≥ 1.
        fast_hidden: hidden widths of the fast net (default `(100, 100)`).
        name: optimizer name.

    !!! example
        ```python
        import bnnzoo

        model = bnnzoo.models.create_model("binarynet_mlp", input_shape=(8, 8, 1), units=64)
        model = bnnzoo.fsg.wrap(model)
        model.compile(optimizer=bnnzoo.optimizers.FSG(slow_net="attention"),
                      loss="sparse_categorical_crossentropy")
        ```

    # References
    - [Fast and Slow Gradient Approximation for Binary Neural Network
      Optimization](https://arxiv.org/abs/2412.11777)
    """

    _HAS_AGGREGATE_GRAD = True

    def __init__(
        self,
        inner=None,
        slow_net: str = "gru",
        history: int = 5,
        alpha: float = 0.9,
        embedding_dim: int = 8,
        units: int = 4,
        fast_hidden: Sequence[int] = (100, 100),
        name: str = "FSG",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if inner is None:
            inner = tf.keras.optimizers.legacy.Adam(1e-3)
        elif isinstance(inner, (dict, str)):
            inner = tf.keras.optimizers.get(inner, use_legacy_optimizer=True)
        if not isinstance(inner, tf.keras.optimizers.legacy.Optimizer):
            raise ValueError(f"inner must be a legacy tf.keras optimizer, got {inner!r}")
        if slow_net not in SLOW_NETS:
            raise ValueError(f"slow_net must be one of {sorted(SLOW_NETS)}, got {slow_net!r}")
        if not (isinstance(history, int) and 1 <= history <= 64):
            raise ValueError(f"history must be an integer in [1, 64], got {history!r}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
        for arg, value in (("embedding_dim", embedding_dim), ("units", units)):
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{arg} must be an integer >= 1, got {value!r}")
        fast_hidden = tuple(int(h) for h in fast_hidden)
        if not fast_hidden or min(fast_hidden) < 1:
            raise ValueError(f"fast_hidden must be a non-empty list of sizes >= 1, got {fast_hidden!r}")
        self.inner = inner
        self.slow_net_name, self.history, self.alpha = slow_net, history, float(alpha)
        self.embedding_dim, self.units, self.fast_hidden = embedding_dim, units, fast_hidden
        self._track_trackable(inner, name="inner")
        self.fast_net: FastNet | None = None
        self.slow_net: SlowNet | None = None
        self.layer_states: list[_LayerState] = []
        self.binary_layers: list[tf.keras.layers.Layer] = []  # not tracked: the model owns them

    # ---------------------------------------------------------------- learning rate
    @property
    def learning_rate(self):
        return self.inner.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self.inner.learning_rate = value

    lr = learning_rate

    # ---------------------------------------------------------------- state
    @property
    def built(self) -> bool:
        return self.fast_net is not None

    def build_for(self, model: tf.keras.Model) -> None:
        """Create the generator and one history + embedding per binary layer of `model`.

        Called by `bnnzoo.fsg.FSGModel.compile`; idempotent for the same model.
        """
        layers = binary_kernel_layers(model)
        if not layers:
            raise ValueError(f"model {model.name!r} has no binary kernel layer for FSG to train")
        if self.built:
            if self.binary_layers != layers:
                raise ValueError("this FSG optimizer was already built for another model")
            return
        with tf.init_scope():
            _ = self.iterations
            self.inner._create_hypers()
            self.fast_net = FastNet(self.fast_hidden, name="fast_net")
            self.slow_net = SLOW_NETS[self.slow_net_name](self.embedding_dim, self.units, self.history)
            self._track_trackable(self.fast_net, name="fast_net")
            self._track_trackable(self.slow_net, name="slow_net")
            names = set()
            for layer in layers:
                if layer.name in names:
                    raise ValueError(f"binary layers need unique names, {layer.name!r} repeats")
                names.add(layer.name)
                state = _LayerState(layer, self.history, self.embedding_dim)
                self._track_trackable(state, name=f"layer_{layer.name}")
                self.layer_states.append(state)
                self.binary_layers.append(layer)

    @property
    def meta_variables(self) -> list[tf.Variable]:
        """The generator's trainable variables: fast net, slow net, LREs."""
        if not self.built:
            return []
        return [*self.fast_net.trainable_variables, *self.slow_net.trainable_variables,
                *[s.lre for s in self.layer_states]]

    def history_memory_bytes(self) -> int:
        """Bytes of the Historical Gradient Storage: `history × binary params × 4`."""
        return sum(s.hgs.memory_bytes for s in self.layer_states)

    def generator_memory_bytes(self) -> int:
        """Bytes of the generator (fast net, slow net and LREs)."""
        return sum(int(v.shape.num_elements()) * v.dtype.size for v in self.meta_variables)

    @property
    def weights(self):
        state = [s.hgs.buffer for s in self.layer_states]
        return [self.iterations, *self.meta_variables, *state, *self.inner.weights]

    # ---------------------------------------------------------------- generation
    def generated_gradients(self) -> list[tf.Tensor]:
        """\\(G_l\\) for every binary layer, from its history (differentiable in the
        generator's variables). Zero while the history is empty."""
        if not self.built:
            raise ValueError("FSG is not built: compile a model wrapped by bnnzoo.fsg.wrap")
        count = tf.minimum(tf.cast(self.iterations, tf.float32), float(self.history))
        mask = tf.cast(tf.range(self.history) >= self.history - tf.cast(count, tf.int32), tf.float32)
        has_history = tf.cast(count > 0, tf.float32)
        generated = []
        for state, layer in zip(self.layer_states, self.binary_layers):
            w = tf.stop_gradient(tf.convert_to_tensor(layer.kernel))  # latent value
            shape = tf.shape(w)
            w = tf.reshape(w, [-1])
            history = tf.reshape(state.hgs.buffer, [self.history, -1])
            rms = tf.sqrt(tf.reduce_sum(tf.square(history)) / (tf.maximum(count, 1.0) * tf.cast(tf.size(w), tf.float32)))
            scale = rms + _EPS
            tokens = history / scale
            g_slow = has_history * scale * self.slow_net(tokens, mask, state.lre)
            tanh_w = tf.tanh(w)
            c = (1.0 - tf.square(tanh_w)) / tf.maximum(tf.reduce_max(tf.abs(tanh_w)), _EPS)
            g_fast = history[-1] * self.fast_net(w)
            g = self.alpha * g_slow + (1.0 - self.alpha) * c * g_fast
            generated.append(tf.reshape(g, shape))
        return generated

    def meta_kernels(self, generated: Sequence[tf.Tensor]) -> list[tf.Tensor]:
        """\\(W^{\\text{meta}}_l = W_l - \\eta G_l\\) (real-valued, not quantized)."""
        lr = self.inner._decayed_lr(tf.float32)
        return [tf.stop_gradient(tf.convert_to_tensor(layer.kernel)) - lr * g
                for layer, g in zip(self.binary_layers, generated)]

    # ---------------------------------------------------------------- update
    def apply_fsg(self, binary_grads, generated, other_grads_and_vars):
        """Push `binary_grads` (∂L/∂Ŵ per layer) into the histories and apply the
        generated gradients to the latent kernels plus `other_grads_and_vars`
        (generator and real-valued variables) with the inner optimizer."""
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        binary_grads = [tf.zeros(layer.kernel.shape) if g is None else tf.convert_to_tensor(g)
                        for layer, g in zip(self.binary_layers, binary_grads)]
        if replicas > 1:
            binary_grads = tf.distribute.get_replica_context().all_reduce("sum", binary_grads)
        pushes = [s.hgs.push(g) for s, g in zip(self.layer_states, binary_grads)]
        with tf.control_dependencies(pushes):
            step = self.iterations.assign_add(1)
        # The inner optimizer sums over replicas; G is already global.
        grads_and_vars = [(tf.stop_gradient(g) / replicas, layer.kernel)
                          for layer, g in zip(self.binary_layers, generated)]
        grads_and_vars += [(g, v) for g, v in other_grads_and_vars if g is not None]
        with tf.control_dependencies([step]):
            return self.inner.apply_gradients(grads_and_vars)

    def apply_gradients(self, grads_and_vars, name=None, **kwargs):
        raise ValueError(
            "FSG generates the gradients of binary kernels in its own training step: wrap the "
            "model with bnnzoo.fsg.wrap(model) before compile."
        )

    def wrap_model(self, model: tf.keras.Model) -> tf.keras.Model:
        """The model wrapped for FSG's training step (`bnnzoo.fsg.wrap`)."""
        from bnnzoo.fsg import wrap

        return wrap(model)

    def get_config(self):
        return {
            "name": self._name,
            "inner": tf.keras.optimizers.serialize(self.inner),
            "slow_net": self.slow_net_name,
            "history": self.history,
            "alpha": self.alpha,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "fast_hidden": list(self.fast_hidden),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["inner"] = tf.keras.optimizers.deserialize(
            config["inner"], custom_objects=custom_objects, use_legacy_optimizer=True
        )
        return cls(**config)


def _builder(slow_net: str):
    def build(learning_rate=1e-3, history: int = 5, alpha: float = 0.9, embedding_dim: int = 8,
              units: int = 4, fast_hidden: Sequence[int] = (100, 100)):
        return FSG(
            inner=tf.keras.optimizers.legacy.Adam(learning_rate),
            slow_net=slow_net,
            history=history,
            alpha=alpha,
            embedding_dim=embedding_dim,
            units=units,
            fast_hidden=fast_hidden,
        )

    build.__doc__ = f"FSG with the {slow_net} slow net; Adam(learning_rate) applies every update."
    return build


fsg = register_optimizer("fsg")(_builder("gru"))
fsg_attention = register_optimizer("fsg_attention")(_builder("attention"))
