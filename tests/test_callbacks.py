"""Quantizer annealing: schedules, logging, exact sign at the end, resume, CLI."""

import glob
import json
import math

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from bnnzoo import quantizers as Q
from bnnzoo.callbacks import (
    ExponentialSchedule,
    GeometricSchedule,
    QuantizerAnnealing,
    default_annealing,
)
from bnnzoo.cli import main as cli_main
from bnnzoo.export import inference_model
from bnnzoo.training import TrainConfig, build_model, train

GRID = np.array([-1e4, -3.0, -1.0, -0.2, -1e-4, 0.0, 1e-4, 0.2, 1.0, 3.0, 1e4], np.float32)


def test_schedules_follow_their_formulas():
    cifar = ExponentialSchedule(2.0, 0.95)
    assert [cifar(e) for e in (0, 1, 7)] == pytest.approx([2.0, 1.9, 2.0 * 0.95**7])
    imagenet = ExponentialSchedule(1.0, 0.985, every=1000, offset=50000)
    for step in (0, 49999, 50000, 50999, 51000, 123456):
        expected = 0.985 ** math.floor(max(0, step - 50000) / 1000)
        assert imagenet(step) == pytest.approx(expected)
    geo = GeometricSchedule(1.0, 100.0, 5)
    assert [geo(i) for i in range(7)] == pytest.approx(
        [1.0, 100**0.25, 10.0, 100**0.75, 100.0, 100.0, 100.0])
    assert GeometricSchedule(3.0, 9.0, 1)(0) == 9.0
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="initial must be a finite number > 0"):
            ExponentialSchedule(bad, 0.9)
        with pytest.raises(ValueError, match="end must be a finite number > 0"):
            GeometricSchedule(1.0, bad, 3)
    with pytest.raises(ValueError, match="every must be"):
        ExponentialSchedule(1.0, 0.9, every=0)
    with pytest.raises(ValueError, match="length must be"):
        GeometricSchedule(1.0, 2.0, 0)


def test_default_schedules_per_quantizer():
    config = TrainConfig(quantizer="bnnpp", epochs=5, model_kwargs={"units": 8})
    model = build_model(config, (8, 8, 1), 10)
    (callback,) = default_annealing(model, config, 10)
    assert callback.final_epoch == 4 and callback.log_name == "sign_swish_mu"
    assert [callback.value_at(e) for e in (0, 4)] == pytest.approx([1.0, 5.0])  # bounded rule
    config = TrainConfig(quantizer="ste_warmup", epochs=200, quantizer_kwargs={"temperature": 2.0},
                         model_kwargs={"units": 8})
    (callback,) = default_annealing(build_model(config, (8, 8, 1), 10), config, 10)
    assert callback.value_at(10) == pytest.approx(2.0 * 0.95**10)  # the paper's rate
    config = TrainConfig(quantizer="ste_warmup", epochs=3, model_kwargs={"units": 8},
                         annealing="compressed")
    (callback,) = default_annealing(build_model(config, (8, 8, 1), 10), config, 10)
    assert callback.value_at(2) == pytest.approx(0.01)  # compressed rule: decays to 1% of T0
    config = TrainConfig(quantizer="ste_sign", epochs=3, model_kwargs={"units": 8})
    assert default_annealing(build_model(config, (8, 8, 1), 10), config, 10) == []


def _assert_exact_sign(model):
    qs = Q.annealable_quantizers(model)
    assert qs
    for q in qs:
        assert q.is_exact_sign()
        y = q(tf.constant(GRID)).numpy()
        np.testing.assert_array_equal(y, np.where(GRID >= 0, 1.0, -1.0))


def _with_ste_sign(config, trained, arrays):
    """The same network built with plain `ste_sign`, holding the trained weights."""
    plain = TrainConfig.from_dict({**config.to_dict(), "quantizer": "ste_sign", "quantizer_kwargs": {}})
    model = build_model(plain, arrays.input_shape, arrays.num_classes)
    model.set_weights(trained.get_weights())
    return model


def test_bnnpp_schedule_ends_with_exact_sign_and_equals_ste_sign_model(digits, tmp_path):
    quantizer = "bnnpp"
    config = TrainConfig(model="binarynet_mlp", dataset="digits", quantizer=quantizer, epochs=4,
                         learning_rate=3e-3, model_kwargs={"units": 64})
    result = train(config, tmp_path / "run", arrays=digits, verbose=0)
    logged = json.loads((tmp_path / "run" / "history.json").read_text())
    assert logged["sign_swish_mu_exact_sign"] == [0.0, 0.0, 0.0, 1.0]
    assert logged["sign_swish_mu"] == pytest.approx([1.0, 5 ** (1 / 3), 5 ** (2 / 3), 5.0])
    _assert_exact_sign(result.model)
    # The trained model is the ste_sign network with the same weights, prediction for prediction.
    x = digits.x_test
    plain = _with_ste_sign(config, result.model, digits)
    np.testing.assert_array_equal(plain.predict(x, verbose=0), result.model.predict(x, verbose=0))
    converted = inference_model(result.model, require_exact_sign=True)
    assert not Q.annealable_quantizers(converted)
    np.testing.assert_array_equal(converted.predict(x, verbose=0), plain.predict(x, verbose=0))
    # ... also after save/reload of the run directory.
    reloaded = tf.keras.models.load_model(tmp_path / "run" / "model.keras")
    _assert_exact_sign(reloaded)
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), plain.predict(x, verbose=0))
    assert result.metrics["test_accuracy"] > 0.5  # real digits test set; chance is 0.1


def _interrupt_at(stop_epoch):
    def check(epoch, logs):
        if epoch == stop_epoch:  # after the checkpoint of the epoch before
            raise KeyboardInterrupt

    return tf.keras.callbacks.LambdaCallback(on_epoch_begin=check)


def test_resume_continues_the_schedule(digits, tmp_path):
    config = TrainConfig(model="binarynet_mlp", dataset="digits", quantizer="bnnpp", epochs=3,
                         model_kwargs={"units": 32, "hidden_layers": 1})
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "cut", arrays=digits, verbose=0, callbacks=[_interrupt_at(2)])
    cut = json.loads((tmp_path / "cut" / "history.json").read_text())
    assert cut["sign_swish_mu"] == pytest.approx([1.0, 5 ** 0.5])
    resumed = train(config, tmp_path / "cut", arrays=digits, verbose=0)
    assert resumed.history["sign_swish_mu"] == pytest.approx([1.0, 5 ** 0.5, 5.0])
    assert resumed.history["sign_swish_mu_exact_sign"] == [0.0, 0.0, 1.0]
    assert len(resumed.history["loss"]) == 3
    _assert_exact_sign(resumed.model)


class _Recorder(tf.keras.callbacks.Callback):
    def __init__(self, quantizer):
        super().__init__()
        self.quantizer, self.seen = quantizer, []

    def on_train_batch_begin(self, batch, logs=None):
        self.seen.append((self.quantizer.annealed_value(), self.quantizer.is_exact_sign()))


def _small_model(quantizer):
    inputs = tf.keras.Input((64,))
    x = lq.layers.QuantDense(16, kernel_quantizer=quantizer, kernel_constraint="weight_clip")(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    outputs = lq.layers.QuantDense(10, input_quantizer="bnn", kernel_quantizer="bnn",
                                   activation="softmax")(x)
    model = tf.keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def test_per_step_schedule_and_tensorboard_logging(digits, tmp_path):
    q = Q.SteWarmup(temperature=1.0)
    model = _small_model(q)
    schedule = ExponentialSchedule(1.0, 0.5, every=3)
    annealing = QuantizerAnnealing(schedule, "temperature", per_step=True, final_step=7)
    recorder = _Recorder(q)
    x, y = digits.x_train[:320].reshape(-1, 64), digits.y_train[:320]
    history = model.fit(x, y, batch_size=64, epochs=2, verbose=0, callbacks=[
        annealing, recorder, tf.keras.callbacks.TensorBoard(str(tmp_path / "tb"))])
    assert recorder.seen == [(pytest.approx(0.5 ** (s // 3)), s >= 7) for s in range(10)]
    assert history.history["quantizer_temperature"] == pytest.approx([0.5 ** (4 // 3), 0.5 ** (9 // 3)])
    tags = set()
    for path in glob.glob(str(tmp_path / "tb" / "train" / "*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    assert "epoch_quantizer_temperature" in tags


def test_bad_uses_raise():
    with pytest.raises(ValueError, match="found no quantizer to anneal"):
        _small_model("ste_sign").fit(np.zeros((4, 64)), np.zeros(4), verbose=0,
                                     callbacks=[QuantizerAnnealing(lambda e: 1.0, "mu")])
    model = _small_model(Q.BNNPlusPlus())
    with pytest.raises(ValueError, match=r"schedule gave mu=-1.0 at index 0; allowed range \(0, inf\)"):
        model.fit(np.zeros((4, 64)), np.zeros(4), verbose=0,
                  callbacks=[QuantizerAnnealing(lambda e: -1.0, "mu")])
    with pytest.raises(ValueError, match="final_step needs per_step=True"):
        QuantizerAnnealing(lambda e: 1.0, final_step=3)
    with pytest.raises(ValueError, match="schedule must be callable"):
        QuantizerAnnealing(0.5)


def test_cli_ste_warmup_ends_with_exact_sign_and_equals_ste_sign_model(digits, tmp_path, capsys):
    out = tmp_path / "cli"
    code = cli_main(["train", "--quantizer", "ste_warmup", "--annealing", "compressed",
                     "--epochs", "3", "--lr", "3e-3",
                     "--model-arg", "units=64", "--out", str(out), "--no-resume"])
    assert code == 0
    assert "test accuracy" in capsys.readouterr().out
    history = json.loads((out / "history.json").read_text())
    assert history["hardtanh_temperature"] == pytest.approx([1.0, 0.1, 0.01])
    assert history["hardtanh_temperature_exact_sign"] == [0.0, 0.0, 1.0]
    model = tf.keras.models.load_model(out / "model.keras")
    _assert_exact_sign(model)
    config = TrainConfig.from_file(out / "config.json")
    plain = _with_ste_sign(config, model, digits)
    np.testing.assert_array_equal(plain.predict(digits.x_test, verbose=0),
                                  model.predict(digits.x_test, verbose=0))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.5


def test_unfinished_annealing_cannot_be_converted_to_sign():
    model = _small_model(Q.BNNPlusPlus(mu=4.0))
    with pytest.raises(ValueError, match="not annealed to sign yet"):
        inference_model(model, require_exact_sign=True)


def test_ste_warmup_at_exact_sign_trains_like_ste_sign(digits):
    """A one-epoch run is all final epoch: STE-Warmup is then larq's ste_sign, step for step."""
    def run(quantizer):
        config = TrainConfig(model="binarynet_mlp", dataset="digits", quantizer=quantizer, epochs=1,
                             model_kwargs={"units": 32, "hidden_layers": 1})
        return train(config, arrays=digits, verbose=0)

    warmup, ste = run("ste_warmup"), run("ste_sign")
    assert warmup.history["hardtanh_temperature_exact_sign"] == [1.0]
    for key in ("loss", "accuracy", "val_loss"):
        np.testing.assert_allclose(warmup.history[key], ste.history[key], rtol=1e-6)
    for a, b in zip(warmup.model.get_weights(), ste.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("epochs, fraction, first", [(15, 0.0, 14), (15, 0.2, 12), (5, 0.2, 4),
                                                     (10, 0.25, 7), (1, 0.5, 0)])
def test_exact_sign_phase_starts_at_the_stated_epoch(epochs, fraction, first):
    from bnnzoo.callbacks import exact_sign_epoch

    assert exact_sign_epoch(epochs, fraction) == first
    config = TrainConfig(quantizer="bnnpp", epochs=epochs, exact_sign_fraction=fraction)
    model = build_model(config, (8, 8, 1), 10)
    (callback,) = default_annealing(model, config, steps_per_epoch=10)
    assert callback.final_epoch == first


def test_exact_sign_phase_through_train_and_mu_max(digits):
    """5 epochs with a 40 % exact-sign phase: epochs 4-5 binary; mu grows to mu_max."""
    config = TrainConfig(quantizer="bnnpp", epochs=5, exact_sign_fraction=0.4, mu_max=3.0,
                         model_kwargs={"units": 16, "hidden_layers": 1}, batch_size=128)
    result = train(config, arrays=digits, verbose=0)
    assert result.history["sign_swish_mu_exact_sign"] == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert result.history["sign_swish_mu"][0] == pytest.approx(1.0)
    assert result.history["sign_swish_mu"][-1] == pytest.approx(3.0)
    with pytest.raises(ValueError, match=r"exact_sign_fraction must be a number in \[0, 1\), got 1"):
        TrainConfig(exact_sign_fraction=1)
    with pytest.raises(ValueError, match="mu_max must be a finite number > 0 or None, got -2"):
        TrainConfig(mu_max=-2)


def test_epoch_stats_logs_each_epochs_seconds_and_the_load(monkeypatch):
    """`epoch_seconds` is the time from the epoch's begin to its end, `load_1min`
    the machine's 1-minute load average then; nothing is logged without a begin."""
    import types

    from bnnzoo import callbacks
    from bnnzoo.callbacks import EpochStats

    clock = iter([100.0, 103.5])
    monkeypatch.setattr(callbacks, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    monkeypatch.setattr(callbacks.os, "getloadavg", lambda: (1.25, 0.5, 0.25))
    stats, logs = EpochStats(), {}
    stats.on_epoch_end(0, logs)
    assert logs == {}  # no on_epoch_begin: no seconds to report
    stats.on_epoch_begin(0)
    stats.on_epoch_end(0, logs)
    assert logs == {"epoch_seconds": 3.5, "load_1min": 1.25}
