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
