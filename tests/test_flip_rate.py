"""FlipRate: per-layer and overall sign-flip fractions logged per epoch."""

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from bnnzoo import training
from bnnzoo.optimizers.flip_rate import FlipRate, binary_kernels
from bnnzoo.training import TrainConfig


def _model():
    return tf.keras.Sequential([
        tf.keras.Input((5,)),
        lq.layers.QuantDense(8, kernel_quantizer="ste_sign", use_bias=False, name="a"),
        tf.keras.layers.Dense(4, name="real"),  # not binary: never counted
        lq.layers.QuantDense(3, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                             use_bias=False, name="b"),
    ])


def test_binary_kernels_are_found_by_precision():
    kernels = binary_kernels(_model())
    assert sorted(kernels) == ["a", "b"]
    assert kernels["a"].shape == (5, 8) and kernels["b"].shape == (4, 3)


def test_logged_rates_count_sign_changes_exactly():
    model = _model()
    cb = FlipRate()
    cb.set_model(model)
    a, b = model.get_layer("a").kernel, model.get_layer("b").kernel
    a.assign(np.ones((5, 8), np.float32))
    b.assign(-np.ones((4, 3), np.float32))
    cb.on_train_begin()
    cb.on_epoch_begin(0)
    new_a = np.ones((5, 8), np.float32)
    new_a.flat[:10] = -0.5  # 10 of 40 change sign
    new_a.flat[10] = 0.25  # same sign, different magnitude: not a flip
    a.assign(new_a)
    new_b = -np.ones((4, 3), np.float32)
    new_b.flat[:3] = 0.0  # zero counts as +1: 3 of 12 flip
    b.assign(new_b)
    logs = {}
    cb.on_epoch_end(0, logs)
    assert logs["flip_rate/a"] == pytest.approx(10 / 40)
    assert logs["flip_rate/b"] == pytest.approx(3 / 12)
    assert logs["flip_rate"] == pytest.approx(13 / 52)
    # Next epoch is measured against the end of this one: no change, no flips.
    cb.on_epoch_begin(1)
    logs = {}
    cb.on_epoch_end(1, logs)
    assert logs["flip_rate"] == 0.0


def test_step_mode_averages_per_step_flips():
    model = _model()
    cb = FlipRate(mode="step")
    cb.set_model(model)
    a = model.get_layer("a").kernel
    a.assign(np.ones((5, 8), np.float32))
    cb.on_train_begin()
    cb.on_epoch_begin(0)
    flipped = np.ones((5, 8), np.float32)
    flipped.flat[:4] = -1
    for state in (flipped, np.ones((5, 8), np.float32)):  # flip 4, then flip them back
        a.assign(state)
        cb.on_train_batch_end(0)
    logs = {}
    cb.on_epoch_end(0, logs)
    # Per step: 4/40 then 4/40 -> mean 0.1 (epoch mode would report 0: net no change).
    assert logs["flip_rate/a"] == pytest.approx(0.1)
    assert logs["flip_rate/b"] == 0.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        FlipRate(mode="batch")
    with pytest.raises(ValueError, match="prefix"):
        FlipRate(prefix="")
    assert FlipRate.from_config(FlipRate(mode="step").get_config()).mode == "step"


class _SignRecorder(tf.keras.callbacks.Callback):
    """Independent record of the kernels' signs at each epoch end."""

    def __init__(self):
        super().__init__()
        self.signs = []

    def on_train_begin(self, logs=None):
        self.signs.append(self._now())

    def on_epoch_end(self, epoch, logs=None):
        self.signs.append(self._now())

    def _now(self):
        return {v.name: v.numpy() >= 0 for v in self.model.trainable_variables
                if getattr(v, "precision", 32) == 1}


@pytest.mark.parametrize("optimizer, kwargs", [
    ("bop2ndorder", {"threshold": 1e-5, "gamma": 1e-3, "bias_correction": "adam"}),
    ("adam", {}),
])
def test_history_of_a_training_run(tmp_path, digits, optimizer, kwargs):
    config = TrainConfig(model="binarynet_mlp", dataset="digits", optimizer=optimizer, epochs=2,
                         batch_size=64, learning_rate=1e-2, model_kwargs={"units": 32},
                         optimizer_kwargs=kwargs)
    recorder = _SignRecorder()
    # `train` attaches FlipRate itself to Bop-family runs; other optimizers pass it.
    extra = [FlipRate()] if optimizer == "adam" else []
    result = training.train(config, tmp_path, arrays=digits, verbose=0,
                            callbacks=[recorder, *extra])
    layers = ["dense_0", "dense_1", "dense_2", "classifier"]
    for layer in layers:
        assert len(result.history[f"flip_rate/{layer}"]) == 2
    for epoch in range(2):
        before, after = recorder.signs[epoch], recorder.signs[epoch + 1]
        total = sum(int(np.sum(before[k] != after[k])) for k in before)
        count = sum(before[k].size for k in before)
        assert result.history["flip_rate"][epoch] == pytest.approx(total / count, rel=1e-6)
    # Training changes some binary weights, and far from all of them.
    assert 0 < result.history["flip_rate"][0] < 0.5


def test_no_flips_with_an_unreachable_threshold(digits):
    config = TrainConfig(model="binarynet_mlp", dataset="digits", optimizer="bop2ndorder", epochs=1,
                         batch_size=128, model_kwargs={"units": 16},
                         optimizer_kwargs={"threshold": 1e6, "bias_correction": "adam"})
    result = training.train(config, arrays=digits, verbose=0)
    # Bop binarizes the (latent) initial kernel on step 1 but never flips it.
    assert result.history["flip_rate"] == [0.0]


def test_blocked_fraction_against_a_hand_computation():
    from bnnzoo.optimizers.flip_rate import blocked_fraction

    w = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
    s = np.array([0.5, 0.5, 1e-9, -2.0, 2e-9, -1e-8])
    # w*s = [0.5, -0.5, 1e-9, 2.0, 2e-9, 1e-8]: would-be flips 0, 2, 3, 4, 5;
    # with tau = 1e-8 the ones at or below it (2, 4, 5) are blocked
    assert blocked_fraction(w, s, 1e-8) == (5, 3)
    assert blocked_fraction(w, s, 0.0) == (5, 0)
    assert blocked_fraction(w, s, 10.0) == (5, 5)


@pytest.mark.parametrize("name, kwargs", [
    ("bop", {"threshold": 0.05, "gamma": 0.2}),
    ("bop2ndorder", {"threshold": 0.5, "gamma": 0.2, "sigma": 0.5, "bias_correction": None}),
    ("bop2ndorder", {"threshold": 0.5, "gamma": 0.2, "sigma": 0.5, "bias_correction": "constant"}),
    ("bop2ndorder", {"threshold": 0.5, "gamma": 0.2, "sigma": 0.5, "bias_correction": "adam"}),
])
def test_threshold_blocking_matches_a_numpy_recomputation_of_each_step(name, kwargs):
    """Every step: read the kernels and the optimizer's m (and v) by hand, recompute
    s and the would-be / blocked flips in NumPy, and compare with the callback's log."""
    from bnnzoo.optimizers import ThresholdBlocking, get_optimizer

    tf.keras.utils.set_random_seed(0)
    model = _model()
    model.compile(get_optimizer(name, 1e-2, **kwargs), "mse")
    x = np.random.default_rng(0).normal(size=(64, 5)).astype("float32")
    y = np.random.default_rng(1).normal(size=(64, 3)).astype("float32")
    model.fit(x[:8], y[:8], batch_size=8, epochs=1, verbose=0)  # creates slots, binarizes
    binary = model.optimizer.optimizers[0]
    expected = np.zeros(2)

    class HandCount(tf.keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.before = {n: v.numpy().copy() for n, v in binary_kernels(model).items()}

        def on_train_batch_end(self, batch, logs=None):
            step = int(binary.iterations.numpy()) - 1
            for n, var in binary_kernels(model).items():
                m = binary.get_slot(var, "m").numpy().astype(np.float64)
                if name == "bop":
                    s, tau = m, kwargs["threshold"]
                else:
                    v = binary.get_slot(var, "v").numpy().astype(np.float64)
                    if kwargs["bias_correction"] == "constant":
                        m, v = m / kwargs["gamma"], v / kwargs["sigma"]
                    elif kwargs["bias_correction"] == "adam":
                        t = step + 1
                        m = m / (1 - (1 - kwargs["gamma"]) ** t)
                        v = v / (1 - (1 - kwargs["sigma"]) ** t)
                    s, tau = m / (np.sqrt(v) + 1e-10), kwargs["threshold"]
                product = self.before[n] * s
                expected[0] += np.sum(product > 0)
                expected[1] += np.sum((product > 0) & (product <= tau))

    callback = ThresholdBlocking(every=1)
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[HandCount(), callback])
    assert expected[0] > 0
    assert history.history["tau_blocked"][0] == pytest.approx(expected[1] / expected[0], rel=1e-6)
    assert 0 < history.history["tau_blocked"][0] < 1  # the threshold both acts and lets flips through
    assert ThresholdBlocking.from_config(callback.get_config()).every == 1
    with pytest.raises(ValueError, match="every must be an integer >= 1, got 0"):
        ThresholdBlocking(every=0)
