"""A plain Keras script that saves a model whose forward is not binary yet is warned
once (issue #28, item 4): `bnnzoo.quantizers.NonBinaryForwardWarning`, one line naming
the quantizer and `bnnzoo.quantizers.finalize(model)`. bnnzoo's own training and
exports, which label such models `binary_forward: false`, are not warned.
"""

from __future__ import annotations

import warnings

import larq as lq
import pytest
import tensorflow as tf

from bnnzoo import export, quantizers, training
from bnnzoo.quantizers import NonBinaryForwardWarning
from bnnzoo.training import TrainConfig


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """As in a new process: the warning not shown yet."""
    monkeypatch.setattr(NonBinaryForwardWarning, "shown", False)


def plain_model(input_quantizer, kernel_quantizer="ste_sign") -> tf.keras.Model:
    """A plain Keras model (no bnnzoo model family, no bnnzoo training)."""
    return tf.keras.Sequential([
        tf.keras.Input((4,)),
        lq.layers.QuantDense(8, input_quantizer=input_quantizer, kernel_quantizer=kernel_quantizer),
        lq.layers.QuantDense(3, input_quantizer=input_quantizer, kernel_quantizer=kernel_quantizer),
    ])


def nonbinary_warnings(action) -> list[warnings.WarningMessage]:
    """The `NonBinaryForwardWarning`s `action()` emits, with every warning let through."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        action()
    return [w for w in caught if issubclass(w.category, NonBinaryForwardWarning)]


def save_twice(model, tmp_path):
    model.save(tmp_path / "first.keras")  # the warning points at this line
    model.save(tmp_path / "second.keras")


def test_plain_keras_save_warns_once_naming_the_quantizer_and_finalize(tmp_path):
    found = nonbinary_warnings(lambda: save_twice(plain_model("bnnpp"), tmp_path))
    assert len(found) == 1 and NonBinaryForwardWarning.shown
    message = str(found[0].message)
    assert "\n" not in message
    assert message.startswith("quantizer 'bnnpp' (BNNPlusPlus, mu=1) serialized with a non-binary forward")
    assert "bnnzoo.quantizers.finalize(model)" in message and "QuantizerAnnealing" in message
    assert found[0].filename == __file__  # the script's save, not Keras's serializer
    assert issubclass(NonBinaryForwardWarning, UserWarning)


@pytest.mark.parametrize("name,label", [
    ("ste_warmup", "quantizer 'ste_warmup' (SteWarmup, temperature=1)"),
    ("proxconnect", "quantizer 'proxconnect' (ProxConnect, mu=0.1)"),
    (quantizers.ForwardBackwardQuantizer("hardtanh", temperature=0.5),
     "quantizer ForwardBackwardQuantizer (forward 'hardtanh', temperature=0.5)"),
])
def test_every_annealed_quantizer_is_named(name, label):
    (found,) = nonbinary_warnings(plain_model(name).to_json)
    assert str(found.message).startswith(f"{label} serialized with a non-binary forward")


def test_finalized_model_saves_without_warning(tmp_path):
    model = quantizers.finalize(plain_model("bnnpp", "bnnpp"))
    assert quantizers.binary_forward(model)
    assert nonbinary_warnings(lambda: save_twice(model, tmp_path)) == [] and not NonBinaryForwardWarning.shown


def test_ste_sign_model_never_warns(tmp_path):
    assert nonbinary_warnings(lambda: save_twice(plain_model("ste_sign"), tmp_path)) == []
    assert not NonBinaryForwardWarning.shown


def test_bnnzoo_copies_and_exports_do_not_warn_nor_use_up_the_warning():
    model = plain_model("bnnpp", "bnnpp")

    def expected_save():
        with quantizers.nonbinary_expected():
            model.to_json()

    assert nonbinary_warnings(lambda: quantizers.get_quantizer(quantizers.BNNPlusPlus())) == []  # a clone
    assert nonbinary_warnings(lambda: export.inference_model(model)) == []
    assert nonbinary_warnings(expected_save) == []
    assert not NonBinaryForwardWarning.shown
    assert len(nonbinary_warnings(model.to_json)) == 1  # a script's own save is still warned


def test_bnnzoo_training_saves_a_non_binary_model_without_warning(tmp_path, digits):
    config = TrainConfig(dataset="digits", model="binarynet_mlp", quantizer="bnnpp", annealing="none",
                         model_kwargs={"units": 8, "hidden_layers": 1}, epochs=1)
    results = []
    found = nonbinary_warnings(lambda: results.append(training.train(config, tmp_path / "run", arrays=digits,
                                                                     verbose=0)))
    assert found == [] and not NonBinaryForwardWarning.shown
    assert results[0].metrics["binary_forward"] is False and (tmp_path / "run" / "model.keras").is_file()
