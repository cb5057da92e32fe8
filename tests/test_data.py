"""Dataset sources, seeded splits, normalization and the epoch-keyed training pipeline."""

import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from bnnzoo import data


def test_digits_splits_are_complete_and_deterministic(digits):
    total = len(digits.x_train) + len(digits.x_val) + len(digits.x_test)
    assert total == 1797
    assert digits.input_shape == (8, 8, 1)
    assert digits.num_classes == 10
    assert sorted(np.unique(digits.y_test)) == list(range(10))
    again = data.load_arrays("digits")
    np.testing.assert_array_equal(again.x_train, digits.x_train)
    np.testing.assert_array_equal(again.y_val, digits.y_val)


def test_normalization_uses_training_statistics(digits):
    assert abs(float(digits.x_train.mean())) < 1e-4
    assert abs(float(digits.x_train.std()) - 1.0) < 1e-3
    assert digits.x_train.dtype == np.float32 and digits.y_train.dtype == np.int32


def test_split_seed_moves_validation_but_not_test(digits):
    other = data.load_arrays("digits", split_seed=1)
    np.testing.assert_array_equal(other.y_test, digits.y_test)
    assert len(other.x_val) == len(digits.x_val) == round(0.1 * (1797 - 359))
    assert not np.array_equal(other.y_val, digits.y_val)


def test_load_dataset_pipelines(digits):
    splits = data.load_dataset("digits", batch_size=32, seed=3)
    x, y = next(iter(splits.train))
    assert x.shape == (32, 8, 8, 1) and y.shape == (32,)
    test_x = np.concatenate([b[0].numpy() for b in splits.test])
    np.testing.assert_array_equal(test_x, digits.x_test)  # test data is not shuffled
    n_val = sum(int(b[1].shape[0]) for b in splits.validation)
    assert n_val == len(digits.x_val)


@pytest.mark.parametrize("kwargs, arg", [({"batch_size": 0}, "batch_size"), ({"validation_fraction": 1.0}, "validation_fraction")])
def test_bad_arguments_name_the_argument(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        data.load_dataset("digits", **kwargs)


def test_fashion_mnist_is_the_real_dataset(fashion):
    assert fashion.input_shape == (28, 28, 1)
    assert len(fashion.x_train) + len(fashion.x_val) == 60000
    assert len(fashion.x_test) == 10000
    assert fashion.num_classes == 10
    # The real test set is balanced: 1000 images per class.
    np.testing.assert_array_equal(np.bincount(fashion.y_test), np.full(10, 1000))


def test_fashion_mnist_missing_files_give_instructions(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FASHION_MNIST_DEFAULT_DIR", str(tmp_path / "nowhere"))
    monkeypatch.delenv(data.FASHION_MNIST_ENV, raising=False)
    with pytest.raises(data.DataUnavailableError, match="apt-get install dataset-fashion-mnist"):
        data.load_arrays("fashion_mnist", data_dir=tmp_path)


def test_fashion_mnist_from_env_dir(tmp_path, monkeypatch):
    """A folder given by the environment variable is used; idx files are parsed."""
    import gzip
    import struct

    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    labels = np.array([0, 1, 2], dtype=np.uint8)

    def write(name, arr):
        header = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
        with gzip.open(tmp_path / name, "wb") as f:
            f.write(header + arr.tobytes())

    write("train-images-idx3-ubyte.gz", images)
    write("train-labels-idx1-ubyte.gz", labels)
    write("t10k-images-idx3-ubyte.gz", images[:2])
    write("t10k-labels-idx1-ubyte.gz", labels[:2])
    monkeypatch.setenv(data.FASHION_MNIST_ENV, str(tmp_path))
    monkeypatch.setattr(data, "FASHION_MNIST_DEFAULT_DIR", str(tmp_path / "nowhere"))
    arrays = data.load_arrays("fashion_mnist", validation_fraction=0.0)
    assert arrays.x_train.shape == (3, 28, 28, 1)
    np.testing.assert_array_equal(arrays.y_test, [0, 1])
    np.testing.assert_allclose(arrays.x_train[0] * arrays.std + arrays.mean, images[0][..., None], atol=1e-3)


def test_npz_source(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "toy.npz"
    np.savez(path, x_train=rng.random((50, 6, 6)), y_train=rng.integers(0, 3, 50),
             x_test=rng.random((10, 6, 6)), y_test=np.arange(10) % 3)
    arrays = data.load_arrays(str(path), validation_fraction=0.2)
    assert arrays.input_shape == (6, 6, 1)
    assert (len(arrays.x_train), len(arrays.x_val), len(arrays.x_test)) == (40, 10, 10)
    assert arrays.num_classes == 3


def test_npz_missing_arrays(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, x_train=np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="y_train"):
        data.load_arrays(str(path))


def test_tfds_path_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=40):
        arrays = data.load_arrays("mnist", validation_fraction=0.25)
    assert arrays.input_shape == (28, 28, 1)
    assert len(arrays.x_train) == 30 and len(arrays.x_val) == 10 and len(arrays.x_test) == 40


def test_tfds_offline_fails_fast_with_a_clear_error(tmp_path, monkeypatch):
    # Point the download probe at a closed local port: the offline case, deterministically.
    monkeypatch.setattr(data, "_TFDS_DOWNLOAD_PROBE", ("127.0.0.1", 9))
    start = time.perf_counter()
    with pytest.raises(data.DataUnavailableError, match="not prepared"):
        data.load_arrays("mnist", data_dir=str(tmp_path))
    assert time.perf_counter() - start < 15


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match="digits, fashion_mnist"):
        data.load_arrays("no_such_dataset_anywhere")


@pytest.fixture
def sources(monkeypatch):
    """The dataset registry, restored after the test (so throwaway sources do not leak)."""
    monkeypatch.setattr(data.DATASET_SOURCES, "_entries", dict(data.DATASET_SOURCES._entries))
    return data.DATASET_SOURCES


def _two_class_splits(n_train=40, n_test=10):
    rng = np.random.default_rng(1)
    return {"x_train": rng.random((n_train, 5, 5)), "y_train": np.arange(n_train) % 2,
            "x_test": rng.random((n_test, 5, 5)), "y_test": np.arange(n_test) % 2}


def test_a_registered_source_loads_like_the_built_in_ones(sources):
    calls = []

    @data.register_dataset("throwaway", description="two classes of noise")
    def throwaway(name, data_dir):
        calls.append((name, data_dir))
        return _two_class_splits()

    assert "throwaway" in data.list_datasets() and "throwaway" in sources
    data.check_dataset_name("throwaway")  # accepted without loading
    assert calls == []
    arrays = data.load_arrays("throwaway", validation_fraction=0.25, data_dir="/some/folder")
    assert calls == [("throwaway", "/some/folder")]
    assert arrays.name == "throwaway" and arrays.input_shape == (5, 5, 1) and arrays.num_classes == 2
    assert (len(arrays.x_train), len(arrays.x_val), len(arrays.x_test)) == (30, 10, 10)
    assert abs(float(arrays.x_train.mean())) < 1e-5  # normalized like every source
    splits = data.load_dataset("throwaway", batch_size=8)
    assert splits.num_classes == 2 and next(iter(splits.train))[0].shape == (8, 5, 5, 1)


def test_unknown_name_lists_every_registered_dataset_and_the_name_families(sources):
    data.register_dataset("throwaway", description="noise")(lambda name, data_dir: _two_class_splits())
    for check in (data.check_dataset_name, data.load_arrays, data.dataset_source):
        with pytest.raises(ValueError) as err:
            check("no_such_dataset_anywhere")
        message = str(err.value)
        assert message.startswith("Unknown dataset 'no_such_dataset_anywhere'. Valid names: "
                                  "digits, fashion_mnist, throwaway; or ")
        assert "a path to a .npz file" in message and "a TFDS name" in message
        assert "\n" not in message
    for empty in ("", None):  # names nothing: the valid names, not a type complaint (#28 item 8)
        with pytest.raises(ValueError, match=f"^Unknown dataset {empty!r}. Valid names: digits, fashion_mnist"):
            data.check_dataset_name(empty)


def test_a_source_of_many_names_is_asked_after_the_registered_names(sources, tmp_path):
    @data.register_dataset("toy-files", description="a path to a .toy file",
                           accepts=lambda name: name.endswith(".toy"))
    def toy(name, data_dir):
        return _two_class_splits(n_train=int(Path(name).stem))

    assert "toy-files" not in data.list_datasets()  # a family of names, not one dataset
    assert data.dataset_source("20.toy").load is toy
    assert data.dataset_source("x.npz") is sources.get("npz")
    assert data.dataset_source("digits") is sources.get("digits")
    assert len(data.load_arrays(str(tmp_path / "20.toy"), validation_fraction=0.0).x_train) == 20


def test_sources_are_checked_and_registered_once(sources):
    with pytest.raises(ValueError, match="dataset 'digits' is already registered"):
        data.register_dataset("digits", description="another")(lambda name, data_dir: {})
    data.register_dataset("half", description="no test split")(
        lambda name, data_dir: {"x_train": np.zeros((4, 2, 2)), "y_train": np.array([0, 1, 0, 1])})
    with pytest.raises(ValueError, match="dataset 'half': its source returned no x_test, y_test"):
        data.load_arrays("half")


def test_epoch_pipeline_is_keyed_on_epoch(digits):
    x, y = digits.x_train[:100], digits.y_train[:100]

    def labels(ds):
        return np.concatenate([b[1].numpy() for b in ds])

    full, steps = data.epoch_pipeline(x, y, 32, seed=5, epochs=3)
    resumed, _ = data.epoch_pipeline(x, y, 32, seed=5, epochs=3, initial_epoch=1)
    assert steps == 4
    full_labels = labels(full)
    assert len(full_labels) == 300
    np.testing.assert_array_equal(full_labels[100:], labels(resumed))
    assert not np.array_equal(full_labels[:100], full_labels[100:200])  # reshuffled per epoch
    first_batch = next(iter(full))[0]
    assert first_batch.shape == (32, 8, 8, 1) and first_batch.dtype == tf.float32
    # several targets per example (labels and a teacher's logits) stay in step with x
    extra = np.arange(200, dtype=np.float32).reshape(100, 2)
    paired, _ = data.epoch_pipeline(x, (y, extra), 32, seed=5, epochs=3)
    for (xb, (yb, eb)), (_, plain_y) in zip(paired, full):
        np.testing.assert_array_equal(yb.numpy(), plain_y.numpy())
        rows = (eb.numpy()[:, 0] / 2).astype(int)  # each row's index in x
        np.testing.assert_array_equal(xb.numpy(), x[rows])
