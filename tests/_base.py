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
"""

from __future__ import annotations

import json

import numpy as np
import tensorflow as tf

from bnnzoo import training


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
    import pytest

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
