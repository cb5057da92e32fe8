"""One suite over every registered optimizer (optax style): whatever `list_optimizers()`
names is built, serialized, trained on digits above a bar, interrupted and resumed
bit-identically, and trained under a mirrored strategy, by the same code
(`tests/_base.py`). A builder registered tomorrow is under all of these checks."""

from __future__ import annotations

import json

import pytest
import tensorflow as tf

from _base import run_mirrored_test, run_model_saving_test, run_resume_test
from bnnzoo import training
from bnnzoo.optimizers import BUILDER_HOOKS, get_optimizer, list_optimizers, optimizer_builder
from bnnzoo.training import TrainConfig

OPTIMIZERS = list_optimizers()
# Test accuracy on digits after 2 epochs of a binary MLP with one hidden layer of 64
# units (batch 64, lr 1e-2); chance is 0.10. One hidden layer, not three, halves the
# graph every optimizer traces (FSG runs its slow net per binary kernel) and keeps a
# real-valued-input and a binary-input binary kernel.
DIGITS_BAR = 0.5


def _config(optimizer: str, **kw) -> TrainConfig:
    fields = dict(model="binarynet_mlp", dataset="digits", epochs=2, batch_size=64, learning_rate=1e-2,
                  optimizer=optimizer, model_kwargs={"units": 64, "hidden_layers": 1})
    fields.update(kw)
    return TrainConfig(**fields)


def test_the_suite_covers_the_registry():
    assert {"adam", "bop", "bop2ndorder", "fsg", "fsg_attention"} <= set(OPTIMIZERS)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_config_round_trip(name):
    """serialize -> deserialize gives an optimizer of the same class and config."""
    def round_trip(opt):
        spec = tf.keras.optimizers.serialize(opt)
        return spec, tf.keras.optimizers.deserialize(spec, use_legacy_optimizer=True)

    def normalized(spec):  # Keras writes built-in class names as "Adam" or "adam"
        return json.loads(json.dumps(spec, default=str).replace('"class_name": "adam"', '"class_name": "Adam"'))

    optimizer = get_optimizer(name, 1e-3)
    spec, clone = round_trip(optimizer)
    assert type(clone) is type(optimizer)
    spec2, clone2 = round_trip(clone)
    assert type(clone2) is type(optimizer)
    assert normalized(spec2) == normalized(spec)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_builder_declares_only_known_hooks(name):
    builder = optimizer_builder(name)
    extra = {a for a in vars(builder) if not a.startswith("_")} - set(BUILDER_HOOKS)
    assert not extra, f"{name}: unknown builder attributes {extra}"


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_trains_digits_and_resumes_bit_identically(name, tmp_path, digits):
    result = run_resume_test(_config(name), tmp_path, digits)
    assert result.metrics["test_accuracy"] > DIGITS_BAR, result.metrics["test_accuracy"]
    # The trained model (FSG's wrapper included) saves and reloads with identical predictions.
    run_model_saving_test(training.load_model(tmp_path / "straight"), tmp_path, formats=(".keras",))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_trains_under_mirrored_strategy(name, digits, mirrored_strategy):
    run_mirrored_test(_config(name, epochs=1, strategy="mirrored"), digits, mirrored_strategy,
                      min_accuracy=0.3)
