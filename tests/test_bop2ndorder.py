"""Bop2ndOrder: update equations vs NumPy, larq Bop equivalence, schedules, state, strategies."""

import json

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from _base import run_resume_test
from bnnzoo import cli, training
from bnnzoo.optimizers import Bop2ndOrder, get_optimizer, list_optimizers, optimizer_spec
from bnnzoo.training import TrainConfig

SCHEDULES = tf.keras.optimizers.schedules
VARIANTS = [None, "adam", "constant"]


# ----------------------------------------------------------------- NumPy reference


def reference_steps(w0, grads, threshold, gamma, sigma, epsilon, bias_correction):
    """NumPy Bop2ndOrder, written from the paper's equations (float64).

    `threshold`, `gamma`, `sigma` are callables of the 0-based step. Returns the
    weights, m and v after every step, and the margin min |w s - tau| (how far each
    flip decision was from the threshold).
    """
    w = np.asarray(w0, np.float64)
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    m_norm = v_norm = 0.0
    out, margin = [], np.inf
    for t, g in enumerate(grads):
        tau, gam, sig = threshold(t), gamma(t), sigma(t)
        m = m + gam * (g - m)
        v = v + sig * (g * g - v)
        if bias_correction == "adam":
            m_norm = m_norm + gam * (1 - m_norm)  # = 1 - prod(1 - gamma_i)
            v_norm = v_norm + sig * (1 - v_norm)
            m_hat, v_hat = m / m_norm, v / v_norm
        elif bias_correction == "constant":
            m_hat, v_hat = m / gam, v / sig
        else:
            m_hat, v_hat = m, v
        s = m_hat / (np.sqrt(v_hat) + epsilon)
        margin = min(margin, float(np.min(np.abs(w * s - tau))))
        sign = np.where(w >= 0, 1.0, -1.0)
        w = np.where(w * s > tau, -sign, sign)
        out.append((w.copy(), m.copy(), v.copy()))
    return out, margin


def binary_variable(values):
    var = tf.Variable(np.asarray(values, np.float32))
    var.precision = 1  # what larq's QuantizedVariable reports for a 1-bit kernel
    return var


def run_optimizer(optimizer, var, grads, step=None):
    """Apply `grads` one at a time; return (w, m, v) after every step."""
    step = step or (lambda g: optimizer.apply_gradients([(tf.constant(g, tf.float32), var)]))
    out = []
    for g in grads:
        step(g)
        out.append(tuple(x.numpy() for x in (var, optimizer.get_slot(var, "m"),
                                              optimizer.get_slot(var, "v"))))
    return out


def biased_gradients(rng, shape, steps):
    """Gradients with a persistent per-weight drift plus noise, so some weights flip."""
    drift = rng.normal(size=shape)
    return [(drift + 0.7 * rng.normal(size=shape)).astype(np.float32) for _ in range(steps)]


def const(x):
    return lambda t: x


@pytest.mark.parametrize("bias_correction", VARIANTS)
def test_steps_match_numpy_reference(bias_correction):
    rng = np.random.default_rng(1)
    shape, steps = (6, 50), 8
    w0 = rng.choice([-1.0, 1.0], size=shape)
    grads = biased_gradients(rng, shape, steps)
    hp = dict(threshold=0.05, gamma=0.2, sigma=0.1, epsilon=1e-3)
    if bias_correction == "constant":
        hp["threshold"] = 0.3
    if bias_correction is None:
        hp["threshold"] = 0.03
    opt = Bop2ndOrder(bias_correction=bias_correction, **hp)
    var = binary_variable(w0)
    got = run_optimizer(opt, var, grads)
    ref, margin = reference_steps(w0, grads, const(hp["threshold"]), const(hp["gamma"]),
                                  const(hp["sigma"]), hp["epsilon"], bias_correction)
    assert margin > 1e-4, "a flip decision too close to the threshold for a float32 test"
    flips = 0
    for (w, m, v), (w_ref, m_ref, v_ref) in zip(got, ref):
        np.testing.assert_allclose(m, m_ref, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(v, v_ref, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(w, w_ref.astype(np.float32))
    flips = sum(int(np.sum(a[0] != b[0])) for a, b in zip(got[1:], got[:-1]))
    flips += int(np.sum(got[0][0] != w0))
    # The run exercises both outcomes of the flip condition.
    assert 0 < flips < steps * w0.size
    assert int(opt.iterations.numpy()) == steps


def test_sign_conventions_and_binarization():
    """Uphill gradient on a positive weight flips it; on a negative weight it does not."""
    opt = Bop2ndOrder(threshold=0.5, gamma=1.0, sigma=1.0, epsilon=1e-8)
    # w:        +1   -1   +1    -1    +0.3 (latent, non-binary)  0
    w0 = [1.0, -1.0, 1.0, -1.0, 0.3, 0.0]
    g = [2.0, 2.0, -2.0, -2.0, 2.0, 2.0]
    var = binary_variable(w0)
    opt.apply_gradients([(tf.constant(g), var)])
    # s = g / (|g| + eps) = sign(g); flip iff w * s > 0.5.
    np.testing.assert_array_equal(var.numpy(), [-1.0, -1.0, 1.0, 1.0, 1.0, 1.0])


def test_adam_correction_equals_adam_factor_for_constant_rates():
    gamma, sigma, steps = 1e-3, 1e-2, 20
    opt = Bop2ndOrder(threshold=1e9, gamma=gamma, sigma=sigma, bias_correction="adam")
    var = binary_variable(np.ones(3))
    for _ in range(steps):
        opt.apply_gradients([(tf.ones(3), var)])
    np.testing.assert_allclose(opt.get_slot(var, "m_norm").numpy(), 1 - (1 - gamma) ** steps, rtol=1e-5)
    np.testing.assert_allclose(opt.get_slot(var, "v_norm").numpy(), 1 - (1 - sigma) ** steps, rtol=1e-5)
    # With a constant gradient the corrected moments are exactly that gradient.
    m_hat = opt.get_slot(var, "m").numpy() / opt.get_slot(var, "m_norm").numpy()
    np.testing.assert_allclose(m_hat, 1.0, rtol=1e-5)


# ----------------------------------------------------------------- larq Bop equivalence


def _bop_pair(bop_kwargs, b2o_kwargs, w0):
    bop, b2o = lq.optimizers.Bop(**bop_kwargs), Bop2ndOrder(**b2o_kwargs)
    return bop, b2o, binary_variable(w0), binary_variable(w0)


@pytest.mark.parametrize("bias_correction", VARIANTS)
def test_zero_threshold_reproduces_bop_flips(bias_correction):
    """tau = 0: every variant makes exactly larq Bop's (tau = 0) flips, for any sigma, eps.

    With tau = 0 the flip condition w * s_t > 0 only depends on the sign of s_t, and
    s_t = c_t * m_t with c_t > 0 in every variant (1/(sqrt(v_t)+eps), times the
    positive bias-correction factors), so sign(s_t) = sign(m_t); m_t obeys the same
    recursion as Bop's momentum. The weights start latent (non-binary), as in a real
    model, and both optimizers binarize them on the first step.
    """
    rng = np.random.default_rng(2)
    w0 = rng.uniform(-1, 1, size=(5, 40))
    grads = [rng.normal(size=w0.shape).astype(np.float32) + 0.3 for _ in range(10)]
    bop, b2o, v_bop, v_b2o = _bop_pair(
        dict(threshold=0.0, gamma=0.1),
        dict(threshold=0.0, gamma=0.1, sigma=0.37, epsilon=1e-3, bias_correction=bias_correction),
        w0,
    )
    changed = 0
    prev = np.sign(w0)
    for g in grads:
        bop.apply_gradients([(tf.constant(g), v_bop)])
        b2o.apply_gradients([(tf.constant(g), v_b2o)])
        np.testing.assert_array_equal(v_b2o.numpy(), v_bop.numpy())
        np.testing.assert_array_equal(b2o.get_slot(v_b2o, "m").numpy(), bop.get_slot(v_bop, "m").numpy())
        changed += int(np.sum(v_bop.numpy() != prev))
        prev = v_bop.numpy()
    assert changed > 0


def test_unit_gradients_sigma_one_reproduces_bop_at_any_threshold():
    """sigma = 1 with unit-magnitude gradients: biased Bop2ndOrder is Bop, any tau.

    sigma = 1 makes v_t = g_t^2 (no memory), so sqrt(v_t) = |g_t| = 1 and
    s_t = m_t / (1 + eps). With eps < 2^-24, 1 + eps rounds to 1 in float32, so
    s_t == m_t bit for bit and the threshold test w * s_t > tau is Bop's w * m_t > tau.
    (For other gradient magnitudes s_t is not a fixed multiple of m_t and the flips
    differ, which is the point of the second moment.)
    """
    rng = np.random.default_rng(3)
    w0 = rng.choice([-1.0, 1.0], size=(8, 32))
    drift = rng.normal(size=w0.shape)
    grads = [np.sign(drift + rng.normal(size=w0.shape)).astype(np.float32) for _ in range(25)]
    tau = 0.15
    bop, b2o, v_bop, v_b2o = _bop_pair(
        dict(threshold=tau, gamma=0.05),
        dict(threshold=tau, gamma=0.05, sigma=1.0, epsilon=1e-10, bias_correction=None),
        w0,
    )
    flips = 0
    for g in grads:
        before = v_bop.numpy()
        bop.apply_gradients([(tf.constant(g), v_bop)])
        b2o.apply_gradients([(tf.constant(g), v_b2o)])
        np.testing.assert_array_equal(v_b2o.numpy(), v_bop.numpy())
        flips += int(np.sum(before != v_bop.numpy()))
    assert flips > 0


# ----------------------------------------------------------------- schedules


def test_schedules_match_reference_per_step():
    """Linear (polynomial power 1) decay of tau and gamma, increasing sigma, step decay."""
    steps = 8
    tau_s = SCHEDULES.PolynomialDecay(0.2, steps, end_learning_rate=0.02, power=1.0)
    gamma_s = SCHEDULES.ExponentialDecay(0.5, 3, decay_rate=0.1, staircase=True)  # x0.1 every 3 steps
    sigma_s = SCHEDULES.PolynomialDecay(0.01, steps, end_learning_rate=0.5, power=1.0)  # increasing
    rng = np.random.default_rng(4)
    w0 = rng.choice([-1.0, 1.0], size=(4, 30))
    grads = biased_gradients(rng, w0.shape, steps)
    for bias_correction in VARIANTS:
        opt = Bop2ndOrder(threshold=tau_s, gamma=gamma_s, sigma=sigma_s, epsilon=1e-3,
                          bias_correction=bias_correction)
        var = binary_variable(w0)
        got = run_optimizer(opt, var, grads)
        ref, margin = reference_steps(
            w0, grads, lambda t: 0.2 - (0.2 - 0.02) * t / steps, lambda t: 0.5 * 0.1 ** (t // 3),
            lambda t: 0.01 + (0.5 - 0.01) * t / steps, 1e-3, bias_correction,
        )
        assert margin > 1e-4
        for (w, m, v), (w_ref, m_ref, v_ref) in zip(got, ref):
            np.testing.assert_allclose(m, m_ref, rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(v, v_ref, rtol=1e-5, atol=1e-7)
            np.testing.assert_array_equal(w, w_ref)


def test_paper_schedules_are_expressible():
    """The paper's CIFAR recipe (linear tau, gamma, sigma) and x0.1 every 100 epochs."""
    steps_per_epoch, epochs = 1000, 500
    total = steps_per_epoch * epochs
    opt = Bop2ndOrder(
        threshold=SCHEDULES.PolynomialDecay(1e-5, total, end_learning_rate=1e-8, power=1.0),
        gamma=SCHEDULES.PolynomialDecay(1e-2, total, end_learning_rate=1e-5, power=1.0),
        sigma=SCHEDULES.PolynomialDecay(1e-7, total, end_learning_rate=1e-2, power=1.0),
    )
    tau = opt._get_hyper("threshold")
    assert float(tau(0)) == pytest.approx(1e-5) and float(tau(total)) == pytest.approx(1e-8)
    assert float(opt._get_hyper("sigma")(total // 2)) == pytest.approx((1e-7 + 1e-2) / 2, rel=1e-4)
    step = SCHEDULES.ExponentialDecay(1e-4, 100 * steps_per_epoch, decay_rate=0.1, staircase=True)
    gamma = Bop2ndOrder(gamma=step)._get_hyper("gamma")
    for epoch, value in [(0, 1e-4), (99, 1e-4), (100, 1e-5), (250, 1e-6)]:
        assert float(gamma(epoch * steps_per_epoch)) == pytest.approx(value, rel=1e-5)


# ----------------------------------------------------------------- validation


@pytest.mark.parametrize("kwargs, arg", [
    (dict(threshold=-1e-3), "threshold"),
    (dict(gamma=0.0), "gamma"),
    (dict(gamma=1.5), "gamma"),
    (dict(sigma=0.0), "sigma"),
    (dict(sigma=-0.1), "sigma"),
    (dict(sigma=2.0), "sigma"),
    (dict(epsilon=0.0), "epsilon"),
    (dict(epsilon=-1e-8), "epsilon"),
    (dict(gamma=float("nan")), "gamma"),
    (dict(threshold="big"), "threshold"),
    (dict(bias_correction="unbiased"), "bias_correction"),
])
def test_bad_hyperparameters_raise(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        Bop2ndOrder(**kwargs)
    with pytest.raises(ValueError, match=arg):
        get_optimizer("bop2ndorder", 1e-3, **kwargs)


def test_limits_are_accepted():
    opt = Bop2ndOrder(threshold=0, gamma=1, sigma=1, epsilon=1e-12, bias_correction="none")
    assert opt.bias_correction is None


def test_model_without_binary_variables_is_an_error(digits):
    config = TrainConfig(model="binarynet_mlp", dataset="digits", optimizer="bop2ndorder",
                         quantizer="none", epochs=1, model_kwargs={"units": 16})
    with pytest.raises(ValueError, match="binary variables only"):
        training.train(config, arrays=digits, verbose=0)
    # Plain Keras: larq's CaseOptimizer refuses an optimizer that claims nothing.
    model = tf.keras.Sequential([tf.keras.layers.Dense(3, input_shape=(4,))])
    model.compile(get_optimizer("bop2ndorder", 1e-3), "mse")
    with pytest.raises(ValueError, match="did not claim any variables"):
        model.fit(np.ones((4, 4)), np.ones((4, 3)), verbose=0)


def test_standalone_use_on_real_valued_variable_warns():
    var = tf.Variable([0.5, -0.2])
    with pytest.warns(UserWarning, match="not a binary variable"):
        Bop2ndOrder().apply_gradients([(tf.constant([1.0, 1.0]), var)])


# ----------------------------------------------------------------- serialization, state


def test_config_round_trip_with_floats_and_schedules():
    for opt in (
        Bop2ndOrder(threshold=1e-5, gamma=2e-3, sigma=3e-2, epsilon=1e-9, bias_correction="constant"),
        Bop2ndOrder(threshold=SCHEDULES.PolynomialDecay(1e-5, 100, 1e-8),
                    gamma=SCHEDULES.ExponentialDecay(1e-2, 10, 0.1, staircase=True),
                    bias_correction="adam"),
    ):
        config = opt.get_config()
        json.dumps(config)
        clone = Bop2ndOrder.from_config(config)
        assert clone.get_config() == config
        restored = tf.keras.optimizers.deserialize(tf.keras.optimizers.serialize(opt))
        assert isinstance(restored, Bop2ndOrder) and restored.get_config() == config
    case = get_optimizer("bop2ndorder", 1e-3, threshold=1e-5, bias_correction="adam")
    case_clone = lq.optimizers.CaseOptimizer.from_config(case.get_config())
    assert case_clone.optimizers[0].get_config() == case.optimizers[0].get_config()
    assert isinstance(case_clone.optimizers[1], tf.keras.optimizers.legacy.Adam)


def _tiny_model():
    return tf.keras.Sequential([
        lq.layers.QuantDense(12, kernel_quantizer="ste_sign", use_bias=False, input_shape=(6,)),
        tf.keras.layers.BatchNormalization(),
        lq.layers.QuantDense(3, input_quantizer="ste_sign", kernel_quantizer="ste_sign"),
        tf.keras.layers.Activation("softmax"),
    ])


def test_save_and_reload_restores_optimizer_state(tmp_path):
    """A TF checkpoint of the model (what `train` and `BackupAndRestore` use) carries
    m, v, the correction slots and the step; continuing from it equals not stopping."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    y = rng.integers(0, 3, 64)

    def make():
        tf.keras.utils.set_random_seed(0)
        model = _tiny_model()
        model.compile(get_optimizer("bop2ndorder", 1e-2, threshold=1e-3, gamma=0.05,
                                    bias_correction="adam"), "sparse_categorical_crossentropy")
        return model

    a = make()
    a.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    a.save_weights(str(tmp_path / "ckpt"))
    b = make()
    b.load_weights(str(tmp_path / "ckpt"))
    for model in (a, b):
        model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    sub_a, sub_b = a.optimizer.optimizers[0], b.optimizer.optimizers[0]
    assert int(sub_b.iterations.numpy()) == 12
    slots = {w.name: w.numpy() for w in sub_a.weights}
    assert any("m_norm" in name for name in slots) and any("/v:" in name for name in slots)
    for wa, wb in zip(sub_a.weights, sub_b.weights):
        np.testing.assert_array_equal(wa.numpy(), wb.numpy())
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def _digits_config(**kw):
    base = dict(model="binarynet_mlp", dataset="digits", optimizer="bop2ndorder", epochs=2,
                batch_size=64, learning_rate=1e-2, model_kwargs={"units": 64},
                optimizer_kwargs={})  # the builder's defaults
    base.update(kw)
    return TrainConfig(**base)


def test_resume_restores_the_second_moment(tmp_path, digits):
    """The shared resume check (tests/_base.py) on Bop2ndOrder's own state: m and v."""
    straight = run_resume_test(_digits_config(), tmp_path, digits)
    assert any("m_norm" in w.name for w in straight.model.optimizer.weights)


# ----------------------------------------------------------------- graph mode, distribution


def _fixed_step_run(strategy, grads_fn_inputs, steps=4):
    x, y = grads_fn_inputs
    with strategy.scope():
        tf.keras.utils.set_random_seed(7)
        model = _tiny_model()
        optimizer = get_optimizer("bop2ndorder", 1e-2, threshold=1e-3, gamma=0.1, sigma=0.1,
                                  bias_correction="adam")
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(reduction="none")

    @tf.function
    def step():
        def replica_fn(x, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(loss_fn(y, model(x, training=True)))
                loss = loss / strategy.num_replicas_in_sync
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))

        strategy.run(replica_fn, args=(x, y))

    for _ in range(steps):
        step()
    return model, optimizer


def test_mirrored_strategy_in_tf_function_matches_single_device(mirrored_strategy):
    """Every replica sees the same batch, so the summed replica gradients equal the
    single-device gradient exactly and the flips must agree bit for bit."""
    rng = np.random.default_rng(6)
    inputs = (tf.constant(rng.normal(size=(32, 6)), tf.float32), tf.constant(rng.integers(0, 3, 32)))
    single, single_opt = _fixed_step_run(tf.distribute.get_strategy(), inputs)
    mirrored, mirrored_opt = _fixed_step_run(mirrored_strategy, inputs)
    kernel = single.layers[0].kernel.numpy()
    assert set(np.unique(kernel)) <= {-1.0, 1.0}  # binarized by the optimizer
    for w1, w2 in zip(single.get_weights(), mirrored.get_weights()):
        np.testing.assert_allclose(w1, w2, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(single.layers[0].kernel.numpy(), mirrored.layers[0].kernel.numpy())
    assert int(mirrored_opt.optimizers[0].iterations.numpy()) == 4
    # Slots of a mirrored variable hold the same value on both replicas.
    slot = mirrored_opt.optimizers[0].get_slot(mirrored.layers[0].kernel, "m")
    values = [v.numpy() for v in slot.values]
    assert len(values) == 2
    np.testing.assert_array_equal(values[0], values[1])


def test_trains_digits_under_mirrored_strategy(digits, mirrored_strategy):
    config = _digits_config(epochs=4, batch_size=32, strategy="mirrored", optimizer_kwargs={
        "threshold": 1e-5, "gamma": 1e-3, "bias_correction": "adam"})
    result = training.train(config, arrays=digits, verbose=0, strategy=mirrored_strategy)
    assert result.metrics["test_accuracy"] >= 0.85  # chance: 0.10


# ----------------------------------------------------------------- registry, CLI, tuner


def test_registered_and_cli_flags_reach_the_optimizer(tmp_path):
    assert "bop2ndorder" in list_optimizers()
    out = tmp_path / "run"
    rc = cli.main(["train", "--optimizer", "bop2ndorder", "--threshold", "2e-5", "--gamma", "3e-3",
                   "--sigma", "4e-2", "--epsilon", "1e-9", "--bias-correction", "constant",
                   "--epochs", "1", "--model-arg", "units=16", "--out", str(out)])
    assert rc == 0
    config = json.loads((out / "config.json").read_text())
    assert config["optimizer_kwargs"] == {"threshold": 2e-5, "gamma": 3e-3, "sigma": 4e-2,
                                          "epsilon": 1e-9, "bias_correction": "constant"}
    assert json.loads((out / "metrics.json").read_text())["test_accuracy"] > 0.1


def test_search_space_yields_builder_kwargs():
    import keras_tuner as kt

    hp = kt.HyperParameters()
    spec = optimizer_spec("bop2ndorder")
    kwargs = spec.search_space(hp)
    assert set(kwargs) == {"threshold", "gamma", "sigma", "bias_correction"}
    assert hp.get("gamma") == kwargs["gamma"]
    for name in ("threshold", "gamma", "sigma"):
        assert hp._hps[name][0].sampling == "log"
    case = spec.build(1e-3, **kwargs)
    assert isinstance(case.optimizers[0], Bop2ndOrder)


# ----------------------------------------------------------------- benchmark script


@pytest.fixture
def bench(load_script):
    return load_script("benchmarks/optimizers.py")


def test_benchmark_summary_arithmetic(bench):
    assert bench.first_epoch_reaching([0.5, 0.7, 0.69, 0.8], 0.7) == 2
    assert bench.first_epoch_reaching([0.5, 0.6], 0.7) is None
    curves = {"adam_ste": [0.1, 0.2, 0.3], "bop": [0.5, 0.7, 0.7],
              "bop2ndorder_biased": [0.6, 0.71, 0.72], "bop2ndorder_bias_corrected": [0.4, 0.5, 0.6]}
    runs = [{"optimizer": k, "seed": s, "test_accuracy": [a + 0.01 * s for a in v],
             "final_test_accuracy": v[-1] + 0.01 * s} for k, v in curves.items() for s in (0, 1, 2)]
    out = bench.summarize(runs, list(curves), [0, 1, 2])
    # Bop reaches its final 0.7 at epoch 2, biased at epoch 2 (ratio 1), corrected never.
    assert out["epochs_to_bop_final_ratio"] == {"bop2ndorder_biased": 1.0, "bop2ndorder_bias_corrected": None}
    assert out["final_test_accuracy"]["bop"] == pytest.approx(0.71)
    assert out["final_test_accuracy_spread"]["adam_ste"]["max"] == pytest.approx(0.32)


# slow: benchmark plumbing; the benchmark itself is run by hand.
@pytest.mark.slow
def test_benchmark_quick_mode_writes_report(tmp_path, bench):
    bench.main(["--quick", "--out-dir", str(tmp_path)])
    report = json.loads((tmp_path / "optimizers.json").read_text())
    summary = report["summary"]
    assert summary["step_time_ratio_bop2ndorder_vs_bop"] > 0
    assert set(summary["final_test_accuracy"]) == set(bench.OPTIMIZERS)
    assert set(summary["epochs_to_bop_final_ratio"]) == set(bench.BOP2_LABELS)
    for key in ("command", "date", "machine", "runs", "settings"):
        assert report[key], key
    assert len(report["runs"]) == len(bench.OPTIMIZERS)
    assert "step_time_ratio_bop2ndorder_vs_bop" in (tmp_path / "optimizers.md").read_text()
    assert (tmp_path / "optimizers.png").stat().st_size > 1000
