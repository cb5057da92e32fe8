"""Flip-rate logging: how many binary weights change sign, per layer, per epoch."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import larq as lq

__all__ = ["FlipRate", "binary_kernels"]


def binary_kernels(model: tf.keras.Model) -> dict[str, tf.Variable]:
    """The model's binary variables (`precision == 1`) keyed by their layer path.

    A kernel named `conv_0/kernel:0` is keyed `conv_0`; a layer with several binary
    variables gets one key per variable (`layer/name`).
    """
    found: dict[str, list] = {}
    for var in model.trainable_variables:
        if getattr(var, "precision", 32) != 1:
            continue
        path = var.name.split(":")[0]
        layer = path.rsplit("/", 1)[0] if "/" in path else path
        found.setdefault(layer, []).append((path, var))
    out = {}
    for layer, items in found.items():
        if len(items) == 1:
            out[layer] = items[0][1]
        else:
            out.update({path: var for path, var in items})
    return out


def _signs(var) -> np.ndarray:
    # The binary weight as deployed: sign of the stored value, zero counted as +1.
    return np.asarray(var.numpy()) >= 0


@lq.utils.register_keras_custom_object
class FlipRate(tf.keras.callbacks.Callback):
    r"""Logs the fraction of binary weights whose sign flipped, per layer and overall.

    For every binary variable \(w\) (larq kernels with a 1-bit `kernel_quantizer`,
    i.e. `precision == 1`) and epoch \(e\), with \(n\) the number of weights:

    - `mode="epoch"` (default): net flips over the epoch,
      \(\frac{1}{n}\sum_i [\operatorname{sign} w_i^{(e)} \ne \operatorname{sign} w_i^{(e-1)}]\),
      comparing the weights at the end of the epoch with those at its start
      (a weight that flips and flips back counts as unchanged);
    - `mode="step"`: the mean over the epoch's steps of the per-step flip fraction
      (the "flip ratio" the Bop papers plot); it reads the weights after every batch,
      so it costs a device-to-host copy per step.

    Signs are those of the stored (latent) weights with zero counted as +1, i.e. the
    binary weights the model uses at inference with `ste_sign`-style quantizers, so
    the callback works with any optimizer: Bop-style flips and Adam's latent-weight
    sign changes alike. It writes `logs["flip_rate/<layer>"]` and the weight-count
    weighted mean `logs["flip_rate"]`, which then appear in the Keras `History` and in
    `bnnzoo.training.train`'s `history.json`.

    !!! example
        ```python
        import bnnzoo

        data = bnnzoo.data.load_arrays("digits")
        model = bnnzoo.models.create_model("binarynet_mlp", input_shape=(8, 8, 1), units=64)
        model.compile(bnnzoo.optimizers.get_optimizer("bop"), "sparse_categorical_crossentropy")
        history = model.fit(data.x_train, data.y_train, epochs=2, verbose=0,
                            callbacks=[bnnzoo.callbacks.FlipRate()])
        print(history.history["flip_rate"])  # one value per epoch
        ```

    Args:
        mode: `"epoch"` (net flips per epoch) or `"step"` (mean per-step flip rate).
        prefix: prefix of the log keys.

    References:
        - [Latent Weights Do Not Exist: Rethinking Binarized Neural Network Optimization](https://arxiv.org/abs/1906.02107)
        - [Bop and Beyond: A Second Order Optimizer for Binarized Neural Networks](https://arxiv.org/abs/2104.05124)
    """

    MODES = ("epoch", "step")

    def __init__(self, mode: str = "epoch", prefix: str = "flip_rate"):
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        if not isinstance(prefix, str) or not prefix:
            raise ValueError(f"prefix must be a non-empty string, got {prefix!r}")
        self.mode = mode
        self.prefix = prefix
        self._kernels: dict[str, tf.Variable] = {}
        self._previous: dict[str, np.ndarray] = {}
        self._step_sums: dict[str, float] = {}
        self._steps = 0

    def get_config(self):
        return {"mode": self.mode, "prefix": self.prefix}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def _snapshot(self):
        self._previous = {name: _signs(var) for name, var in self._kernels.items()}

    def on_train_begin(self, logs=None):
        self._kernels = binary_kernels(self.model)
        self._snapshot()

    def on_epoch_begin(self, epoch, logs=None):
        self._step_sums = {name: 0.0 for name in self._kernels}
        self._steps = 0

    def on_train_batch_end(self, batch, logs=None):
        if self.mode != "step":
            return
        for name, var in self._kernels.items():
            now = _signs(var)
            self._step_sums[name] += float(np.mean(now != self._previous[name]))
            self._previous[name] = now
        self._steps += 1

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or not self._kernels:
            return
        total, count = 0.0, 0
        for name, var in self._kernels.items():
            if self.mode == "step":
                rate = self._step_sums[name] / max(self._steps, 1)
            else:
                now = _signs(var)
                rate = float(np.mean(now != self._previous[name]))
                self._previous[name] = now
            logs[f"{self.prefix}/{name}"] = rate
            n = int(np.prod(var.shape))
            total += rate * n
            count += n
        logs[self.prefix] = total / count
