"""FSG: history storage, layer embeddings, fast/slow nets, training step, save/resume."""

import numpy as np
import pytest
import tensorflow as tf

import bnnzoo
from bnnzoo.fsg import FSGModel, unwrap, wrap
from bnnzoo.fsg import (
    FSG,
    SLOW_NETS,
    FastNet,
    HistoricalGradientStorage,
    binary_kernel_layers,
)
from bnnzoo.training import TrainConfig, train


def _model(units=16, seed=0):
    tf.keras.utils.set_random_seed(seed)
    return bnnzoo.models.create_model("binarynet_mlp", input_shape=(8, 8, 1), num_classes=10,
                                      units=units, hidden_layers=2)


def _compiled(slow_net="gru", units=16, seed=0, **kwargs):
    model = wrap(_model(units, seed))
    optimizer = FSG(inner=tf.keras.optimizers.legacy.Adam(1e-2), slow_net=slow_net, **kwargs)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model, optimizer


def _np_mlp(kernels, x):
    for i, k in enumerate(kernels):
        x = x @ k
        if i < len(kernels) - 1:
            x = np.maximum(x, 0)
    return x


def test_registered():
    assert {"fsg", "fsg_attention"} <= set(bnnzoo.optimizers.list_optimizers())
    assert bnnzoo.optimizers.get_optimizer("fsg_attention", 1e-3).slow_net_name == "attention"
    assert set(SLOW_NETS) >= {"gru", "attention"}


def test_hgs_fifo_order_and_length():
    hgs = HistoricalGradientStorage((2, 3), length=5)
    for i in range(7):
        hgs.push(tf.fill((2, 3), float(i + 1)))
    np.testing.assert_array_equal(hgs.buffer.numpy()[:, 0, 0], [3, 4, 5, 6, 7])
    assert hgs.buffer.shape == (5, 2, 3)
    assert not hgs.buffer.trainable
    assert hgs.memory_bytes == 5 * 6 * 4


def test_fast_net_homogeneous_evaluation_is_exact():
    net = FastNet((100, 100))
    w = np.random.default_rng(0).uniform(-1.5, 1.5, size=500).astype("float32")
    reference = _np_mlp([k.numpy() for k in net.kernels], w[:, None])[:, 0]
    np.testing.assert_allclose(net(tf.constant(w)).numpy(), reference, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("slow_net", ["gru", "attention"])
def test_generated_gradient_per_layer(slow_net):
    model, opt = _compiled(slow_net)
    layers = binary_kernel_layers(model)
    assert [layer.name for layer in opt.binary_layers] == [layer.name for layer in layers]
    assert len(layers) == 3
    # Step 0: empty history -> zero generated gradient of each kernel's shape.
    for layer, g in zip(layers, opt.generated_gradients()):
        assert g.shape == layer.kernel.shape and g.dtype == tf.float32
        assert not np.any(g.numpy())
    # Layers of different sizes: fill histories, then compare with the formula.
    rng = np.random.default_rng(1)
    for state, layer in zip(opt.layer_states, layers):
        state.gradient_history.buffer.assign(rng.normal(size=state.gradient_history.buffer.shape).astype("float32") * 1e-3)
    opt.iterations.assign(2)  # two filled slots
    generated = opt.generated_gradients()
    fast = [k.numpy() for k in opt.fast_net.kernels]
    for state, layer, g in zip(opt.layer_states, layers, generated):
        w = layer.kernel.latent_variable.numpy().reshape(-1)
        history = state.gradient_history.buffer.numpy().reshape(5, -1)
        rms = np.sqrt(np.sum(history ** 2) / (2 * w.size))
        mask = tf.constant([0, 0, 0, 1, 1], tf.float32)
        slow = rms * opt.slow_net(tf.constant(history / rms), mask, state.layer_embedding).numpy()
        c = (1 - np.tanh(w) ** 2) / np.abs(np.tanh(w)).max()
        f = _np_mlp(fast, w[:, None])[:, 0]
        expected = 0.9 * slow + 0.1 * c * history[-1] * f
        assert g.shape == layer.kernel.shape
        np.testing.assert_allclose(g.numpy().reshape(-1), expected, rtol=2e-3, atol=1e-9)


def test_slow_net_ignores_unfilled_slots():
    _, opt = _compiled("gru")
    tokens = np.random.default_rng(2).normal(size=(5, 7)).astype("float32")
    mask = tf.constant([0, 0, 1, 1, 1], tf.float32)
    embedding = opt.layer_states[0].layer_embedding
    for net in (opt.slow_net, SLOW_NETS.get("attention")(8, 4, 5)):
        net.readout.assign(tf.ones_like(net.readout))  # a non-zero correction
        changed = tokens.copy()
        changed[:2] = 100.0  # unfilled slots hold anything
        np.testing.assert_allclose(net(tf.constant(tokens), mask, embedding).numpy(),
                                   net(tf.constant(changed), mask, embedding).numpy(), rtol=1e-5)


def _np_gru_slow(net, tokens, mask, embedding):
    """NumPy reference (float64) of `GRUSlowNet`: Keras' GRU gates, the layer token
    first, masked steps leave the state unchanged, linear read-out of the last state."""
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    (ez, eh), (bz, br, bh) = ([k.numpy().astype("float64") for k in ks] for ks in (net.embedding_kernels, net.biases))
    kx = [k.numpy().astype("float64")[0] for k in net.input_kernels]
    uu = [k.numpy().astype("float64") for k in net.recurrent_kernels]
    z, c = sig(embedding @ ez + bz), np.tanh(embedding @ eh + bh)
    h = np.broadcast_to(c - z * c, (tokens.shape[1], net.units))
    for j, x in enumerate(tokens.astype("float64")):
        x = x[:, None]
        z, r = sig(x * kx[0] + bz + h @ uu[0]), sig(x * kx[1] + br + h @ uu[1])
        c = np.tanh(x * kx[2] + bh + r * (h @ uu[2]))
        h = h if mask[j] == 0 else z * h + (1 - z) * c
    return tokens[-1] + (h @ net.readout.numpy())[:, 0]


def _tf_gru_slow(net, tokens, mask, embedding):
    """The same in plain TensorFlow ops (the gradient reference for the hand-written one)."""
    (ez, eh), (bz, br, bh) = net.embedding_kernels, net.biases
    z, c = tf.sigmoid(tf.linalg.matvec(ez, embedding, transpose_a=True) + bz), tf.tanh(
        tf.linalg.matvec(eh, embedding, transpose_a=True) + bh)
    h = tf.broadcast_to(c - z * c, (tokens.shape[1], net.units))
    for j in range(tokens.shape[0]):
        x = tokens[j][:, None]
        kz, kr, kh = net.input_kernels
        uz, ur, uh = net.recurrent_kernels
        z, r = tf.sigmoid(x * kz + bz + h @ uz), tf.sigmoid(x * kr + br + h @ ur)
        c = tf.tanh(x * kh + bh + r * (h @ uh))
        h = h + mask[j] * (z * h + (1 - z) * c - h)
    return tokens[-1] + (h @ net.readout)[:, 0]


@pytest.mark.parametrize("filled", [0, 2, 5])
def test_gru_slow_net_of_several_layers_matches_references(filled):
    rng = np.random.default_rng(3)
    net = SLOW_NETS.get("gru")(8, 4, 5)
    net.readout.assign(rng.normal(size=(4, 1)).astype("float32"))
    for bias in net.biases:
        bias.assign(rng.normal(size=4).astype("float32"))
    mask = np.array([0.0] * (5 - filled) + [1.0] * filled, "float32")
    tokens = [tf.constant(rng.normal(size=(5, n)).astype("float32")) for n in (7, 64, 33)]  # padding, alignment
    embeddings = [tf.Variable(rng.normal(size=8).astype("float32")) for _ in tokens]
    weights = [rng.normal(size=t.shape[1]).astype("float32") for t in tokens]
    variables = [*net.trainable_variables, *embeddings]
    gradients = []
    for run in (lambda: net.per_layer(tokens, tf.constant(mask), embeddings),
                lambda: [_tf_gru_slow(net, t, tf.constant(mask), e) for t, e in zip(tokens, embeddings)]):
        with tf.GradientTape() as tape:
            slow = run()
            loss = tf.add_n([tf.reduce_sum(s * w) for s, w in zip(slow, weights)])
        gradients.append([np.zeros(v.shape) if g is None else g.numpy() for g, v in
                          zip(tape.gradient(loss, variables), variables)])
        for s, t, e in zip(slow, tokens, embeddings):
            reference = _np_gru_slow(net, t.numpy(), mask, e.numpy().astype("float64"))
            np.testing.assert_allclose(s.numpy(), reference, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(net(tokens[1], tf.constant(mask), embeddings[1]).numpy(),
                               net.per_layer(tokens, tf.constant(mask), embeddings)[1].numpy(), rtol=1e-5, atol=1e-6)
    for v, ours, reference in zip(variables, *gradients):
        np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-5, err_msg=v.name)
    recurrent = next(i for i, v in enumerate(variables) if v is net.recurrent_kernels[0])
    assert filled == 0 or np.abs(gradients[0][recurrent]).max() > 1e-3  # a check that can fail


def test_lre_distinct_per_layer_and_memory_bound():
    model, opt = _compiled("gru")
    embeddings = np.stack([s.layer_embedding.numpy() for s in opt.layer_states])
    assert embeddings.shape == (3, 8)
    assert len({tuple(np.round(e, 6)) for e in embeddings}) == 3
    binary_params = sum(int(np.prod(layer.kernel.shape)) for layer in binary_kernel_layers(model))
    assert opt.history_memory_bytes() == 5 * binary_params * 4
    # the generator is small next to the history: fast net 100x100 dominates
    assert opt.generator_memory_bytes() < 4 * (100 * 100 + 2 * 100 + 2000)


@pytest.mark.parametrize("slow_net", ["gru", "attention"])
def test_fast_and_slow_nets_are_trained(digits, slow_net):
    model, opt = _compiled(slow_net)
    before = [v.numpy().copy() for v in opt.meta_variables]
    kernels = [layer.kernel.latent_variable.numpy().copy() for layer in opt.binary_layers]
    model.fit(digits.x_train[:256], digits.y_train[:256], batch_size=64, epochs=1, verbose=0)
    assert int(opt.iterations) == 4
    unchanged = [v.name for v, b in zip(opt.meta_variables, before) if np.array_equal(v.numpy(), b)]
    assert not unchanged, f"generator variables not trained: {unchanged}"
    for layer, k in zip(opt.binary_layers, kernels):
        assert not np.array_equal(layer.kernel.latent_variable.numpy(), k)
    # 4 steps with L = 5: the oldest slot is still empty, the others are filled.
    buffer = opt.layer_states[1].gradient_history.buffer.numpy()
    assert not np.any(buffer[0]) and all(np.any(buffer[i]) for i in range(1, 5))


# slow: covered in the default suite by tests/test_every_optimizer.py (fsg trains digits and resumes).
@pytest.mark.slow
def test_fsg_trains_digits_through_shared_routine(digits, tmp_path):
    config = TrainConfig(model="binarynet_mlp", dataset="digits", optimizer="fsg", epochs=10,
                         learning_rate=1e-2, model_kwargs={"units": 128})
    result = train(config, out=tmp_path / "run", arrays=digits, verbose=0)
    assert isinstance(result.model, FSGModel)
    assert result.metrics["test_accuracy"] >= 0.90, result.metrics
    loaded = bnnzoo.training.load_model(tmp_path / "run")
    assert isinstance(loaded, FSGModel)
    np.testing.assert_allclose(loaded.predict(digits.x_test, verbose=0),
                               result.model.predict(digits.x_test, verbose=0), atol=1e-5)


# slow: covered in the default suite by tests/test_every_optimizer.py (bit-identical resume).
@pytest.mark.slow
def test_checkpoint_restores_history_and_training_continues(digits, tmp_path):
    x, y = digits.x_train[:128], digits.y_train[:128]
    model, opt = _compiled("attention")
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    path = tf.train.Checkpoint(model=model, optimizer=opt).save(str(tmp_path / "ckpt"))

    restored, opt2 = _compiled("attention", seed=5)
    tf.train.Checkpoint(model=restored, optimizer=opt2).restore(path).assert_existing_objects_matched()
    assert int(opt2.iterations) == 2
    for a, b in zip(opt.layer_states, opt2.layer_states):
        np.testing.assert_array_equal(a.gradient_history.buffer.numpy(), b.gradient_history.buffer.numpy())
        np.testing.assert_array_equal(a.layer_embedding.numpy(), b.layer_embedding.numpy())
    for a, b in zip(opt.meta_variables, opt2.meta_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # the same next step from both
    model.fit(x[:64], y[:64], batch_size=64, epochs=1, verbose=0, shuffle=False)
    restored.fit(x[:64], y[:64], batch_size=64, epochs=1, verbose=0, shuffle=False)
    assert int(opt2.iterations) == 3
    for a, b in zip(opt.binary_layers, opt2.binary_layers):
        np.testing.assert_allclose(a.kernel.latent_variable.numpy(), b.kernel.latent_variable.numpy(), atol=1e-6)


# slow: the .keras round trip of FSG models runs in tests/test_every_optimizer.py.
@pytest.mark.slow
def test_keras_file_roundtrip_and_unwrap(digits, tmp_path):
    model, opt = _compiled("gru")
    model.fit(digits.x_train[:128], digits.y_train[:128], batch_size=64, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = tf.keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded, FSGModel) and isinstance(loaded.optimizer, FSG)
    assert loaded.optimizer.get_config() == opt.get_config()
    expected = model.predict(digits.x_test, verbose=0)
    np.testing.assert_allclose(loaded.predict(digits.x_test, verbose=0), expected, atol=1e-5)
    np.testing.assert_allclose(unwrap(loaded).predict(digits.x_test, verbose=0), expected, atol=1e-5)
    loaded.fit(digits.x_train[:64], digits.y_train[:64], batch_size=64, epochs=1, verbose=0)
    assert int(loaded.optimizer.iterations) == 1


def test_config_roundtrip_and_validation():
    opt = FSG(inner=tf.keras.optimizers.legacy.SGD(0.1), slow_net="attention", history=3, alpha=0.5)
    clone = FSG.from_config(opt.get_config())
    assert clone.get_config() == opt.get_config()
    assert isinstance(clone.inner, tf.keras.optimizers.legacy.SGD)
    assert float(clone.learning_rate) == pytest.approx(0.1)
    for kwargs, word in [({"history": 0}, "history"), ({"alpha": 1.5}, "alpha"),
                         ({"slow_net": "mamba"}, "slow_net"), ({"units": 0}, "units"),
                         ({"inner": object()}, "inner"), ({"fast_hidden": ()}, "fast_hidden")]:
        with pytest.raises(ValueError, match=word):
            FSG(**kwargs)


def test_unwrapped_model_is_refused(digits):
    model = _model()
    model.compile(optimizer=FSG(), loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="bnnzoo.fsg.wrap"):
        model.fit(digits.x_train[:64], digits.y_train[:64], epochs=1, verbose=0)
    with pytest.raises(ValueError, match="functional"):
        wrap(tf.keras.Sequential([tf.keras.layers.Dense(2)]))


@pytest.mark.slow
def test_mirrored_strategy_keeps_replicas_in_sync(digits, mirrored_strategy):
    with mirrored_strategy.scope():
        model, opt = _compiled("gru")
    history = model.fit(digits.x_train[:256], digits.y_train[:256], batch_size=64, epochs=2, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    for state in opt.layer_states:
        first, second = (v.numpy() for v in state.gradient_history.buffer.values)
        assert np.any(first) and np.isfinite(first).all()
        np.testing.assert_array_equal(first, second)


# slow: benchmark plumbing; the benchmark itself is run by hand.
@pytest.mark.slow
def test_benchmark_quick_mode(tmp_path, load_script):
    module = load_script("benchmarks/learned_gradients.py")
    report = module.main(["--quick", "--out-dir", str(tmp_path)])
    summary = report["summary"]
    assert set(summary["final_test_accuracy"]) == set(module.METHODS)
    assert summary["step_time_ratio_fsg_vs_ste"] > 0
    assert report["timing"]["memory"]["fsg_gru"]["history_bytes"] == 5 * 4 * report["timing"]["memory"]["binary_params"]
    for name in ("learned_gradients.json", "learned_gradients.md", "learned_gradients.png"):
        assert (tmp_path / name).stat().st_size > 0
