"""Datasets as deterministic, normalized train/validation/test `tf.data` pipelines.

Sources, by name (each one registration in `DATASET_SOURCES`, see `register_dataset`):

- `"digits"`: scikit-learn's bundled 8×8 handwritten digits (1797 images). Ships
  inside the scikit-learn wheel, so it loads with no network. The default.
- `"fashion_mnist"`: the real Fashion-MNIST (60k train / 10k test, 28×28) read from
  the idx files in `data_dir` if given, else `$BNNZOO_FASHION_MNIST_DIR`, Debian's
  `dataset-fashion-mnist` package (`/usr/share/datasets/fashion-mnist/`) or bnnzoo's
  cache (`~/.cache/bnnzoo/fashion-mnist`, or `$BNNZOO_CACHE/fashion-mnist`), which
  `python -m bnnzoo.datasets_cache` (run by `make test`) fills without root.
- a path to a `.npz` file holding `x_train`, `y_train`, `x_test`, `y_test`.
- any name in TFDS's registry (`"cifar10"`, `"mnist"`, ...), through
  `tensorflow_datasets`. Data that is not prepared locally is only downloaded when
  the download host answers within a few seconds; offline, a clear error is raised
  at once instead of TFDS's minutes of retries.

A name matching none of them is a `ValueError` listing the valid ones.

All splits are held in memory as float32 NHWC arrays, normalized per channel with
the mean and standard deviation of the training split. The validation split is a
seeded, deterministic slice of the training data (`split_seed`), independent of the
training seed, so every run of a dataset sees the same test and validation images.

!!! example
    ```python
    import bnnzoo

    splits = bnnzoo.data.load_dataset("digits", batch_size=64)
    model = bnnzoo.models.create_model("binarynet_mlp", input_shape=(8, 8, 1), units=64)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(splits.train, validation_data=splits.validation, epochs=2, verbose=0)
    loss, accuracy = model.evaluate(splits.test, verbose=0)
    assert (splits.input_shape, splits.num_classes) == ((8, 8, 1), 10)
    assert len(splits.arrays.x_test) == 359 and accuracy > 0.3  # chance is 0.1
    ```
"""

from __future__ import annotations

import gzip
import os
import socket
import struct
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf

from bnnzoo.registry import Registry
from bnnzoo.validation import check_int, check_number

__all__ = [
    "ArraySplits",
    "CLASS_COUNT_RATIO",
    "DATASET_SOURCES",
    "DatasetSource",
    "DatasetSplits",
    "DataUnavailableError",
    "FASHION_MNIST_ENV",
    "LabelWarning",
    "MAX_CLASSES",
    "MIN_TRAIN_SAMPLES",
    "check_dataset_name",
    "dataset_source",
    "epoch_pipeline",
    "eval_pipeline",
    "list_datasets",
    "load_arrays",
    "load_dataset",
    "register_dataset",
]

FASHION_MNIST_ENV = "BNNZOO_FASHION_MNIST_DIR"
FASHION_MNIST_DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
_FASHION_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
# Probed before letting TFDS download: offline, TFDS retries for minutes.
_TFDS_DOWNLOAD_PROBE = ("storage.googleapis.com", 443)
_PROBE_TIMEOUT_S = 3.0
MAX_BATCH_SIZE = 1 << 20  # as bnnzoo.training's: beyond it a typo, not a batch


class DataUnavailableError(RuntimeError):
    """The requested dataset is not on this machine and cannot be fetched now."""


class LabelWarning(UserWarning):
    """The training labels of a dataset look wrong (a single class, most classes unseen)."""


# Label-count sanity (`load_arrays`): the class count is max(label) + 1; refused above
# these, warned of when fewer than half of the classes appear in the training labels.
MAX_CLASSES = 100_000
CLASS_COUNT_RATIO = 10
# The training split keeps at least min(MIN_TRAIN_SAMPLES, all training images).
MIN_TRAIN_SAMPLES = 10


@dataclass(frozen=True)
class ArraySplits:
    """Normalized in-memory splits of one dataset.

    Images are float32 NHWC, labels int32. `mean`/`std` are the per-channel
    statistics of the training split that were used for normalization.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    mean: np.ndarray
    std: np.ndarray

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])


@dataclass(frozen=True)
class DatasetSplits:
    """Train/validation/test `tf.data` pipelines plus the arrays behind them."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    arrays: ArraySplits

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.arrays.input_shape

    @property
    def num_classes(self) -> int:
        return self.arrays.num_classes


# --------------------------------------------------------------------------- sources

# What a source's `load(name, data_dir)` returns: the raw arrays of the two splits.
RawSplits = dict[str, np.ndarray]
_SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class DatasetSource:
    """How one kind of dataset is read: a loader, a line saying what it is, the names it serves.

    Args:
        load: `load(name, data_dir)` returning the raw arrays `x_train`, `y_train`,
            `x_test`, `y_test` (any numeric dtype, images `(N, H, W)` or `(N, H, W, C)`;
            `load_arrays` checks and normalizes them); `name` is the name asked for.
        description: what the source reads, one line (the unknown-name error quotes those of name families).
        accepts: for a source serving a family of names (paths, TFDS names), whether it
            serves `name`, answered without reading data; `None`: only its registered name.

    !!! example
        ```python
        from bnnzoo.data import dataset_source

        digits = dataset_source("digits")
        assert digits.accepts is None and "scikit-learn" in digits.description
        assert set(digits.load("digits", None)) == {"x_train", "y_train", "x_test", "y_test"}
        ```
    """

    load: Callable[..., RawSplits]
    description: str
    accepts: Callable[[str], bool] | None = None


# Every dataset source, by name: a new source is one `register_dataset`.
DATASET_SOURCES: Registry[DatasetSource] = Registry("dataset")


def register_dataset(name: str, *, description: str, accepts: Callable[[str], bool] | None = None):
    """A decorator registering `load(name, data_dir) -> raw splits` as dataset source `name`.

    Afterwards `load_arrays(name)` / `load_dataset(name)` (and `bnnzoo train --dataset
    name`) read it; its arrays are checked, split and normalized like every other source's.

    Args:
        name: the dataset's name (for a source with `accepts`, a name for the source).
        description: what it reads, one line.
        accepts: see `DatasetSource`; leave it out for a source of one dataset.

    !!! example
        ```python
        import numpy as np
        import bnnzoo
        from bnnzoo.data import register_dataset

        @register_dataset("stripes", description="vertical or horizontal 8x8 stripes, generated")
        def stripes(name, data_dir):
            y = np.arange(60) % 2
            x = np.zeros((60, 8, 8), "float32")
            x[y == 0, :, ::2] = 1.0  # class 0: vertical stripes
            x[y == 1, ::2, :] = 1.0  # class 1: horizontal stripes
            return {"x_train": x[:40], "y_train": y[:40], "x_test": x[40:], "y_test": y[40:]}

        arrays = bnnzoo.data.load_arrays("stripes", validation_fraction=0.25)
        assert arrays.input_shape == (8, 8, 1) and arrays.num_classes == 2
        assert (len(arrays.x_train), len(arrays.x_val), len(arrays.x_test)) == (30, 10, 20)
        assert "stripes" in bnnzoo.data.list_datasets()
        bnnzoo.data.DATASET_SOURCES.unregister("stripes")  # keep the registry as shipped
        ```
    """
    def add(load: Callable[..., RawSplits]) -> Callable[..., RawSplits]:
        DATASET_SOURCES.register(name, DatasetSource(load, description, accepts))
        return load

    return add


def list_datasets() -> list[str]:
    """Names of the registered single datasets (`.npz` paths and TFDS names also work)."""
    return [name for name, source in DATASET_SOURCES.items() if source.accepts is None]


def dataset_source(name: str) -> DatasetSource:
    """The source that serves dataset `name`; `ValueError` listing the valid names if none does.

    A registered name is served by its own source; another name by the first source
    (in name order) whose `accepts` says yes. Cheap: it reads no data.

    Args:
        name: the dataset name (or `.npz` path, or TFDS name).

    !!! example
        ```python
        from bnnzoo.data import DATASET_SOURCES, dataset_source

        assert dataset_source("digits") is DATASET_SOURCES.get("digits")
        assert dataset_source("runs/my_data.npz") is DATASET_SOURCES.get("npz")  # not read yet
        try:
            dataset_source("digitz")
        except ValueError as err:
            assert str(err).startswith("Unknown dataset 'digitz'. Valid names: digits, fashion_mnist")
        ```
    """
    if isinstance(name, str) and name in DATASET_SOURCES:
        return DATASET_SOURCES.get(name)
    for _, source in DATASET_SOURCES.items():
        if isinstance(name, str) and name.strip() and source.accepts is not None and source.accepts(name):
            return source
    families = "; or ".join(s.description for _, s in DATASET_SOURCES.items() if s.accepts is not None)
    raise ValueError(f"Unknown dataset {name!r}. Valid names: {', '.join(list_datasets())}; or {families}")


def check_dataset_name(name: str) -> None:
    """Raise `ValueError` listing the valid names unless `name` can name a dataset (reads no data)."""
    dataset_source(name)


@register_dataset("digits", description="scikit-learn's bundled 8x8 handwritten digits (offline)")
def _load_digits(name, data_dir) -> RawSplits:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images.astype(np.float32)[..., None]  # (1797, 8, 8, 1), values 0..16
    y = bunch.target.astype(np.int32)
    # scikit-learn has no official test split: hold out a fixed, stratified 20 %.
    rng = np.random.default_rng(20240101)
    test_idx = np.concatenate(
        [
            rng.permutation(np.flatnonzero(y == c))[: int(round(0.2 * np.sum(y == c)))]
            for c in range(10)
        ]
    )
    mask = np.zeros(len(y), dtype=bool)
    mask[test_idx] = True
    return {"x_train": x[~mask], "y_train": y[~mask], "x_test": x[mask], "y_test": y[mask]}


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte idx file")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _fashion_mnist_dir(data_dir: str | os.PathLike | None) -> Path:
    from bnnzoo import datasets_cache  # stdlib only; also run by `make` before TF exists

    # An explicit data_dir is the only place looked in: a wrong folder is an error,
    # not a silent switch to another copy.
    candidates = [data_dir] if data_dir else [
        os.environ.get(FASHION_MNIST_ENV), FASHION_MNIST_DEFAULT_DIR, datasets_cache.fashion_mnist_cache_dir()
    ]
    for cand in candidates:
        if cand and all((Path(cand) / f).is_file() for f in _FASHION_FILES.values()):
            return Path(cand)
    searched = ", ".join(str(c) for c in candidates if c)
    raise DataUnavailableError(
        "Fashion-MNIST files not found (looked in: "
        f"{searched}). Fetch them into the cache with `python -m bnnzoo.datasets_cache` "
        "(`make test` does this), install them with `apt-get install dataset-fashion-mnist` "
        f"(Debian/Ubuntu), or set {FASHION_MNIST_ENV} (or pass data_dir) to a folder "
        f"holding {', '.join(_FASHION_FILES.values())}."
    )


@register_dataset("fashion_mnist", description="Fashion-MNIST from local idx files or bnnzoo's cache (offline)")
def _load_fashion_mnist(name, data_dir) -> RawSplits:
    folder = _fashion_mnist_dir(data_dir)
    arrays = {k: _read_idx(folder / f) for k, f in _FASHION_FILES.items()}
    for k in ("x_train", "x_test"):
        arrays[k] = arrays[k].astype(np.float32)[..., None]
    for k in ("y_train", "y_test"):
        arrays[k] = arrays[k].astype(np.int32)
    return arrays


@register_dataset("npz", description="a path to a .npz file holding x_train, y_train, x_test, y_test",
                  accepts=lambda name: name.endswith(".npz"))
def _load_npz(name, data_dir) -> RawSplits:
    path = Path(name)
    if not path.is_file():
        raise FileNotFoundError(f"No .npz dataset at {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in _SPLIT_KEYS if k not in f]
            if missing:
                raise ValueError(f"{path} lacks the arrays {missing}; it needs {', '.join(_SPLIT_KEYS)}")
            return {k: np.asarray(f[k]) for k in _SPLIT_KEYS}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        if str(path) in str(err):
            raise
        detail = " ".join(str(err).split())[:200]
        raise ValueError(f"{path} is not a readable .npz file (truncated, corrupted or holding "
                         f"Python objects): {detail}") from err


def _check_images(name: str, key: str, x: np.ndarray, allow_nan: bool) -> np.ndarray:
    """`x` as float32 NHWC, or `ValueError` naming the array and the dimension."""
    if x.dtype.kind not in "biuf":
        raise ValueError(f"dataset {name!r}: {key} must hold numbers, got dtype {x.dtype}")
    if x.ndim not in (3, 4):
        raise ValueError(f"dataset {name!r}: {key} must have 3 (N, H, W) or 4 (N, H, W, C) dimensions, "
                         f"got {x.ndim} (shape {x.shape})")
    if len(x) == 0 or 0 in x.shape[1:]:
        raise ValueError(f"dataset {name!r}: {key} is empty (shape {x.shape})")
    with np.errstate(over="ignore"):  # values beyond float32 become Inf, refused below
        x = x.astype(np.float32, copy=False)
    if not allow_nan:
        bad = ~np.isfinite(x)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"dataset {name!r}: {key} holds {int(bad.sum())} NaN/Inf values (first at "
                             f"index {first}, or out of float32 range); clean the data or pass allow_nan=True")
    return x[..., None] if x.ndim == 3 else x


def _check_labels(name: str, key: str, y: np.ndarray, n: int) -> np.ndarray:
    """`y` as int32 of shape (n,), or `ValueError` naming the array and the problem."""
    if y.dtype.kind not in "biuf":
        raise ValueError(f"dataset {name!r}: {key} must hold integer class labels, got dtype {y.dtype}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"dataset {name!r}: {key} must have shape (N,) or (N, 1), got {y.shape} "
                         "(one-hot labels? pass the class indices)")
    if len(y) != n:
        raise ValueError(f"dataset {name!r}: {key} has {len(y)} labels but x_{key[2:]} has {n} images "
                         "(dimension 0 differs)")
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            value = y[i].item()  # a Python float: numpy 2 would show np.float64(0.5)
            raise ValueError(f"dataset {name!r}: {key} must hold integer class labels, got {value!r} at index {i}")
    if y.min() < 0 or y.max() >= 2**31:
        i = int(np.argmin(y)) if y.min() < 0 else int(np.argmax(y))
        raise ValueError(f"dataset {name!r}: {key} labels must be in [0, num_classes), got {y[i]} at index {i}")
    return y.astype(np.int32)


def _check_class_count(name: str, y: np.ndarray, num_classes: int) -> None:
    """Refuse a class count no dataset means, warn of one that is suspect.

    The class count is `max(y_train) + 1`. Refused (`ValueError`): more than
    `MAX_CLASSES`, or more than `CLASS_COUNT_RATIO` times the distinct training labels
    (a stray label: one 999999 among digits would build a million-class model).
    Warned (`LabelWarning`): the training labels hold a single class, or fewer than
    half of the classes appear in them (a class count "far above" the labels seen).
    """
    seen = np.unique(y)
    top = int(np.argmax(y))
    if num_classes > MAX_CLASSES or num_classes > CLASS_COUNT_RATIO * len(seen):
        raise ValueError(
            f"dataset {name!r}: y_train holds label {y[top]} at index {top}, which makes {num_classes} classes "
            f"for {len(seen)} distinct labels (at most {MAX_CLASSES} classes, and at most {CLASS_COUNT_RATIO}x "
            f"the distinct labels); relabel the classes as 0..K-1")
    if len(seen) == 1:
        warnings.warn(f"dataset {name!r}: every training label is {seen[0]}: a {num_classes}-class model "
                      "trained on one class learns nothing of the others", LabelWarning, stacklevel=3)
    elif 2 * len(seen) < num_classes:
        warnings.warn(f"dataset {name!r}: the training labels hold {len(seen)} distinct values but the "
                      f"largest, {y[top]}, makes {num_classes} classes; most classes are never seen in "
                      "training (relabel them as 0..K-1)", LabelWarning, stacklevel=3)


def _check_splits(name: str, raw: RawSplits, allow_nan: bool) -> tuple[RawSplits, int]:
    """Validated copies of the raw splits and the class count of the training labels."""
    missing = [k for k in _SPLIT_KEYS if k not in raw]
    if missing:
        raise ValueError(f"dataset {name!r}: its source returned no {', '.join(missing)} "
                         f"(a source's load returns {', '.join(_SPLIT_KEYS)})")
    out = {}
    for split in ("train", "test"):
        x = out[f"x_{split}"] = _check_images(name, f"x_{split}", np.asarray(raw[f"x_{split}"]), allow_nan)
        out[f"y_{split}"] = _check_labels(name, f"y_{split}", np.asarray(raw[f"y_{split}"]), len(x))
    for dim, (a, b) in enumerate(zip(out["x_train"].shape[1:], out["x_test"].shape[1:]), start=1):
        if a != b:
            raise ValueError(f"dataset {name!r}: x_test images have shape {out['x_test'].shape[1:]} but "
                             f"x_train images {out['x_train'].shape[1:]} (dimension {dim}: {b} vs {a})")
    num_classes = int(out["y_train"].max()) + 1
    if num_classes < 2:
        raise ValueError(f"dataset {name!r}: y_train must hold at least 2 classes (labels 0 and 1), "
                         f"got only label {num_classes - 1}")
    _check_class_count(name, out["y_train"], num_classes)
    if out["y_test"].max() >= num_classes:
        i = int(np.argmax(out["y_test"]))
        raise ValueError(f"dataset {name!r}: y_test holds label {out['y_test'][i]} at index {i}, but the "
                         f"training labels have {num_classes} classes (0..{num_classes - 1})")
    return out, num_classes


def _can_reach(host: str, port: int, timeout: float = _PROBE_TIMEOUT_S) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _tfds_split_to_numpy(ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for x, y in ds.batch(4096).as_numpy_iterator():
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def _in_tfds_registry(name: str) -> bool:
    if name.endswith(".npz"):
        return False
    import tensorflow_datasets as tfds

    try:
        tfds.builder_cls(name.split(":")[0].split("/")[0])  # "mnist:3.0.1", "cifar10/config"
    except (tfds.core.registered.DatasetNotFoundError, ValueError):  # ValueError: not a TFDS-style name
        return False
    return True


@register_dataset("tfds", description="a TFDS name (e.g. 'cifar10', 'mnist')", accepts=_in_tfds_registry)
def _load_tfds(name: str, data_dir) -> RawSplits:
    import tensorflow_datasets as tfds

    def load(download: bool):
        return tfds.load(
            name, split=["train", "test"], as_supervised=True, data_dir=data_dir, download=download
        )

    try:
        train, test = load(download=False)  # fails in milliseconds if not prepared
    except AssertionError as missing:
        if not _can_reach(*_TFDS_DOWNLOAD_PROBE):
            raise DataUnavailableError(
                f"TFDS dataset {name!r} is not prepared in {data_dir or '~/tensorflow_datasets'} "
                "and its download host cannot be reached (offline?). Prepare it on a machine "
                "with internet (`python -m tensorflow_datasets.scripts.download_and_prepare "
                f"--datasets={name}`) and copy the folder here, or use an offline dataset: "
                f"{', '.join(list_datasets())}."
            ) from missing
        train, test = load(download=True)
    x_train, y_train = _tfds_split_to_numpy(train)
    x_test, y_test = _tfds_split_to_numpy(test)
    return {
        "x_train": x_train.astype(np.float32),
        "y_train": y_train.astype(np.int32),
        "x_test": x_test.astype(np.float32),
        "y_test": y_test.astype(np.int32),
    }


# --------------------------------------------------------------------------- splits


def load_arrays(
    name: str = "digits",
    *,
    validation_fraction: float = 0.1,
    split_seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    allow_nan: bool = False,
) -> ArraySplits:
    """Load a dataset as normalized float32 arrays with a seeded validation split.

    The data is checked before use: images are numeric with 3 or 4 dimensions and
    the same shape in both splits, finite (no NaN/Inf) unless `allow_nan`, labels
    are integers of shape (N,) or (N, 1) matching the images in number. The class
    count is taken from the training labels (`max + 1`, at least 2); a test label
    outside it is refused, and so is a class count above `MAX_CLASSES` (100 000) or
    above `CLASS_COUNT_RATIO` (10) times the distinct training labels (a stray
    label); a single training class, or fewer than half of the classes appearing in
    the training labels, is a `LabelWarning`. The training split keeps at least
    min(`MIN_TRAIN_SAMPLES` (10), all) images.

    Args:
        name: a registered dataset (`list_datasets()`: `"digits"`, `"fashion_mnist"`, ...),
            a path to a `.npz` file or a TFDS name.
        validation_fraction: share of the training data held out for validation, in [0, 1).
        split_seed: seed of the train/validation split (not of training).
        data_dir: folder to read Fashion-MNIST idx files or TFDS data from.
        allow_nan: accept NaN/Inf pixels (normalization statistics then ignore
            them; the values themselves reach the model unchanged).

    Raises:
        DataUnavailableError: the data is not on this machine and cannot be fetched.
        ValueError: bad arguments, unknown dataset name or malformed data (the
            message names the array and the dimension or value).
    """
    source = dataset_source(name)
    check_number("validation_fraction", validation_fraction, low=0, high=1, high_open=True)
    check_int("split_seed", split_seed, 0, 2**32 - 1)
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise ValueError(f"data_dir must be a folder path or None, got {data_dir!r} ({type(data_dir).__name__})")
    raw, num_classes = _check_splits(name, source.load(name, data_dir), allow_nan)
    x_train, y_train = raw["x_train"], raw["y_train"]

    perm = np.random.default_rng(split_seed).permutation(len(x_train))
    n_val = int(round(validation_fraction * len(x_train)))
    n_train, least = len(x_train) - n_val, min(MIN_TRAIN_SAMPLES, len(x_train))
    if n_train < least:
        kept = "the training split is empty" if n_train == 0 else f"the training split keeps {n_train} image(s)"
        raise ValueError(f"dataset {name!r}: validation_fraction {validation_fraction} of its {len(x_train)} "
                         f"training images leaves {n_val} for validation and {kept}; it must keep at least "
                         f"{least} (min({MIN_TRAIN_SAMPLES}, all)): lower --validation-fraction")
    val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    x_tr, y_tr = x_train[train_idx], y_train[train_idx]

    axes = tuple(range(x_tr.ndim - 1))
    mean_fn, std_fn = (np.nanmean, np.nanstd) if allow_nan else (np.mean, np.std)
    mean = np.nan_to_num(mean_fn(x_tr, axis=axes)).astype(np.float32)
    std = np.maximum(np.nan_to_num(std_fn(x_tr, axis=axes)), 1e-6).astype(np.float32)

    def norm(x):
        return ((x - mean) / std).astype(np.float32)

    return ArraySplits(
        name=name,
        x_train=norm(x_tr),
        y_train=y_tr,
        x_val=norm(x_train[val_idx]),
        y_val=y_train[val_idx],
        x_test=norm(raw["x_test"]),
        y_test=raw["y_test"],
        num_classes=num_classes,
        mean=mean,
        std=std,
    )


def _with_data_sharding(ds: tf.data.Dataset) -> tf.data.Dataset:
    # In-memory datasets have no files to shard across workers: shard by element.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def eval_pipeline(x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> tf.data.Dataset:
    """An unshuffled, batched pipeline for evaluation."""
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
    return _with_data_sharding(ds.prefetch(tf.data.AUTOTUNE))


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The sample order of epoch `epoch`, from a generator keyed on (seed, epoch).

    Keying the order on the epoch index (not on how many epochs this process has
    run) is what lets a resumed run see exactly the batches the uninterrupted run would.
    """
    return np.random.default_rng([int(seed), int(epoch)]).permutation(int(n))


def epoch_pipeline(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    seed: int = 0,
    epochs: int = 1,
    initial_epoch: int = 0,
    shuffle: bool = True,
) -> tuple[tf.data.Dataset, int]:
    """Training batches for epochs `[initial_epoch, epochs)` with epoch-keyed shuffling.

    `y` is an array, or a tuple of arrays with one row per example (e.g. the labels
    and a distillation teacher's logits), batched alike. Returns the dataset and the
    number of steps per epoch; pass both to
    `model.fit(ds, steps_per_epoch=steps, epochs=epochs, initial_epoch=initial_epoch)`.
    """
    check_int("batch_size", batch_size, 1, MAX_BATCH_SIZE)
    n = len(x)
    steps = -(-n // batch_size)

    # One epoch's order at a time (memory O(n), not O(n * epochs)), computed when
    # the pipeline reaches that epoch.
    def order_of(epoch):
        if not shuffle:
            return tf.range(n, dtype=tf.int64)
        idx = tf.numpy_function(lambda e: epoch_permutation(n, seed, e).astype(np.int64), [epoch], tf.int64)
        return tf.ensure_shape(idx, [n])

    xs, ys = tf.constant(x), tf.nest.map_structure(tf.constant, y)
    ds = (
        tf.data.Dataset.range(initial_epoch, max(epochs, initial_epoch))
        .map(order_of)
        .flat_map(lambda idx: tf.data.Dataset.from_tensor_slices(idx).batch(batch_size))
        .map(lambda idx: (tf.gather(xs, idx), tf.nest.map_structure(lambda t: tf.gather(t, idx), ys)),
             num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    return _with_data_sharding(ds), steps


def load_dataset(
    name: str = "digits",
    *,
    batch_size: int = 64,
    seed: int = 0,
    validation_fraction: float = 0.1,
    split_seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    shuffle: bool = True,
) -> DatasetSplits:
    """Train/validation/test `tf.data` pipelines for a dataset.

    The training pipeline reshuffles every epoch from `seed`; validation and test
    are unshuffled. See the module docstring for the accepted names.
    """
    check_int("batch_size", batch_size, 1, MAX_BATCH_SIZE)
    check_int("seed", seed, 0, 2**32 - 1)
    arrays = load_arrays(
        name, validation_fraction=validation_fraction, split_seed=split_seed, data_dir=data_dir
    )
    train = tf.data.Dataset.from_tensor_slices((arrays.x_train, arrays.y_train))
    if shuffle:
        train = train.shuffle(len(arrays.x_train), seed=seed, reshuffle_each_iteration=True)
    train = _with_data_sharding(train.batch(batch_size).prefetch(tf.data.AUTOTUNE))
    return DatasetSplits(
        train=train,
        validation=eval_pipeline(arrays.x_val, arrays.y_val, batch_size),
        test=eval_pipeline(arrays.x_test, arrays.y_test, batch_size),
        arrays=arrays,
    )
