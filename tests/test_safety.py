"""Nothing lost, nothing half-binary (issue #28).

- shipped artifacts are read-only to training; `bnnzoo publish RUN` is the one
  writer of artifacts and refuses a worse or different one without `--force`;
- one writer per run and tuning directory (a lock naming its holder's pid);
- a replacement (`--no-resume`, `--overwrite`, `export` over a file) keeps the old
  result until the new one is complete, whatever kills it;
- a model whose forward is not binary says so (`binary_forward`) and is not exported
  as binary unless asked.

Each case goes through the real CLI (`bnnzoo.cli.main` or a `python -m bnnzoo`
process) or the public API, checks the exit code and the one-line message, and
that no file that existed before changed (shipped artifacts included).
"""

from __future__ import annotations

import importlib.resources
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bnnzoo import cli, pretrained, quantizers, training
from bnnzoo._runlock import LOCK_FILE, directory_lock
from bnnzoo.models import create_model
from bnnzoo.training import TrainConfig

from test_robustness import TINY, assert_one_line_error, finished, hashes, run_cli, run_copy  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parents[1]
SHIPPED_RECIPE = REPO / "recipes" / "binarynet_mlp-digits.toml"


def artifact_hashes() -> dict[str, str]:
    """Every shipped artifact file: the source tree's and the installed ones (the same
    folder in an editable install of this checkout), whatever $BNNZOO_ARTIFACTS_DIR says."""
    return hashes(REPO / "artifacts", Path(str(importlib.resources.files("bnnzoo._artifacts"))))


def run_hashes(run_dir: Path) -> dict[str, str]:
    """The files of a run directory, without the writer lock file (not part of the run:
    a killed writer leaves its pid in it)."""
    return {k: v for k, v in hashes(run_dir).items() if Path(k).name != LOCK_FILE}


def bnnzoo_process(*argv, cwd) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "bnnzoo", *map(str, argv)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 120.0, what: str = "") -> None:
    """Poll `predicate` every 5 ms until it holds; fail if `proc` ends first or time runs out."""
    end = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"process ended (rc {proc.returncode}) before {what}: {err[-2000:]}")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


# --------------------------------------------------------------------------- artifacts are read-only


def test_user_recipe_does_not_touch_artifacts(capsys, tmp_path):
    recipe = tmp_path / "mine.toml"
    recipe.write_text("epochs = 1\nmodel_kwargs = { units = 16 }\n")
    before = artifact_hashes()
    rc, out, err = run_cli(capsys, "train", "--recipe", recipe, "--out", tmp_path / "pub")
    assert rc == 0, err
    assert "published" not in out
    assert artifact_hashes() == before
    record = json.loads((tmp_path / "pub" / "recipe.json").read_text())
    assert record["recipe"] == {"epochs": 1, "model_kwargs": {"units": 16}}


@pytest.fixture(scope="module")
def shipped_recipe_run(tmp_path_factory):
    """`bnnzoo train --recipe recipes/binarynet_mlp-digits.toml --epochs 1`, artifacts hashed around it."""
    out = tmp_path_factory.mktemp("shipped") / "run"
    before = artifact_hashes()
    rc = cli.main(["train", "--recipe", str(SHIPPED_RECIPE), "--epochs", "1", "--out", str(out)])
    return out, rc, before, artifact_hashes()


def test_shipped_recipe_with_one_epoch_does_not_touch_artifacts(shipped_recipe_run):
    out, rc, before, after = shipped_recipe_run
    assert rc == 0 and after == before
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 1


@pytest.fixture
def artifacts_copy(tmp_path, monkeypatch):
    """A copy of the shipped artifacts tree that publishing may write (never the real one)."""
    copy = tmp_path / "artifacts"
    shutil.copytree(pretrained.artifacts_dir(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv(pretrained.ARTIFACTS_ENV, str(copy))
    return copy


def test_publish_refuses_a_worse_shorter_run_unless_forced(capsys, shipped_recipe_run, artifacts_copy):
    run, _, _, _ = shipped_recipe_run
    shipped = artifact_hashes()
    before = hashes(artifacts_copy)
    rc, _, err = run_cli(capsys, "publish", run)
    assert_one_line_error(rc, err, str(run), "binarynet_mlp/digits", "differs from its recipe",
                          "in: epochs", "below the published", "--force")
    assert hashes(artifacts_copy) == before
    rc, out, err = run_cli(capsys, "publish", run, "--force")
    assert rc == 0, err
    card = json.loads((artifacts_copy / "binarynet_mlp" / "digits" / "card.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert card["epochs"] == card["train_config"]["epochs"] == 1  # what was run, not the recipe's 40
    assert card["test_accuracy"] == metrics["test_accuracy"] and card["binary_forward"] is True
    assert card["recipe"] == "recipes/binarynet_mlp-digits.toml"
    assert card["sha256"] == pretrained.sha256_file(artifacts_copy / "binarynet_mlp" / "digits" / "weights.h5")
    assert artifact_hashes() == shipped  # the real artifacts never change
    # The other artifacts of the copy are untouched.
    changed = {k for k in before if hashes(artifacts_copy).get(k) != before[k]}
    assert changed and all("/binarynet_mlp/digits/" in k for k in changed)


def test_publish_writes_the_card_from_the_run_and_refuses_a_worse_one(capsys, tmp_path, digits):
    recipe = tmp_path / "mine.toml"
    recipe.write_text('description = "mine"\nepochs = 1\nmodel_kwargs = { units = 16 }\n'
                      '[artifact]\ntag = "mine"\n')
    run, zoo_dir = tmp_path / "run", tmp_path / "zoo"
    rc, _, err = run_cli(capsys, "train", "--recipe", recipe, "--out", run)
    assert rc == 0, err
    rc, out, err = run_cli(capsys, "publish", run, "--artifacts-dir", zoo_dir)
    assert rc == 0, err
    folder = zoo_dir / "binarynet_mlp" / "mine"
    card = json.loads((folder / "card.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert card["test_accuracy"] == metrics["test_accuracy"] and card["epochs"] == 1
    assert card["model_kwargs"] == {"units": 16} and card["description"] == "mine"
    assert sorted(p.name for p in zoo_dir.rglob("*") if p.is_file()) == [
        "card.json", "curves.png", "history.json", "weights.h5"]  # no staging folder left
    # A published artifact that is better than this run: refused, nothing changes.
    card["test_accuracy"] = 0.9999
    (folder / "card.json").write_text(json.dumps(card))
    before = hashes(zoo_dir)
    rc, _, err = run_cli(capsys, "publish", run, "--artifacts-dir", zoo_dir)
    assert_one_line_error(rc, err, "binarynet_mlp/mine", "below the published 0.9999", "--force")
    assert hashes(zoo_dir) == before
    # A run without a recorded recipe: refused, naming the run.
    plain = tmp_path / "plain"
    training.train(TrainConfig(epochs=1, model_kwargs={"units": 16}), plain, arrays=digits, verbose=0)
    rc, _, err = run_cli(capsys, "publish", plain, "--artifacts-dir", zoo_dir)
    assert_one_line_error(rc, err, str(plain), "recipe.json", "bnnzoo train --recipe")
    assert hashes(zoo_dir) == before


def test_recipe_artifact_of_another_model_is_refused_before_training(capsys, tmp_path):
    recipe = tmp_path / "wrong.toml"
    recipe.write_text('epochs = 1\nmodel_kwargs = { units = 16 }\n[artifact]\nname = "binarynet"\n')
    before = artifact_hashes()
    started = time.monotonic()
    rc, out, err = run_cli(capsys, "train", "--recipe", recipe, "--out", tmp_path / "run")
    assert_one_line_error(rc, err, str(recipe), "artifact name 'binarynet'", "model 'binarynet_mlp'")
    assert "Training" not in out and not (tmp_path / "run").exists()
    assert time.monotonic() - started < 10
    assert artifact_hashes() == before


# --------------------------------------------------------------------------- one writer


def test_second_writer_is_refused_naming_the_holder(capsys, tmp_path):
    """Two processes on one run directory: exactly one trains; the other exits 2 at once,
    naming the holder's pid and the directory; the result is one run's, whole."""
    out = tmp_path / "d"
    first = bnnzoo_process("train", "--epochs", "2", "--model-arg", "units=32", "--batch-size", "16",
                           "--out", out, cwd=tmp_path)
    lock = out / LOCK_FILE
    wait_for(lambda: lock.is_file() and lock.read_text().strip() == str(first.pid), first,
             what="the first writer's lock")
    rc, _, err = run_cli(capsys, "train", *TINY, "--out", out)
    assert_one_line_error(rc, err, str(out), f"pid {first.pid}", "in use by another bnnzoo process")
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-2000:]
    config = json.loads((out / "config.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert config["epochs"] == metrics["epochs"] == 2 and config["model_kwargs"] == {"units": 32}
    assert config["batch_size"] == 16 and metrics["binary_forward"] is True
    assert training.load_model(out).count_params() == metrics["params"]
    assert lock.read_text() == ""  # released
    # The directory is the first run's, finished: the same command is a no-op.
    before = run_hashes(out)
    rc, stdout, err = run_cli(capsys, "train", "--epochs", "2", "--model-arg", "units=32", "--batch-size",
                              "16", "--out", out)
    assert rc == 0 and "already holds this finished run" in stdout
    assert run_hashes(out) == before


def test_api_second_writer_is_a_value_error(run_copy, digits):
    before = run_hashes(run_copy)
    with directory_lock(run_copy):
        with pytest.raises(ValueError, match=rf"run directory {run_copy} is in use .*pid {os.getpid()}"):
            training.train(TrainConfig(epochs=1, model_kwargs={"units": 16}), run_copy, arrays=digits,
                           verbose=0, resume=False)
    assert run_hashes(run_copy) == before


def test_a_run_that_never_trained_leaves_no_directory(tmp_path, digits):
    out = tmp_path / "run"
    with pytest.raises((TypeError, ValueError), match="bogus"):
        training.train(TrainConfig(epochs=1, model_kwargs={"bogus": 1}), out, arrays=digits, verbose=0)
    assert not out.exists()


def test_second_search_on_a_tuning_directory_is_refused(capsys, tmp_path):
    out = tmp_path / "tune"
    with directory_lock(out, "tuning directory"):
        rc, _, err = run_cli(capsys, "tune", "--max-trials", "1", "--epochs", "1", "--out", out)
    assert_one_line_error(rc, err, f"tuning directory {out}", f"pid {os.getpid()}")
    assert [p.name for p in out.iterdir()] == [LOCK_FILE]


# --------------------------------------------------------------------------- replacements keep the old


# Long enough that a signal sent after the retraining's first epoch lands inside `fit`.
RETRAIN = ["--epochs", "8", "--batch-size", "8", "--model-arg", "units=16"]


@pytest.fixture(scope="module")
def finished_long(tmp_path_factory, digits):
    out = tmp_path_factory.mktemp("finished_long") / "run"
    training.train(TrainConfig(epochs=8, batch_size=8, model_kwargs={"units": 16}), out, arrays=digits, verbose=0)
    return out


# SIGKILL's case is slow (~45 s on the CI machine); by default Ctrl-C's runs here and a
# SIGKILL mid-write in test_sigkill_during_export_leaves_a_complete_file.
@pytest.mark.parametrize("sig", [pytest.param(signal.SIGKILL, marks=pytest.mark.slow), signal.SIGINT],
                         ids=["SIGKILL", "Ctrl-C"])
def test_killed_no_resume_retraining_keeps_the_finished_run(finished_long, tmp_path, sig):
    """Killed after the replacement's first epoch. (Ctrl-C while TensorFlow builds the
    model can make TF 2.21 print a traceback of its own before bnnzoo's one line; the
    signal is sent inside `fit` here, which is where a user's Ctrl-C usually lands.)"""
    run_copy = tmp_path / "run"
    shutil.copytree(finished_long, run_copy)
    before = run_hashes(run_copy)
    staging = run_copy.with_name(f".{run_copy.name}.staging")
    proc = bnnzoo_process("train", *RETRAIN, "--no-resume", "--out", run_copy, cwd=tmp_path)
    wait_for(lambda: (staging / "checkpoints" / "checkpoint").is_file(), proc,
             what="the retraining's first epoch")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert run_hashes(run_copy) == before
    assert training.load_model(run_copy).count_params() > 0
    if sig == signal.SIGINT:
        assert not staging.exists()  # the unfinished replacement is removed
        assert proc.returncode == 2 and "Traceback" not in err, err[-2000:]
        assert err.strip().splitlines()[-1] == (f"bnnzoo: error: interrupted; {run_copy} keeps its previous "
                                                "finished run (the unfinished replacement was discarded)")


def assert_stopped_new_run_resumes(tmp_path, sig: int, word: str) -> None:
    """`bnnzoo train` (30 epochs) stopped by `sig` after its first checkpoint ends with
    exit status 2 and one line: "<word> after epoch N of 30; the same command resumes OUT
    from there", N being the epoch its checkpoint holds."""
    out = tmp_path / "run"
    argv = ("train", "--epochs", "30", "--batch-size", "16", "--model-arg", "units=16", "--out", out)
    proc = bnnzoo_process(*argv, cwd=tmp_path)
    wait_for(lambda: (out / "checkpoints" / "checkpoint").is_file(), proc, what="the first checkpoint")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    line = err.strip().splitlines()[-1]
    assert proc.returncode == 2 and "Traceback" not in err, err[-2000:]
    assert line.startswith(f"bnnzoo: error: {word} after epoch ") and line.endswith(
        f" of 30; the same command resumes {out} from there"), line
    done = int(line.split("after epoch ")[1].split(" ")[0])
    assert done >= 1 and f"ckpt-{done}" in (out / "checkpoints" / "checkpoint").read_text()


# slow (~30 s on the CI machine): the same handler and line for SIGTERM run by default
# (test_one_line_errors.test_sigterm_during_train_is_one_line_like_ctrl_c), and Ctrl-C's
# own path in test_killed_no_resume_retraining_keeps_the_finished_run[Ctrl-C].
@pytest.mark.slow
def test_ctrl_c_in_a_new_run_says_where_the_same_command_resumes(tmp_path):
    assert_stopped_new_run_resumes(tmp_path, signal.SIGINT, "interrupted")


def test_no_resume_and_overwrite_replace_the_run_once_complete(capsys, run_copy):
    old_model = (run_copy / "model.keras").read_bytes()
    (run_copy / "model.tflite").write_bytes(b"an export the user wrote here")
    (run_copy / "savedmodel").mkdir()
    (run_copy / "savedmodel" / "saved_model.pb").write_bytes(b"pb")
    kept = hashes(run_copy / "model.tflite", run_copy / "savedmodel")
    rc, _, err = run_cli(capsys, "train", *TINY, "--quantizer", "approx_sign", "--overwrite", "--out", run_copy)
    assert rc == 0, err
    assert hashes(run_copy / "model.tflite", run_copy / "savedmodel") == kept  # not the run's: kept
    config = json.loads((run_copy / "config.json").read_text())
    metrics = json.loads((run_copy / "metrics.json").read_text())
    assert config["quantizer"] == metrics["quantizer"] == "approx_sign"
    assert (run_copy / "model.keras").read_bytes() != old_model
    assert sorted(p.name for p in run_copy.parent.iterdir()) == ["run"]  # no staging or old folder left


def test_disk_full_at_the_end_of_an_overwrite_keeps_the_old_run(capsys, run_copy, monkeypatch):
    import errno

    from bnnzoo import _atomic

    before = run_hashes(run_copy)
    real_fsync = _atomic._fsync_file

    def full_for_models(path):
        if "model.keras" in Path(path).name:  # the last big write of the new run
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(path)

    monkeypatch.setattr(_atomic, "_fsync_file", full_for_models)
    rc, _, err = run_cli(capsys, "train", *TINY, "--quantizer", "approx_sign", "--overwrite", "--out", run_copy)
    assert_one_line_error(rc, err, "No space left on device")
    assert run_hashes(run_copy) == before
    assert sorted(p.name for p in run_copy.parent.iterdir()) == ["run"]  # the staging folder is gone


@pytest.fixture(scope="module")
def exported(finished, tmp_path_factory, digits):
    """An exported tiny run (`model.tflite`) and a second, different run to export over it."""
    from bnnzoo.export import export_model

    folder = tmp_path_factory.mktemp("exported")
    other = folder / "other"
    training.train(TrainConfig(epochs=1, seed=1, model_kwargs={"units": 16}), other, arrays=digits, verbose=0)
    target = folder / "model.tflite"
    export_model(finished, "tflite", target, latency_repeats=0, num_images=32)
    reference = folder / "reference.tflite"
    export_model(other, "tflite", reference, latency_repeats=0, num_images=32)
    assert target.read_bytes() != reference.read_bytes()
    return target, other, reference


def test_failed_export_check_keeps_the_old_file(capsys, exported, finished, tmp_path):
    target, other, _ = exported
    before = hashes(target.parent)
    rc, _, err = run_cli(capsys, "export", other, "--format", "tflite", "--out", target, "--atol", "1e-12",
                         "--num-images", "32")
    assert_one_line_error(rc, err, "disagrees with the Keras model")
    assert hashes(target.parent) == before


def test_disk_full_during_export_keeps_the_old_file(capsys, exported, monkeypatch):
    import errno

    from bnnzoo import _atomic

    target, other, _ = exported
    before = hashes(target.parent)

    def full(path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(_atomic, "_fsync_file", full)
    rc, _, err = run_cli(capsys, "export", other, "--format", "tflite", "--out", target, "--num-images", "32")
    assert_one_line_error(rc, err, "No space left on device")
    assert hashes(target.parent) == before  # and no temporary file left


def test_ctrl_c_during_export_is_one_line_and_keeps_the_old_file(capsys, exported, monkeypatch):
    from bnnzoo.export import report

    target, other, _ = exported
    before = hashes(target.parent)
    real_verify = report.verify_flatbuffer

    def interrupted(*args, **kwargs):  # Ctrl-C while the export is checked
        real_verify(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "verify_flatbuffer", interrupted)
    rc, _, err = run_cli(capsys, "export", other, "--format", "tflite", "--out", target, "--num-images", "32")
    assert_one_line_error(rc, err, "interrupted", f"{target} was not written")
    assert hashes(target.parent) == before


def test_sigkill_during_export_leaves_a_complete_file(exported, tmp_path):
    target, other, reference = exported
    old, new = target.read_bytes(), reference.read_bytes()
    work = tmp_path / "work"
    work.mkdir()
    copy = work / "model.tflite"
    copy.write_bytes(old)
    for delay in (1.0, 4.0, 7.0):  # while loading, converting, checking or writing
        proc = bnnzoo_process("export", other, "--format", "tflite", "--out", copy, "--num-images", "32",
                              cwd=tmp_path)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        assert copy.read_bytes() in (old, new)  # the old file or the new one, never a part
    assert {p.name for p in work.iterdir()} - {"model.tflite"} <= {
        p.name for p in work.glob(".model.tflite.*.tmp.tflite")}


# --------------------------------------------------------------------------- binary means binary


def _quantized_outputs(model, rng) -> list[np.ndarray]:
    """Each quantizer of `model` applied to random inputs and to its layer's kernel, as NumPy."""
    outputs = []
    for layer in model.layers:
        for attr in ("input_quantizer", "kernel_quantizer"):
            quantizer = getattr(layer, attr, None)
            if quantizer is None:
                continue
            x = layer.kernel.numpy() if attr == "kernel_quantizer" else rng.normal(size=(64, 32)).astype("float32")
            outputs.append(np.asarray(quantizer(x)))
    return outputs


@pytest.mark.parametrize("name", ["bnnpp", "ste_warmup", "proxconnect"])
def test_finalize_makes_every_output_exactly_plus_minus_one(name):
    model = create_model("binarynet_mlp", input_shape=(8, 8, 1), units=16,
                         input_quantizer=name, kernel_quantizer=name)
    rng = np.random.default_rng(0)
    assert not quantizers.binary_forward(model)
    assert any(not np.isin(y, (-1.0, 1.0)).all() for y in _quantized_outputs(model, rng))
    assert quantizers.finalize(model) is model
    assert quantizers.binary_forward(model)
    outputs = _quantized_outputs(model, rng)
    assert outputs and all(np.isin(y, (-1.0, 1.0)).all() for y in outputs)
    for cls in (quantizers.BNNPlusPlus, quantizers.SteWarmup, quantizers.ProxConnect):
        assert "Not binary until finalized" in "\n".join(cls.__doc__.strip().splitlines()[:4])


def test_binary_forward_of_plain_and_float_models():
    assert quantizers.binary_forward(create_model("binarynet_mlp", input_shape=(8, 8, 1), units=16))
    assert not quantizers.binary_forward(create_model("binarynet_mlp", input_shape=(8, 8, 1), units=16,
                                                      input_quantizer=None, kernel_quantizer=None))


def test_non_binary_run_is_labelled_and_its_export_refused(capsys, tmp_path):
    run = tmp_path / "h"
    rc, out, err = run_cli(capsys, "train", *TINY, "-q", "bnnpp", "--annealing", "none", "--out", run)
    assert rc == 0
    assert json.loads((run / "metrics.json").read_text())["binary_forward"] is False
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "not binary" in warnings[0] and "finalize" in warnings[0]
    target = tmp_path / "h.tflite"
    target.write_bytes(b"an earlier export")
    before = hashes(tmp_path)
    rc, _, err = run_cli(capsys, "export", run, "--format", "tflite", "--out", target)
    assert_one_line_error(rc, err, str(run), "not binary", "bnnzoo.quantizers.finalize(model)",
                          "--allow-non-binary")
    assert hashes(tmp_path) == before
    rc, out, err = run_cli(capsys, "export", run, "--format", "tflite", "--out", target, "--allow-non-binary",
                           "--num-images", "32")
    assert rc == 0, err
    assert "inference form vs trained model" in out and target.read_bytes() != b"an earlier export"


def test_an_error_raised_after_ctrl_c_is_reported_as_the_interrupt():
    """Ctrl-C landing in a Python callback of TensorFlow's C++ code comes back as another
    error (seen: AttributeError from tf.keras.Input); the CLI reports it as Ctrl-C."""
    import os
    import signal as signals

    from bnnzoo.cli_support import ctrl_c_as_interrupt

    before = signals.getsignal(signals.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_as_interrupt() as guard:
            try:
                os.kill(os.getpid(), signals.SIGINT)
            except KeyboardInterrupt:
                raise AttributeError("'list' object has no attribute 'keys'")
    assert guard.interrupted and signals.getsignal(signals.SIGINT) is before
    with pytest.raises(AttributeError, match="unrelated"):  # without Ctrl-C: unchanged
        with ctrl_c_as_interrupt():
            raise AttributeError("unrelated")
