"""Resolving what `bnnzoo export` is given into a Keras model (and its dataset)."""

from __future__ import annotations

import json
from pathlib import Path

import tensorflow as tf

from bnnzoo import models, pretrained, training
from bnnzoo.export.errors import ExportError

__all__ = ["load_source"]


def load_source(source) -> tuple[tf.keras.Model, str | None]:
    """The model named by `source` and the dataset it was trained on (if known).

    Args:
        source: a `tf.keras.Model`, a run directory written by `bnnzoo train`, a
            saved model file (`.keras`/`.h5`), or `NAME:TAG` for a pretrained model.

    Returns:
        The model and the name of its dataset: the run's `config.json` entry or the
        pretrained card's, `None` when neither is known (a model object).

    Raises:
        ExportError: `source` is none of these.
    """
    if isinstance(source, tf.keras.Model):
        return source, None
    text = str(source)
    path = Path(text)
    if path.exists():
        dataset = None
        config = (path if path.is_dir() else path.parent) / "config.json"
        if config.is_file():
            dataset = json.loads(config.read_text()).get("dataset")
        return training.load_model(path), dataset
    if ":" in text:
        name, tag = text.split(":", 1)
        models.get_model_spec(name)  # unknown names list the valid ones
        dataset = getattr(pretrained.get_card(name, tag), "dataset", None)
        return models.create_model(name, weights=tag), dataset
    raise ExportError(
        f"source {text!r} is neither a run directory, a saved model file nor NAME:TAG"
    )
