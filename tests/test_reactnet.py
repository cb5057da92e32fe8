"""The `reactnet` family and its layers: layout, RSign/RPReLU/ChannelScale against NumPy,
serialization, full binarization, training on digits, argument errors."""

from __future__ import annotations

import json
import time

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from _base import run_model_saving_test, run_serialization_test

import bnnzoo
from bnnzoo import pretrained, zoo
from bnnzoo.models import create_model
from bnnzoo.models.reactnet import ChannelScale, RPReLU, RSign
from bnnzoo.training import TrainConfig, train


def _expected_params(width, depth, channels=1, classes=10):
    """Parameter count of `reactnet` from its layout (see the module docstring)."""
    c = max(1, round(64 * width))
    k = (depth - 2) // 3
    total = 9 * channels * c + 4 * c  # stem conv + its batch norm (γ, β, mean, variance)
    in_c = c
    for out_c in (c, 2 * c, 4 * c):
        for _ in range(k):
            # RSign τ, 3x3 binary kernel, shift-only BN (β, mean, var), scale α, RPReLU γ/β/ζ
            total += in_c + 9 * in_c * out_c + 3 * out_c + out_c + 3 * out_c
            in_c = out_c
    return total + 4 * c * classes + classes


@pytest.mark.parametrize("width, depth, shape", [(0.25, 8, (8, 8, 1)), (0.5, 14, (8, 8, 1)),
                                                 (0.125, 11, (28, 28, 1)), (0.25, 5, (7, 5, 3))])
def test_layout_and_parameter_count(width, depth, shape):
    model = create_model("reactnet", input_shape=shape, num_classes=10, width=width, depth=depth)
    convs = [l for l in model.layers if isinstance(l, lq.layers.QuantConv2D)]
    c, k = max(1, round(64 * width)), (depth - 2) // 3
    assert [l.filters for l in convs] == [c] * k + [2 * c] * k + [4 * c] * k
    sizes = [tuple(l.output_shape[1:3]) for l in convs]
    h, w = shape[:2]
    half = (-(-h // 2), -(-w // 2))
    quarter = (-(-half[0] // 2), -(-half[1] // 2))
    assert sizes == [(h, w)] * k + [half] * k + [quarter] * k
    assert model.count_params() == _expected_params(width, depth, shape[2])
    assert sum(isinstance(l, RSign) for l in model.layers) == depth - 2
    assert sum(isinstance(l, RPReLU) for l in model.layers) == depth - 2
    assert sum(isinstance(l, ChannelScale) for l in model.layers) == depth - 2
    assert model.output_shape == (None, 10)


def test_defaults_are_the_64_128_256_depth_20_layout():
    model = create_model("reactnet")
    convs = [l for l in model.layers if isinstance(l, lq.layers.QuantConv2D)]
    assert model.input_shape == (None, 32, 32, 3) and len(convs) == 18
    assert [l.filters for l in convs] == [64] * 6 + [128] * 6 + [256] * 6
    assert model.count_params() == _expected_params(1.0, 20, 3)


def _forward_and_gradients(layer, x, upstream, variables):
    """`layer(x)` and the gradients of `sum(upstream * layer(x))` w.r.t. `x` and `variables`."""
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt)
        loss = tf.reduce_sum(upstream * y)
    return y.numpy(), [g.numpy() for g in tape.gradient(loss, [xt, *variables])]


def _ste_sign(z):
    return np.where(z >= 0, 1.0, -1.0)


@pytest.mark.parametrize("quantizer, forward, derivative", [
    ("ste_sign", _ste_sign, lambda z: (np.abs(z) <= 1).astype("float32")),
    ("approx_sign", _ste_sign, lambda z: np.maximum(2 - 2 * np.abs(z), 0)),
    (None, lambda z: z, lambda z: np.ones_like(z)),
])
def test_rsign_forward_and_gradient_match_numpy(quantizer, forward, derivative):
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1.2, size=(4, 3, 3, 5)).astype("float32")
    tau = rng.normal(0, 0.5, size=5).astype("float32")
    upstream = rng.normal(size=x.shape).astype("float32")
    layer = RSign(quantizer)
    layer.build(x.shape)
    layer.threshold.assign(tau)
    y, (dx, dtau) = _forward_and_gradients(layer, x, upstream, [layer.threshold])
    z = x - tau
    np.testing.assert_allclose(y, forward(z), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dx, upstream * derivative(z), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dtau, -(upstream * derivative(z)).sum(axis=(0, 1, 2)),
                               rtol=1e-4, atol=1e-4)


def test_rprelu_forward_and_gradient_match_numpy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 2, 4)).astype("float32")
    gamma, beta, zeta = (rng.normal(0, 0.5, 4).astype("float32") for _ in range(3))
    upstream = rng.normal(size=x.shape).astype("float32")
    layer = RPReLU()
    layer.build(x.shape)
    np.testing.assert_allclose(layer.slope.numpy(), 0.25)  # ReActNet's / PyTorch's PReLU init
    layer.shift_in.assign(gamma)
    layer.slope.assign(beta)
    layer.shift_out.assign(zeta)
    y, (dx, dgamma, dbeta, dzeta) = _forward_and_gradients(
        layer, x, upstream, [layer.shift_in, layer.slope, layer.shift_out])
    z = x - gamma
    slope = np.where(z > 0, 1.0, beta)
    np.testing.assert_allclose(y, np.where(z > 0, z, beta * z) + zeta, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx, upstream * slope, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dgamma, -(upstream * slope).sum(axis=(0, 1)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dbeta, (upstream * np.minimum(z, 0)).sum(axis=(0, 1)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dzeta, upstream.sum(axis=(0, 1)), rtol=1e-4, atol=1e-5)


def test_channel_scale_forward_and_gradient_match_numpy():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 2, 2, 6)).astype("float32")
    alpha = rng.uniform(0.1, 2.0, 6).astype("float32")
    upstream = rng.normal(size=x.shape).astype("float32")
    layer = ChannelScale()
    layer.build(x.shape)
    layer.scale.assign(alpha)
    y, (dx, dalpha) = _forward_and_gradients(layer, x, upstream, [layer.scale])
    np.testing.assert_allclose(y, x * alpha, rtol=1e-6)
    np.testing.assert_allclose(dx, upstream * alpha, rtol=1e-5)
    np.testing.assert_allclose(dalpha, (upstream * x).sum(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layer", [
    RSign("approx_sign", threshold_initializer="random_normal"),
    RSign(None),
    RSign(lq.quantizers.SteSign(clip_value=1.3)),
    RPReLU(slope_initializer="ones", shift_out_initializer="random_uniform"),
    ChannelScale(scale_initializer=tf.keras.initializers.Constant(0.3)),
])
def test_layer_config_round_trip(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    x = np.random.default_rng(3).normal(size=(2, 4)).astype("float32")
    layer.build(x.shape)
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(x).numpy(), layer(x).numpy())


def _randomize(model, seed=4):
    """Non-trivial thresholds, shifts, scales and batch-norm statistics."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        if any(key in weight.name for key in ("threshold", "shift", "moving_mean", "beta")):
            weight.assign(rng.normal(0, 0.3, weight.shape).astype("float32"))
        elif any(key in weight.name for key in ("scale", "slope", "moving_variance")):
            weight.assign(rng.uniform(0.2, 2.0, weight.shape).astype("float32"))
    return model


def test_get_config_round_trip_and_keras_save_reload(tmp_path):
    model = _randomize(create_model("reactnet", input_shape=(8, 8, 1), width=0.125, depth=8,
                                    input_quantizer="approx_sign", scale_init=0.5))
    run_serialization_test(model)
    loaded = run_model_saving_test(model, tmp_path)
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    for a, b in zip(loaded.weights, model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("input_quantizer, kernel_quantizer", [
    ("ste_sign", "ste_sign"), ("approx_sign", "bnnpp"), ("ste_warmup", "proxconnect"),
])
def test_fully_binary_but_first_and_last_layer(input_quantizer, kernel_quantizer):
    model = create_model("reactnet", input_shape=(8, 8, 1), width=0.125, depth=8,
                         input_quantizer=input_quantizer, kernel_quantizer=kernel_quantizer)
    weighted = [l for l in model.layers if hasattr(l, "kernel")]
    first, *binary, last = weighted
    assert type(first) is tf.keras.layers.Conv2D and first.name == "stem_conv"
    assert type(last) is tf.keras.layers.Dense and last.name == "classifier"
    assert len(binary) == 6
    for layer in binary:
        assert isinstance(layer, lq.layers.QuantConv2D), layer.name
        assert layer.input_quantizer.precision == 1 and layer.kernel_quantizer.precision == 1, layer.name
    profile = lq.models.ModelProfile(model)
    binary_weights = profile.weight_count(bitwidth=1)
    assert binary_weights == sum(int(np.prod(l.kernel.shape)) for l in binary)
    assert binary_weights > 0.9 * model.count_params()


SMALL_RECIPE = """
description = "reactnet test run"
model = "reactnet"
dataset = "digits"
epochs = 12
learning_rate = 0.003
model_kwargs = { width = 0.125, depth = 8 }

[artifact]
tag = "digits-test"
lce_export = true
"""


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A 12-epoch run of width 1/8, depth 8 (~24 k parameters) on digits, and its CPU seconds."""
    folder = tmp_path_factory.mktemp("reactnet")
    recipe = folder / "reactnet-digits-test.toml"
    recipe.write_text(SMALL_RECIPE)
    start = time.process_time()
    result = train(TrainConfig.from_file(recipe), folder / "run", verbose=0)
    return recipe, result, time.process_time() - start


def test_trains_on_digits_in_seconds(digits_run):
    """Well above chance (10 %) after 12 epochs, in well under a minute of CPU time
    (CPU, not wall-clock, time: a shared machine would make a wall-clock bound flaky)."""
    _, result, cpu_seconds = digits_run
    assert result.metrics["test_accuracy"] >= 0.80, result.metrics
    assert cpu_seconds < 60, cpu_seconds


@pytest.mark.lce
def test_published_card_carries_curves_and_lce_export(digits_run, tmp_path):
    recipe, result, _ = digits_run
    card = zoo.publish_from_recipe(recipe, result.run_dir, destination=tmp_path)
    folder = tmp_path / "reactnet" / "digits-test"
    assert card.history_file == "history.json" and card.curves_file == "curves.png"
    history = json.loads((folder / card.history_file).read_text())
    assert len(history["val_accuracy"]) == 12 and (folder / card.curves_file).stat().st_size > 0
    lce = card.lce_export
    assert lce["top1_agreement"] == 1.0 and lce["test_images"] == card.test_size == 359, lce
    assert lce["ops"]["LceBconv2d"] == 6 and 0 < lce["file_bytes"] < 4 * card.params
    assert pretrained.Card.from_dict(json.loads((folder / "card.json").read_text())) == card


@pytest.mark.parametrize("kwargs, message", [
    ({"width": 0}, "width must be a finite number > 0, got 0"),
    ({"width": -0.5}, "width must be a finite number > 0, got -0.5"),
    ({"scale_init": 0.0}, "scale_init must be a finite number > 0, got 0.0"),
    ({"depth": 10}, "depth must be 3k + 2 in [5, 302] (5, 8, 11, 14, 17, 20, ...), got 10"),
    ({"depth": 2}, "depth must be 3k + 2 in [5, 302] (5, 8, 11, 14, 17, 20, ...), got 2"),
    ({"depth": 14.0}, "depth must be 3k + 2 in [5, 302] (5, 8, 11, 14, 17, 20, ...), got 14.0"),
    ({"depth": 305}, "depth must be 3k + 2 in [5, 302] (5, 8, 11, 14, 17, 20, ...), got 305"),
])
def test_bad_options_raise_one_line_errors(kwargs, message):
    with pytest.raises(ValueError) as err:
        create_model("reactnet", input_shape=(8, 8, 1), **kwargs)
    assert str(err.value) == message


def test_tiny_inputs_are_refused():
    with pytest.raises(ValueError) as err:
        bnnzoo.models.reactnet.reactnet((3, 8, 1), 10)
    assert str(err.value) == ("input_shape must be (height, width, channels) with height and width >= 4, "
                              "got (3, 8, 1)")
    with pytest.raises(ValueError, match=r"^reactnet needs inputs of at least 4x4 pixels, got 2x2") as err:
        create_model("reactnet", input_shape=(2, 2, 1))
    assert "\n" not in str(err.value)
