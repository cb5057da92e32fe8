"""The `FSG` optimizer: generates the binary kernels' gradients and applies every update.

The method and its formulas: `bnnzoo.fsg`. `FSG` needs the model's FSG training step
(`bnnzoo.fsg.wrap`); the registered builders `fsg` / `fsg_attention`
(`bnnzoo.optimizers.fsg_builders`) declare that wrapping for `bnnzoo.training.train`.
"""

from __future__ import annotations

from typing import Sequence

import larq as lq
import tensorflow as tf

from bnnzoo.fsg.nets import (
    SLOW_NETS,
    FastNet,
    HistoricalGradientStorage,
    binary_kernel_layers,
)

__all__ = ["FSG"]

_EPS = 1e-12


def _history_rms(history: tf.Tensor, count: tf.Tensor) -> tf.Tensor:
    """RMS of the `count` filled rows of a `(L, n)` history (unfilled rows are zero)."""
    n = tf.cast(tf.shape(history)[1], tf.float32)
    return tf.sqrt(tf.reduce_sum(tf.square(history)) / (tf.maximum(count, 1.0) * n))


def _legacy_optimizer(arg: str, value, default):
    """`value` as a legacy Keras optimizer (`None`: `default()`; a name or config dict
    is deserialized); `ValueError` naming `arg` otherwise."""
    if value is None:
        value = default()
    elif isinstance(value, (dict, str)):
        value = tf.keras.optimizers.get(value, use_legacy_optimizer=True)
    if not isinstance(value, tf.keras.optimizers.legacy.Optimizer):
        raise ValueError(f"{arg} must be a legacy tf.keras optimizer, got {value!r}")
    return value


class _LayerState(tf.Module):
    """Per binary layer: its Layer Recognition Embedding and gradient history."""

    def __init__(self, layer, history: int, embedding_dim: int):
        super().__init__(name=layer.name)
        self.layer_embedding = tf.Variable(tf.random.normal((embedding_dim,)), name="layer_recognition_embedding")
        self.gradient_history = HistoricalGradientStorage(layer.kernel.shape, history, name="gradient_history")


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

    References:
        - [Fast and Slow Gradient Approximation for Binary Neural Network
      Optimization](https://arxiv.org/abs/2412.11777)
    """

    _HAS_AGGREGATE_GRAD = True
    _FAST_ACTIVATION = "relu"  # the fast net's nonlinearity (`FastNet`)
    _OPTIMIZER_ARGS = ("inner",)  # config entries that hold a serialized optimizer

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
        inner = _legacy_optimizer("inner", inner, lambda: tf.keras.optimizers.legacy.Adam(1e-3))
        SLOW_NETS.get(slow_net, argument="slow_net")  # ValueError listing the registered slow nets
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
            for optimizer in self.optimizers:
                optimizer._create_hypers()
            self.fast_net = FastNet(self.fast_hidden, name="fast_net", activation=self._FAST_ACTIVATION)
            self.slow_net = SLOW_NETS.get(self.slow_net_name)(self.embedding_dim, self.units, self.history)
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

    def create_variables(self, variables) -> None:
        """Create the inner optimizer's variables for `variables` (the model's
        trainable variables) and the generator's, before the first step
        (`bnnzoo.optimizers.create_optimizer_variables`)."""
        if not self.built:
            raise ValueError("FSG is not built: compile a model wrapped by bnnzoo.fsg.wrap")
        own = self.generator_optimizers()
        claimed = {id(v) for _, owned in own for v in owned}
        with tf.init_scope():  # the step counter exists: `build_for` created it
            self.inner._create_all_weights([v for v in [*self.meta_variables, *variables] if id(v) not in claimed])
            for optimizer, owned in own:
                optimizer._create_all_weights(owned)

    @property
    def optimizers(self) -> list[tf.keras.optimizers.legacy.Optimizer]:
        """Every optimizer that applies updates: `inner`, then the generator's own."""
        return [self.inner]

    def generator_optimizers(self) -> list[tuple[tf.keras.optimizers.legacy.Optimizer, list[tf.Variable]]]:
        """(optimizer, the generator variables it trains) for the parts of the generator
        that have an optimizer of their own; `inner` trains every other variable.
        None here: `inner` trains the whole generator."""
        return []

    @property
    def meta_variables(self) -> list[tf.Variable]:
        """The generator's trainable variables: fast net, slow net, LREs."""
        if not self.built:
            return []
        return [*self.fast_net.trainable_variables, *self.slow_net.trainable_variables,
                *[s.layer_embedding for s in self.layer_states]]

    def history_memory_bytes(self) -> int:
        """Bytes of the Historical Gradient Storage: `history × binary params × 4`."""
        return sum(s.gradient_history.memory_bytes for s in self.layer_states)

    def generator_memory_bytes(self) -> int:
        """Bytes of the generator (fast net, slow net and LREs)."""
        return sum(int(v.shape.num_elements()) * v.dtype.size for v in self.meta_variables)

    @property
    def weights(self):
        state = [s.gradient_history.buffer for s in self.layer_states]
        return [self.iterations, *self.meta_variables, *state, *(w for o in self.optimizers for w in o.weights)]

    # ---------------------------------------------------------------- generation
    def generated_gradients(self) -> list[tf.Tensor]:
        """\\(G_l\\) for every binary layer, from its history (differentiable in the
        generator's variables). Zero while the history is empty."""
        return self.generate()[0]

    def generate(self) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
        """Per binary layer, \\(G_l\\) (the step of \\(W^{\\text{meta}}_l\\),
        differentiable in the generator's variables) and the gradient `inner` applies
        to the latent kernel \\(W_l\\) (here \\(G_l\\) itself). Zero while the history
        is empty."""
        if not self.built:
            raise ValueError("FSG is not built: compile a model wrapped by bnnzoo.fsg.wrap")
        count = tf.minimum(tf.cast(self.iterations, tf.float32), float(self.history))
        mask = tf.cast(tf.range(self.history) >= self.history - tf.cast(count, tf.int32), tf.float32)
        has_history = tf.cast(count > 0, tf.float32)
        kernels = [tf.stop_gradient(tf.convert_to_tensor(layer.kernel)) for layer in self.binary_layers]  # latent
        histories = [tf.reshape(s.gradient_history.buffer, [self.history, -1]) for s in self.layer_states]
        scales = [_history_rms(history, count) + _EPS for history in histories]
        slow = self.slow_net.per_layer([history / scale for history, scale in zip(histories, scales)], mask,
                                       [s.layer_embedding for s in self.layer_states])
        generated, latent = [], []
        for w, history, scale, g_slow in zip(kernels, histories, scales, slow):
            shape = tf.shape(w)
            w = tf.reshape(w, [-1])
            g_slow = has_history * scale * g_slow
            tanh_w = tf.tanh(w)
            max_tanh = tf.maximum(tf.reduce_max(tf.abs(tanh_w)), _EPS)
            c = (1.0 - tf.square(tanh_w)) / max_tanh
            g_fast = history[-1] * self.fast_net(self._fast_input(w, tanh_w, max_tanh))
            g, g_latent = self._combine(g_slow, g_fast, c)
            generated.append(tf.reshape(g, shape))
            latent.append(generated[-1] if g_latent is g else tf.reshape(g_latent, shape))
        return generated, latent

    def _fast_input(self, w, tanh_w, max_tanh):
        """The fast net's input: the latent weight."""
        return w

    def _combine(self, g_slow, g_fast, c):
        """(\\(G\\), the latent kernel's gradient) = (\\(\\alpha g^{\\text{slow}} + (1 - \\alpha)\\, c \\odot
        g^{\\text{fast}}\\), the same)."""
        g = self.alpha * g_slow + (1.0 - self.alpha) * c * g_fast
        return g, g

    def meta_kernels(self, generated: Sequence[tf.Tensor]) -> list[tf.Tensor]:
        """\\(W^{\\text{meta}}_l = W_l - \\eta G_l\\) (real-valued, not quantized)."""
        lr = self.inner._decayed_lr(tf.float32)
        return [tf.stop_gradient(tf.convert_to_tensor(layer.kernel)) - lr * g
                for layer, g in zip(self.binary_layers, generated)]

    # ---------------------------------------------------------------- update
    def apply_fsg(self, binary_grads, latent_grads, other_grads_and_vars):
        """Push `binary_grads` (∂L/∂Ŵ per layer) into the histories and apply
        `latent_grads` (the second list of `generate()`) to the latent kernels plus
        `other_grads_and_vars` (generator and real-valued variables): each generator
        variable with its own optimizer where `generator_optimizers()` names one,
        everything else with `inner`."""
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        binary_grads = [tf.zeros(layer.kernel.shape) if g is None else tf.convert_to_tensor(g)
                        for layer, g in zip(self.binary_layers, binary_grads)]
        if replicas > 1:
            binary_grads = tf.distribute.get_replica_context().all_reduce("sum", binary_grads)
        pushes = [s.gradient_history.push(g) for s, g in zip(self.layer_states, binary_grads)]
        with tf.control_dependencies(pushes):
            step = self.iterations.assign_add(1)
        # The inner optimizer sums over replicas; G is already global.
        grads_and_vars = [(tf.stop_gradient(g) / replicas, layer.kernel)
                          for layer, g in zip(self.binary_layers, latent_grads)]
        grads_and_vars += [(g, v) for g, v in other_grads_and_vars if g is not None]
        own = self.generator_optimizers()
        route = {id(v): i for i, (_, owned) in enumerate(own) for v in owned}
        parts = [[] for _ in own]
        rest = []
        for g, v in grads_and_vars:
            (parts[route[id(v)]] if id(v) in route else rest).append((g, v))
        with tf.control_dependencies([step]):
            updates = [self.inner.apply_gradients(rest)]
            updates += [optimizer.apply_gradients(part) for (optimizer, _), part in zip(own, parts) if part]
            return updates[0] if len(updates) == 1 else tf.group(updates)

    def apply_gradients(self, grads_and_vars, name=None, **kwargs):
        raise ValueError(
            "FSG generates the gradients of binary kernels in its own training step: wrap the "
            "model with bnnzoo.fsg.wrap(model) before compile."
        )

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
        for arg in cls._OPTIMIZER_ARGS:
            config[arg] = tf.keras.optimizers.deserialize(
                config[arg], custom_objects=custom_objects, use_legacy_optimizer=True
            )
        return cls(**config)
