"""Model files (`.keras`, `.h5`) across bnnzoo's stacks: the fallback for files of a newer Keras 2.

A file saved by tf-keras 2.21 (the Python 3.13 stack) records constructor arguments
that Keras 2.15 (the Python 3.11 stack) and tf-keras 2.19 (3.12) do not know, such as
`InputLayer`'s `optional`, so their `load_model` refuses it. bnnzoo's loaders
(`bnnzoo.training.load_model`, hence `bnnzoo evaluate`, `bnnzoo export`, run
directories and tuner trials) then rebuild the model from the file's own saved
config without those arguments, each only where it holds the value the older Keras
assumes, and load the file's weights into it: a copy of the file with the rewritten
config is loaded, so the weights (and, for `.keras`, the optimizer) come from the
file as saved. Anything else that fails to load fails as before.

!!! example
    ```python
    import bnnzoo
    from bnnzoo.model_files import strip_newer_arguments

    config = {"class_name": "InputLayer", "config": {"batch_shape": [None, 4], "optional": False}}
    assert strip_newer_arguments(config) == ["InputLayer.optional"]
    assert "optional" not in config["config"]
    ```
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import tensorflow as tf

__all__ = ["NEWER_ARGUMENTS", "load_keras_file", "strip_newer_arguments"]

NEWER_ARGUMENTS: dict[str, dict[str, Any]] = {
    # tf-keras >= 2.20: an input may be declared optional; Keras 2.15 and tf-keras 2.19 have no such argument.
    "InputLayer": {"optional": False},
}
"""Layer class name -> {argument a newer Keras 2 records: the value an older one assumes}."""


def strip_newer_arguments(config: Any) -> list[str]:
    """Remove, in place, the `NEWER_ARGUMENTS` entries of a saved Keras config that hold
    the value an older Keras assumes.

    Args:
        config: a model config as saved (nested dicts and lists).

    Returns:
        What was removed, as `Class.argument`, one entry per occurrence.

    Raises:
        ValueError: such an argument holds another value (the older Keras cannot
            build that layer).
    """
    removed: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            newer = NEWER_ARGUMENTS.get(node.get("class_name"), {}) if isinstance(node.get("config"), dict) else {}
            for argument, assumed in newer.items():
                if argument in node["config"]:
                    if node["config"][argument] != assumed:
                        raise ValueError(f"{node['class_name']} has {argument}={node['config'][argument]!r}, "
                                         f"which this Keras ({tf.keras.__name__}) cannot build")
                    del node["config"][argument]
                    removed.append(f"{node['class_name']}.{argument}")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return removed


def _rewritten_copy(path: Path, folder: Path) -> Path | None:
    """A copy of `path` in `folder` with `strip_newer_arguments` applied; None when nothing changes."""
    copy = folder / path.name
    if zipfile.is_zipfile(path):  # .keras: config.json and model.weights.h5 in a zip
        with zipfile.ZipFile(path) as zin:
            config = json.loads(zin.read("config.json"))
            if not strip_newer_arguments(config):
                return None
            with zipfile.ZipFile(copy, "w", zipfile.ZIP_DEFLATED) as zout:
                for item in zin.infolist():
                    data = json.dumps(config).encode() if item.filename == "config.json" else zin.read(item)
                    zout.writestr(item, data)
        return copy
    import h5py

    with h5py.File(path, "r") as f:
        raw = f.attrs.get("model_config")
    if raw is None:
        return None
    config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    if not strip_newer_arguments(config):
        return None
    shutil.copyfile(path, copy)
    with h5py.File(copy, "r+") as f:
        f.attrs["model_config"] = json.dumps(config).encode()
    return copy


def load_keras_file(path: str | os.PathLike, compile: bool = False) -> tf.keras.Model:
    """`tf.keras.models.load_model`, falling back for files of a newer Keras 2 (module docstring).

    Args:
        path: a `.keras` or `.h5` model file.
        compile: restore the training configuration too (as `load_model`).

    Returns:
        The model.

    Raises:
        Exception: what `tf.keras.models.load_model` raised, when the fallback does not apply.
    """
    path = Path(path)
    try:
        return tf.keras.models.load_model(path, compile=compile)
    except Exception:  # noqa: BLE001 - retried only when the config has newer arguments
        with tempfile.TemporaryDirectory() as tmp:
            try:
                copy = _rewritten_copy(path, Path(tmp))
            except (OSError, KeyError, ValueError, zipfile.BadZipFile):
                copy = None
            if copy is None:
                raise
            return tf.keras.models.load_model(copy, compile=compile)
