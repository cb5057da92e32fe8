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
        np.testing.assert_allclose(net(x).numpy(), net.mlp(x[:, None])[:, 0].numpy(), rtol=1e-4, atol=1e-7)
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


_ALIGN = 16  # elements: a float32 row of a multiple of 16 is 64-byte aligned


def _split_rows(t: tf.Tensor, sizes) -> list[tf.Tensor]:
    """`t` split along its first axis; the parts share `t`'s memory when its rows
    are 64-byte aligned (TensorFlow's Split forwards aligned first-axis slices)."""
    return tf.split(t, sizes, axis=0)


def _side_by_side(tokens: Sequence[tf.Tensor]) -> tuple[tf.Tensor, list[int]]:
    """The `(L, n_i)` token matrices of several layers as one `(L, N)` matrix, `N`
    padded with zeros to a multiple of `_ALIGN` (so `_split_rows` of `(k, N)` tensors
    copies nothing); and the layer sizes, the padding counted in the last layer."""
    sizes = [int(t.shape[1]) for t in tokens]
    pad = -sum(sizes) % _ALIGN
    side_by_side = tf.concat([*tokens, tf.zeros((tokens[0].shape[0], pad))], axis=1)
    return side_by_side, [*sizes[:-1], sizes[-1] + pad]


def _gru_step(h, x, recurrent, projection):
    """One GRU step of every element at once, units-major.

    `h`: `(u, N)` states; `x`: `(2, N)` rows [token; 1]; `recurrent`: `(3u, u)` the
    recurrent kernels of gates z, r, h̃ stacked and transposed; `projection`:
    `(3u, 2)` the input kernels (column 0) and biases (column 1). Returns the new
    state and the tensors `_gru_step_gradient` needs.
    """
    units = h.shape[0]
    a_zr, a_h = _split_rows(tf.matmul(recurrent, h), [2 * units, units])
    x_zr, x_h = _split_rows(tf.matmul(projection, x), [2 * units, units])
    zr = tf.sigmoid(a_zr + x_zr)
    z, r = _split_rows(zr, 2)
    candidate = tf.tanh(x_h + r * a_h)
    delta = h - candidate
    return candidate + z * delta, (h, zr, a_h, candidate, delta)


def _gru_step_gradient(dh_new, x, saved, recurrent):
    """Back-propagate `dh_new` (`(u, N)`) through `_gru_step`: the gradients of its
    `h`, `recurrent` and `projection`."""
    h, zr, a_h, candidate, delta = saved
    units = h.shape[0]
    z, r = _split_rows(zr, 2)
    via_z = dh_new * z  # h' = z h + (1 - z) h̃
    d_pre_h = tf.raw_ops.TanhGrad(y=candidate, dy=dh_new - via_z)
    d_pre_zr = tf.raw_ops.SigmoidGrad(y=zr, dy=tf.concat([dh_new * delta, d_pre_h * a_h], axis=0))
    d_a_h = d_pre_h * r
    w_zr, w_h = _split_rows(recurrent, [2 * units, units])
    dh = tf.add_n([via_z, tf.matmul(w_zr, d_pre_zr, transpose_a=True), tf.matmul(w_h, d_a_h, transpose_a=True)])
    d_recurrent = tf.concat([tf.matmul(d_pre_zr, h, transpose_b=True), tf.matmul(d_a_h, h, transpose_b=True)], 0)
    d_projection = tf.concat([tf.matmul(d_pre_zr, x, transpose_b=True), tf.matmul(d_pre_h, x, transpose_b=True)], 0)
    return dh, d_recurrent, d_projection


@tf.custom_gradient
def _gru_sequence(inputs, h0, mask, recurrent, projection):
    """The last state of the GRU run over `inputs` (`(L, 2, N)`, rows [token; 1] per
    step) from `h0` (`(u, N)`); steps whose `mask` entry is 0 leave the state
    unchanged. Hand-written gradient (no gradient for `inputs` and `mask`): one
    back-propagation step per GRU step, and no masked-out step computed backwards."""
    steps = tf.unstack(inputs, axis=0)
    h, saved = h0, []
    for j, x in enumerate(steps):
        new, kept = _gru_step(h, x, recurrent, projection)
        h = tf.cond(mask[j] > 0, lambda new=new: new, lambda h=h: h)
        saved.append(kept)

    def gradient(dh):
        d_recurrent, d_projection = tf.zeros_like(recurrent), tf.zeros_like(projection)
        for j in reversed(range(len(steps))):
            def through(dh=dh, j=j):
                return _gru_step_gradient(dh, steps[j], saved[j], recurrent)

            def skipped(dh=dh):
                return dh, tf.zeros_like(recurrent), tf.zeros_like(projection)

            dh, dr, dp = tf.cond(mask[j] > 0, through, skipped)
            d_recurrent, d_projection = d_recurrent + dr, d_projection + dp
        return None, dh, None, d_recurrent, d_projection

    return h, gradient


class GRUSlowNet(SlowNet):
    r"""GRU over \([e_l; g^{(t-L)}, \dots, g^{(t-1)}]\), linear read-out of the last state.

    Keras' gate layout: \(z = \sigma(x W_z + h U_z + b_z)\), \(r = \sigma(x W_r + h U_r
    + b_r)\), \(\tilde h = \tanh(x W_h + r \odot (h U_h) + b_h)\),
    \(h' = z \odot h + (1 - z) \odot \tilde h\). The first step (the layer token) is
    the same for every element of a layer, so it runs once per layer. The gradient
    steps run over the elements of all layers at once (`per_layer`), units-major
    with the three gates stacked (one matrix product per step for the recurrent and
    one for the input terms), with a hand-written gradient (`_gru_sequence`).
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

    def _layer_states(self, embeddings):
        """`(layers, u)`: the state after the layer token, per layer (`embeddings`:
        `(layers, embedding_dim)`)."""
        (kz, kh), (bz, br, bh) = self.embedding_kernels, self.biases
        reset = tf.broadcast_to(br, (tf.shape(embeddings)[0], self.units))
        zero = tf.zeros_like(reset)
        return self._cell([tf.matmul(embeddings, kz) + bz, reset, tf.matmul(embeddings, kh) + bh], zero)

    def _stacked_kernels(self):
        """(`(3u, u)` recurrent kernels transposed, `(3u, 2)` [input kernel, bias]),
        gates z, r, h̃ stacked."""
        recurrent = tf.concat([tf.transpose(k) for k in self.recurrent_kernels], axis=0)
        projection = tf.stack([tf.concat([k[0] for k in self.input_kernels], 0), tf.concat(self.biases, 0)], axis=1)
        return recurrent, projection

    def _corrections(self, tokens, mask, embeddings, sizes):
        """The correction of every element: `tokens` `(L, N)` (layer `i`'s `sizes[i]`
        elements side by side), `embeddings` `(layers, embedding_dim)`. Returns `(N,)`."""
        layer_of = tf.repeat(tf.range(len(sizes)), sizes)
        h0 = tf.gather(tf.transpose(self._layer_states(embeddings)), layer_of, axis=1)
        inputs = tf.stack([tokens, tf.ones_like(tokens)], axis=1)  # (L, 2, N): [token; 1] per step
        h = _gru_sequence(inputs, h0, mask, *self._stacked_kernels())
        return tf.reshape(tf.matmul(self.readout, h, transpose_a=True), [-1])

    def correction(self, tokens, mask, embedding):
        side_by_side, sizes = _side_by_side([tf.stack(tokens)])
        return self._corrections(side_by_side, mask, embedding[None], sizes)[:int(tokens[0].shape[0])]

    def per_layer(self, tokens, mask, embeddings):
        """All layers' slow gradients from one GRU run over their elements side by side."""
        side_by_side, sizes = _side_by_side(tokens)
        slow = side_by_side[-1] + self._corrections(side_by_side, mask, tf.stack(embeddings), sizes)
        return tf.split(slow, [int(t.shape[1]) for t in tokens] + [sizes[-1] - int(tokens[-1].shape[1])])[:-1]


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
