"""Flip-rate logging: how many binary weights change sign, per layer, per epoch, and
how often the flip threshold of the Bop family blocks a flip."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import larq as lq

from bnnzoo.optimizers.variables import applying_optimizers

__all__ = ["FlipRate", "ThresholdBlocking", "binary_kernels", "blocked_fraction", "flip_signal", "hyper_value"]


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
        import numpy as np
        import bnnzoo

        data = bnnzoo.data.load_arrays("digits")
        model = bnnzoo.models.create_model("binarynet_mlp", input_shape=(8, 8, 1), units=64)
        model.compile(bnnzoo.optimizers.get_optimizer("bop"), "sparse_categorical_crossentropy")
        kernels = bnnzoo.optimizers.binary_kernels(model)
        before = {name: k.numpy() >= 0 for name, k in kernels.items()}
        history = model.fit(data.x_train, data.y_train, epochs=1, verbose=0,
                            callbacks=[bnnzoo.callbacks.FlipRate()])
        flips = {name: np.mean((k.numpy() >= 0) != before[name]) for name, k in kernels.items()}
        for name, rate in flips.items():
            assert np.isclose(history.history[f"flip_rate/{name}"][0], rate)
        sizes = {name: k.shape.num_elements() for name, k in kernels.items()}
        overall = sum(flips[n] * sizes[n] for n in kernels) / sum(sizes.values())
        assert np.isclose(history.history["flip_rate"][0], overall) and overall > 0
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


def blocked_fraction(w: np.ndarray, s: np.ndarray, threshold: float) -> tuple[int, int]:
    r"""(would-be flips, flips blocked by the threshold) of one Bop-family step.

    A Bop-style optimizer flips \(w\) when \(w\,s > \tau\) (\(s\): larq `Bop`'s momentum
    \(m\), `Bop2ndOrder`'s \(\hat m / (\sqrt{\hat v} + \epsilon)\)). A *would-be flip* is
    a weight that \(\tau = 0\) would flip (\(w\,s > 0\)); it is *blocked* when
    \(0 < w\,s \le \tau\).

    !!! example
        ```python
        import numpy as np
        from bnnzoo.optimizers.flip_rate import blocked_fraction

        w = np.array([1.0, -1.0, 1.0, -1.0, 1.0])
        s = np.array([0.5, 0.5, 1e-9, -2.0, 2e-9])
        assert blocked_fraction(w, s, threshold=1e-8) == (4, 2)  # w*s = .5, -.5, 1e-9, 2, 2e-9
        ```
    """
    return _would_and_blocked(np.asarray(w, np.float64) * np.asarray(s, np.float64), threshold)


def _would_and_blocked(product: np.ndarray, threshold: float) -> tuple[int, int]:
    """`blocked_fraction` from the products w * s."""
    would = product > 0
    return int(would.sum()), int((would & (product <= threshold)).sum())


def hyper_value(optimizer, name: str, step: int) -> float:
    """The value of `optimizer`'s hyperparameter `name` at its update number `step`
    (a schedule evaluated there, a constant read)."""
    value = optimizer._get_hyper(name)
    if isinstance(value, tf.keras.optimizers.schedules.LearningRateSchedule):
        value = value(step)
    return float(tf.keras.backend.get_value(value))


def flip_signal(optimizer, var: tf.Variable, step: int) -> tuple[np.ndarray, float] | None:
    """(s, τ) that `optimizer` compared at its update number `step` (0-based) of `var`,
    read from its slots after that update: larq's `Bop` (s = m), or an optimizer with
    its own `flip_signal(var, step)` method (`Bop2ndOrder`); `None` for any other
    optimizer or a variable it does not hold."""
    if not _owns(optimizer, var):
        return None
    if hasattr(optimizer, "flip_signal"):
        return optimizer.flip_signal(var, step)
    if isinstance(optimizer, lq.optimizers.Bop):
        return (np.asarray(optimizer.get_slot(var, "m").numpy(), np.float64),
                hyper_value(optimizer, "threshold", step))
    return None


@lq.utils.register_keras_custom_object
class ThresholdBlocking(tf.keras.callbacks.Callback):
    r"""Logs how often the flip threshold \(\tau\) of larq's `Bop` or `Bop2ndOrder` acts.

    On every `every`-th training step it reads each binary kernel \(w\) before the
    step and the optimizer's state after it, recomputes the flip signal \(s\) the
    optimizer compared (`flip_signal`) and counts, per layer:

    - would-be flips: \(w\,s > 0\) (the weights \(\tau = 0\) would flip);
    - blocked flips: \(0 < w\,s \le \tau\) (would-be flips the threshold kept);
    - flips: weights whose sign changed in the step.

    At the end of each epoch it writes `logs["tau_blocked"]` (blocked / would-be
    flips over the sampled steps, NaN when there was no would-be flip), per layer
    `logs["tau_blocked/<layer>"]`, and the per-step rates `logs["would_flip_rate"]`
    and `logs["step_flip_rate"]` (fractions of all binary weights). It also checks
    its own reconstruction: a weight that flipped without \(w\,s > \tau\), or the
    reverse, raises `RuntimeError` (the optimizer is not the rule this callback
    assumes).

    Sampling costs a device-to-host copy of every binary kernel and its slots per
    sampled step; `every=10` keeps it to a few percent of a CNN epoch on a CPU.

    !!! example
        ```python
        import bnnzoo

        data = bnnzoo.data.load_arrays("digits")
        model = bnnzoo.models.create_model("binarynet_mlp", input_shape=(8, 8, 1), units=32)
        model.compile(bnnzoo.optimizers.get_optimizer("bop"), "sparse_categorical_crossentropy")
        history = model.fit(data.x_train, data.y_train, epochs=1, verbose=0,
                            callbacks=[bnnzoo.optimizers.ThresholdBlocking(every=5)])
        assert 0.0 <= history.history["tau_blocked"][0] <= 1.0
        ```

    Args:
        every: sample every `every`-th training step (>= 1).
    """

    def __init__(self, every: int = 10):
        super().__init__()
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"every must be an integer >= 1, got {every!r}")
        self.every = every
        self._kernels: dict[str, tf.Variable] = {}
        self._before: dict[str, np.ndarray] | None = None
        self._counts: dict[str, np.ndarray] = {}

    def get_config(self):
        return {"every": self.every}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def _implements_train_batch_hooks(self):
        return True

    def on_train_begin(self, logs=None):
        self._kernels = binary_kernels(self.model)
        self._owners: dict[str, object] = {}  # found after the first step creates the slots
        self._step = 0
        self._counts = {}

    def on_epoch_begin(self, epoch, logs=None):
        # would-be, blocked, flipped, weights
        self._counts = {name: np.zeros(4, np.int64) for name in self._kernels}

    def on_train_batch_begin(self, batch, logs=None):
        self._before = None
        if self._kernels and self._step % self.every == 0:
            self._before = {name: np.asarray(var.numpy()) for name, var in self._kernels.items()}

    def _owner(self, name: str, var):
        if name not in self._owners:
            members = applying_optimizers(getattr(self.model, "optimizer", None))
            owner = next((o for o in members if _owns(o, var)), None)
            if owner is None:
                return None
            self._owners[name] = owner
        return self._owners[name]

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._before is None:
            return
        for name, var in self._kernels.items():
            owner = self._owner(name, var)
            found = None if owner is None else flip_signal(owner, var, int(owner.iterations.numpy()) - 1)
            if found is None:
                continue
            s, threshold = found
            before = self._before[name]
            flipped = (before >= 0) != (np.asarray(var.numpy()) >= 0)
            product = before.astype(np.float64) * s
            would, blocked = _would_and_blocked(product, threshold)
            binary_before = np.abs(before) == 1  # a latent start is binarized on the first step
            mismatch = int(np.sum((flipped != (product > threshold)) & binary_before))
            if mismatch > max(2, 1e-4 * before.size):  # float32 vs float64 ties at tau aside
                raise RuntimeError(
                    f"ThresholdBlocking: {mismatch} of {before.size} weights of {name} flipped "
                    f"against the rule w*s > tau; {type(owner).__name__} is not a Bop-style "
                    "threshold optimizer")
            self._counts.setdefault(name, np.zeros(4, np.int64))
            self._counts[name] += (would, blocked, int(flipped.sum()), before.size)
        self._before = None

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or not any(c[3] for c in self._counts.values()):
            return
        total = np.zeros(4, np.int64)
        for name, counts in self._counts.items():
            if not counts[3]:
                continue
            total += counts
            logs[f"tau_blocked/{name}"] = counts[1] / counts[0] if counts[0] else float("nan")
        logs["tau_blocked"] = total[1] / total[0] if total[0] else float("nan")
        if total[3]:
            logs["would_flip_rate"] = total[0] / total[3]
            logs["step_flip_rate"] = total[2] / total[3]


def _owns(optimizer, var) -> bool:
    try:
        optimizer.get_slot(var, "m")
        return True
    except (KeyError, AttributeError, ValueError):
        return False
