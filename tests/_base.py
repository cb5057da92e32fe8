"""The shared test base: checks every registered object goes through.

`test_models.py` (every model family), `test_quantizers.py` (every quantizer) and
`test_every_optimizer.py` (every optimizer) run these helpers over the registries, so
an object registered tomorrow is checked the day it is registered:

- `run_serialization_test`: `get_config` -> `from_config`, same config and outputs;
- `run_model_saving_test`: `.keras` and `.h5` save -> `load_model` with only
  `import bnnzoo`, identical predictions;
- `run_resume_test`: a run interrupted after an epoch and resumed with the same call
  ends bit-identical to an uninterrupted one (weights, optimizer state, history);
- `run_mirrored_test`: trains under `MirroredStrategy` on 2 logical CPUs;
- `run_digits_training_test`: trains on the real digits data above a stated bar
  (`assert_learned`: finite, falling loss and test accuracy above the bar).

Per quantizer name (`test_quantizers.py`, and `test_contributing.py` on a quantizer
added the documented way): `run_quantizer_reference_test` (forward and tape gradient
against NumPy), `run_quantizer_serialization_test`, `run_quantizer_layer_test` (string
and object, inputs and kernels), `run_quantizer_saving_test`, `run_quantizer_bop_test`
(one epoch of `train` with Bop), `quantizer_digits_config` (the digits bar) and
`run_quantizers_mirrored_test`. Per model family (`test_models.py`,
`test_contributing.py`): `run_family_build_test`, `run_below_minimum_test`,
`family_digits_config`. Per optimizer name (`test_every_optimizer.py`,
`test_contributing.py`): `run_optimizer_spec_test`, `run_optimizer_round_trip_test`,
`run_optimizer_resume_test` (digits above `OPTIMIZER_DIGITS_BAR`, bit-identical
resume, one trace, save/reload), `run_optimizer_mirrored_test`,
`run_optimizer_variables_test`.
"""

from __future__ import annotations

import json
import math

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import bnnzoo
from bnnzoo import quantizers as Q
from bnnzoo import training
from bnnzoo.callbacks import QuantizerAnnealing
from bnnzoo.models import create_model, get_model_spec


def slow_params(names, slow) -> list:
    """`names` as pytest parameters, those in `slow` marked slow (they run with -m slow)."""
    return [pytest.param(n, marks=pytest.mark.slow) if n in slow else n for n in names]


def _without_build_config(config):
    """A config minus Keras's `build_config` records (present only once a layer was called)."""
    if isinstance(config, dict):
        return {k: _without_build_config(v) for k, v in config.items() if k != "build_config"}
    if isinstance(config, (list, tuple)):
        return [_without_build_config(v) for v in config]
    return config


def run_serialization_test(model: tf.keras.Model) -> tf.keras.Model:
    """`get_config` -> `from_config` gives the same config, and the same outputs with the same weights."""
    config = model.get_config()
    clone = model.__class__.from_config(config)
    assert json.dumps(_without_build_config(clone.get_config()), sort_keys=True, default=str) == json.dumps(
        _without_build_config(config), sort_keys=True, default=str
    )
    clone.set_weights(model.get_weights())
    x = np.random.default_rng(0).normal(size=(2, *model.input_shape[1:])).astype("float32")
    np.testing.assert_allclose(clone(x, training=False).numpy(), model(x, training=False).numpy(),
                               rtol=1e-5, atol=1e-6)
    return clone


def run_model_saving_test(model: tf.keras.Model, tmp_path, formats=(".keras", ".h5")) -> tf.keras.Model:
    """`model.save` -> `load_model` (with only `import bnnzoo`) predicts identically, in
    each of `formats`; returns the model loaded from the first."""
    x = np.random.default_rng(1).normal(size=(3, *model.input_shape[1:])).astype("float32")
    expected = model.predict(x, verbose=0)
    first = None
    for suffix in formats:
        path = tmp_path / f"{model.name}{suffix}"
        model.save(path)
        loaded = tf.keras.models.load_model(path, compile=False)
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), expected, err_msg=suffix)
        first = first or loaded
    return first


class Interrupt(tf.keras.callbacks.Callback):
    """Raises `KeyboardInterrupt` when epoch `at_epoch` (0-based) begins."""

    def __init__(self, at_epoch: int):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt


def run_resume_test(config: training.TrainConfig, tmp_path, arrays, interrupt_at: int = 1):
    """Uninterrupted vs interrupted-at-`interrupt_at`-then-resumed: identical results.

    Returns the uninterrupted run's `TrainResult`.
    """
    straight = training.train(config, tmp_path / "straight", arrays=arrays, verbose=0)
    with pytest.raises(KeyboardInterrupt):
        training.train(config, tmp_path / "resumed", arrays=arrays, verbose=0,
                       callbacks=[Interrupt(interrupt_at)])
    assert (tmp_path / "resumed" / "checkpoints").exists()
    resumed = training.train(config, tmp_path / "resumed", arrays=arrays, verbose=0)
    for w1, w2 in zip(straight.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_array_equal(w1, w2)
    # The optimizer's state (moments, Bop2ndOrder's m/v, step counters) resumed too.
    # Matched by value: in one process the names differ by Keras's uniquifying suffixes,
    # and a restored optimizer creates its slots in another order.
    state = [[(w.name, w.numpy()) for w in r.model.optimizer.weights] for r in (straight, resumed)]
    assert len(state[0]) == len(state[1]) > 0
    unmatched = list(state[1])
    for name, value in state[0]:
        same = [i for i, (_, other) in enumerate(unmatched)
                if other.shape == value.shape and np.array_equal(other, value)]
        assert same, f"optimizer state {name} differs after resuming"
        unmatched.pop(same[0])
    assert len(resumed.history["loss"]) == config.epochs
    assert resumed.history["loss"] == straight.history["loss"]
    assert resumed.metrics["test_accuracy"] == straight.metrics["test_accuracy"]
    return straight


def run_mirrored_test(config: training.TrainConfig, arrays, strategy, min_accuracy: float):
    """`train` under `strategy` (2 replicas): finite losses and test accuracy above the bar."""
    assert strategy.num_replicas_in_sync == 2
    result = training.train(config, arrays=arrays, verbose=0, strategy=strategy)
    assert np.isfinite(result.history["loss"]).all()
    assert result.metrics["test_accuracy"] > min_accuracy, result.metrics["test_accuracy"]
    return result


def assert_learned(result: training.TrainResult, config: training.TrainConfig, min_accuracy: float):
    """Finite, falling training loss and test accuracy above `min_accuracy`."""
    loss = result.history["loss"]
    assert np.isfinite(loss).all() and loss[-1] < loss[0], loss
    assert result.metrics["test_accuracy"] > min_accuracy, (config.model, config.quantizer,
                                                            result.metrics["test_accuracy"])


def run_digits_training_test(config: training.TrainConfig, arrays, min_accuracy: float):
    """`train(config)` on the real digits arrays: finite, falling training loss and test
    accuracy above `min_accuracy` (chance is 0.10)."""
    result = training.train(config, arrays=arrays, verbose=0)
    assert_learned(result, config, min_accuracy)
    return result


# ----------------------------------------------------------------- every quantizer

GRID = np.array(
    [-1e4, -100.0, -5.0, -2.0, -1.0, -0.7, -0.5, -0.05, -1e-3, 0.0,
     1e-3, 0.05, 0.5, 0.7, 1.0, 2.0, 5.0, 100.0, 1e4],
    dtype=np.float32,
)


def values_and_grads(quantizer, x, compiled=False):
    """The quantizer's output and tape gradient at `x` (float64 arrays)."""
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = quantizer(x)
        return y, tape.gradient(y, x)

    fn = tf.function(run) if compiled else run
    y, g = fn(tf.constant(x))
    return y.numpy().astype(np.float64), g.numpy().astype(np.float64)


def assert_matches(quantizer, forward, backward, x=GRID):
    """Forward and gradient equal the NumPy references, eagerly and in a `tf.function`."""
    for compiled in (False, True):
        y, g = values_and_grads(quantizer, x, compiled)
        np.testing.assert_allclose(y, forward(x.astype(np.float64)), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(g, backward(x.astype(np.float64)), rtol=1e-4, atol=1e-5)


def run_quantizer_reference_test(name, references):
    """`name`'s forward and gradient at its default arguments against `references[name]`."""
    assert name in references, f"no NumPy reference for registered quantizer {name!r}"
    forward, backward = references[name]
    assert_matches(Q.get_quantizer(name), forward, backward)


def run_quantizer_serialization_test(name):
    """Config round trip (class and larq's serialize), same outputs, larq alias = bnnzoo name, 1-bit."""
    q = Q.get_quantizer(name)
    config = q.get_config()
    clone = type(q).from_config(config)
    assert clone.get_config() == config
    again = lq.quantizers.deserialize(lq.quantizers.serialize(q))
    assert type(again) is type(q) and again.get_config() == config
    y = q(tf.constant(GRID))
    np.testing.assert_array_equal(clone(tf.constant(GRID)).numpy(), y.numpy())
    # The larq alias resolves to the same class as the bnnzoo name.
    assert type(lq.quantizers.get(name)) is type(q)
    assert q.precision == 1, "every registered quantizer is a binary one"


def quantizer_test_model(input_quantizer, kernel_quantizer, conv=True):
    """A tiny conv + dense binary model on 8x8x1 inputs with the given quantizers."""
    inputs = tf.keras.Input((8, 8, 1))
    x = inputs
    if conv:
        kq = kernel_quantizer if isinstance(kernel_quantizer, str) else Q.clone_quantizer(kernel_quantizer)
        iq = input_quantizer if isinstance(input_quantizer, str) else Q.clone_quantizer(input_quantizer)
        x = lq.layers.QuantConv2D(4, 3, input_quantizer=iq, kernel_quantizer=kq,
                                  kernel_constraint="weight_clip", use_bias=False, name="conv")(x)
        x = tf.keras.layers.BatchNormalization(name="bn")(x)
    x = tf.keras.layers.Flatten()(x)
    x = lq.layers.QuantDense(10, input_quantizer=input_quantizer, kernel_quantizer=kernel_quantizer,
                             kernel_constraint="weight_clip", name="dense")(x)
    return tf.keras.Model(inputs, x)


def perturb_annealed_state(model, value_scale=0.37):
    """Move every annealable quantizer away from its defaults (value and switch)."""
    qs = Q.annealable_quantizers(model)
    for i, q in enumerate(qs):
        q.set_annealed(q.annealed_value() * (1 + value_scale), exact_sign=(i % 2 == 1))
    return qs


def run_quantizer_layer_test(name):
    """By string and by object, for inputs and kernels: the same class, the same outputs,
    a Bop-trainable kernel, and no annealed state in `weights`."""
    x = np.random.default_rng(0).normal(size=(5, 8, 8, 1)).astype(np.float32)
    by_string = quantizer_test_model(name, name)
    by_object = quantizer_test_model(Q.get_quantizer(name), Q.get_quantizer(name))
    by_object.set_weights(by_string.get_weights())
    for layer in ("conv", "dense"):
        for role in ("input_quantizer", "kernel_quantizer"):
            assert type(getattr(by_string.get_layer(layer), role)) is Q.quantizer_class(name)
    np.testing.assert_array_equal(by_string(x).numpy(), by_object(x).numpy())
    assert lq.optimizers.Bop.is_binary_variable(by_string.get_layer("dense").kernel)
    # Annealed state lives outside `weights`: same weight list as a plain ste_sign model.
    assert [w.shape for w in by_string.get_weights()] == [
        w.shape for w in quantizer_test_model("ste_sign", "ste_sign").get_weights()
    ]


def run_quantizer_saving_test(name, tmp_path):
    """`.keras` save/reload and a TF checkpoint keep predictions and the annealed state."""
    x = np.random.default_rng(1).normal(size=(7, 8, 8, 1)).astype(np.float32)
    model = quantizer_test_model(name, name)
    states = [(q.annealed_value(), q.is_exact_sign()) for q in perturb_annealed_state(model)]
    expected = model(x).numpy()
    model.save(tmp_path / "m.keras")
    reloaded = tf.keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(reloaded(x).numpy(), expected)
    assert [(q.annealed_value(), q.is_exact_sign())
            for q in Q.annealable_quantizers(reloaded)] == states
    # TF checkpoints (the training routine's resume state) hold the annealed state too.
    fresh = quantizer_test_model(name, name)
    tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    tf.train.Checkpoint(model=fresh).read(str(tmp_path / "ckpt")).assert_consumed()
    np.testing.assert_array_equal(fresh(x).numpy(), expected)


class InitialWeights(tf.keras.callbacks.Callback):
    """Records the model's weights when training begins."""

    def on_train_begin(self, logs=None):
        self.weights = self.model.get_weights()


def assert_bop_flipped_only_signs(model, initial, label=""):
    """Every binary dense kernel is +-1 (Bop writes signs) and some signs flipped."""
    values = dict(zip((w.name for w in model.weights), model.get_weights()))
    before = dict(zip((w.name for w in model.weights), initial))
    kernels = [layer.kernel for layer in model.layers if isinstance(layer, lq.layers.QuantDense)]
    assert kernels and all(lq.optimizers.Bop.is_binary_variable(k) for k in kernels)
    for k in kernels:
        np.testing.assert_array_equal(np.abs(values[k.name]), 1.0, err_msg=f"{label} {k.name}")
        assert np.any(np.sign(values[k.name]) != np.sign(before[k.name])), f"{k.name}: no flip"


def run_quantizer_bop_test(name, arrays):
    """One epoch of the shared training routine with CaseOptimizer(Bop, Adam)."""
    config = training.TrainConfig(model="binarynet_mlp", dataset="digits", quantizer=name, epochs=1,
                                  optimizer="bop", optimizer_kwargs={"threshold": 1e-7, "gamma": 1e-2},
                                  model_kwargs={"units": 32, "hidden_layers": 1})
    initial = InitialWeights()
    result = training.train(config, arrays=arrays, verbose=0, callbacks=[initial])
    assert math.isfinite(result.history["loss"][0])
    assert math.isfinite(result.metrics["test_loss"])
    assert_bop_flipped_only_signs(result.model, initial.weights, name)
    return result


# Test accuracy on digits after 3 epochs of a binary MLP with one hidden layer of 64
# units, Adam 1e-2 and `quantizer=name` (inputs and kernels, as `TrainConfig` applies
# it); chance 0.10.
QUANTIZER_DIGITS_BAR = 0.6


def quantizer_digits_config(name) -> training.TrainConfig:
    """The run `run_digits_training_test(..., QUANTIZER_DIGITS_BAR)` checks for quantizer `name`."""
    return training.TrainConfig(model="binarynet_mlp", dataset="digits", quantizer=name, epochs=3,
                                batch_size=64, learning_rate=1e-2, model_kwargs={"units": 64, "hidden_layers": 1})


def run_quantizers_mirrored_test(names, digits, strategy):
    """The quantizers `names` side by side in one model (one trace), 2 replicas, Bop;
    annealed ones driven by a `QuantizerAnnealing` and ending exact sign."""
    with strategy.scope():
        inputs = tf.keras.Input(digits.input_shape)
        x = tf.keras.layers.Flatten()(inputs)
        branches = []
        for name in names:  # input quantizer by string, kernel quantizer by object
            branches.append(lq.layers.QuantDense(
                8, input_quantizer=name, kernel_quantizer=Q.get_quantizer(name),
                kernel_constraint="weight_clip", use_bias=False, name=name)(x))
        x = tf.keras.layers.Concatenate()(branches) if len(branches) > 1 else branches[0]
        outputs = tf.keras.layers.Dense(digits.num_classes, activation="softmax")(x)
        model = tf.keras.Model(inputs, outputs)
        model.compile(bnnzoo.optimizers.get_optimizer("bop", 1e-3, threshold=1e-7, gamma=1e-2),
                      loss="sparse_categorical_crossentropy")
    initial = InitialWeights()
    annealed = Q.annealable_quantizers(model)
    callbacks = [initial]
    if annealed:
        callbacks.append(QuantizerAnnealing(lambda epoch: 2.0 + epoch, quantizers=annealed, final_epoch=1))
    history = model.fit(digits.x_train[:256], digits.y_train[:256], batch_size=64, epochs=2,
                        callbacks=callbacks, verbose=0)
    assert all(math.isfinite(v) for v in history.history["loss"])
    for q in annealed:
        assert q.annealed_value() == 3.0 and q.is_exact_sign()
    assert_bop_flipped_only_signs(model, initial.weights, "mirrored")


# ----------------------------------------------------------------- every model family


def small_shape(name: str, channels: int = 3) -> tuple[int, int, int]:
    """The smallest square input family `name` takes (at least 8x8)."""
    size = max(get_model_spec(name).min_input_size, 8)
    return (size, size, channels)


def binary_layers(model: tf.keras.Model) -> list:
    """Layers whose kernel is binarized (1-bit) according to larq's model profile."""
    profile = lq.models.ModelProfile(model)
    return [lp for lp in profile.layer_profiles if lp.weight_count(bitwidth=1) > 0]


def run_family_build_test(name, tmp_path, small_kwargs, *, shared_quantizer=False, formats=(".keras", ".h5")):
    """Any quantizer pair (by name and by object), small input: forward pass, binary
    layers, a quantizer object per layer (unless `shared_quantizer`), config round trip
    and save/reload in `formats` with identical predictions."""
    shape = small_shape(name)
    kernel_q = lq.quantizers.SteSign(clip_value=1.1)
    model = create_model(name, input_shape=shape, num_classes=7, input_quantizer="approx_sign",
                         kernel_quantizer=kernel_q, **small_kwargs)
    kernels = [l.kernel_quantizer for l in model.layers
               if isinstance(getattr(l, "kernel_quantizer", None), lq.quantizers.SteSign)]
    assert kernels and all(q.clip_value == pytest.approx(1.1) for q in kernels)
    if not shared_quantizer:
        assert len({id(q) for q in kernels}) == len(kernels)  # a fresh quantizer per layer
    inputs = [l.input_quantizer for l in model.layers if getattr(l, "input_quantizer", None) is not None]
    assert inputs and all(isinstance(q, lq.quantizers.ApproxSign) for q in inputs)

    y = model(np.zeros((2, *shape), "float32"), training=False)
    assert y.shape == (2, 7)
    np.testing.assert_allclose(y.numpy().sum(axis=1), 1.0, rtol=1e-4)  # softmax outputs
    assert len(binary_layers(model)) > 0
    run_serialization_test(model)
    run_model_saving_test(model, tmp_path, formats=formats)


def run_below_minimum_test(name, small_kwargs):
    """Below its `min_input_size` the family refuses the input shape naming the minimum."""
    spec = get_model_spec(name)
    if spec.min_input_size <= 1:  # the dense/pooling families take any size: 1 px builds
        model = create_model(name, input_shape=(1, 1, 1), num_classes=3, **small_kwargs)
        assert model.output_shape == (None, 3)
        return
    too_small = spec.min_input_size - 1
    with pytest.raises(ValueError, match=f"at least {spec.min_input_size}x{spec.min_input_size}"):
        create_model(name, input_shape=(too_small, too_small, 3))


# Families that take digits' 8x8 inputs (min_input_size <= 8) train on them: 3 epochs
# of Adam 1e-2 + ste_sign at the small size must beat this test accuracy (chance 0.10).
FAMILY_DIGITS_BAR = 0.5


def family_digits_config(name: str, small_kwargs, **kw) -> training.TrainConfig:
    """The digits run of family `name` that `run_resume_test` / `run_mirrored_test` check."""
    return training.TrainConfig(model=name, dataset="digits", epochs=3, batch_size=64, learning_rate=1e-2,
                                model_kwargs=small_kwargs, **kw)


# ----------------------------------------------------------------- every optimizer

# Test accuracy on digits after 2 epochs of a binary MLP with one hidden layer of 64
# units (batch 64, lr 1e-2); chance is 0.10. One hidden layer, not three, halves the
# graph every optimizer traces (FSG runs its slow net per binary kernel) and keeps a
# real-valued-input and a binary-input binary kernel.
OPTIMIZER_DIGITS_BAR = 0.5


def optimizer_digits_config(name: str, **kw) -> training.TrainConfig:
    """The digits run of optimizer `name` that the optimizer checks train."""
    fields = dict(model="binarynet_mlp", dataset="digits", epochs=2, batch_size=64, learning_rate=1e-2,
                  optimizer=name, model_kwargs={"units": 64, "hidden_layers": 1})
    fields.update(kw)
    return training.TrainConfig(**fields)


def _normalized_optimizer_config(spec):
    """A serialized optimizer as JSON data (Keras writes built-in class names as "Adam" or "adam")."""
    text = json.dumps(spec, default=str).replace('"class_name": "adam"', '"class_name": "Adam"')
    return json.loads(text)


def run_optimizer_round_trip_test(name):
    """serialize -> deserialize, twice, gives an optimizer of the same class and config."""
    def round_trip(opt):
        spec = tf.keras.optimizers.serialize(opt)
        return spec, tf.keras.optimizers.deserialize(spec, use_legacy_optimizer=True)

    optimizer = bnnzoo.optimizers.get_optimizer(name, 1e-3)
    spec, clone = round_trip(optimizer)
    assert type(clone) is type(optimizer)
    spec2, clone2 = round_trip(clone)
    assert type(clone2) is type(optimizer)
    assert _normalized_optimizer_config(spec2) == _normalized_optimizer_config(spec)


def run_optimizer_spec_test(name):
    """Registered as an `OptimizerSpec` under `name`, with nothing on the builder: what a
    run needs is declared on the spec, not as attributes (the former
    `builder.wrap_model = ...` protocol) that code could depend on instead."""
    spec = bnnzoo.optimizers.optimizer_spec(name)
    assert isinstance(spec, bnnzoo.optimizers.OptimizerSpec) and spec.name == name
    extra = {a for a in vars(spec.builder) if not a.startswith("_")}
    assert not extra, f"{name}: attributes on the builder {extra}; declare them on register_optimizer"


def run_optimizer_resume_test(name, tmp_path, arrays):
    """Digits above `OPTIMIZER_DIGITS_BAR`, bit-identical after an interruption and a
    resume, the training step traced once, the trained model saved and reloaded with
    identical predictions. Returns the uninterrupted run's `TrainResult`."""
    result = run_resume_test(optimizer_digits_config(name), tmp_path, arrays)
    assert result.metrics["test_accuracy"] > OPTIMIZER_DIGITS_BAR, result.metrics["test_accuracy"]
    # train() created the optimizer's variables before fit, so its step traced once.
    assert result.model.train_function.experimental_get_tracing_count() == 1
    # The trained model (FSG's wrapper included) saves and reloads with identical predictions.
    run_model_saving_test(training.load_model(tmp_path / "straight"), tmp_path, formats=(".keras",))
    return result


def run_optimizer_mirrored_test(name, arrays, strategy):
    """One epoch of `optimizer_digits_config(name)` under `strategy` (2 replicas)."""
    return run_mirrored_test(optimizer_digits_config(name, epochs=1, strategy="mirrored"), arrays, strategy,
                             min_accuracy=0.3)


def run_optimizer_variables_test(name, arrays):
    """`create_training_variables` (what `train` does before `fit`) against Keras's
    own creation inside the first trace: bit-identical weights after two steps, one
    trace of the training step instead of two."""
    config = optimizer_digits_config(name)
    x, y = arrays.x_train[:128], arrays.y_train[:128]
    tf.config.experimental.enable_op_determinism()

    def fit(create_first: bool) -> tf.keras.Model:
        tf.keras.utils.set_random_seed(0)
        model = training.build_model(config, arrays.input_shape, arrays.num_classes)
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
