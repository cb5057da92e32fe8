"""One shared suite over every registered model family (timm/keras-hub style).

Each family in `list_models()` is built at its default and at a small input shape
(or refused clearly below its stated minimum), run forward, checked for binary
layers, round-tripped through `get_config`/`from_config`, and saved and reloaded
with identical predictions; every family that takes digits' 8x8 inputs trains on
them above a bar, resumes that run bit-identically after an interruption, and
trains under `MirroredStrategy` on 2 logical CPUs. A family
registered tomorrow is tested by the same code.
"""

from __future__ import annotations

import json

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import bnnzoo
from bnnzoo.models import FAMILY_DEFAULT, create_model, get_model_spec, list_models
from bnnzoo.training import TrainConfig
from _base import (
    FAMILY_DIGITS_BAR,
    assert_learned,
    binary_layers,
    family_digits_config,
    run_below_minimum_test,
    run_family_build_test,
    run_mirrored_test,
    run_resume_test,
    slow_params,
    small_shape,
)

ALL_MODELS = list_models()
EXPECTED = {
    "binarynet_mlp", "binarynet", "binary_resnet20", "birealnet18", "binary_resnet_e18", "xnornet",
    "binary_alexnet", "dorefanet", "quicknet", "quicknet_small", "quicknet_large", "binary_densenet28",
}

# Options that keep each family small in tests (width where the family has one).
SMALL_KWARGS = {
    "binarynet_mlp": {"units": 64},
    "binarynet": {"width": 1 / 8},  # at 1/16 it reaches only ~0.53 on digits in 3 epochs
    "binary_resnet20": {"width": 0.5},
    "reactnet": {"width": 0.125, "depth": 8},
    "birealnet18": {"width": 0.125},
    "binary_resnet_e18": {"width": 0.125},
    "binary_densenet28": {"width": 0.125},
    "quicknet": {"width": 0.125},
    "quicknet_small": {"width": 0.125},
    "quicknet_large": {"width": 0.125},
}
# Families whose default (ImageNet, 224 px) build costs several seconds each on a
# CPU: their default-shape build runs with -m slow, their small build by default.
IMAGENET_FAMILIES = [n for n in ALL_MODELS if get_model_spec(n).default_input_shape[0] >= 200]
# XNOR-Net needs 217 px and has 62 M parameters at any size; QuickNet-Large is
# QuickNet's builder with more blocks. Their build/save test runs with -m slow.
HEAVY_FAMILIES = {"xnornet", "quicknet_large"}
# larq-zoo's XNOR-Net hands one quantizer object to all its binary layers.
SHARED_QUANTIZER_FAMILIES = {"xnornet"}


# Families that take digits' 8x8 inputs (min_input_size <= 8) train on them in the
# default suite (`_base.FAMILY_DIGITS_BAR`); the others need >= 32 px (larq-zoo
# ImageNet layouts). The checks are `tests/_base.py`'s, so `tests/test_contributing.py`
# runs the same ones on a family added the way CONTRIBUTING.md says.
DIGITS_FAMILIES = [n for n in ALL_MODELS if get_model_spec(n).min_input_size <= 8]
# The training loop, its resume and its strategy scope are shared by every family, so
# the default suite trains the cheapest families (an MLP, a CNN, a ReActNet) and the
# costliest ones (30-60 s each on the 2-core CI machine) train with -m slow; every
# family still builds, runs forward, serializes and saves by default (below).
DEFAULT_TRAINED = {"binarynet_mlp", "binarynet", "reactnet"}
DEFAULT_MIRRORED = {"binarynet_mlp", "binarynet"}


def _digits_config(name: str, **kw) -> TrainConfig:
    return family_digits_config(name, SMALL_KWARGS.get(name, {}), **kw)


@pytest.mark.parametrize("name", slow_params(DIGITS_FAMILIES, set(DIGITS_FAMILIES) - DEFAULT_TRAINED))
def test_trains_on_digits_above_the_bar_and_resumes_bit_identically(name, digits, tmp_path):
    """The digits run above the bar; the same run interrupted after its first epoch and
    resumed ends with the same weights (batch-norm statistics included), optimizer
    state and history."""
    config = _digits_config(name)
    assert_learned(run_resume_test(config, tmp_path, digits), config, FAMILY_DIGITS_BAR)


@pytest.mark.parametrize("name", slow_params(DIGITS_FAMILIES, set(DIGITS_FAMILIES) - DEFAULT_MIRRORED))
def test_trains_under_mirrored_strategy(name, digits, mirrored_strategy):
    """The same training under 2 replicas (each family's variables, batch norm and
    quantizers created in the strategy's scope): finite losses, the same bar."""
    run_mirrored_test(_digits_config(name, strategy="mirrored"), digits, mirrored_strategy,
                      min_accuracy=FAMILY_DIGITS_BAR)


def test_every_family_is_registered():
    assert EXPECTED <= set(ALL_MODELS)


# Families too big for the default suite's time budget run this test with -m slow.
@pytest.mark.parametrize("name", slow_params(ALL_MODELS, HEAVY_FAMILIES))
def test_small_input_build_forward_serialize_save(name, tmp_path):
    """Any quantizer pair (by name and by object), small input: forward pass, binary
    layers, config round trip and save/reload with identical predictions."""
    # Keras 2's .h5 loader finds functions and subclassed models by registered name only,
    # and larq-zoo registers neither its blurpool initializer, DoReFa-Net's clipping
    # activation nor BinaryDenseNet: its families reload from .keras files only.
    built_by_larq_zoo = get_model_spec(name).builder.__module__.endswith("larq_zoo_families")
    run_family_build_test(name, tmp_path, SMALL_KWARGS.get(name, {}),
                          shared_quantizer=name in SHARED_QUANTIZER_FAMILIES,
                          formats=(".keras",) if built_by_larq_zoo else (".keras", ".h5"))


@pytest.mark.parametrize("name", ALL_MODELS)
def test_below_minimum_input_is_refused(name):
    run_below_minimum_test(name, SMALL_KWARGS.get(name, {}))


def test_small_models_at_default_shape():
    for name in sorted(set(ALL_MODELS) - set(IMAGENET_FAMILIES)):
        spec = get_model_spec(name)
        model = create_model(name, **SMALL_KWARGS.get(name, {}))
        assert model.input_shape[1:] == spec.default_input_shape
        assert model(np.zeros((1, *spec.default_input_shape), "float32")).shape == (1, spec.default_num_classes)


@pytest.mark.slow
@pytest.mark.parametrize("name", IMAGENET_FAMILIES)
def test_imagenet_family_at_default_shape(name):
    spec = get_model_spec(name)
    model = create_model(name)
    assert model.input_shape[1:] == spec.default_input_shape == (224, 224, 3)
    assert model(np.zeros((1, 224, 224, 3), "float32")).shape == (1, 1000)
    assert len(binary_layers(model)) > 0


def test_larq_zoo_families_keep_larq_zoo_layers_by_default():
    """With the family's default quantizers the model is larq-zoo's, layer for layer
    (so larq-zoo's ImageNet weights fit); a width multiplier shrinks it."""
    from larq_zoo.literature.birealnet import BiRealNetFactory

    ours = create_model("birealnet18", input_shape=(32, 32, 3), num_classes=10)
    theirs = BiRealNetFactory(input_shape=(32, 32, 3), num_classes=10, include_top=True, weights=None).build()
    assert [w.shape for w in ours.weights] == [w.shape for w in theirs.weights]
    quantized = [l for l in ours.layers if isinstance(l, lq.layers.QuantConv2D)]
    assert quantized[0].kernel_quantizer.__class__.__name__ == "MagnitudeAwareSign"
    assert isinstance(quantized[0].input_quantizer, lq.quantizers.ApproxSign)
    half = create_model("birealnet18", input_shape=(32, 32, 3), num_classes=10, width=0.5)
    assert half.count_params() < 0.4 * ours.count_params()


def test_bad_width_is_refused():
    for name in ("birealnet18", "quicknet", "binary_resnet20"):
        with pytest.raises(ValueError, match="width"):
            create_model(name, input_shape=small_shape(name), width=0)
    with pytest.raises(ValueError, match="size"):
        bnnzoo.models.larq_zoo_families.quicknet((32, 32, 3), 10, size="huge")


def test_binary_resnet20_layout():
    """CIFAR ResNet-20: 18 binary 3x3 convs in 3 stages of 16/32/64 filters, a real stem and head."""
    model = create_model("binary_resnet20", input_shape=(32, 32, 3), num_classes=10)
    convs = [l for l in model.layers if isinstance(l, lq.layers.QuantConv2D)]
    assert len(convs) == 18
    assert [c.filters for c in convs] == [16] * 6 + [32] * 6 + [64] * 6
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert {tuple(l.output_shape[1:3]) for l in convs} == {(32, 32), (16, 16), (8, 8)}
    assert isinstance(model.get_layer("classifier"), tf.keras.layers.Dense)
    assert not isinstance(model.get_layer("stem_conv"), lq.layers.QuantConv2D)
    assert FAMILY_DEFAULT not in json.dumps(model.get_config())


def test_binarynet_float_activation_for_weights_only_binarization():
    """A weights-only BinaryNet is linear without a nonlinearity; `activation` adds one."""
    model = bnnzoo.models.create_model("binarynet", input_shape=(8, 8, 1), num_classes=10, width=0.0625,
                                       input_quantizer=None, kernel_quantizer="dorefa_weights",
                                       activation="relu")
    acts = [l for l in model.layers if isinstance(l, tf.keras.layers.Activation) and l.name.startswith("act_")]
    assert [l.name for l in acts] == [f"act_conv_{i}" for i in range(6)] + ["act_dense_0", "act_dense_1"]
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype("float32")
    probe = tf.keras.Model(model.input, acts[0].output)
    assert float(tf.reduce_min(probe(x))) >= 0.0  # ReLU outputs
    with pytest.raises(ValueError, match="activation='relu' needs real-valued activations"):
        bnnzoo.models.create_model("binarynet", input_shape=(8, 8, 1), num_classes=10, width=0.0625,
                                   activation="relu")
    with pytest.raises(ValueError, match="activation must be a Keras activation name"):
        bnnzoo.models.create_model("binarynet", input_shape=(8, 8, 1), num_classes=10, width=0.0625,
                                   input_quantizer=None, activation="no_such")
