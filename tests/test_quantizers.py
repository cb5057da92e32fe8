"""One suite over every registered quantizer, plus the ProxConnect++ pair's options.

Forward values and tape gradients are compared with NumPy references of each
formula (float64) on a grid that includes 0, +-1 and large values.
"""

import dataclasses
import json
import math

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from _base import run_digits_training_test

import bnnzoo
from bnnzoo import quantizers as Q
from bnnzoo.callbacks import QuantizerAnnealing
from bnnzoo.training import TrainConfig, train

GRID = np.array(
    [-1e4, -100.0, -5.0, -2.0, -1.0, -0.7, -0.5, -0.05, -1e-3, 0.0,
     1e-3, 0.05, 0.5, 0.7, 1.0, 2.0, 5.0, 100.0, 1e4],
    dtype=np.float32,
)


# ----------------------------------------------------------------- NumPy references


def np_sign(x):
    return np.where(x >= 0, 1.0, -1.0)


def np_sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def np_sign_swish(x, mu):
    s = np_sigmoid(mu * x)
    return 2 * s * (1 + mu * x * (1 - s)) - 1


def np_sign_swish_grad(x, mu):
    # d/dx SS_mu written independently of the library's form: larq's swish_sign formula
    z = mu * x
    with np.errstate(over="ignore"):
        return mu * (2 - z * np.tanh(z / 2)) / (1 + np.cosh(z))


def np_clipped(x, c=1.0):
    return (np.abs(x) <= c).astype(np.float64)


def np_prox(x, mu):
    a = np.abs(x)
    return np_sign(x) * np.where(a < 1 - mu, a + mu, np.where(a <= 1 + mu, 1.0, a - mu))


def np_hardtanh(x, t):
    return np.clip(x / t, -1, 1)


ones = np.ones_like
# name -> (forward, backward derivative) at the quantizer's default arguments
REFERENCES = {
    "ste_sign": (np_sign, np_clipped),
    "approx_sign": (np_sign, lambda x: np.where(np.abs(x) <= 1, 2 - 2 * np.abs(x), 0.0)),
    "swish_sign": (np_sign, lambda x: np_sign_swish_grad(x, 5.0)),
    "binary_connect": (np_sign, ones),
    "bnn": (np_sign, np_clipped),
    "bnn_plus": (np_sign, lambda x: np_sign_swish_grad(x, 5.0)),
    "bnnpp": (lambda x: np_sign_swish(x, 1.0), lambda x: np_sign_swish_grad(x, 1.0)),
    "proxconnect": (lambda x: np_prox(x, 0.1), ones),
    "ste_warmup": (lambda x: np_hardtanh(x, 1.0), np_clipped),
    # tanh(x) / max|tanh| then STE over the rounding; on GRID max|tanh| = 1 at +-1e4,
    # where 1 - tanh^2 = 0, so the max's own gradient term vanishes
    "dorefa_weights": (
        lambda x: 2 * np.round(np.tanh(x) / (2 * np.abs(np.tanh(x)).max()) + 0.5) - 1,
        lambda x: (1 - np.tanh(x) ** 2) / np.abs(np.tanh(x)).max(),
    ),
}
ANNEALED = ["bnnpp", "proxconnect", "ste_warmup"]


def values_and_grads(quantizer, x, compiled=False):
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = quantizer(x)
        return y, tape.gradient(y, x)

    fn = tf.function(run) if compiled else run
    y, g = fn(tf.constant(x))
    return y.numpy().astype(np.float64), g.numpy().astype(np.float64)


def assert_matches(quantizer, forward, backward, x=GRID):
    for compiled in (False, True):
        y, g = values_and_grads(quantizer, x, compiled)
        np.testing.assert_allclose(y, forward(x.astype(np.float64)), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(g, backward(x.astype(np.float64)), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------- every registered quantizer


@pytest.mark.parametrize("name", Q.list_quantizers())
def test_forward_and_gradient_match_numpy(name):
    assert name in REFERENCES, f"no NumPy reference for registered quantizer {name!r}"
    forward, backward = REFERENCES[name]
    assert_matches(Q.get_quantizer(name), forward, backward)


@pytest.mark.parametrize("name", Q.list_quantizers())
def test_serialization_round_trip(name):
    q = Q.get_quantizer(name)
    config = q.get_config()
    clone = type(q).from_config(config)
    assert clone.get_config() == config
    again = lq.quantizers.deserialize(lq.quantizers.serialize(q))
    assert type(again) is type(q) and again.get_config() == config
    y = q(tf.constant(GRID))
    np.testing.assert_array_equal(clone(tf.constant(GRID)).numpy(), y.numpy())
    # The larq alias resolves to the same class as the bnnzoo name.
    assert type(lq.quantizers.get(name)) is type(q)
    assert q.precision == 1, "every registered quantizer is a binary one"


def _tiny_model(input_quantizer, kernel_quantizer, conv=True):
    inputs = tf.keras.Input((8, 8, 1))
    x = inputs
    if conv:
        kq = kernel_quantizer if isinstance(kernel_quantizer, str) else Q.clone_quantizer(kernel_quantizer)
        iq = input_quantizer if isinstance(input_quantizer, str) else Q.clone_quantizer(input_quantizer)
        x = lq.layers.QuantConv2D(4, 3, input_quantizer=iq, kernel_quantizer=kq,
                                  kernel_constraint="weight_clip", use_bias=False, name="conv")(x)
        x = tf.keras.layers.BatchNormalization(name="bn")(x)
    x = tf.keras.layers.Flatten()(x)
    x = lq.layers.QuantDense(10, input_quantizer=input_quantizer, kernel_quantizer=kernel_quantizer,
                             kernel_constraint="weight_clip", name="dense")(x)
    return tf.keras.Model(inputs, x)


def _set_state(model, value_scale=0.37):
    """Move every annealable quantizer away from its defaults (value and switch)."""
    qs = Q.annealable_quantizers(model)
    for i, q in enumerate(qs):
        q.set_annealed(q.annealed_value() * (1 + value_scale), exact_sign=(i % 2 == 1))
    return qs


@pytest.mark.parametrize("name", Q.list_quantizers())
def test_string_and_object_for_inputs_and_kernels(name):
    x = np.random.default_rng(0).normal(size=(5, 8, 8, 1)).astype(np.float32)
    by_string = _tiny_model(name, name)
    by_object = _tiny_model(Q.get_quantizer(name), Q.get_quantizer(name))
    by_object.set_weights(by_string.get_weights())
    for layer in ("conv", "dense"):
        for role in ("input_quantizer", "kernel_quantizer"):
            assert type(getattr(by_string.get_layer(layer), role)) is Q.quantizer_class(name)
    np.testing.assert_array_equal(by_string(x).numpy(), by_object(x).numpy())
    assert lq.optimizers.Bop.is_binary_variable(by_string.get_layer("dense").kernel)
    # Annealed state lives outside `weights`: same weight list as a plain ste_sign model.
    assert [w.shape for w in by_string.get_weights()] == [
        w.shape for w in _tiny_model("ste_sign", "ste_sign").get_weights()
    ]


@pytest.mark.parametrize("name", Q.list_quantizers())
def test_save_reload_identical_predictions(name, tmp_path):
    x = np.random.default_rng(1).normal(size=(7, 8, 8, 1)).astype(np.float32)
    model = _tiny_model(name, name)
    states = [(q.annealed_value(), q.is_exact_sign()) for q in _set_state(model)]
    expected = model(x).numpy()
    model.save(tmp_path / "m.keras")
    reloaded = tf.keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(reloaded(x).numpy(), expected)
    assert [(q.annealed_value(), q.is_exact_sign())
            for q in Q.annealable_quantizers(reloaded)] == states
    # TF checkpoints (the training routine's resume state) hold the annealed state too.
    fresh = _tiny_model(name, name)
    tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    tf.train.Checkpoint(model=fresh).read(str(tmp_path / "ckpt")).assert_consumed()
    np.testing.assert_array_equal(fresh(x).numpy(), expected)


class _InitialWeights(tf.keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = self.model.get_weights()


def _assert_bop_flipped_only_signs(model, initial, label=""):
    values = dict(zip((w.name for w in model.weights), model.get_weights()))
    before = dict(zip((w.name for w in model.weights), initial))
    kernels = [layer.kernel for layer in model.layers if isinstance(layer, lq.layers.QuantDense)]
    assert kernels and all(lq.optimizers.Bop.is_binary_variable(k) for k in kernels)
    for k in kernels:
        # Bop writes binary weights (+-1) and flips some of them.
        np.testing.assert_array_equal(np.abs(values[k.name]), 1.0, err_msg=f"{label} {k.name}")
        assert np.any(np.sign(values[k.name]) != np.sign(before[k.name])), f"{k.name}: no flip"


@pytest.fixture(scope="module")
def digits_subset(digits):
    """Real digits, cut to 5 training steps and no validation split (keeps the suite fast)."""
    return dataclasses.replace(digits, x_train=digits.x_train[:320], y_train=digits.y_train[:320],
                               x_val=digits.x_val[:0], y_val=digits.y_val[:0])


@pytest.mark.parametrize("name", Q.list_quantizers())
def test_one_epoch_fit_on_digits_with_bop(name, digits_subset):
    """One epoch of the shared training routine with CaseOptimizer(Bop, Adam)."""
    digits = digits_subset
    config = TrainConfig(model="binarynet_mlp", dataset="digits", quantizer=name, epochs=1,
                         optimizer="bop", optimizer_kwargs={"threshold": 1e-7, "gamma": 1e-2},
                         model_kwargs={"units": 32, "hidden_layers": 1})
    initial = _InitialWeights()
    result = train(config, arrays=digits, verbose=0, callbacks=[initial])
    assert math.isfinite(result.history["loss"][0])
    assert math.isfinite(result.metrics["test_loss"])
    _assert_bop_flipped_only_signs(result.model, initial.weights, name)


# Test accuracy on digits after 3 epochs of a binary MLP with one hidden layer of 64
# units, Adam 1e-2 and `quantizer=name` (inputs and kernels, as `TrainConfig` applies
# it); chance 0.10.
QUANTIZER_DIGITS_BAR = 0.6


@pytest.mark.parametrize("name", Q.list_quantizers())
def test_trains_on_digits_above_the_bar(name, digits):
    config = TrainConfig(model="binarynet_mlp", dataset="digits", quantizer=name, epochs=3, batch_size=64,
                         learning_rate=1e-2, model_kwargs={"units": 64, "hidden_layers": 1})
    run_digits_training_test(config, digits, QUANTIZER_DIGITS_BAR)


def test_every_quantizer_fits_under_mirrored_strategy(digits, mirrored_strategy):
    """All registered quantizers side by side in one model (one trace), 2 replicas, Bop."""
    names = Q.list_quantizers()
    with mirrored_strategy.scope():
        inputs = tf.keras.Input(digits.input_shape)
        x = tf.keras.layers.Flatten()(inputs)
        branches = []
        for name in names:  # input quantizer by string, kernel quantizer by object
            branches.append(lq.layers.QuantDense(
                8, input_quantizer=name, kernel_quantizer=Q.get_quantizer(name),
                kernel_constraint="weight_clip", use_bias=False, name=name)(x))
        x = tf.keras.layers.Concatenate()(branches)
        outputs = tf.keras.layers.Dense(digits.num_classes, activation="softmax")(x)
        model = tf.keras.Model(inputs, outputs)
        model.compile(bnnzoo.optimizers.get_optimizer("bop", 1e-3, threshold=1e-7, gamma=1e-2),
                      loss="sparse_categorical_crossentropy")
    initial = _InitialWeights()
    annealing = QuantizerAnnealing(lambda epoch: 2.0 + epoch, "mu", final_epoch=1)
    history = model.fit(digits.x_train[:256], digits.y_train[:256], batch_size=64, epochs=2,
                        callbacks=[initial, annealing], verbose=0)
    assert all(math.isfinite(v) for v in history.history["loss"])
    for q in Q.annealable_quantizers(model):
        if q.annealed_parameter == "mu":
            assert q.annealed_value() == 3.0 and q.is_exact_sign()
    _assert_bop_flipped_only_signs(model, initial.weights, "mirrored")


# ----------------------------------------------------------------- parameters and options


@pytest.mark.parametrize(
    "quantizer, forward, backward",
    [
        (Q.BNNPlusPlus(mu=3.7), lambda x: np_sign_swish(x, 3.7), lambda x: np_sign_swish_grad(x, 3.7)),
        (Q.BNNPlusPlus(mu=3.7, exact_sign=True), np_sign, lambda x: np_sign_swish_grad(x, 3.7)),
        (Q.SteWarmup(temperature=0.3), lambda x: np_hardtanh(x, 0.3), np_clipped),
        (Q.SteWarmup(temperature=0.3, exact_sign=True), np_sign, np_clipped),
        (Q.SteWarmup(temperature=0.3, clip_value=2.0), lambda x: np_hardtanh(x, 0.3),
         lambda x: np_clipped(x, 2.0)),
        (Q.ProxConnect(mu=0.6), lambda x: np_prox(x, 0.6), ones),
        (Q.ProxConnect(mu=2.0, exact_sign=True), np_sign, ones),
        (Q.BNNPlus(beta=2.5), np_sign, lambda x: np_sign_swish_grad(x, 2.5)),
        (Q.BNN(clip_value=0.5), np_sign, lambda x: np_clipped(x, 0.5)),
        (Q.ForwardBackwardQuantizer("hardtanh", "forward", temperature=0.5),
         lambda x: np_hardtanh(x, 0.5), lambda x: np_clipped(x, 0.5) / 0.5),
        (Q.ForwardBackwardQuantizer("sign_swish", "ste", mu=2.0),
         lambda x: np_sign_swish(x, 2.0), np_clipped),
        (Q.ForwardBackwardQuantizer("prox", "forward", mu=0.25),
         lambda x: np_prox(x, 0.25), lambda x: (np.abs(np.abs(x) - 1) > 0.25).astype(float)),
        (Q.ForwardBackwardQuantizer("identity", "identity"), lambda x: x, ones),
    ],
    ids=lambda v: v.get_config()["name"] + str(sorted(v.get_config().items()))
    if isinstance(v, Q.ForwardBackwardQuantizer) else "",
)
def test_parameters_and_general_pairs_match_numpy(quantizer, forward, backward):
    assert_matches(quantizer, forward, backward)
    clone = Q.clone_quantizer(quantizer)
    assert clone.get_config() == quantizer.get_config()


def test_annealed_state_in_config_and_exact_sign_is_sign():
    q = Q.get_quantizer("bnnpp", mu=2.0)
    q(tf.constant(GRID))
    q.set_annealed(50.0)
    assert q.get_config()["mu"] == 50.0 and q.get_config()["exact_sign"] is False
    np.testing.assert_allclose(q(tf.constant(GRID)).numpy(), np_sign_swish(GRID.astype(float), 50.0),
                               atol=1e-6)
    q.set_annealed(exact_sign=True)
    np.testing.assert_array_equal(q(tf.constant(GRID)).numpy(), np_sign(GRID))
    clone = Q.clone_quantizer(q)
    assert clone.is_exact_sign() and clone.annealed_value() == 50.0
    # An unbuilt quantizer takes the values directly.
    fresh = Q.SteWarmup()
    fresh.set_annealed(0.25, exact_sign=False)
    assert fresh.get_config()["temperature"] == 0.25


def test_identity_forward_is_not_binary_and_summary_counts_binary_kernels():
    assert Q.ForwardBackwardQuantizer("identity", "identity").precision is None
    model = _tiny_model("bnnpp", "ste_warmup")
    lq.models.summary(model)
    profile = lq.models.ModelProfile(model)
    assert profile.weight_count(bitwidth=1) == 3 * 3 * 4 + 4 * 6 * 6 * 10


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), "x"])
@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda v: Q.BNNPlus(beta=v), "beta"),
        (lambda v: Q.BNNPlusPlus(mu=v), "mu"),
        (lambda v: Q.ProxConnect(mu=v), "mu"),
        (lambda v: Q.SteWarmup(temperature=v), "temperature"),
        (lambda v: Q.BNN(clip_value=v), "clip_value"),
        (lambda v: Q.get_quantizer("bnnpp", mu=v), "mu"),
    ],
)
def test_bad_parameters_raise_naming_the_argument(make, argument, bad):
    with pytest.raises(ValueError, match=rf"{argument} must be a finite number > 0"):
        make(bad)


def test_bad_pairs_and_set_annealed():
    with pytest.raises(ValueError, match="Unknown forward 'sine'.*sign_swish"):
        Q.ForwardBackwardQuantizer("sine", "ste")
    with pytest.raises(ValueError, match="Unknown backward"):
        Q.ForwardBackwardQuantizer("sign", "nope")
    with pytest.raises(ValueError, match="needs a differentiable forward"):
        Q.ForwardBackwardQuantizer("sign", "forward")
    with pytest.raises(ValueError, match="temperature is not a parameter"):
        Q.BNNPlusPlus(temperature=0.5)
    with pytest.raises(ValueError, match="has no annealed parameter"):
        Q.BNN().set_annealed(2.0)
    q = Q.SteWarmup()
    q(tf.constant(GRID))
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        q.set_annealed(0.0)
    with pytest.raises(ValueError, match="Unknown quantizer 'bnnppp'.*bnnpp"):
        Q.get_quantizer("bnnppp")



# slow: benchmark plumbing; the benchmark itself is run by hand.
@pytest.mark.slow
def test_benchmark_quick_mode(tmp_path, load_script):
    bench = load_script("benchmarks/quantizers.py")
    assert bench.main(["--quick", "--out-dir", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "quantizers.json").read_text())
    summary = report["summary"]
    assert set(summary["test_accuracy"]) == {"ste_sign", "bnnpp"}
    ratios = report["timing"]["ratio_vs_ste_sign"]
    assert summary["max_step_time_ratio_vs_ste_sign"] == max(ratios.values()) > 0
    assert ratios["ste_sign"] == 1.0
    assert all(0 <= a <= 1 for a in summary["test_accuracy"].values())
    for key in ("command", "date", "machine", "runs", "sizing"):
        assert report[key]
    assert "| `bnnpp` |" in (tmp_path / "quantizers.md").read_text()
    assert (tmp_path / "quantizers.png").stat().st_size > 0


@pytest.mark.parametrize("name", ["bnn_plus", "bnnpp", "proxconnect", "ste_warmup"])
def test_search_space_builds_valid_quantizers(name):
    import keras_tuner as kt

    hp = kt.HyperParameters()
    kwargs = Q.quantizer_class(name).search_space(hp)
    assert kwargs and set(kwargs) <= set(Q.get_quantizer(name).get_config())
    specs = {spec.name: spec for spec in hp.space}
    for key in kwargs:  # the range's ends build too (and are > 0)
        spec = specs[key]
        for value in (spec.min_value, spec.max_value):
            assert Q.get_quantizer(name, **{**kwargs, key: value}).get_config()[key] == pytest.approx(value)
