"""One suite over every registered optimizer (optax style): whatever `list_optimizers()`
names is built, serialized, trained on digits above a bar, interrupted and resumed
bit-identically, and trained under a mirrored strategy, by the same code
(`tests/_base.py`). A builder registered tomorrow is under all of these checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from _base import run_mirrored_test, run_model_saving_test, run_resume_test
from bnnzoo import training
from bnnzoo.optimizers import OptimizerSpec, get_optimizer, list_optimizers, optimizer_spec
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
def test_registered_as_a_spec_with_nothing_on_the_builder(name):
    """What a run needs is declared on the `OptimizerSpec`; the builder carries no
    public attributes (the former `builder.wrap_model = ...` protocol) that code could
    depend on instead."""
    spec = optimizer_spec(name)
    assert isinstance(spec, OptimizerSpec) and spec.name == name
    extra = {a for a in vars(spec.builder) if not a.startswith("_")}
    assert not extra, f"{name}: attributes on the builder {extra}; declare them on register_optimizer"


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_trains_digits_and_resumes_bit_identically(name, tmp_path, digits):
    result = run_resume_test(_config(name), tmp_path, digits)
    assert result.metrics["test_accuracy"] > DIGITS_BAR, result.metrics["test_accuracy"]
    # train() created the optimizer's variables before fit, so its step traced once.
    assert result.model.train_function.experimental_get_tracing_count() == 1
    # The trained model (FSG's wrapper included) saves and reloads with identical predictions.
    run_model_saving_test(training.load_model(tmp_path / "straight"), tmp_path, formats=(".keras",))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_trains_under_mirrored_strategy(name, digits, mirrored_strategy):
    run_mirrored_test(_config(name, epochs=1, strategy="mirrored"), digits, mirrored_strategy,
                      min_accuracy=0.3)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_variables_created_before_fit_change_no_value(name, digits):
    """`create_training_variables` (what `train` does before `fit`) against Keras's
    own creation inside the first trace: bit-identical weights after two steps, one
    trace of the training step instead of two."""
    config = _config(name)
    x, y = digits.x_train[:128], digits.y_train[:128]
    tf.config.experimental.enable_op_determinism()

    def fit(create_first: bool) -> tf.keras.Model:
        tf.keras.utils.set_random_seed(0)
        model = training.build_model(config, digits.input_shape, digits.num_classes)
        model = training.wrap_for_optimizer(model, name)
        training.compile_model(model, training.build_optimizer(config, steps_per_epoch=2))
        if create_first:
            training.create_training_variables(model, x[:1], y[:1])
        model.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
        return model

    lazy, created = fit(False), fit(True)
    assert lazy.train_function.experimental_get_tracing_count() == 2
    assert created.train_function.experimental_get_tracing_count() == 1
    assert created.optimizer.iterations.numpy() == lazy.optimizer.iterations.numpy()
    assert created._train_counter.numpy() == lazy._train_counter.numpy() == 2
    for w_lazy, w_created in zip(lazy.get_weights(), created.get_weights(), strict=True):
        np.testing.assert_array_equal(w_created, w_lazy)
