"""Every expected failure is one line naming the argument, file, path or URL and what
to do; nothing is silently accepted (issue #28, items 5, 7 and 8).

Like `tests/test_robustness.py`: each case goes through the real CLI (`bnnzoo.cli.main`,
or a `python -m bnnzoo` process where a signal or a hang is the point) or the public
API, checks the exit code (2) or the exception, that the one message line names what
it must, that files which existed before are unchanged, and that a run that never
trained leaves no run directory.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from bnnzoo import data, pretrained, quantizers, training
from bnnzoo.models import create_model
from bnnzoo.training import TrainConfig

from _base import Interrupt
from test_robustness import (  # noqa: F401 (fixtures)
    TINY, assert_one_line_error, finished, hashes, planted, run_cli, run_copy, write_npz)
from test_safety import assert_stopped_new_run_resumes, bnnzoo_process, wait_for

REPO = Path(__file__).resolve().parents[1]




@pytest.fixture(scope="module")
def unfinished(tmp_path_factory, digits):
    """A run of `bnnzoo train --epochs 2 --model-arg units=16` stopped after epoch 1."""
    out = tmp_path_factory.mktemp("unfinished") / "run"
    with pytest.raises(KeyboardInterrupt):
        training.train(TrainConfig(epochs=2, model_kwargs={"units": 16}), out, arrays=digits, verbose=0,
                       callbacks=[Interrupt(1)])
    assert (out / "checkpoints" / "ckpt-1.index").is_file()
    return out


@pytest.fixture
def unfinished_copy(unfinished, tmp_path):
    return Path(shutil.copytree(unfinished, tmp_path / "run"))


RESUME = ["--epochs", "2", "--model-arg", "units=16"]


# --------------------------------------------------------------------------- item 5: no tracebacks


def test_unknown_model_arg_is_one_line_and_leaves_no_run_directory(capsys, tmp_path):
    out = tmp_path / "run"
    rc, _, err = run_cli(capsys, "train", *TINY, "--model-arg", "bogus=1", "--out", out)
    assert_one_line_error(rc, err, "model_kwargs has 'bogus'", "binarynet_mlp", "it takes: ", "units")
    assert not out.exists()


def test_create_model_names_an_unknown_option():
    with pytest.raises(ValueError, match="model 'binarynet_mlp' does not take 'bogus'; it takes: .*units"):
        create_model("binarynet_mlp", units=16, bogus=1)


@pytest.mark.parametrize("part", ["data", "index"])
def test_truncated_checkpoint_names_the_file_and_no_resume(capsys, unfinished_copy, part):
    ckpt = next((unfinished_copy / "checkpoints").glob(f"ckpt-1.{part}*"))
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    before = hashes(unfinished_copy)
    rc, _, err = run_cli(capsys, "train", *RESUME, "--out", unfinished_copy)
    assert_one_line_error(rc, err, f"cannot resume from {unfinished_copy / 'checkpoints' / 'ckpt-1'}",
                          "truncated or corrupted", "--no-resume")
    assert hashes(unfinished_copy) == before


@pytest.mark.parametrize("name, text, needles", [
    ("list.json", "[1, 2]", ["must hold an object of TrainConfig fields", "got a list"]),
    ("kwargs.toml", "epochs = 1\nmodel_kwargs = 5\n", ["model_kwargs must be a dict", "got 5"]),
    ("quantizer.toml", "epochs = 1\nquantizer_kwargs = [1]\n", ["quantizer_kwargs must be a dict", "got [1]"]),
    ("optimizer.json", '{"optimizer_kwargs": "fast"}', ["optimizer_kwargs must be a dict", "'fast'"]),
    ("dataset.json", '{"dataset": 5}', ["dataset must be a name", "got 5"]),
])
def test_recipe_of_the_wrong_type_is_one_line(capsys, tmp_path, name, text, needles):
    recipe = tmp_path / name
    recipe.write_text(text)
    rc, _, err = run_cli(capsys, "train", "--recipe", recipe, "--out", tmp_path / "run")
    assert_one_line_error(rc, err, str(recipe), *needles)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("content, problem", [("[1]", "holds a JSON list, not an object"),
                                              ("{broken", "is not valid JSON")])
def test_run_files_of_the_wrong_type_name_the_file(capsys, run_copy, tmp_path, content, problem):
    (run_copy / "config.json").write_text(content)
    before = hashes(run_copy)
    rc, _, err = run_cli(capsys, "evaluate", run_copy)
    assert_one_line_error(rc, err, f"{run_copy / 'config.json'} {problem}", "--dataset")
    rc, _, err = run_cli(capsys, "train", *TINY, "--init-from", run_copy, "--out", tmp_path / "new")
    assert_one_line_error(rc, err, f"{run_copy / 'config.json'} {problem}")
    rc, _, err = run_cli(capsys, "train", *TINY, "--out", run_copy)  # the run itself
    assert_one_line_error(rc, err, f"{run_copy / 'config.json'} {problem}", "--overwrite")
    assert hashes(run_copy) == before and not (tmp_path / "new").exists()


@pytest.mark.parametrize("content, problem", [("{broken", "is not valid JSON"),
                                              ("[1]", "holds a JSON list, not an object"),
                                              ('{"loss": 3}', "must map each metric to a list")])
def test_history_of_an_unfinished_run_names_the_file(capsys, unfinished_copy, content, problem):
    (unfinished_copy / "history.json").write_text(content)
    before = hashes(unfinished_copy)
    rc, _, err = run_cli(capsys, "train", *RESUME, "--out", unfinished_copy)
    assert_one_line_error(rc, err, str(unfinished_copy / "history.json"), problem, "--no-resume")
    assert hashes(unfinished_copy) == before


def test_metrics_of_a_finished_run_names_the_file(capsys, run_copy):
    (run_copy / "metrics.json").write_text("{broken")
    before = hashes(run_copy)
    rc, _, err = run_cli(capsys, "train", *TINY, "--out", run_copy)
    assert_one_line_error(rc, err, f"{run_copy / 'metrics.json'} is not valid JSON", "--overwrite")
    assert hashes(run_copy) == before


def _full_disk_on(target):
    """A writer that fails with a full disk on files whose name contains `target`."""
    from bnnzoo.training import run_dir

    real = run_dir.atomic_write_json

    def write(path, obj, default=None):
        if target in str(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as the OS says it: no path
        return real(path, obj, default=default)

    return write


def test_disk_full_during_an_epoch_names_the_file(capsys, tmp_path, monkeypatch):
    from bnnzoo.training import run_dir

    monkeypatch.setattr(run_dir, "atomic_write_json", _full_disk_on("history.json"))
    out = tmp_path / "run"
    rc, _, err = run_cli(capsys, "train", *TINY, "--out", out)
    assert_one_line_error(rc, err, f"cannot write {out / 'history.json'}: No space left on device",
                          "free some space")
    assert not out.exists()  # no epoch was kept: nothing left behind


def test_disk_full_during_a_checkpoint_names_the_folder(capsys, tmp_path, monkeypatch):
    def full(self, *args, **kwargs):  # TensorFlow's own writer: ResourceExhaustedError, no path
        raise tf.errors.ResourceExhaustedError(None, None, "ckpt-1_temp/part-00000.tempstate; No space left")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", full)
    out = tmp_path / "run"
    rc, _, err = run_cli(capsys, "train", *TINY, "--out", out)
    assert_one_line_error(rc, err, f"cannot write {out / 'checkpoints'}: No space left on device",
                          "free some space")


def test_disk_full_at_the_model_file_names_it(capsys, tmp_path, monkeypatch):
    from bnnzoo import _atomic

    real = _atomic._fsync_file

    def full(path):
        if "model.keras" in os.fspath(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path)

    monkeypatch.setattr(_atomic, "_fsync_file", full)
    out = tmp_path / "run"
    rc, _, err = run_cli(capsys, "train", *TINY, "--out", out)
    assert_one_line_error(rc, err, f"cannot write {out / 'model.keras'}: No space left on device")


def test_sigterm_during_train_is_one_line_like_ctrl_c(tmp_path):
    assert_stopped_new_run_resumes(tmp_path, signal.SIGTERM, "terminated")


# The tiniest search whose one trial outlasts the wait for its first epoch checkpoint.
TUNE = ("tune", "--space", "bop2ndorder", "--max-trials", "1", "--epochs", "12", "--batch-size", "16",
        "--model-arg", "units=8", "--model-arg", "hidden_layers=1")


# slow (~1 min on the CI machine): test_sigterm_during_train_is_one_line_like_ctrl_c
# checks the same signal path on `train` by default.
@pytest.mark.slow
def test_sigterm_during_tune_is_one_line_and_the_same_command_finishes(tmp_path):
    out = tmp_path / "tune"
    proc = bnnzoo_process(*TUNE, "--out", out, cwd=tmp_path)
    wait_for((out / "search" / "trial_0" / "run" / "checkpoints" / "checkpoint").is_file, proc,
             what="the trial's first checkpoint")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "Traceback" not in err, err[-2000:]
    expected = (f"bnnzoo: error: terminated with 0 of 1 trial(s) finished; the same command resumes the "
                f"search in {out}, retrying trial 0 from its last epoch checkpoint")
    lines = err.strip().splitlines()
    assert [line for line in lines if line.startswith("bnnzoo:")] == [expected] and lines[-1] == expected

    again = bnnzoo_process(*TUNE, "--out", out, cwd=tmp_path)
    stdout, err = again.communicate(timeout=120)
    assert again.returncode == 0, err[-2000:]
    assert "Resuming " in stdout and " after epoch " in stdout  # the trial went on from its checkpoint
    trials = json.loads((out / "results.json").read_text())["trials"]
    assert [(t["trial_id"], t["status"]) for t in trials] == [("0", "COMPLETED")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _absent_peer_env(me: int, peer: int) -> dict:
    cluster = {"worker": [f"127.0.0.1:{me}", f"127.0.0.1:{peer}"]}
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})}


def test_multiworker_absent_peer_is_a_bounded_wait_naming_it(tmp_path):
    me, peer = _free_port(), _free_port()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO), **_absent_peer_env(me, peer)}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "bnnzoo", "train", *TINY, "--strategy", "multiworker",
                           "--connect-timeout", "2", "--out", tmp_path / "run"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    expected = (f"bnnzoo: error: multiworker: no answer from worker(s) 127.0.0.1:{peer} of TF_CONFIG within 2 s; "
                "start them, fix TF_CONFIG, or wait longer (--connect-timeout / $BNNZOO_CONNECT_TIMEOUT)")
    # bnnzoo's own output is that one line, and it is the last. In this real process other
    # libraries may write before it: TF 2.21's C++ runtime logs (absl, before TF_CPP_MIN_LOG_LEVEL
    # applies) and Python >= 3.12's SyntaxWarning for tensorflow_datasets' mrqa.py when no .pyc is kept.
    lines = done.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("bnnzoo:")] == [expected] and lines[-1] == expected
    assert time.monotonic() - started < 90 and not (tmp_path / "run").exists()


def test_multiworker_wait_honours_sigterm(tmp_path):
    me, peer = _free_port(), _free_port()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO), **_absent_peer_env(me, peer)}
    proc = subprocess.Popen([sys.executable, "-m", "bnnzoo", "train", *TINY, "--strategy", "multiworker",
                             "--out", tmp_path / "run"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        while "Waiting up to 120 s" not in proc.stdout.readline():  # the default timeout
            assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 2 and "Traceback" not in err, err[-2000:]
    assert err.strip().splitlines()[-1] == (f"bnnzoo: error: terminated before the first epoch ended; "
                                            f"nothing was kept in {tmp_path / 'run'}")
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- item 7: nothing silently accepted


def test_stray_label_is_refused_naming_dataset_and_label(capsys, tmp_path):
    y = np.arange(40) % 4
    y[5] = 999999
    npz = write_npz(tmp_path / "stray.npz", y_train=y)
    before = hashes(npz)
    rc, _, err = run_cli(capsys, "train", *TINY, "--dataset", npz, "--out", tmp_path / "run")
    assert_one_line_error(rc, err, f"dataset '{npz}'", "y_train holds label 999999 at index 5",
                          "1000000 classes for 5 distinct labels", "relabel")
    assert hashes(npz) == before and not (tmp_path / "run").exists()


@pytest.mark.parametrize("top, refused", [(50, True), (49, False)])
def test_class_count_above_ten_times_the_labels_seen_is_refused(tmp_path, top, refused):
    """5 distinct labels (0..3 and `top`): up to 50 classes pass (with a warning), 51 do not."""
    y = np.arange(40) % 4
    y[0] = top
    npz = str(write_npz(tmp_path / "labels.npz", y_train=y))
    if refused:
        with pytest.raises(ValueError, match=f"y_train holds label {top} at index 0, which makes {top + 1} "
                                             "classes for 5 distinct labels"):
            data.load_arrays(npz)
    else:  # 50 classes, 5 seen: far above, a warning
        with pytest.warns(data.LabelWarning, match="5 distinct values but the largest, 49, makes 50 classes"):
            assert data.load_arrays(npz).num_classes == 50


def test_every_training_label_equal_warns_in_one_line(capsys, tmp_path):
    npz = write_npz(tmp_path / "one.npz", y_train=np.ones(40, np.int64), y_test=np.ones(10, np.int64))
    with pytest.warns(data.LabelWarning, match="every training label is 1: a 2-class model") as caught:
        rc, _, _ = run_cli(capsys, "train", *TINY, "--dataset", npz, "--out", tmp_path / "run")
    assert rc == 0
    # As the CLI shows it (pytest collects warnings before they reach stderr): one line.
    warning = next(w for w in caught if issubclass(w.category, data.LabelWarning))
    shown = warnings.formatwarning(warning.message, warning.category, warning.filename, warning.lineno)
    assert shown == (f"bnnzoo: warning: dataset '{npz}': every training label is 1: a 2-class model trained "
                     "on one class learns nothing of the others\n")


def test_digits_loads_without_label_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error", data.LabelWarning)
        assert data.load_arrays("digits").num_classes == 10


def test_validation_fraction_leaving_one_image_is_refused(capsys, tmp_path):
    rc, _, err = run_cli(capsys, "train", *TINY, "--validation-fraction", "0.999", "--out", tmp_path / "run")
    assert_one_line_error(rc, err, "validation_fraction 0.999", "keeps 1 image(s)", "at least 10",
                          "--validation-fraction")
    assert not (tmp_path / "run").exists()


def test_three_samples_with_validation_fraction_0_9_say_the_training_split_is_empty(capsys, tmp_path):
    npz = write_npz(tmp_path / "three.npz", x_train=np.ones((3, 8, 8), np.float32), y_train=np.array([0, 1, 0]),
                    y_test=np.arange(10) % 2)
    rc, _, err = run_cli(capsys, "train", *TINY, "--validation-fraction", "0.9", "--dataset", npz,
                         "--out", tmp_path / "run")
    assert_one_line_error(rc, err, "the training split is empty", "at least 3")
    assert not (tmp_path / "run").exists()
    assert data.load_arrays(str(npz), validation_fraction=0.0).x_train.shape[0] == 3  # all kept: fine


@pytest.mark.parametrize("make, message", [
    (lambda: TrainConfig(data_dir=5), "data_dir must be a folder path or None, got 5 (int)"),
    (lambda: TrainConfig(quantizer_kwargs=[1]), "quantizer_kwargs must be a dict"),
    (lambda: TrainConfig(model_kwargs={1: 2}), "model_kwargs must be a dict"),
    (lambda: TrainConfig(optimizer_kwargs=None), "optimizer_kwargs must be a dict"),
    (lambda: TrainConfig(model=["binarynet_mlp"]), "model must be a name (a string)"),
    (lambda: TrainConfig(shuffle="no"), "shuffle must be true or false, got 'no'"),
    (lambda: TrainConfig(model_kwargs={"input_shape": [8, 8, 1]}), "model_kwargs has 'input_shape'"),
    (lambda: quantizers.get_quantizer("bnnpp", mu=True), "mu must be a finite number > 0, got True"),
    (lambda: data.load_dataset(batch_size="64"), "batch_size must be an integer in [1, 1048576], got '64'"),
    (lambda: data.load_dataset(batch_size=True), "batch_size must be an integer"),
    (lambda: data.load_arrays(validation_fraction="0.1"), "validation_fraction must be in [0, 1), got '0.1'"),
    (lambda: data.load_arrays(data_dir=5), "data_dir must be a folder path or None, got 5"),
    (lambda: data.epoch_pipeline(np.zeros((4, 1)), np.zeros(4), 2.0), "batch_size must be an integer"),
    (lambda: create_model("binarynet_mlp", input_shape=(4096, 4096, 4096)),
     "has 68719476736 values per image; at most 16777216"),
    (lambda: create_model("binarynet_mlp", input_shape=(4096, 4096, 2)), "at most 16777216"),
])
def test_argument_types_and_sizes_are_one_line_value_errors(make, message):
    with pytest.raises(ValueError) as info:
        make()
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)


# --------------------------------------------------------------------------- item 8: messages that name things


@pytest.mark.parametrize("value, needles", [
    ("{not json", ["TF_CONFIG is not valid JSON", "'{not json'"]),
    ("[1]", ["TF_CONFIG must be", "'[1]'"]),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}',
     ["TF_CONFIG must be", "with the task in the cluster"]),
])
def test_malformed_tf_config_names_the_variable(capsys, tmp_path, monkeypatch, value, needles):
    monkeypatch.setenv("TF_CONFIG", value)
    rc, _, err = run_cli(capsys, "train", *TINY, "--strategy", "multiworker", "--out", tmp_path / "run")
    assert_one_line_error(rc, err, *needles)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["/", "", " "])
def test_dataset_names_that_name_nothing_list_the_valid_ones(capsys, tmp_path, name):
    rc, _, err = run_cli(capsys, "train", *TINY, "--dataset", name, "--out", tmp_path / "run")
    assert_one_line_error(rc, err, f"Unknown dataset {name!r}. Valid names: digits, fashion_mnist",
                          "a .npz file", "a TFDS name")
    assert not (tmp_path / "run").exists()


def test_remote_weights_while_offline_name_the_url(capsys, tmp_path, monkeypatch):
    from bnnzoo.pretrained import lookup

    card = pretrained.get_card("binarynet_mlp", "digits")
    url = f"https://127.0.0.1:{_free_port()}/weights.h5"  # nothing listens: as offline
    remote = pretrained.Card(**{**card.__dict__, "tag": "remote", "url": url})
    monkeypatch.setitem(lookup._REMOTE_CARDS, ("binarynet_mlp", "remote"), remote)
    monkeypatch.setenv("BNNZOO_CACHE", str(tmp_path / "cache"))
    rc, _, err = run_cli(capsys, "evaluate", "--model", "binarynet_mlp", "--weights", "remote")
    assert_one_line_error(rc, err, f"cannot download {url}", "offline?",
                          str(tmp_path / "cache" / "binarynet_mlp" / card.weights_file), card.sha256)


@pytest.mark.parametrize("model_kwargs, needles", [
    ({"units": 32}, ["do not fit the model built from", "'units': 32", "restore it"]),
    ({"bogus": 3}, ["does not take 'bogus'", "model_kwargs of the card of binarynet_mlp/digits"]),
])
def test_altered_card_model_kwargs_name_the_card(capsys, planted, model_kwargs, needles):
    root, _ = planted
    card_path = root / "binarynet_mlp" / "digits" / "card.json"
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "model_kwargs": model_kwargs}))
    before = hashes(root)
    rc, _, err = run_cli(capsys, "evaluate", "--model", "binarynet_mlp", "--weights", "digits")
    assert_one_line_error(rc, err, *needles)
    if "units" in model_kwargs:
        assert str(card_path) in err
    assert hashes(root) == before


TUNE = ["tune", "--max-trials", "1", "--epochs", "1", "--space", "quantizers", "--quantizer", "ste_sign",
        "--model-arg", "units=16"]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A finished one-trial search (`bnnzoo tune ... --out`)."""
    from bnnzoo import cli

    out = tmp_path_factory.mktemp("searched") / "tune"
    assert cli.main([*TUNE, "--out", str(out)]) in (0, None)
    return out


@pytest.mark.parametrize("relative", ["search.json", "search/oracle.json", "search/trial_0/trial.json",
                                      "results.json"])
def test_invalid_search_files_name_the_file(capsys, searched, tmp_path, relative):
    out = tmp_path / "tune"
    shutil.copytree(searched, out)
    target = out / relative
    assert target.is_file(), sorted(str(p.relative_to(out)) for p in out.rglob("*.json"))
    target.write_text("{broken")
    before = hashes(out)
    rc, _, err = run_cli(capsys, *TUNE, "--out", out)
    assert_one_line_error(rc, err, f"{target} is not valid JSON", "another --out")
    assert hashes(out) == before


def test_disk_full_during_a_search_names_the_file_and_stops(capsys, tmp_path, monkeypatch):
    from bnnzoo.training import run_dir

    monkeypatch.setattr(run_dir, "atomic_write_json", _full_disk_on("history.json"))
    out = tmp_path / "tune"
    rc, _, err = run_cli(capsys, *TUNE, "--max-trials", "3", "--out", out)
    history = out / "search" / "trial_0" / "run" / "history.json"
    assert_one_line_error(rc, err, f"cannot write {history}: No space left on device", "free some space")
    assert not (out / "search" / "trial_1").exists()  # stopped at the first full disk


def _signal_in_finalizer(kind: str) -> None:
    """Make garbage whose finalizer (`__del__` or a weakref callback) receives SIGTERM."""
    def receive(*_):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(3):  # the handler runs at one of these bytecodes, inside the finalizer
            pass

    class Finalized:
        pass

    if kind == "__del__":
        Finalized.__del__ = receive
        Finalized()
    else:
        import weakref

        target = Finalized()
        ref = weakref.ref(target, receive)  # noqa: F841 (kept alive until the target dies)
        del target


@pytest.mark.parametrize("kind", ["__del__", "weakref callback"])
def test_a_signal_inside_a_finalizer_is_delivered_again_outside_it(kind):
    """SIGTERM that lands in a `__del__` or a weakref callback (TensorFlow runs both during
    garbage collection) would be printed and dropped by Python, and the command would go
    on (CI of 0599564, py312: `bnnzoo tune` finished with status 0 after SIGTERM)."""
    from bnnzoo.cli_support import Terminated, ctrl_c_as_interrupt

    started = time.monotonic()
    with pytest.raises(Terminated):
        with ctrl_c_as_interrupt(terminate=True):
            _signal_in_finalizer(kind)
            time.sleep(5)
    assert time.monotonic() - started < 2  # delivered again at once, not after the sleep
