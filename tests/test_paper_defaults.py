"""The paper-recipe defaults: annealing rules, the warm-up on weights and activations, learning-rate and
Bop schedules, gradient clipping, float-start initialization, hyper-layer init."""

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import bnnzoo
from bnnzoo import quantizers as Q
from bnnzoo.callbacks import MU_MAX, default_annealing, default_schedule
from bnnzoo.cli import build_parser, config_from_args
from bnnzoo.optimizers import PAPER_SCHEDULES, paper_schedule
from bnnzoo.training import (
    TrainConfig,
    build_model,
    build_optimizer,
    learning_rate_schedule,
    load_initial_weights,
    train,
)

SMALL = {"units": 8}


def _callback(quantizer, epochs, annealing="default", **kwargs):
    config = TrainConfig(quantizer=quantizer, epochs=epochs, annealing=annealing,
                         model_kwargs=SMALL, **kwargs)
    return default_annealing(build_model(config, (8, 8, 1), 10), config, 10)


@pytest.mark.parametrize("epochs", [2, 5, 50])
def test_bnnpp_default_rule_is_bounded_and_ends_in_exact_sign(epochs):
    (callback,) = _callback("bnnpp", epochs)
    values = [callback.value_at(e) for e in range(epochs)]
    assert values[0] == pytest.approx(1.0)
    assert values[-1] == pytest.approx(MU_MAX["sign_swish"]) == pytest.approx(5.0)
    assert all(b >= a for a, b in zip(values, values[1:]))  # monotone up
    ratios = [b / a for a, b in zip(values, values[1:])]
    assert ratios == pytest.approx([ratios[0]] * len(ratios))  # geometric
    # exact sign in the last fifth of the epochs (the default exact_sign_fraction), at least the last one
    assert callback.final_epoch == {2: 1, 5: 4, 50: 40}[epochs]


def test_bnnpp_start_above_the_cap_is_not_lowered():
    q = Q.get_quantizer("bnnpp", mu=8.0)
    schedule = default_schedule(q, 10)
    assert [schedule(0), schedule(9)] == pytest.approx([8.0, 8.0])


def test_compressed_rule_keeps_the_old_short_run_schedules():
    (callback,) = _callback("bnnpp", 5, "compressed")
    assert [callback.value_at(e) for e in (0, 4)] == pytest.approx([1.0, 100.0])
    (callback,) = _callback("ste_warmup", 3, "compressed")
    assert callback.value_at(2) == pytest.approx(0.01)  # T decays to 1% of T0


@pytest.mark.parametrize("epochs", [3, 200])
def test_ste_warmup_default_rule_is_the_papers_095_per_epoch(epochs):
    (callback,) = _callback("ste_warmup", epochs, quantizer_kwargs={"temperature": 2.0})
    for e in (0, 1, epochs - 1):
        assert callback.value_at(e) == pytest.approx(2.0 * 0.95**e)
    assert callback.final_epoch == {3: 2, 200: 160}[epochs]


def test_annealing_none_attaches_nothing_and_bad_rule_is_refused():
    assert _callback("bnnpp", 4, "none") == []
    with pytest.raises(ValueError, match="annealing must be one of default, compressed, none, got 'fast'"):
        TrainConfig(annealing="fast")


def _quantizer_types(model):
    return [(type(l.input_quantizer).__name__, type(l.kernel_quantizer).__name__)
            for l in model.layers if hasattr(l, "kernel_quantizer")]


def test_ste_warmup_as_shared_quantizer_anneals_weights_and_activations(digits):
    """The authors' form (main.py's adjust_temperoture sets T on Softsign_W and Softsign_A)."""
    config = TrainConfig(quantizer="ste_warmup", epochs=2, model_kwargs=SMALL)
    result = train(config, arrays=digits, verbose=0)
    types = _quantizer_types(result.model)
    assert types[0] == ("NoneType", "SteWarmup")  # first layer sees real inputs
    assert all(t == ("SteWarmup", "SteWarmup") for t in types[1:])
    annealed = Q.annealable_quantizers(result.model)
    layers = [l for l in result.model.layers if hasattr(l, "kernel_quantizer")]
    driven = [l.kernel_quantizer for l in layers] + [l.input_quantizer for l in layers[1:]]
    assert {id(q) for q in annealed} == {id(q) for q in driven}
    for q in driven:  # every one followed the schedule and ends exact sign
        assert q.annealed_value() == pytest.approx(0.95) and q.is_exact_sign()
    assert result.history["hardtanh_temperature"] == pytest.approx([1.0, 0.95])


def test_weights_only_warmup_stays_an_option():
    config = TrainConfig(quantizer="ste_warmup", input_quantizer="ste_sign", model_kwargs=SMALL)
    model = build_model(config, (8, 8, 1), 10)
    assert all(t == ("SteSign", "SteWarmup") for t in _quantizer_types(model)[1:])


def test_learning_rate_schedules_against_their_formulas():
    assert learning_rate_schedule("constant", 1e-2, 10, 100) == 1e-2
    linear = learning_rate_schedule("linear", 1e-2, 10, 100)
    assert [float(linear(s)) for s in (0, 500, 1000)] == pytest.approx([1e-2, 5.5e-3, 1e-3])
    halving = learning_rate_schedule("halving", 1e-2, 10, 100)  # every round(0.3*10)=3 epochs
    got = [float(halving(s)) for s in (0, 299, 300, 599, 600, 900, 999)]
    assert got == pytest.approx([1e-2, 1e-2, 5e-3, 5e-3, 2.5e-3, 1.25e-3, 1.25e-3])
    step = learning_rate_schedule("step", 1e-3, 100, 10)  # x0.1 every 30 epochs (FSG)
    assert [float(step(s)) for s in (0, 300, 600, 900)] == pytest.approx([1e-3, 1e-4, 1e-5, 1e-6])
    assert learning_rate_schedule("halving", 1e-2, 1, 10) == 1e-2  # one epoch: no step
    with pytest.raises(ValueError, match="lr_schedule must be one of constant, linear, halving, step"):
        TrainConfig(lr_schedule="cosine")


@pytest.mark.parametrize("name", sorted(PAPER_SCHEDULES))
def test_bop_paper_schedules_start_and_end_at_the_recipe_values(name):
    start, end = PAPER_SCHEDULES[name]
    schedule = paper_schedule(name, decay_steps=400)
    values = [float(schedule(s)) for s in (0, 200, 400, 800)]
    # float32 arithmetic: sigma's 1e-7 start is exact to ~4e-10
    assert values == pytest.approx([start, (start + end) / 2, end, end], rel=1e-5, abs=1e-9)


def test_train_gives_the_paper_schedules_the_run_length():
    config = TrainConfig(optimizer="bop2ndorder", epochs=7, model_kwargs=SMALL,
                         optimizer_kwargs={"schedule": "paper", "bias_correction": None})
    optimizer = build_optimizer(config, steps_per_epoch=30)
    binary = optimizer.optimizers[0]
    threshold = binary._get_hyper("threshold")
    assert threshold.decay_steps == 7 * 30
    assert float(threshold(7 * 30)) == pytest.approx(1e-8)
    config = TrainConfig(optimizer="bop", epochs=2, optimizer_kwargs={"schedule": "paper"})
    gamma = build_optimizer(config, steps_per_epoch=5).optimizers[0]._get_hyper("gamma")
    assert gamma.decay_steps == 10 and float(gamma(0)) == pytest.approx(1e-2)
    with pytest.raises(ValueError, match="schedule must be one of constant, paper, helwegen, got 'linear'"):
        bnnzoo.optimizers.get_optimizer("bop", schedule="linear")
    with pytest.raises(ValueError, match="schedule must be one of constant, paper, got 'helwegen'"):
        bnnzoo.optimizers.get_optimizer("bop2ndorder", schedule="helwegen", decay_steps=10)
    with pytest.raises(ValueError, match="decay_steps must be an integer >= 1"):
        bnnzoo.optimizers.get_optimizer("bop2ndorder", schedule="paper")


def test_bops_own_recipe_reaches_the_optimizer():
    """Helwegen et al.'s recipe (the Bop baseline's bop_sec52): tau 1e-8 constant, gamma
    1e-4 x0.1 every 100 of 500 epochs, i.e. after every 20 % of the run."""
    config = TrainConfig(optimizer="bop", epochs=10, learning_rate=1e-2,
                         optimizer_kwargs={"schedule": "helwegen", "threshold": 1e-8, "gamma": 1e-4})
    optimizer = build_optimizer(config, steps_per_epoch=100)  # 1000 steps
    bop, adam = optimizer.optimizers
    assert isinstance(bop, lq.optimizers.Bop)
    gamma = bop._get_hyper("gamma")
    values = {step: float(gamma(step)) for step in (0, 199, 200, 399, 400, 999)}
    assert values == pytest.approx({0: 1e-4, 199: 1e-4, 200: 1e-5, 399: 1e-5, 400: 1e-6, 999: 1e-8})
    assert float(tf.keras.backend.get_value(bop._get_hyper("threshold"))) == pytest.approx(1e-8)
    assert float(tf.keras.backend.get_value(adam._get_hyper("learning_rate"))) == pytest.approx(1e-2)
    # scaled to the run: 15 epochs of 422 steps decay after every 3 epochs
    gamma = build_optimizer(TrainConfig(optimizer="bop", epochs=15, optimizer_kwargs={
        "schedule": "helwegen"}), steps_per_epoch=422).optimizers[0]._get_hyper("gamma")
    assert gamma.decay_steps == round(0.2 * 15 * 422) and float(gamma(15 * 422 - 1)) == pytest.approx(1e-8)


def test_bop2ndorder_paper_schedules_scale_and_a_zero_threshold():
    config = TrainConfig(optimizer="bop2ndorder", epochs=2, optimizer_kwargs={
        "schedule": "paper", "gamma_scale": 10.0, "threshold_scale": 0.0})
    binary = build_optimizer(config, steps_per_epoch=50).optimizers[0]
    gamma, threshold = binary._get_hyper("gamma"), binary._get_hyper("threshold")
    assert [float(gamma(0)), float(gamma(100))] == pytest.approx([1e-1, 1e-4])
    assert [float(threshold(0)), float(threshold(100))] == [0.0, 0.0]
    with pytest.raises(ValueError, match="gamma_scale must be"):
        bnnzoo.optimizers.get_optimizer("bop2ndorder", schedule="paper", decay_steps=10, gamma_scale=-1.0)


def test_clipnorm_reaches_every_sub_optimizer_and_clips_bops_gradient():
    config = TrainConfig(optimizer="bop", clipnorm=1.0, optimizer_kwargs={"gamma": 0.5})
    optimizer = build_optimizer(config, steps_per_epoch=1)
    assert [o.global_clipnorm for o in optimizer.optimizers] == [1.0, 1.0]
    binary = tf.Variable(np.ones((2, 2), "float32"))
    binary.precision = 1
    real = tf.Variable(np.zeros(2, "float32"))
    g = np.array([[30.0, -40.0], [0.0, 0.0]], "float32")  # norm 50
    optimizer.apply_gradients([(tf.constant(g), binary), (tf.constant([1.0, 1.0]), real)])
    bop = optimizer.optimizers[0]
    momentum = bop.get_slot(binary, "m").numpy()
    np.testing.assert_allclose(momentum, 0.5 * g / 50.0, rtol=1e-6)  # m = gamma * g / ||g||


def test_clipnorm_and_new_flags_from_the_cli():
    args = build_parser().parse_args(["train", "--clipnorm", "5", "--lr-schedule", "halving",
                                      "--annealing", "compressed", "--init-from", "runs/float"])
    config = config_from_args(args)
    assert (config.clipnorm, config.lr_schedule, config.annealing, config.init_from) == (
        5.0, "halving", "compressed", "runs/float")
    assert build_optimizer(config, 10).global_clipnorm == 5.0
    assert config.exact_sign_fraction == 0.2  # the default phase: the last fifth
    with pytest.raises(ValueError, match="clipnorm must be a finite number > 0 or None, got -1"):
        TrainConfig(clipnorm=-1)
    args = build_parser().parse_args(["train", "--quantizer", "bnnpp", "--exact-sign-fraction", "0"])
    assert config_from_args(args).exact_sign_fraction == 0.0  # the old one-epoch phase
    with pytest.raises(ValueError, match=r"exact_sign_fraction must be a number in \[0, 1\), got 1.5"):
        config_from_args(build_parser().parse_args(["train", "--exact-sign-fraction", "1.5"]))


def test_init_from_loads_the_float_weights_and_refuses_other_architectures(tmp_path, digits):
    float_run = tmp_path / "float"
    wide = {"units": 32}
    donor = train(TrainConfig(quantizer="none", epochs=6, learning_rate=1e-2, model_kwargs=wide),
                  out=float_run, arrays=digits, verbose=0).model
    config = TrainConfig(input_quantizer="none", kernel_quantizer="dorefa_weights", epochs=2,
                         model_kwargs=wide, init_from=str(float_run))
    model = build_model(config, (8, 8, 1), 10)
    load_initial_weights(model, float_run)
    for a, b in zip(model.get_weights(), donor.get_weights()):
        np.testing.assert_array_equal(a, b)
    # through train(): the weights-only binary run starts where the float run ended,
    # so after 2 epochs it is ahead of the same run from scratch
    warm = train(config, arrays=digits, verbose=0).metrics["test_accuracy"]
    cold = train(TrainConfig(**{**config.to_dict(), "init_from": None}), arrays=digits,
                 verbose=0).metrics["test_accuracy"]
    assert warm > 0.8 and warm > cold
    narrow = build_model(TrainConfig(model_kwargs={"units": 16}), (8, 8, 1), 10)
    with pytest.raises(ValueError, match=r"init_from: .*float \(binarynet_mlp \{'units': 32\}\) has "
                                         r"another architecture than model .*dense_0"):
        load_initial_weights(narrow, float_run)
    with pytest.raises(ValueError, match="init_from: cannot load a model from"):
        load_initial_weights(narrow, tmp_path / "missing")


def test_dorefa_weights_is_a_registered_one_bit_sign():
    q = Q.get_quantizer("dorefa_weights")
    x = np.array([-0.7, -0.01, 0.02, 0.5], "float32")
    np.testing.assert_array_equal(q(x).numpy(), np.sign(x))
    assert q.precision == 1
    assert "dorefa_weights" in Q.list_quantizers()


def test_hyper_layers_use_the_authors_initialization():
    layer = bnnzoo.layers.HyperDense(16, input_quantizer="ste_sign", kernel_quantizer="ste_sign")
    layer(np.ones((1, 64), "float32"))
    embeddings = [w for w in layer.weights if "embedding" in w.name][0].numpy()
    assert np.abs(embeddings).max() <= 2 / 3 and embeddings.std() > 0.3  # U(-2/3, 2/3): std 0.385
    assert float(layer.scale.numpy()) == 1.0


def test_adam_betas_reach_the_optimizer():
    optimizer = bnnzoo.optimizers.get_optimizer("adam", 1e-2, beta_1=0.5, beta_2=0.99)
    assert (float(optimizer.beta_1), float(optimizer.beta_2)) == pytest.approx((0.5, 0.99))
    with pytest.raises(ValueError, match=r"beta_1 must be in \[0, 1\), got 1.5"):
        bnnzoo.optimizers.get_optimizer("adam", beta_1=1.5)
