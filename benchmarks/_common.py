"""Pieces the benchmark scripts share: data subsetting, per-epoch test accuracy, and
the command-line options every benchmark takes.

The scripts run as `python benchmarks/<name>.py` and are loaded by file path in the
tests, so each puts this folder on `sys.path` before importing this module.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import tensorflow as tf


def subset(arrays, n, seed=1234):
    """The first `n` training examples of a fixed permutation (validation/test untouched)."""
    if not n or n >= len(arrays.x_train):
        return arrays
    idx = np.random.default_rng(seed).permutation(len(arrays.x_train))[:n]
    return dataclasses.replace(arrays, x_train=arrays.x_train[idx], y_train=arrays.y_train[idx])


class TestAccuracy(tf.keras.callbacks.Callback):
    """Test accuracy (top-1 of the model's outputs) after every epoch, into
    `logs["test_accuracy"]`; independent of the metrics the model was compiled with."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def on_epoch_end(self, epoch, logs=None):
        pred = self.model.predict(self.x, batch_size=512, verbose=0)
        if logs is not None:
            logs["test_accuracy"] = float(np.mean(np.argmax(pred, 1) == self.y))


def base_parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes: `--quick`, `--out-dir`, and overrides of the
    epochs, seeds and training-subset size of its settings."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="seconds-long run on digits (tests)")
    p.add_argument("--out-dir", default="docs/benchmarks")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seeds", type=int, nargs="+")
    p.add_argument("--train-subset", type=int, help="training examples used (0: all)")
    p.add_argument("--verbose", type=int, default=0)
    return p


def settings_from(args, full: dict, quick: dict) -> dict:
    """`quick` or `full` settings with the command-line overrides of `base_parser` applied."""
    settings = dict(quick if args.quick else full)
    if args.epochs:
        settings["epochs"] = args.epochs
    if args.seeds:
        settings["seeds"] = args.seeds
    if args.train_subset is not None:
        settings["train_subset"] = args.train_subset or None
    return settings
