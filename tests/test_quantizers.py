"""One suite over every registered quantizer, plus the ProxConnect++ pair's options.

Forward values and tape gradients are compared with NumPy references of each
formula (float64) on a grid that includes 0, +-1 and large values.
"""

import dataclasses
import json

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from _base import (
    GRID,
    QUANTIZER_DIGITS_BAR,
    assert_matches,
    quantizer_digits_config,
    quantizer_test_model,
    run_digits_training_test,
    run_quantizer_bop_test,
    run_quantizer_layer_test,
    run_quantizer_reference_test,
    run_quantizer_saving_test,
    run_quantizer_serialization_test,
    run_quantizers_mirrored_test,
)

from bnnzoo import quantizers as Q


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


# ----------------------------------------------------------------- every registered quantizer
# The checks are `tests/_base.py`'s, so `tests/test_contributing.py` runs the same ones
# on a quantizer added the way CONTRIBUTING.md says.


@pytest.mark.parametrize("name", Q.list_quantizers())
def test_forward_and_gradient_match_numpy(name):
    run_quantizer_reference_test(name, REFERENCES)


@pytest.mark.parametrize("name", Q.list_quantizers())
def test_serialization_round_trip(name):
    run_quantizer_serialization_test(name)


@pytest.mark.parametrize("name", Q.list_quantizers())
def test_string_and_object_for_inputs_and_kernels(name):
    run_quantizer_layer_test(name)


@pytest.mark.parametrize("name", Q.list_quantizers())
def test_save_reload_identical_predictions(name, tmp_path):
    run_quantizer_saving_test(name, tmp_path)


@pytest.fixture(scope="module")
def digits_subset(digits):
    """Real digits, cut to 5 training steps and no validation split (keeps the suite fast)."""
    return dataclasses.replace(digits, x_train=digits.x_train[:320], y_train=digits.y_train[:320],
                               x_val=digits.x_val[:0], y_val=digits.y_val[:0])


@pytest.mark.parametrize("name", Q.list_quantizers())
def test_one_epoch_fit_on_digits_with_bop(name, digits_subset):
    """One epoch of the shared training routine with CaseOptimizer(Bop, Adam)."""
    run_quantizer_bop_test(name, digits_subset)


@pytest.mark.parametrize("name", Q.list_quantizers())
def test_trains_on_digits_above_the_bar(name, digits):
    run_digits_training_test(quantizer_digits_config(name), digits, QUANTIZER_DIGITS_BAR)


def test_every_quantizer_fits_under_mirrored_strategy(digits, mirrored_strategy):
    """All registered quantizers side by side in one model (one trace), 2 replicas, Bop."""
    run_quantizers_mirrored_test(Q.list_quantizers(), digits, mirrored_strategy)


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
    model = quantizer_test_model("bnnpp", "ste_warmup")
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


def test_register_quantizer_refuses_what_it_cannot_register():
    """One-line errors, raised before anything is registered (nothing half-done)."""
    with pytest.raises(ValueError, match=r"quantizer 'bnn' is already registered \(BNN\)"):
        Q.register_quantizer("bnn", Q.BNNPlus)
    with pytest.raises(ValueError, match="quantizer name must be a non-empty string, got ''"):
        Q.register_quantizer("")
    with pytest.raises(ValueError, match="register_quantizer\\('fn'\\) takes a quantizer class"):
        Q.register_quantizer("fn", lambda: None)
    # larq's alias of another class: refused rather than silently replaced
    with pytest.raises(ValueError, match="'magnitude_aware_sign' is already a Keras custom object"):
        Q.register_quantizer("magnitude_aware_sign", Q.BNN)
    assert "fn" not in Q.list_quantizers() and "magnitude_aware_sign" not in Q.list_quantizers()
    assert tf.keras.utils.get_custom_objects()["magnitude_aware_sign"] is lq.quantizers.MagnitudeAwareSign


def test_annealing_must_move_the_forwards_parameter():
    class WrongParameter(Q.NamedPair):
        _forward, _backward = "hardtanh", "ste"
        annealing = Q.GeometricAnnealing("mu", end=5.0)

    with pytest.raises(ValueError, match="annealing of WrongParameter must move the parameter 'temperature' "
                                         "of forward 'hardtanh', got GeometricAnnealing"):
        WrongParameter()
    with pytest.raises(ValueError, match="end must be a finite number > 0, got 0.0"):
        Q.GeometricAnnealing("mu", end=0.0)
    with pytest.raises(ValueError, match="rule must be one of default, compressed, got 'none'"):
        Q.BNNPlusPlus().annealing_schedule(5, rule="none")
    assert Q.BNN().annealing is None and Q.list_quantizers(annealed=True) == ["bnnpp", "proxconnect", "ste_warmup"]
