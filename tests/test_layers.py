"""HyperConv2D / HyperDense: generated kernel, gradients, inference form, training."""

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import bnnzoo
from bnnzoo.layers import HyperConv2D, HyperDense, is_hyper_layer, to_inference_model
from bnnzoo.training import TrainConfig, train


def _set_fixed(layer, rng):
    z = rng.normal(size=layer.embeddings.shape).astype("float32")
    wh = rng.normal(size=layer.hyper_kernel.shape).astype("float32") * 0.3
    layer.embeddings.assign(z)
    layer.hyper_kernel.assign(wh)
    layer.scale.assign(0.7)
    return z, wh, 0.7


def test_hyperconv_generated_kernel_equals_formula():
    layer = HyperConv2D(4, (3, 2), input_quantizer="ste_sign", kernel_quantizer="ste_sign")
    layer.build((None, 6, 6, 3))
    z, wh, s = _set_fixed(layer, np.random.default_rng(0))
    assert z.shape == (3, 4, 9) and wh.shape == (6, 9)
    expected = np.zeros((3, 2, 3, 4), "float32")
    for i in range(3):
        for o in range(4):
            expected[:, :, i, o] = (s * wh @ z[i, o]).reshape(3, 2)
    np.testing.assert_allclose(layer.generated_kernel().numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(layer.binary_kernel().numpy(), np.where(expected >= 0, 1.0, -1.0))
    assert "kernel" not in vars(layer)  # no latent kernel variable


def test_hyperdense_formula_and_gradient():
    layer = HyperDense(5, kernel_quantizer="ste_sign")
    layer.build((None, 4))
    z, wh, s = _set_fixed(layer, np.random.default_rng(1))
    expected = s * np.einsum("ke,ioe->io", wh, z)
    np.testing.assert_allclose(layer.generated_kernel().numpy(), expected, rtol=1e-5, atol=1e-6)
    # Hyper accumulation: dL/dz_io = s * W_h^T (1{|W|<=1} * dL/dŴ) for L = sum(U * Ŵ).
    upstream = np.random.default_rng(2).normal(size=(4, 5)).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(upstream * layer.binary_kernel())
    dz, dwh, ds = tape.gradient(loss, [layer.embeddings, layer.hyper_kernel, layer.scale])
    masked = upstream * (np.abs(expected) <= 1)
    np.testing.assert_allclose(dz.numpy(), s * masked[:, :, None] * wh[0][None, None, :], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dwh.numpy()[0], s * np.einsum("io,ioe->e", masked, z), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(float(ds), np.sum(masked * expected / s), rtol=1e-4)


def test_hyper_config_roundtrip_and_validation():
    layer = HyperConv2D(8, 3, embedding_dim=5, padding="same", kernel_quantizer="ste_sign")
    clone = HyperConv2D.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config() and clone.embedding_dim == 5
    with pytest.raises(ValueError, match="embedding_dim"):
        HyperDense(3, embedding_dim=0)
    with pytest.raises(ValueError, match="hyper"):
        bnnzoo.models.create_model("binarynet", input_shape=(8, 8, 1), hyper=True,
                                   conv_layer=lq.layers.QuantConv2D)


def test_inference_model_matches_and_counts_binary(digits, tmp_path):
    tf.keras.utils.set_random_seed(0)
    model = bnnzoo.models.create_model("binarynet", input_shape=(8, 8, 1), num_classes=10,
                                       width=1 / 16, hyper=True)
    assert sum(is_hyper_layer(layer) for layer in model.layers) == 6
    model(digits.x_train[:32], training=True)  # move batch-norm statistics off their init
    expected = model.predict(digits.x_test, verbose=0)
    inference = to_inference_model(model)
    assert not any(is_hyper_layer(layer) for layer in inference.layers)
    np.testing.assert_allclose(inference.predict(digits.x_test, verbose=0), expected, atol=1e-5)
    conv = inference.get_layer("conv_1")
    assert isinstance(conv, lq.layers.QuantConv2D)
    assert set(np.unique(conv.kernel.latent_variable.numpy())) <= {-1.0, 1.0}
    profile = lq.models.ModelProfile(inference)
    binary_conv = sum(int(np.prod(inference.get_layer(f"conv_{i}").kernel.shape)) for i in range(6))
    assert profile.weight_count(bitwidth=1) >= binary_conv
    model.save(tmp_path / "hyper.keras")
    loaded = tf.keras.models.load_model(tmp_path / "hyper.keras")
    np.testing.assert_allclose(loaded.predict(digits.x_test, verbose=0), expected, atol=1e-5)


def test_hyper_ste_warmup_model_trains_digits(digits):
    assert "ste_warmup" in bnnzoo.quantizers.list_quantizers()
    config = TrainConfig(model="binarynet_mlp", dataset="digits", quantizer="ste_warmup", epochs=10,
                         learning_rate=1e-2, model_kwargs={"units": 128, "hyper": True})
    result = train(config, arrays=digits, verbose=0)
    assert result.metrics["test_accuracy"] >= 0.90, result.metrics
    inference = to_inference_model(result.model)
    accuracy = np.mean(np.argmax(inference.predict(digits.x_test, verbose=0), 1) == digits.y_test)
    assert accuracy == pytest.approx(result.metrics["test_accuracy"], abs=1e-6)
