"""The `Registry` type (`unregister`) and the model registry: listing, creating, errors,
weights and quantizer handling."""

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from bnnzoo import models
from bnnzoo.models import registry
from bnnzoo.registry import Registry


def _binary_layers(model):
    return [l for l in model.layers if getattr(getattr(l, "kernel_quantizer", None), "precision", None) == 1
            or getattr(l, "kernel_quantizer", None) == "ste_sign"]


def test_unregister_restores_the_registry():
    """`unregister` returns what was registered, frees the name for another object,
    and refuses (listing the valid names, changing nothing) a name it does not hold."""
    colours = Registry("colour")
    colours.register("blue", "#00f")
    colours.register("red", "#f00")
    assert colours.unregister("red") == "#f00"
    assert colours.names() == ["blue"] and "red" not in colours and len(colours) == 1
    assert colours.register("red", "#e00") == "#e00"  # no longer "already registered"
    with pytest.raises(ValueError, match=r"^Unknown colour 'green'\. Valid names: blue, red$"):
        colours.unregister("green")
    assert colours.items() == [("blue", "#00f"), ("red", "#e00")]


def test_list_models_and_filter():
    names = models.list_models()
    assert {"binarynet", "binarynet_mlp"} <= set(names)
    assert names == sorted(names)
    assert models.list_models("binarynet_m*") == ["binarynet_mlp"]


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="binarynet_mlp"):
        models.create_model("resnet9000")


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        models.register_model("binarynet", default_input_shape=(8, 8, 1))(lambda **kw: None)


def test_input_below_minimum_fails_clearly(monkeypatch):
    spec = registry.get_model_spec("binarynet")
    monkeypatch.setitem(registry._MODELS._entries, "binarynet", registry.ModelSpec(
        name="binarynet", builder=spec.builder, default_input_shape=(32, 32, 3), min_input_size=16))
    with pytest.raises(ValueError, match="at least 16x16"):
        models.create_model("binarynet", input_shape=(8, 8, 1))


@pytest.mark.parametrize("kwargs", [{"input_shape": (8, 8)}, {"num_classes": 1}, {"width": 0}])
def test_bad_shapes_and_options(kwargs):
    with pytest.raises(ValueError):
        models.create_model("binarynet_mlp", **kwargs)


def test_binarynet_fits_small_inputs_and_binarizes():
    model = models.create_model("binarynet", input_shape=(8, 8, 1), num_classes=10, width=1 / 16)
    assert model.output_shape == (None, 10)
    convs = [l for l in model.layers if isinstance(l, lq.layers.QuantConv2D)]
    assert len(convs) == 6
    assert convs[0].input_quantizer is None  # first layer keeps real-valued pixels
    assert all(c.kernel_quantizer.precision == 1 for c in convs)
    assert all(c.input_quantizer.precision == 1 for c in convs[1:])
    out = model(np.zeros((2, 8, 8, 1), np.float32))
    np.testing.assert_allclose(out.numpy().sum(axis=1), 1.0, rtol=1e-5)


def test_quantizer_objects_are_not_shared_between_layers():
    q = lq.quantizers.SteSign(clip_value=0.5)
    model = models.create_model("binarynet_mlp", units=16, input_quantizer=q, kernel_quantizer=q)
    dense = [l for l in model.layers if isinstance(l, lq.layers.QuantDense)]
    kernels = [l.kernel_quantizer for l in dense]
    assert len({id(k) for k in kernels}) == len(kernels)
    assert all(k.clip_value == 0.5 for k in kernels)


def test_weights_from_file(tmp_path):
    a = models.create_model("binarynet_mlp", units=16)
    path = tmp_path / "w.weights.h5"
    a.save_weights(path)
    b = models.create_model("binarynet_mlp", units=16, weights=str(path))
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype("float32")
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
