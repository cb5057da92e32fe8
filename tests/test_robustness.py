"""Nothing lost, nothing let in: run directories, paths, sizes, data and CLI errors.

Each case runs through the real CLI (`bnnzoo.cli.main`, plus a few subprocesses)
or the public API and checks the exit code or exception, that the message names
the argument or file, and that no file that existed before changed.
"""

import errno
import functools
import hashlib
import http.server
import inspect
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bnnzoo import cli, data, pretrained, quantizers, training
from bnnzoo.models import create_model
from bnnzoo.training import TrainConfig

REPO = Path(__file__).resolve().parents[1]
TINY = ["--epochs", "1", "--model-arg", "units=16"]


def hashes(*roots) -> dict[str, str]:
    """sha256 of every file under `roots` (files or folders)."""
    out = {}
    for root in map(Path, roots):
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in files:
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """`bnnzoo ARGV` in-process: (exit code, stdout, stderr)."""
    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as stop:
        rc = stop.code
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc, err, *needles):
    assert rc == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("bnnzoo: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture(scope="module")
def finished(tmp_path_factory, digits):
    """A finished tiny run (the config `bnnzoo train --epochs 1 --model-arg units=16` builds)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    training.train(TrainConfig(epochs=1, model_kwargs={"units": 16}), out, arrays=digits, verbose=0)
    return out


@pytest.fixture
def run_copy(finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    return out


def write_npz(path, **overrides):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.random((40, 8, 8)).astype(np.float32), "y_train": np.arange(40) % 4,
              "x_test": rng.random((10, 8, 8)).astype(np.float32), "y_test": np.arange(10) % 4}
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


# --------------------------------------------------------------------------- run directories


def test_finished_run_with_another_config_is_refused(capsys, run_copy):
    before = hashes(run_copy)
    rc, _, err = run_cli(capsys, "train", *TINY, "--quantizer", "approx_sign", "--out", run_copy)
    assert_one_line_error(rc, err, str(run_copy), "differs in: quantizer", "--out NEW", "--overwrite")
    assert hashes(run_copy) == before


def test_same_config_is_a_no_op(capsys, run_copy):
    before = hashes(run_copy)
    rc, out, _ = run_cli(capsys, "train", *TINY, "--out", run_copy)
    assert rc == 0 and "already holds this finished run" in out and "test accuracy" in out
    assert hashes(run_copy) == before


def test_api_same_config_returns_the_existing_result(run_copy):
    before = hashes(run_copy)
    result = training.train(TrainConfig(epochs=1, model_kwargs={"units": 16}), run_copy, verbose=0)
    assert result.metrics == json.loads((run_copy / "metrics.json").read_text())
    assert result.model.count_params() == result.metrics["params"]
    assert hashes(run_copy) == before


def test_api_refusal_names_every_differing_key(run_copy):
    before = hashes(run_copy)
    with pytest.raises(ValueError, match=r"differs in: epochs, seed\).*overwrite=True"):
        training.train(TrainConfig(epochs=2, seed=3, model_kwargs={"units": 16}), run_copy, verbose=0)
    assert hashes(run_copy) == before


def test_no_resume_does_not_replace_a_finished_run(capsys, run_copy):
    before = hashes(run_copy)
    rc, _, err = run_cli(capsys, "train", *TINY, "--seed", "4", "--no-resume", "--out", run_copy)
    assert_one_line_error(rc, err, "differs in: seed")
    assert hashes(run_copy) == before


def test_overwrite_replaces_the_run(capsys, run_copy):
    rc, out, _ = run_cli(capsys, "train", *TINY, "--quantizer", "approx_sign", "--overwrite", "--out", run_copy)
    assert rc == 0, out
    assert json.loads((run_copy / "config.json").read_text())["quantizer"] == "approx_sign"
    assert training.load_model(run_copy).count_params() > 0
    assert not list(run_copy.glob(".*tmp*"))  # no temporary files left


def test_unfinished_run_with_another_config_is_one_line(capsys, run_copy):
    (run_copy / "metrics.json").unlink()
    (run_copy / "checkpoints").mkdir()
    before = hashes(run_copy)
    rc, _, err = run_cli(capsys, "train", *TINY, "--seed", "5", "--out", run_copy)
    assert_one_line_error(rc, err, "unfinished run", "differs in: seed", "--no-resume")
    assert hashes(run_copy) == before


def test_model_without_config_is_refused(capsys, run_copy):
    (run_copy / "config.json").unlink()
    before = hashes(run_copy)
    rc, _, err = run_cli(capsys, "train", *TINY, "--out", run_copy)
    assert_one_line_error(rc, err, "without config.json")
    assert hashes(run_copy) == before


def test_corrupt_config_json_is_refused(capsys, run_copy):
    (run_copy / "config.json").write_text("{not json")
    before = hashes(run_copy)
    rc, _, err = run_cli(capsys, "train", *TINY, "--out", run_copy)
    assert_one_line_error(rc, err, str(run_copy / "config.json"))
    assert hashes(run_copy) == before


def test_out_is_an_existing_file(capsys, tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    rc, _, err = run_cli(capsys, "train", *TINY, "--out", target)
    assert_one_line_error(rc, err, str(target), "is a file")
    assert target.read_text() == "keep me"


def test_out_under_a_file_is_not_writable(capsys, tmp_path, digits):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    rc, _, err = run_cli(capsys, "train", *TINY, "--out", blocker / "run")
    assert_one_line_error(rc, err, "cannot write the run directory", str(blocker / "run"))
    assert blocker.read_text() == "x"


def test_out_in_a_read_only_folder(capsys, tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:  # root ignores the mode bits: give the refusal a user would get
        real_mkdir = Path.mkdir

        def refusing_mkdir(self, *args, **kwargs):
            if folder in self.parents:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
            return real_mkdir(self, *args, **kwargs)

        monkeypatch.setattr(Path, "mkdir", refusing_mkdir)
    try:
        rc, _, err = run_cli(capsys, "train", *TINY, "--out", folder / "run")
    finally:
        folder.chmod(0o755)
    assert_one_line_error(rc, err, "cannot write the run directory", str(folder / "run"), "Permission denied")
    assert list(folder.iterdir()) == []


def test_bad_data_leaves_no_run_directory(capsys, tmp_path):
    npz = write_npz(tmp_path / "nan.npz", x_train=np.full((40, 8, 8), np.nan, np.float32))
    out = tmp_path / "run"
    rc, _, err = run_cli(capsys, "train", *TINY, "--dataset", npz, "--out", out)
    assert_one_line_error(rc, err, "x_train", "NaN")
    assert not out.exists()


def test_atomic_writer_failure_keeps_the_old_file(tmp_path):
    from bnnzoo._atomic import atomic_path

    target = tmp_path / "model.keras"
    target.write_bytes(b"old complete model")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half a mod")
            raise RuntimeError("crash during the write")
    assert target.read_bytes() == b"old complete model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_atomic_writes_keep_ordinary_file_modes(tmp_path):
    """Shipped artifacts must be world-readable: not mkstemp's owner-only 0600."""
    import os

    from bnnzoo._atomic import atomic_write_text

    old_mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "card.json", "{}")
        assert (tmp_path / "card.json").stat().st_mode & 0o777 == 0o644
        (tmp_path / "card.json").chmod(0o640)
        atomic_write_text(tmp_path / "card.json", "{}\n")  # a rewrite keeps the file's mode
        assert (tmp_path / "card.json").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old_mask)


_KILL_WRITER = r"""
import hashlib, importlib.util, os, sys
spec = importlib.util.spec_from_file_location("atomic", sys.argv[1])
atomic = importlib.util.module_from_spec(spec); spec.loader.exec_module(atomic)
i = 0
print("ready", flush=True)
while True:
    body = os.urandom(1 << 20) * 4  # 4 MiB, so that kills land mid-write
    atomic.atomic_write_bytes(sys.argv[2], hashlib.sha256(body).hexdigest().encode() + body)
    i += 1
"""


def test_sigkill_during_writes_leaves_a_complete_file(tmp_path):
    target = tmp_path / "model.keras"
    target.write_bytes(hashlib.sha256(b"v0").hexdigest().encode() + b"v0")
    writer = str(REPO / "bnnzoo" / "_atomic.py")
    rng = random.Random(16)
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", _KILL_WRITER, writer, str(target)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.02, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        content = target.read_bytes()
        assert hashlib.sha256(content[64:]).hexdigest().encode() == content[:64]
    # Only the target and, at most, the temporary file of the killed write.
    assert {p.name for p in tmp_path.iterdir()} - {"model.keras"} <= {
        p.name for p in tmp_path.glob(".model.keras.*.tmp.keras")}


def test_json_files_never_hold_nan(tmp_path):
    path = tmp_path / "metrics.json"
    training.write_json(path, {"loss": float("nan"), "acc": [np.float32("inf"), 0.5], "n": np.int64(3)})

    def refuse(constant):
        raise AssertionError(f"invalid JSON constant {constant}")

    assert json.loads(path.read_text(), parse_constant=refuse) == {"loss": None, "acc": [None, 0.5], "n": 3}


# --------------------------------------------------------------------------- traversal


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """An artifacts folder, and a card + weights planted outside it."""
    root = tmp_path / "a" / "b" / "models"
    shutil.copytree(pretrained.artifacts_dir() / "binarynet_mlp" / "digits", root / "binarynet_mlp" / "digits")
    evil = tmp_path / "evil_card"
    shutil.copytree(root / "binarynet_mlp" / "digits", evil)
    monkeypatch.setenv("BNNZOO_ARTIFACTS_DIR", str(root))
    return root, evil


@pytest.mark.parametrize("tag", ["../../../evil_card", "..", "../digits", "a/b", "/etc/passwd", "",
                                 ".hidden", "x\\y", "tag\x00", "~root"])
def test_unsafe_tags_are_refused(planted, tag):
    root, evil = planted
    before = hashes(root.parent.parent)
    with pytest.raises(ValueError, match="tag .* is not allowed"):
        pretrained.get_card("binarynet_mlp", tag)
    assert hashes(root.parent.parent) == before


def test_cli_evaluate_refuses_a_traversing_tag(capsys, planted):
    rc, out, err = run_cli(capsys, "evaluate", "--model", "binarynet_mlp", "--weights", "../../../evil_card")
    assert_one_line_error(rc, err, "'../../../evil_card'", "not allowed")
    assert "test accuracy" not in out


def test_create_model_refuses_a_traversing_tag(planted):
    with pytest.raises(ValueError, match="not allowed"):
        create_model("binarynet_mlp", weights="../../../evil_card")


def test_unsafe_model_name_is_refused(planted):
    with pytest.raises(ValueError, match="model name '../binarynet_mlp' is not allowed"):
        pretrained.get_card("../binarynet_mlp", "digits")


def test_symlink_out_of_the_artifacts_folder_is_refused(planted):
    root, evil = planted
    (root / "binarynet_mlp" / "linked").symlink_to(evil)
    with pytest.raises(ValueError, match="resolves outside"):
        pretrained.get_card("binarynet_mlp", "linked")


def test_card_with_a_traversing_weights_file_is_refused(planted):
    root, _ = planted
    card_path = root / "binarynet_mlp" / "digits" / "card.json"
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "weights_file": "../../../../evil_card/weights.h5"}))
    with pytest.raises(ValueError, match="weights file .* is not allowed"):
        pretrained.get_card("binarynet_mlp", "digits")


def test_malformed_card_names_the_file(planted):
    root, _ = planted
    card_path = root / "binarynet_mlp" / "digits" / "card.json"
    card_path.write_text("{")
    with pytest.raises(ValueError, match=f"model card {card_path} is malformed"):
        pretrained.get_card("binarynet_mlp", "digits")


class _Handler(http.server.SimpleHTTPRequestHandler):
    redirects: dict[str, str] = {}

    def do_GET(self):  # noqa: N802
        self.server.requests.append(self.path)
        if self.path in self.redirects:
            self.send_response(302)
            self.send_header("Location", self.redirects[self.path])
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 (bounded: stopped at the end of the test)."""
    folder = tmp_path / "served"
    folder.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(folder)))
    httpd.requests = []
    httpd.timeout = 5
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_redirect_to_another_host_is_refused(server, tmp_path, monkeypatch):
    folder, httpd, url = server
    payload = b"weights" * 100
    (folder / "w.h5").write_bytes(payload)
    port = httpd.server_address[1]
    monkeypatch.setitem(_Handler.redirects, "/moved.h5", f"http://localhost:{port}/w.h5")
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="refusing the redirect .* to http://localhost"):
        pretrained.fetch(f"{url}/moved.h5", hashlib.sha256(payload).hexdigest(), cache=cache)
    assert httpd.requests == ["/moved.h5"]  # the other host was never asked
    assert not any(cache.iterdir())


def test_redirect_on_the_same_host_is_followed(server, tmp_path, monkeypatch):
    folder, httpd, url = server
    payload = b"weights" * 100
    (folder / "w.h5").write_bytes(payload)
    monkeypatch.setitem(_Handler.redirects, "/moved.h5", f"{url}/w.h5")
    path = pretrained.fetch(f"{url}/moved.h5", hashlib.sha256(payload).hexdigest(), cache=tmp_path / "cache")
    assert path.read_bytes() == payload and path.parent == tmp_path / "cache"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/w.h5", "http://example.com/w.h5",
                                 "data:,hello", "https:///w.h5", "//127.0.0.1/w.h5"])
def test_fetch_refuses_other_schemes_and_plain_http_to_remote_hosts(tmp_path, url):
    with pytest.raises(ValueError, match="is not allowed: downloads use https"):
        pretrained.fetch(url, "0" * 64, cache=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("filename", ["../../escaped.h5", "a/b.h5", "/tmp/abs.h5", "..", ".h5"])
def test_fetch_refuses_file_names_with_path_parts(server, tmp_path, filename):
    folder, httpd, url = server
    (folder / "w.h5").write_bytes(b"w")
    with pytest.raises(ValueError, match="filename .* is not allowed"):
        pretrained.fetch(f"{url}/w.h5", hashlib.sha256(b"w").hexdigest(), filename=filename,
                         cache=tmp_path / "c" / "cache")
    assert httpd.requests == [] and not (tmp_path / "escaped.h5").exists()


def test_fetch_aborts_downloads_over_max_bytes(server, tmp_path):
    folder, _, url = server
    (folder / "big.h5").write_bytes(b"x" * 5000)
    with pytest.raises(ValueError, match="exceeds max_bytes=1000"):
        pretrained.fetch(f"{url}/big.h5", "0" * 64, cache=tmp_path / "cache", max_bytes=1000)
    assert list((tmp_path / "cache").iterdir()) == []


def test_remote_card_needs_https(planted):
    card = pretrained.get_card("binarynet_mlp", "digits")
    bad = pretrained.Card(**{**card.__dict__, "tag": "remote", "url": "file:///etc/passwd"})
    with pytest.raises(ValueError, match="url 'file:///etc/passwd' is not allowed"):
        pretrained.register_remote_card(bad)


# --------------------------------------------------------------------------- sizes


def test_cli_refuses_a_huge_epoch_count_at_once(capsys, tmp_path):
    started = time.perf_counter()
    rc, _, err = run_cli(capsys, "train", "--epochs", "1000000000000", "--out", tmp_path / "run")
    assert_one_line_error(rc, err, "epochs", "1000000000000", "[1, 1000000]")
    assert time.perf_counter() - started < 30 and not (tmp_path / "run").exists()


@pytest.mark.parametrize("kwargs, arg", [({"batch_size": 10**9}, "batch_size"), ({"seed": -1}, "seed"),
                                         ({"epochs": True}, "epochs"), ({"validation_fraction": "0.1"},
                                                                        "validation_fraction")])
def test_config_bounds(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        TrainConfig(**kwargs)


def test_shuffle_order_is_lazy_for_many_epochs():
    x, y = np.arange(10, dtype=np.float32)[:, None], np.arange(10)
    started = time.perf_counter()
    ds, steps = data.epoch_pipeline(x, y, 5, seed=7, epochs=10**12, initial_epoch=3)
    first = np.concatenate([b[1].numpy() for b in ds.take(2 * steps)])
    assert time.perf_counter() - started < 30
    np.testing.assert_array_equal(first[:10], data.epoch_permutation(10, 7, 3))
    np.testing.assert_array_equal(first[10:], data.epoch_permutation(10, 7, 4))


# --------------------------------------------------------------------------- data


_BAD_NPZ = {
    "nan_pixels": ({"x_train": np.full((40, 8, 8), np.nan, np.float32)}, "x_train holds 2560 NaN/Inf"),
    "inf_test_pixels": ({"x_test": np.full((10, 8, 8), np.inf, np.float32)}, "x_test holds"),
    "overflowing_pixels": ({"x_test": np.full((10, 8, 8), 1e300)}, "out of float32 range"),
    "test_label_57": ({"y_test": np.array([57] + [0] * 9)}, "y_test holds label 57 at index 0"),
    "float_labels": ({"y_train": np.arange(40) % 4 + 0.5}, "y_train must hold integer class labels, got 0.5"),
    "negative_label": ({"y_train": np.arange(40) % 4 - 1}, "y_train labels must be in [0, num_classes), got -1"),
    "2d_labels": ({"y_train": np.zeros((40, 2), np.int64)}, "y_train must have shape (N,) or (N, 1), got (40, 2)"),
    "length_mismatch": ({"y_train": np.arange(39) % 4}, "y_train has 39 labels but x_train has 40 images"),
    "2d_images": ({"x_train": np.zeros((40, 64))}, "x_train must have 3 (N, H, W) or 4 (N, H, W, C) dimensions"),
    "shape_mismatch": ({"x_test": np.zeros((10, 7, 8))}, "x_test images have shape (7, 8, 1) but x_train"),
    "string_labels": ({"y_test": np.array(["a"] * 10)}, "y_test must hold integer class labels, got dtype"),
    "empty_train": ({"x_train": np.zeros((0, 8, 8)), "y_train": np.zeros(0, np.int64)}, "x_train is empty"),
    "one_class": ({"y_train": np.zeros(40, np.int64), "y_test": np.zeros(10, np.int64)}, "at least 2 classes"),
    "missing_array": ({"y_test": None}, "lacks the arrays ['y_test']"),
}


@pytest.mark.parametrize("case", sorted(_BAD_NPZ))
def test_malformed_npz_is_refused_naming_the_array(tmp_path, case):
    overrides, message = _BAD_NPZ[case]
    npz = write_npz(tmp_path / f"{case}.npz", **overrides)
    before = hashes(npz)
    with pytest.raises(ValueError) as info:
        data.load_arrays(str(npz))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert hashes(npz) == before


@pytest.mark.parametrize("content", [b"not a zip at all", "truncated", "pickled"])
def test_unreadable_npz_is_refused_naming_the_file(tmp_path, content):
    npz = tmp_path / "bad.npz"
    if content == "truncated":
        npz.write_bytes(write_npz(tmp_path / "good.npz").read_bytes()[:300])
    elif content == "pickled":
        np.savez(npz, x_train=np.array([{"a": 1}], dtype=object), y_train=[0], x_test=[0], y_test=[0])
    else:
        npz.write_bytes(content)
    with pytest.raises(ValueError, match=f"{npz} is not a readable .npz file"):
        data.load_arrays(str(npz))


def test_nan_is_accepted_when_asked(tmp_path):
    x = np.random.default_rng(1).random((40, 8, 8)).astype(np.float32)
    x[0, 0, 0] = np.nan
    arrays = data.load_arrays(str(write_npz(tmp_path / "nan.npz", x_train=x)), validation_fraction=0.0,
                              allow_nan=True)
    assert np.isfinite(arrays.mean).all() and arrays.num_classes == 4


def test_cli_bad_labels_one_line_and_no_run_dir(capsys, tmp_path):
    npz = write_npz(tmp_path / "labels.npz", y_test=np.array([57] + [0] * 9))
    rc, _, err = run_cli(capsys, "train", *TINY, "--dataset", npz, "--out", tmp_path / "run")
    assert_one_line_error(rc, err, "y_test holds label 57")
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- models and quantizers


@pytest.mark.parametrize("kwargs, message", [
    ({"num_classes": 0}, "num_classes must be an integer in [2,"),
    ({"num_classes": 2.5}, "num_classes must be an integer in [2,"),
    ({"num_classes": True}, "num_classes"),
    ({"input_shape": (8.5, 8, 1)}, "input_shape must be 3 integers"),
    ({"input_shape": (8, 8)}, "input_shape must be 3 integers"),
    ({"input_shape": (0, 8, 1)}, "input_shape must have height and width in [1,"),
    ({"input_shape": (10**6, 8, 1)}, "input_shape must have height and width in [1,"),
    ({"units": -5}, "units must be an integer in [1,"),
    ({"width": 0}, "width must be a finite number > 0"),
    ({"hidden_layers": 0}, "hidden_layers must be an integer in [1,"),
])
def test_model_arguments_are_validated(kwargs, message):
    with pytest.raises(ValueError) as info:
        create_model("binarynet_mlp", **{"units": 16, **kwargs})
    assert message in str(info.value)


def test_family_minimum_input_size():
    with pytest.raises(ValueError, match="binary_resnet20 needs inputs of at least 4x4"):
        create_model("binary_resnet20", input_shape=(2, 2, 3), width=0.25)


def _positive_parameters():
    for name in quantizers.list_quantizers():
        signature = inspect.signature(quantizers.quantizer_class(name).__init__)
        for param in signature.parameters.values():
            if isinstance(param.default, (int, float)) and not isinstance(param.default, bool) and param.default > 0:
                yield name, param.name


@pytest.mark.parametrize("name, param", sorted(set(_positive_parameters())))
def test_every_quantizer_parameter_is_validated(name, param):
    for bad in (-1.0, 0.0, float("nan")):
        with pytest.raises(ValueError, match=param):
            quantizers.get_quantizer(name, **{param: bad})


def test_larq_quantizers_are_checked_and_stay_larq_classes():
    import larq as lq

    with pytest.raises(ValueError, match="beta must be a finite number > 0"):
        quantizers.get_quantizer("swish_sign", beta=-1)
    with pytest.raises(ValueError, match="clip_value must be a finite number > 0"):
        quantizers.get_quantizer("ste_sign", clip_value=-1)
    with pytest.raises(ValueError, match="clip_value"):
        quantizers.get_quantizer({"class_name": "SteSign", "config": {"clip_value": -1.0}})
    with pytest.raises(ValueError, match="does not take the arguments"):
        quantizers.get_quantizer("ste_sign", clip=1.0)
    assert type(quantizers.get_quantizer("ste_sign", clip_value=None)) is lq.quantizers.SteSign


# --------------------------------------------------------------------------- CLI errors


@pytest.fixture
def corrupt_models(tmp_path, finished):
    good = (finished / "model.keras").read_bytes()
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(good[: len(good) // 2])
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"\x00" * 4096)
    h5 = tmp_path / "garbage.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    return [truncated, garbage, h5]


@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_corrupt_models_are_one_line(capsys, corrupt_models, command):
    for path in corrupt_models:
        before = hashes(path)
        # tflite: a format every stack has (lce alone would stop first on a stack without LCE)
        extra = ["--format", "tflite"] if command == "export" else []
        rc, _, err = run_cli(capsys, command, path, "--dataset", "digits", *extra)
        assert_one_line_error(rc, err, f"cannot load the model file {path}")
        assert hashes(path) == before


@pytest.mark.parametrize("suffix, text, line", [(".toml", 'model = "binarynet_mlp"\nepochs = = 3\n', "line 2"),
                                                (".json", '{"epochs": 3,\n"seed": }', "line 2")])
def test_malformed_recipe_names_file_and_line(capsys, tmp_path, suffix, text, line):
    recipe = tmp_path / f"recipe{suffix}"
    recipe.write_text(text)
    rc, _, err = run_cli(capsys, "train", "--recipe", recipe, "--out", tmp_path / "run")
    assert_one_line_error(rc, err, str(recipe), line)
    assert not (tmp_path / "run").exists()


def test_recipe_with_wrong_types_is_one_line(capsys, tmp_path):
    recipe = tmp_path / "types.toml"
    recipe.write_text('epochs = "ten"\n')
    rc, _, err = run_cli(capsys, "train", "--recipe", recipe, "--out", tmp_path / "run")
    assert_one_line_error(rc, err, "epochs", "'ten'")


def test_debug_shows_the_traceback(capsys, corrupt_models):
    with pytest.raises(ValueError, match="cannot load the model file"):
        cli.main(["evaluate", str(corrupt_models[0]), "--dataset", "digits", "--debug"])


def _bnnzoo(*argv, cwd):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "bnnzoo", *map(str, argv)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_real_cli_refusal_is_one_line(tmp_path, run_copy):
    """The finding's exact command pair, through a real `bnnzoo` process."""
    before = hashes(run_copy)
    refused = _bnnzoo("train", *TINY, "--quantizer", "approx_sign", "--out", run_copy, cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "differs in: quantizer" in refused.stderr.strip().splitlines()[-1]
    assert hashes(run_copy) == before
