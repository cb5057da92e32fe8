"""CONTRIBUTING.md's "Adding things" table, followed to the letter.

Each row's test registers a throwaway object exactly as the table says (inside the
test; the registries are restored afterwards) and runs the shared suite of
`tests/_base.py` on it, the checks every registered object of its kind goes through.
One function per row: `test_quantizer_row`, `test_optimizer_row`, `test_model_family_row`.
"""

from __future__ import annotations

import re
from pathlib import Path

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import _base
from _base import (
    FAMILY_DIGITS_BAR,
    QUANTIZER_DIGITS_BAR,
    assert_learned,
    family_digits_config,
    optimizer_digits_config,
    quantizer_digits_config,
    run_below_minimum_test,
    run_digits_training_test,
    run_family_build_test,
    run_mirrored_test,
    run_optimizer_mirrored_test,
    run_optimizer_resume_test,
    run_optimizer_round_trip_test,
    run_optimizer_spec_test,
    run_optimizer_variables_test,
    run_resume_test,
)

from bnnzoo import quantizers as Q
from bnnzoo.callbacks import default_annealing
from bnnzoo.cli import build_parser, config_from_args
from bnnzoo.models import registry as model_registry
from bnnzoo.models.blocks import BinaryLayerArgs, scaled_sizes
from bnnzoo.models.registry import register_model
from bnnzoo.optimizers import BuilderFlag, builder_flags, list_optimizers, register_optimizer
from bnnzoo.optimizers.builders import OPTIMIZERS
from bnnzoo.quantizers import ExponentialAnnealing, NamedPair, register_quantizer
from bnnzoo.training import TrainConfig, build_model, train

CONTRIBUTING = Path(__file__).resolve().parents[1] / "CONTRIBUTING.md"
QUANTIZER = "contrib_halving_warmup"
OPTIMIZER = "contrib_amsgrad"
FAMILY = "contrib_mlp"


def _table_row(thing: str) -> str:
    """The "Adding things" table's row for `thing` ("a quantizer", "an optimizer", ...)."""
    rows = [line for line in CONTRIBUTING.read_text().splitlines() if line.startswith(f"| {thing} |")]
    assert len(rows) == 1, f"CONTRIBUTING.md has {len(rows)} rows for {thing!r}"
    return rows[0]


def test_every_row_names_tests_that_exist():
    """Each "checked by" cell names test files of this repository, and the rows without
    a test of their own here say the one statement or runner they document."""
    rows = [line for line in CONTRIBUTING.read_text().splitlines()
            if line.startswith("| a") and not line.startswith("| to add")]
    assert len(rows) == 6, [row.split("|")[1] for row in rows]
    for row in rows:
        named = re.findall(r"`(tests/[\w/]+\.py)`", row.split(" | ")[-1])
        assert named and all((CONTRIBUTING.parent / path).is_file() for path in named), row[:40]
    assert '`@register_dataset("name", description=' in _table_row("a dataset source")
    assert "`tests/test_data.py`" in _table_row("a dataset source")
    benchmark = _table_row("a benchmark")
    assert "`base_parser(" in benchmark and "`tests/test_benchmark_runner.py`" in benchmark


# ----------------------------------------------------------------- a quantizer


@pytest.fixture
def contributed_quantizer():
    """A quantizer added as the table says; unregistered (bnnzoo, larq, Keras) afterwards."""

    @register_quantizer(QUANTIZER)
    class HalvingWarmup(NamedPair):
        r"""Hardtanh forward, identity backward, the temperature halved every epoch.

        \\[ q(x) = \operatorname{clip}(x / T, -1, 1), \qquad \frac{\partial q}{\partial x} := 1 \\]
        """

        _forward, _backward = "hardtanh", "identity"
        annealing = ExponentialAnnealing("temperature", rate=0.5, compressed_floor=0.01)

    # its NumPy reference at the default T = 1 (forward, backward derivative)
    reference = {QUANTIZER: (lambda x: np.clip(x, -1.0, 1.0), np.ones_like)}
    try:
        yield HalvingWarmup, reference
    finally:
        Q._QUANTIZERS.unregister(QUANTIZER)
        for key in (QUANTIZER, HalvingWarmup.__name__):
            tf.keras.utils.get_custom_objects().pop(key, None)


def test_quantizer_row_is_the_one_decorator():
    row = _table_row("a quantizer")
    assert '`@register_quantizer("name")`' in row and "annealing" in row
    assert "register_alias" not in row and "register_keras_custom_object" not in row


def test_quantizer_row(contributed_quantizer, digits, mirrored_strategy, tmp_path):
    """The shared quantizer suite of `tests/test_quantizers.py` on the new quantizer."""
    cls, reference = contributed_quantizer
    assert QUANTIZER in Q.list_quantizers(annealed=True)
    assert type(lq.quantizers.get(QUANTIZER)) is cls  # the larq string alias
    _base.run_quantizer_reference_test(QUANTIZER, reference)
    _base.run_quantizer_serialization_test(QUANTIZER)
    _base.run_quantizer_layer_test(QUANTIZER)
    _base.run_quantizer_saving_test(QUANTIZER, tmp_path)
    _base.run_quantizer_bop_test(QUANTIZER, digits)
    run_digits_training_test(quantizer_digits_config(QUANTIZER), digits, QUANTIZER_DIGITS_BAR)
    _base.run_quantizers_mirrored_test([QUANTIZER], digits, mirrored_strategy)


def test_contributed_quantizer_is_annealed_by_its_own_declaration(contributed_quantizer, digits):
    """`default_annealing` follows the class's `annealing` (T halved per epoch, not
    STE-Warmup's 0.95 on the same forward) with nothing added to `bnnzoo.callbacks`."""
    config = TrainConfig(quantizer=QUANTIZER, epochs=3, model_kwargs={"units": 8},
                         quantizer_kwargs={"temperature": 2.0})
    (callback,) = default_annealing(build_model(config, (8, 8, 1), 10), config, 10)
    assert [callback.value_at(e) for e in range(3)] == pytest.approx([2.0, 1.0, 0.5])
    assert callback.log_name == "hardtanh_temperature" and callback.final_epoch == 2
    compressed = TrainConfig.from_dict({**config.to_dict(), "annealing": "compressed"})
    (callback,) = default_annealing(build_model(compressed, (8, 8, 1), 10), compressed, 10)
    assert callback.value_at(2) == pytest.approx(2.0 * 0.01)  # min(0.5, 0.01 ** (1/2)) per epoch

    result = train(config, arrays=digits, verbose=0)
    assert result.history["hardtanh_temperature"] == pytest.approx([2.0, 1.0, 0.5])
    assert result.history["hardtanh_temperature_exact_sign"] == [0.0, 0.0, 1.0]
    annealed = Q.annealable_quantizers(result.model)
    assert annealed and all(type(q).__name__ == "HalvingWarmup" for q in annealed)
    assert all(q.annealed_value() == pytest.approx(0.5) and q.is_exact_sign() for q in annealed)


# ----------------------------------------------------------------- an optimizer


class StepsPerEpoch(tf.keras.callbacks.Callback):
    """Logs `contrib_steps` (the training steps each epoch took) and
    `contrib_declared_steps` (the `steps_per_epoch` that `train` passed)."""

    def __init__(self, steps_per_epoch: int):
        super().__init__()
        self.declared, self.steps = steps_per_epoch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1

    def on_epoch_end(self, epoch, logs=None):
        logs["contrib_steps"] = float(self.steps)
        logs["contrib_declared_steps"] = float(self.declared)


@pytest.fixture
def contributed_optimizer():
    """An optimizer added as the table says (one `@register_optimizer` statement whose
    keyword arguments are its `OptimizerSpec` fields); unregistered afterwards."""

    @register_optimizer(OPTIMIZER, training_callbacks=lambda model, config, steps: [StepsPerEpoch(steps)],
                        cli_flags=(BuilderFlag("beta_2", "AMSGrad's second-moment rate"),))
    def contrib_amsgrad(learning_rate=1e-3, beta_2: float = 0.999):
        """Adam with AMSGrad's running maximum of the second moment, on every variable."""
        return tf.keras.optimizers.legacy.Adam(learning_rate, beta_2=beta_2, amsgrad=True)

    try:
        yield contrib_amsgrad
    finally:
        OPTIMIZERS.unregister(OPTIMIZER)


def test_optimizer_row_is_one_register_optimizer_statement():
    row = _table_row("an optimizer")
    assert re.search(r"`@register_optimizer\(\"name\", search_space=\.\.\., training_callbacks=", row)
    assert "never attributes on the function" in row and "tests/test_every_optimizer.py" in row


def test_optimizer_row(contributed_optimizer, digits, mirrored_strategy, tmp_path):
    """The shared optimizer suite of `tests/test_every_optimizer.py` on the new optimizer;
    `train()` attaches its declared training callback, `bnnzoo train` offers its flag."""
    assert OPTIMIZER in list_optimizers()
    run_optimizer_spec_test(OPTIMIZER)
    run_optimizer_round_trip_test(OPTIMIZER)
    result = run_optimizer_resume_test(OPTIMIZER, tmp_path, digits)
    config = optimizer_digits_config(OPTIMIZER)  # the run just checked
    steps = -(-len(digits.x_train) // config.batch_size)
    assert result.history["contrib_declared_steps"] == [steps] * config.epochs
    assert result.history["contrib_steps"] == [steps] * config.epochs
    run_optimizer_mirrored_test(OPTIMIZER, digits, mirrored_strategy)
    run_optimizer_variables_test(OPTIMIZER, digits)

    assert builder_flags()["beta_2"][1] == [OPTIMIZER]
    args = build_parser().parse_args(["train", "--optimizer", OPTIMIZER, "--beta-2", "0.99"])
    assert config_from_args(args).optimizer_kwargs == {"beta_2": 0.99}


# ----------------------------------------------------------------- a model family


@pytest.fixture
def contributed_family():
    """A family added as the table says; unregistered afterwards."""

    @register_model(FAMILY, default_input_shape=(8, 8, 1), description="Two binary dense layers.")
    def contrib_mlp(input_shape, num_classes, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                    kernel_constraint="weight_clip", width: float = 1.0, units: int = 64):
        """A binary MLP: one hidden binary dense layer of `units * width` units."""
        (n_units,) = scaled_sizes("units", [units], width)
        binary = BinaryLayerArgs(input_quantizer, kernel_quantizer, kernel_constraint)
        inputs = tf.keras.Input(shape=input_shape)
        x = tf.keras.layers.Flatten()(inputs)
        x = lq.layers.QuantDense(n_units, **binary.layer_kwargs(binary_inputs=False), name="dense")(x)
        x = tf.keras.layers.BatchNormalization(momentum=0.9, scale=False, name="bn")(x)
        x = lq.layers.QuantDense(num_classes, **binary.layer_kwargs(), name="classifier")(x)
        x = tf.keras.layers.BatchNormalization(momentum=0.9, scale=False, name="bn_classifier")(x)
        outputs = tf.keras.layers.Activation("softmax", name="softmax")(x)
        return tf.keras.Model(inputs, outputs, name=FAMILY)

    try:
        yield contrib_mlp
    finally:
        model_registry._MODELS.unregister(FAMILY)


def test_model_family_row_is_register_model():
    row = _table_row("a model family")
    assert re.search(r"`@register_model\(\"name\", default_input_shape=", row)
    assert "BinaryLayerArgs" in row and "scaled_sizes" in row


def test_model_family_row(contributed_family, digits, mirrored_strategy, tmp_path):
    """The shared family suite of `tests/test_models.py` on the new family (8x8 inputs,
    so the digits rows apply too)."""
    small = {"units": 32}
    run_family_build_test(FAMILY, tmp_path, small)
    run_below_minimum_test(FAMILY, small)
    config = family_digits_config(FAMILY, small)
    assert_learned(run_resume_test(config, tmp_path, digits), config, FAMILY_DIGITS_BAR)
    run_mirrored_test(family_digits_config(FAMILY, small, strategy="mirrored"), digits, mirrored_strategy,
                      min_accuracy=FAMILY_DIGITS_BAR)


def test_throwaway_objects_are_gone_after_their_tests():
    """The fixtures restore the registries (runs after the rows in file order)."""
    assert QUANTIZER not in Q.list_quantizers() and FAMILY not in model_registry.list_models()
    assert OPTIMIZER not in list_optimizers() and "beta_2" not in builder_flags()
    assert QUANTIZER not in tf.keras.utils.get_custom_objects()
    assert "HalvingWarmup" not in tf.keras.utils.get_custom_objects()
