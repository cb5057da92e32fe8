"""FSG in the authors' form (`FSGAuthors`, `fsg_authors`): the latent update is c ⊙ g_fast
(NumPy reference), g_slow only reaches W_meta, a linear fast net on DoReFa's p, and the
generators' own Adam optimizers. Resume, saving and mirrored training run for
`fsg_authors` in tests/test_every_optimizer.py like for every registered optimizer."""

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import bnnzoo
from _base import run_digits_training_test
from bnnzoo.fsg import FSG, FSGAuthors, FastNet, wrap
from bnnzoo.training import TrainConfig

LR = 0.1  # SGD's step on the latent weight: W <- W - LR * (c ⊙ g_fast), exactly
ALPHA = 0.9
L = 3


def _tiny(cls=FSGAuthors, slow_readout=0.0):
    """One binary dense layer (4 -> 3, no bias) with fixed latent weights and a full,
    fixed gradient history, trained by SGD(LR); the slow net's read-out set to
    `slow_readout` (0: g_slow is the newest gradient; else a learned correction)."""
    tf.keras.utils.set_random_seed(0)
    x = tf.keras.Input((4,))
    y = lq.layers.QuantDense(3, kernel_quantizer="ste_sign", use_bias=False, name="binary")(x)
    model = wrap(tf.keras.Model(x, y))
    optimizer = cls(inner=tf.keras.optimizers.legacy.SGD(LR), history=L, alpha=ALPHA)
    model.compile(optimizer=optimizer, loss="mse")
    rng = np.random.default_rng(0)
    layer = optimizer.binary_layers[0]
    layer.kernel.latent_variable.assign(rng.uniform(-1.5, 1.5, size=(4, 3)).astype("float32"))
    history = rng.normal(size=(L, 4, 3)).astype("float32")
    optimizer.layer_states[0].gradient_history.buffer.assign(history)
    optimizer.iterations.assign(L)  # every slot filled
    optimizer.slow_net.readout.assign(tf.fill(optimizer.slow_net.readout.shape, slow_readout))
    return model, optimizer, history


def _batch():
    rng = np.random.default_rng(1)
    return rng.normal(size=(8, 4)).astype("float32"), rng.normal(size=(8, 3)).astype("float32")


def _latent_step(cls=FSGAuthors, slow_readout=0.0):
    """(W before, W after one training step, G of that step, optimizer before the step's
    values: fast-net kernels, history)."""
    model, optimizer, history = _tiny(cls, slow_readout)
    kernel = optimizer.binary_layers[0].kernel.latent_variable
    before = kernel.numpy().copy()
    fast = [k.numpy().astype("float64") for k in optimizer.fast_net.kernels]
    generated = optimizer.generated_gradients()[0].numpy()
    model.train_on_batch(*_batch())
    return before, kernel.numpy(), generated, fast, history, optimizer


def test_registered_and_built_like_fsg():
    assert "fsg_authors" in bnnzoo.optimizers.list_optimizers()
    optimizer = bnnzoo.optimizers.get_optimizer("fsg_authors", 1e-3)
    assert isinstance(optimizer, FSGAuthors) and isinstance(optimizer, FSG)
    assert optimizer.slow_net_name == "gru"
    assert bnnzoo.optimizers.get_optimizer("fsg_authors", 1e-3, slow_net="attention").slow_net_name == "attention"
    assert bnnzoo.optimizers.optimizer_spec("fsg_authors").wrap_model is wrap


def test_linear_fast_net_is_exact():
    net = FastNet((100, 100), activation=None)
    p = np.random.default_rng(0).uniform(0, 1, size=200).astype("float32")
    x = p[:, None].astype("float64")
    for k in net.kernels:
        x = x @ k.numpy().astype("float64")  # no nonlinearity
    np.testing.assert_allclose(net(tf.constant(p)).numpy(), x[:, 0], rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="activation"):
        FastNet(activation="tanh")


def test_latent_update_is_c_times_g_fast_numpy_reference():
    before, after, generated, fast, history, optimizer = _latent_step()
    w = before.astype("float64")
    t = np.tanh(w)
    c = (1 - t**2) / np.abs(t).max()
    p = t / (2 * np.abs(t).max()) + 0.5  # DoReFa's pre-quantized weight, in [0, 1]
    assert 0 <= p.min() and p.max() <= 1
    scalar = (np.ones((1, 1)) @ fast[0] @ fast[1] @ fast[2])[0, 0]  # the linear fast net
    g_fast = history[-1] * (p * scalar)
    expected_step = -LR * c * g_fast
    assert np.abs(expected_step).max() > 1e-3  # a step the check can see
    np.testing.assert_allclose(after - before, expected_step, rtol=1e-4, atol=1e-6)
    # G (the step of W_meta) mixes in g_slow: G = α g_slow + (1 - α) c ⊙ g_fast, and
    # with a zero slow read-out g_slow is the newest gradient itself.
    np.testing.assert_allclose(generated, ALPHA * history[-1] + (1 - ALPHA) * c * g_fast, rtol=1e-4, atol=1e-6)
    # The inner optimizer holds no state for the generator (SGD has none anyway), the
    # generator's own optimizers stepped.
    assert int(optimizer.slow_optimizer.iterations) == int(optimizer.fast_optimizer.iterations) == 1


def test_slow_gradient_does_not_reach_the_latent_update():
    before, after, generated, *_ = _latent_step(slow_readout=0.0)
    before2, after2, generated2, *_ = _latent_step(slow_readout=1.0)
    np.testing.assert_array_equal(before, before2)
    assert np.abs(generated - generated2).max() > 1e-3  # g_slow changed W_meta ...
    np.testing.assert_array_equal(after - before, after2 - before2)  # ... not the latent update
    # bnnzoo's FSG, same setting: its latent update is G, so it moves with g_slow.
    ours = [_latent_step(FSG, readout) for readout in (0.0, 1.0)]
    assert np.abs((ours[0][1] - ours[0][0]) - (ours[1][1] - ours[1][0])).max() > 1e-4


def test_generators_have_their_own_adam_optimizers(digits):
    tf.keras.utils.set_random_seed(0)
    model = wrap(bnnzoo.models.create_model("binarynet_mlp", input_shape=(8, 8, 1), units=16, hidden_layers=1))
    optimizer = bnnzoo.optimizers.get_optimizer("fsg_authors", 1e-3)
    inner, slow, fast = optimizer.inner, optimizer.slow_optimizer, optimizer.fast_optimizer
    assert optimizer.optimizers == [inner, slow, fast]
    assert all(type(o) is tf.keras.optimizers.legacy.Adam for o in (inner, slow, fast))
    assert len({id(o) for o in (inner, slow, fast)}) == 3
    assert float(slow.learning_rate) == pytest.approx(1e-3) and float(fast.learning_rate) == pytest.approx(1e-2)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    slow_vars = [*optimizer.slow_net.trainable_variables, *[s.layer_embedding for s in optimizer.layer_states]]
    fast_vars = list(optimizer.fast_net.trainable_variables)
    assert [[id(v) for v in vs] for _, vs in optimizer.generator_optimizers()] == [
        [id(v) for v in slow_vars], [id(v) for v in fast_vars]]
    before = [v.numpy().copy() for v in slow_vars + fast_vars]
    model.fit(digits.x_train[:256], digits.y_train[:256], batch_size=64, epochs=1, verbose=0)
    assert int(slow.iterations) == int(fast.iterations) == int(optimizer.iterations) == 4
    unchanged = [v.name for v, b in zip(slow_vars + fast_vars, before) if np.array_equal(v.numpy(), b)]
    assert not unchanged, f"generator variables not trained: {unchanged}"
    # Each generator variable has Adam slots in its own optimizer only.
    for owner, variables in ((slow, slow_vars), (fast, fast_vars)):
        for v in variables:
            assert np.any(owner.get_slot(v, "m").numpy())
            for other in {inner, slow, fast} - {owner}:
                with pytest.raises(KeyError):
                    other.get_slot(v, "m")
    # The latent kernels and the real-valued variables are the inner optimizer's.
    for v in model.trainable_variables:
        inner.get_slot(v, "m")
    # The optimizer's state (checkpointed and compared on resume) holds all three.
    state = {id(w) for w in optimizer.weights}
    assert all(id(w) in state for o in (inner, slow, fast) for w in o.weights)


def test_config_round_trip_and_validation():
    optimizer = FSGAuthors(slow_net="attention", history=3, alpha=0.5,
                           fast_optimizer=tf.keras.optimizers.legacy.SGD(0.5))
    clone = FSGAuthors.from_config(optimizer.get_config())
    assert clone.get_config() == optimizer.get_config()
    assert isinstance(clone.fast_optimizer, tf.keras.optimizers.legacy.SGD)
    assert float(clone.fast_optimizer.learning_rate) == pytest.approx(0.5)
    assert float(clone.slow_optimizer.learning_rate) == pytest.approx(1e-3)
    assert clone.slow_optimizer.epsilon == pytest.approx(1e-8)  # PyTorch's Adam
    for kwargs, word in [({"slow_optimizer": object()}, "slow_optimizer"),
                         ({"fast_optimizer": 3}, "fast_optimizer"), ({"alpha": 2.0}, "alpha")]:
        with pytest.raises(ValueError, match=word):
            FSGAuthors(**kwargs)
    shared = tf.keras.optimizers.legacy.Adam()
    with pytest.raises(ValueError, match="distinct"):
        FSGAuthors(inner=shared, fast_optimizer=shared)


def test_trains_digits_through_train(digits):
    config = TrainConfig(model="binarynet_mlp", dataset="digits", optimizer="fsg_authors", epochs=3,
                         batch_size=64, learning_rate=1e-2, model_kwargs={"units": 64, "hidden_layers": 1})
    # chance is 0.10; measured 0.905-0.916 after 3 epochs (seeds 0-2; fsg: 0.911-0.916)
    run_digits_training_test(config, digits, min_accuracy=0.8)


# slow: the .keras round trip (compile=False) of every optimizer runs in tests/test_every_optimizer.py.
@pytest.mark.slow
def test_keras_file_roundtrip_keeps_the_variant(digits, tmp_path):
    tf.keras.utils.set_random_seed(0)
    model = wrap(bnnzoo.models.create_model("binarynet_mlp", input_shape=(8, 8, 1), units=16, hidden_layers=1))
    optimizer = bnnzoo.optimizers.get_optimizer("fsg_authors", 1e-3, fast_learning_rate=5e-3)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    model.fit(digits.x_train[:128], digits.y_train[:128], batch_size=64, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = tf.keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, FSGAuthors)
    assert loaded.optimizer.get_config() == optimizer.get_config()
    assert float(loaded.optimizer.fast_optimizer.learning_rate) == pytest.approx(5e-3)
    np.testing.assert_allclose(loaded.predict(digits.x_test, verbose=0), model.predict(digits.x_test, verbose=0),
                               atol=1e-5)
    loaded.fit(digits.x_train[:64], digits.y_train[:64], batch_size=64, epochs=1, verbose=0)
    assert int(loaded.optimizer.fast_optimizer.iterations) == 1
