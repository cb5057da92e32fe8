"""Model files written on one supported stack and read on the others (tests/test_stacks.py).

`save(folder)` writes, as `.keras` and `.h5`, a freshly trained bnnzoo model (binary
MLP, Bop2ndOrder, one epoch on digits) and a shipped artifact (`binarynet_mlp:digits`)
re-saved whole, each with its outputs on fixed test images. `check(folder)` loads every
file and returns what does not reproduce those outputs. Files load with plain
`tf.keras.models.load_model`, except that Keras 2.15 (Python 3.11) and tf-keras 2.19
(3.12) read files of tf-keras >= 2.20 (Python 3.13) through bnnzoo's fallback (`bnnzoo.model_files`, what
bnnzoo's own loaders use); a fallback anywhere else is a problem. Run as a script by
the other stack's Python, so every direction goes through the same code:

    .venv-py312/bin/python tests/stack_models.py save DIR
    .venv/bin/python tests/stack_models.py check DIR save DIR2
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import bnnzoo  # before TensorFlow: selects Keras 2 on every stack
import tensorflow as tf

from bnnzoo.model_files import load_keras_file

FORMATS = (".keras", ".h5")
NUM_IMAGES = 64


def stack() -> dict[str, str]:
    import larq

    return {"python": "%d.%d" % sys.version_info[:2], "tensorflow": tf.__version__,
            "tf.keras": tf.keras.Model.__module__.split(".")[0], "larq": larq.__version__}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


def needs_fallback(writer_tensorflow: str) -> bool:
    """Whether this stack reads the files of a stack on TF `writer_tensorflow` through
    bnnzoo's fallback: Keras 2.15 or tf-keras 2.19 reading tf-keras >= 2.20's files."""
    return _version(tf.__version__) < (2, 20) <= _version(writer_tensorflow)


def _images() -> np.ndarray:
    return bnnzoo.data.load_arrays("digits").x_test[:NUM_IMAGES]


def _fresh_model() -> tf.keras.Model:
    splits = bnnzoo.data.load_arrays("digits")
    tf.keras.utils.set_random_seed(0)
    model = bnnzoo.models.create_model("binarynet_mlp", input_shape=splits.input_shape, num_classes=10, units=32)
    model.compile(optimizer=bnnzoo.optimizers.get_optimizer("bop2ndorder", learning_rate=1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(splits.x_train, splits.y_train, epochs=1, batch_size=64, verbose=0)
    return model


def save(folder: str | Path) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images = _images()
    models = {"fresh": _fresh_model(), "shipped": bnnzoo.models.create_model("binarynet_mlp", weights="digits")}
    for name, model in models.items():
        np.save(folder / f"{name}_outputs.npy", model.predict(images, verbose=0))
        for fmt in FORMATS:
            model.save(folder / f"{name}{fmt}")
    (folder / "stack.json").write_text(json.dumps(stack()))


def check(folder: str | Path, atol: float = 1e-5) -> list[str]:
    """Problems loading the model files in `folder` (each `.keras`/`.h5` present is read)."""
    folder = Path(folder)
    images = _images()
    problems = []
    files = sorted(p for p in folder.iterdir() if p.suffix in FORMATS)
    if not {p.stem for p in files} >= {"fresh", "shipped"}:
        problems.append(f"{folder} lacks the fresh and shipped model files")
    writer = json.loads((folder / "stack.json").read_text()) if (folder / "stack.json").is_file() else {}
    fallback_allowed = needs_fallback(writer.get("tensorflow", "0"))
    for path in files:
        try:
            model = tf.keras.models.load_model(path)
        except Exception as err:  # noqa: BLE001
            if not fallback_allowed:
                problems.append(f"{path.name}: does not load ({type(err).__name__}: {str(err)[:300]})")
                continue
            model = load_keras_file(path, compile=True)
        diff = float(np.max(np.abs(model.predict(images, verbose=0) - np.load(folder / f"{path.stem}_outputs.npy"))))
        if not diff <= atol:
            problems.append(f"{path.name}: outputs differ by {diff:.3g}")
        if path.stem == "fresh" and type(model.optimizer).__name__ != "CaseOptimizer":
            problems.append(f"{path.name}: optimizer reloads as {type(model.optimizer).__name__}")
    return problems


if __name__ == "__main__":
    # Pairs of `check DIR` / `save DIR`, done in order in one process.
    failed = False
    for command, target in zip(sys.argv[1::2], sys.argv[2::2]):
        if command == "save":
            save(target)
        else:
            found = check(target)
            print("\n".join(found) or f"{target}: ok")
            failed = failed or bool(found)
    sys.exit(1 if failed else 0)
