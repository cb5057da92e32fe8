"""FSG's gradient generator: the history store, the fast net and the slow nets.

The formulas are in `bnnzoo.fsg`; this module holds the trainable parts: the
Historical Gradient Storage (`HistoricalGradientStorage`), the per-element fast net
(`FastNet`) and the sequence models over `[e_l; H_l]` (`SlowNet`: `GRUSlowNet`,
`AttentionSlowNet`), registered by name in `SLOW_NETS`.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import larq as lq
import tensorflow as tf

from bnnzoo.registry import Registry

__all__ = [
    "AttentionSlowNet",
    "FastNet",
    "GRUSlowNet",
    "HistoricalGradientStorage",
    "SLOW_NETS",
    "SlowNet",
    "binary_kernel_layers",
    "register_slow_net",
]


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
    r"""Per-element bias-free MLP \(1 \to h_1 \to \dots \to 1\), ReLU between layers
    (`activation="relu"`, bnnzoo's FSG) or none (`activation=None`, the authors' code).

    Evaluated exactly and cheaply. With ReLU the MLP is positively homogeneous:
    \(f(w) = \max(w, 0) f(1) + \max(-w, 0) f(-1)\). Without it the MLP is one
    scalar times its input: \(f(x) = x\, f(1)\).

    Args:
        hidden: hidden widths.
        activation: `"relu"` or `None`.
        name: module name.

    !!! example
        ```python
        import numpy as np
        import tensorflow as tf
        from bnnzoo.fsg import FastNet

        net = FastNet((100, 100), activation=None)
        x = tf.constant([0.0, 0.25, 1.0])
        np.testing.assert_allclose(net(x).numpy(), net.mlp(x[:, None])[:, 0].numpy(), rtol=1e-5)
        ```
    """

    ACTIVATIONS = ("relu", None)

    def __init__(self, hidden: Sequence[int] = (100, 100), name: str | None = None,
                 activation: str | None = "relu"):
        super().__init__(name=name)
        if activation not in self.ACTIVATIONS:
            raise ValueError(f"activation must be one of {self.ACTIVATIONS}, got {activation!r}")
        self.activation = activation
        sizes = [1, *hidden, 1]
        self.kernels = [_glorot((a, b), f"kernel_{i}") for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]

    def mlp(self, x: tf.Tensor) -> tf.Tensor:
        """The MLP on a column `x` of shape `(n, 1)` (the reference evaluation)."""
        for i, kernel in enumerate(self.kernels):
            x = tf.matmul(x, kernel)
            if i < len(self.kernels) - 1 and self.activation == "relu":
                x = tf.nn.relu(x)
        return x

    def __call__(self, w: tf.Tensor) -> tf.Tensor:
        if self.activation is None:
            return w * self.mlp(tf.constant([[1.0]]))[0, 0]
        ends = self.mlp(tf.constant([[1.0], [-1.0]]))[:, 0]
        return tf.nn.relu(w) * ends[0] + tf.nn.relu(-w) * ends[1]


class SlowNet(tf.Module):
    """Base of the slow nets: a sequence model over `[e_l; H_l]` per weight element.

    Subclasses implement `correction(tokens, mask, embedding) -> (n,)`; the slow
    gradient (in units of the history's RMS) is `tokens[-1] + correction`. `FSG`
    asks for all its layers at once (`per_layer`), which a subclass may batch.

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

    def per_layer(self, tokens: Sequence[tf.Tensor], mask: tf.Tensor,
                  embeddings: Sequence[tf.Tensor]) -> list[tf.Tensor]:
        """The slow gradients of several layers: `[self(t, mask, e) for t, e in
        zip(tokens, embeddings)]`. A subclass may compute them in one batch (as
        `GRUSlowNet` does); `FSG` calls this once per step for all its layers."""
        return [self(t, mask, e) for t, e in zip(tokens, embeddings)]

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


SLOW_NETS: Registry[Callable[..., SlowNet]] = Registry("slow net")


def register_slow_net(name: str, factory: Callable[..., SlowNet]) -> None:
    """Register `factory(embedding_dim, units, history) -> SlowNet` under `name`."""
    SLOW_NETS.register(name, factory)


register_slow_net("gru", lambda embedding_dim, units, history: GRUSlowNet(embedding_dim, units, name="gru"))
register_slow_net(
    "attention",
    lambda embedding_dim, units, history: AttentionSlowNet(embedding_dim, units, name="attention", history=history),
)
