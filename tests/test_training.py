"""The shared training routine: run directory, reload, resume, strategies, real-data bars."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from bnnzoo import training
from _base import Interrupt
from bnnzoo.training import TrainConfig


def _small(**kw):
    base = dict(model="binarynet_mlp", dataset="digits", epochs=2, batch_size=64,
                model_kwargs={"units": 64})
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory, digits):
    out = tmp_path_factory.mktemp("run")
    result = training.train(_small(epochs=8, model_kwargs={"units": 256}), out, arrays=digits, verbose=0)
    return result, out


def test_run_directory_contents(digits_run):
    result, out = digits_run
    for name in ("config.json", "model.keras", "history.json", "metrics.json", "curves.png"):
        assert (out / name).is_file(), name
    assert not (out / "checkpoints").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("test_accuracy", "epochs", "wall_seconds", "dataset", "model", "params",
                "binary_params", "weight_memory_bytes", "float32_memory_bytes"):
        assert key in metrics, key
    assert metrics["epochs"] == 8 and metrics["dataset"] == "digits" and metrics["model"] == "binarynet_mlp"
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss"]) == 8 and len(history["val_accuracy"]) == 8
    # what each epoch cost, and on which machine (bnnzoo.callbacks.EpochStats)
    assert len(history["epoch_seconds"]) == 8 and all(s > 0 for s in history["epoch_seconds"])
    assert metrics["train_seconds"] == pytest.approx(sum(history["epoch_seconds"]), abs=0.01)
    assert metrics["train_seconds"] <= metrics["wall_seconds"]
    assert len(history["load_1min"]) == 8 and all(v >= 0 for v in history["load_1min"])
    load = metrics["load_1min"]
    assert load["epochs"] == 8 and load["min"] == min(history["load_1min"]) <= load["median"] <= load["max"]
    assert metrics["machine"]["cpu_count"] == os.cpu_count() and metrics["machine"]["gpus"] == []
    assert metrics["machine"]["matmul_gflops"] > 0


def test_matmul_gflops_counts_products_per_second(monkeypatch):
    # A clock that advances 0.1 s per reading: the warm-up is untimed, 3 products run
    # before the clock is read, then 2 more while under 0.25 s; 5 products in 0.4 s.
    from bnnzoo.training import loop

    readings = iter(np.arange(100) * 0.1)
    monkeypatch.setattr(loop.time, "perf_counter", lambda: float(next(readings)))
    assert training.matmul_gflops(size=1000, seconds=0.25) == pytest.approx(2 * 1000**3 * 5 / 0.4 / 1e9)


@pytest.mark.parametrize("kwargs, message", [
    ({"size": 0}, "size must be an integer >= 1, got 0"),
    ({"seconds": -1}, "seconds must be a number >= 0, got -1"),
])
def test_matmul_gflops_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        training.matmul_gflops(**kwargs)


def test_binary_mlp_learns_digits(digits_run):
    result, _ = digits_run
    assert result.metrics["test_accuracy"] >= 0.90
    # Hidden weights are 1 bit: memory far below float32 (BN parameters stay 32-bit).
    assert result.metrics["memory_ratio_vs_float32"] < 0.06
    assert result.metrics["binary_params"] > 0.9 * result.metrics["params"]


def test_saved_model_reloads_with_identical_predictions(digits_run, digits):
    result, out = digits_run
    reloaded = training.load_model(out)
    np.testing.assert_array_equal(
        result.model.predict(digits.x_test, verbose=0), reloaded.predict(digits.x_test, verbose=0)
    )
    evaluated = training.evaluate(out)
    assert evaluated["test_accuracy"] == pytest.approx(result.metrics["test_accuracy"], abs=1e-6)


def test_resume_drops_history_written_after_the_last_checkpoint(tmp_path, digits):
    """A process killed after writing an epoch's history but before its checkpoint (the
    order `_ResumeCheckpoint` writes them in) resumes with a history matching the checkpoint."""
    config = _small(epochs=3)
    straight = training.train(config, tmp_path / "a", arrays=digits, verbose=0)
    with pytest.raises(KeyboardInterrupt):
        training.train(config, tmp_path / "b", arrays=digits, verbose=0, callbacks=[Interrupt(2)])
    path = tmp_path / "b" / "history.json"
    history = json.loads(path.read_text())
    assert len(history["loss"]) == 2
    path.write_text(json.dumps({k: v + [123.0] for k, v in history.items()}))  # epoch 3's entry, no checkpoint
    resumed = training.train(config, tmp_path / "b", arrays=digits, verbose=0)
    assert resumed.history["loss"] == straight.history["loss"] and 123.0 not in resumed.history["loss"]
    # the first process's two epochs count in train_seconds; its wall_seconds is the last stretch's
    seconds = resumed.history["epoch_seconds"]
    assert len(seconds) == 3 and seconds[:2] == history["epoch_seconds"] and 123.0 not in seconds
    assert resumed.metrics["train_seconds"] == pytest.approx(sum(seconds), abs=0.01)


def test_a_run_killed_before_its_first_checkpoint_resumes_after_the_next_kill(tmp_path, digits, capsys):
    """A SIGKILL before the first checkpoint leaves `config.json` alone in `out`. The next
    run trains in place (not in a staging folder that each restart would clear), so an
    interruption of *that* run resumes after its last epoch, as an uninterrupted run."""
    config = _small(epochs=3)
    straight = training.train(config, tmp_path / "straight", arrays=digits, verbose=0)
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps(config.to_dict()))  # what the killed run left
    with pytest.raises(KeyboardInterrupt):
        training.train(config, out, arrays=digits, verbose=0, callbacks=[Interrupt(2)])
    assert (out / "checkpoints").is_dir() and not out.with_name(".run.staging").exists()
    capsys.readouterr()
    resumed = training.train(config, out, arrays=digits, verbose=0)
    assert f"Resuming {out} after epoch 2/3" in capsys.readouterr().out
    assert resumed.history["loss"] == straight.history["loss"]


def test_a_key_first_logged_after_a_resume_is_padded_to_its_epoch(tmp_path):
    """A callback added on resume logs from epoch 3 on: entry i of every list stays epoch i + 1."""
    from bnnzoo.training.run_dir import _ResumeCheckpoint

    checkpoint = tf.train.Checkpoint(epoch=tf.Variable(2))
    manager = tf.train.CheckpointManager(checkpoint, tmp_path / "ckpt", max_to_keep=1)
    history = {"loss": [0.9, 0.8]}
    _ResumeCheckpoint(manager, checkpoint.epoch, history, tmp_path / "history.json").on_epoch_end(
        2, {"loss": 0.7, "new_metric": 5.0})
    assert history == {"loss": [0.9, 0.8, 0.7], "new_metric": [None, None, 5.0]}
    assert json.loads((tmp_path / "history.json").read_text()) == history


def test_resume_refuses_a_different_config(tmp_path, digits):
    with pytest.raises(KeyboardInterrupt):
        training.train(_small(epochs=3), tmp_path, arrays=digits, verbose=0, callbacks=[Interrupt(1)])
    with pytest.raises(ValueError, match="different config"):
        training.train(_small(epochs=3, seed=9), tmp_path, arrays=digits, verbose=0)


@pytest.mark.parametrize("extra_in", ["checkpoint", "run"])
def test_resume_refuses_a_checkpoint_that_does_not_match_the_run(extra_in, tmp_path, digits, monkeypatch):
    """A checkpoint written by another bnnzoo version (e.g. before an optimizer's state
    was renamed) holds state nothing in the run matches, or lacks state the run has: it
    is refused, naming that state, not resumed with it silently at its initial value."""
    config = _small(epochs=3, model_kwargs={"units": 16})
    real_checkpoint = tf.train.Checkpoint

    def with_extra_state(**kw):
        return real_checkpoint(extra=tf.Variable(1.0, name="extra_state"), **kw)

    with monkeypatch.context() as patch:
        if extra_in == "checkpoint":
            patch.setattr(tf.train, "Checkpoint", with_extra_state)
        with pytest.raises(KeyboardInterrupt):
            training.train(config, tmp_path, arrays=digits, verbose=0, callbacks=[Interrupt(1)])
    before = {p.name: p.read_bytes() for p in (tmp_path / "checkpoints").iterdir()}
    named = r"\(root\)\.extra" if extra_in == "checkpoint" else r"Variable 'extra_state:0'"
    with monkeypatch.context() as patch:
        if extra_in == "run":
            patch.setattr(tf.train, "Checkpoint", with_extra_state)
        with pytest.raises(ValueError, match=rf"cannot resume from .*ckpt-1: the checkpoint does not match "
                                             rf"this run's state \({named}\);.*--no-resume"):
            training.train(config, tmp_path, arrays=digits, verbose=0)
    assert {p.name: p.read_bytes() for p in (tmp_path / "checkpoints").iterdir()} == before
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize("kwargs, arg", [
    ({"epochs": -1}, "epochs"), ({"batch_size": 0}, "batch_size"), ({"learning_rate": 0.0}, "learning_rate"),
    ({"model": "nope"}, "binarynet_mlp"), ({"optimizer": "nope"}, "adam"), ({"quantizer": "nope"}, "ste_sign"),
    ({"strategy": "nope"}, "mirrored"),
])
def test_bad_config_names_the_problem(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        _small(**kwargs)


def test_recipe_files(tmp_path):
    (tmp_path / "r.toml").write_text('model = "binarynet"\nepochs = 4\n[model_kwargs]\nwidth = 0.25\n')
    config = TrainConfig.from_file(tmp_path / "r.toml")
    assert config.model == "binarynet" and config.epochs == 4 and config.model_kwargs == {"width": 0.25}
    (tmp_path / "bad.json").write_text('{"epochz": 3}')
    with pytest.raises(ValueError, match="epochz"):
        TrainConfig.from_file(tmp_path / "bad.json")


def test_binary_mlp_on_fashion_mnist_reaches_80_percent(fashion):
    """The issue's bar: 5 epochs of the binary MLP on real Fashion-MNIST, >= 80 %.

    At 256 units (3 x 256; the default is 512) it reaches 86.1 % in half the time."""
    result = training.train(TrainConfig(model="binarynet_mlp", dataset="fashion_mnist", epochs=5,
                                        batch_size=128, model_kwargs={"units": 256}),
                            arrays=fashion, verbose=0)
    assert result.metrics["test_accuracy"] >= 0.80


# ---------------------------------------------------------------- subprocess tests

def _env():
    env = dict(os.environ)
    env.pop("TF_CONFIG", None)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def _bnnzoo(*args):
    return [sys.executable, "-m", "bnnzoo", *args]


# slow (two CLI processes, ~1 min on the CI machine): by default SIGTERM's one line and
# its checkpoint are checked in test_one_line_errors, and resuming bit-identically
# in-process in test_models/test_every_optimizer.
@pytest.mark.slow
def test_sigterm_then_same_command_resumes(tmp_path):
    out = tmp_path / "run"
    # Enough epochs that the run cannot finish between two polls (an epoch of digits at
    # batch 16 takes >= 0.1 s, a poll 0.05 s: 10 epochs of margin after the second
    # checkpoint), few enough that the resumed rest is quick; only the newest
    # checkpoint is kept, so accept any number >= 2.
    epochs = 12
    cmd = _bnnzoo("train", "--model", "binarynet_mlp", "--dataset", "digits", "--epochs", str(epochs),
                  "--batch-size", "16", "--model-arg", "units=64", "--out", str(out))
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        index = out / "checkpoints" / "checkpoint"
        text = index.read_text() if index.exists() else ""
        numbers = [int(n) for n in re.findall(r"ckpt-(\d+)", text)]
        if numbers and max(numbers) >= 2:
            break
        if proc.poll() is not None:
            pytest.fail("run ended before it could be interrupted: " + proc.communicate()[0][-2000:])
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("no checkpoint after 120 s: " + proc.communicate()[0][-2000:])
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode != 0 and not (out / "metrics.json").exists()
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    resumed_at = int(done.stdout.split("Resuming")[1].split("after epoch ")[1].split("/")[0])
    assert 2 <= resumed_at < epochs
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss"]) == epochs
    assert json.loads((out / "metrics.json").read_text())["epochs"] == epochs


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


# slow: two TF processes over gRPC; the mirrored strategy is checked by default.
@pytest.mark.slow
def test_multiworker_training_with_two_local_workers(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i in range(2):
        env = _env()
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        cmd = _bnnzoo("train", "--strategy", "multiworker", "--epochs", "2", "--model-arg", "units=64",
                      "--out", str(tmp_path / "run"))
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(o[-2000:] for o in outputs)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["test_accuracy"] > 0.5


def test_run_without_out_leaves_no_temporary_folder(tmp_path, monkeypatch, digits):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = training.train(_small(epochs=1, model_kwargs={"units": 16}), arrays=digits, verbose=0)
    assert result.run_dir is None and result.history["loss"]
    assert list(tmp_path.glob("bnnzoo-*")) == []


# ------------------------------------------------------------ the four phases of train


def test_train_reads_as_its_four_phases():
    """`train` is short and calls the phases in order; each is importable on its own."""
    import ast
    import inspect
    import textwrap

    source = textwrap.dedent(inspect.getsource(training.train))
    assert len(source.splitlines()) <= 60
    calls = [node.func.id for node in ast.walk(ast.parse(source))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)]
    phases = ["resolve_run_directory", "assemble_run", "restore_and_fit", "write_results"]
    assert [c for c in calls if c in phases] == phases
    assert "validate" not in calls + [getattr(n.func, "attr", "") for n in ast.walk(ast.parse(source))
                                      if isinstance(n, ast.Call)]  # TrainConfig validates itself once


def test_phase_resolve_run_directory(tmp_path, digits):
    strategy = tf.distribute.get_strategy()
    config = _small(epochs=1, model_kwargs={"units": 16})
    with training.resolve_run_directory(config, tmp_path / "new", strategy) as run:
        assert (run.state, run.out, run.chief) == ("fresh", tmp_path / "new", True)
        assert (tmp_path / "new" / ".bnnzoo.lock").exists()  # held while the block runs
    with pytest.raises(RuntimeError, match="boom"):  # a failed run leaves no folder it created
        with training.resolve_run_directory(config, tmp_path / "failed", strategy) as run:
            run.prepare(config)
            raise RuntimeError("boom")
    assert not (tmp_path / "failed").exists()
    training.train(config, tmp_path / "done", arrays=digits, verbose=0)
    with training.resolve_run_directory(config, tmp_path / "done", strategy) as run:
        assert run.state == "finished"
    with training.resolve_run_directory(config, tmp_path / "done", strategy, resume=False) as run:
        assert run.state == "fresh"
    with pytest.raises(ValueError, match="differs in: seed"):
        with training.resolve_run_directory(_small(epochs=1, seed=3, model_kwargs={"units": 16}),
                                            tmp_path / "done", strategy):
            pass


def test_phase_assemble_run_builds_parts_and_writes_nothing(tmp_path, monkeypatch, digits):
    monkeypatch.chdir(tmp_path)
    config = _small(optimizer="bop", epochs=3, batch_size=100, model_kwargs={"units": 16})
    parts = training.assemble_run(config, arrays=digits)
    assert parts.steps_per_epoch == -(-len(digits.x_train) // 100)
    assert isinstance(parts.optimizer, __import__("larq").optimizers.CaseOptimizer)
    assert parts.model.optimizer is parts.optimizer and int(parts.epoch.numpy()) == 0
    assert [type(c).__name__ for c in parts.callbacks] == ["FlipRate"]  # asked of bop's OptimizerSpec
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="gamma"):  # values are checked when the part is built
        training.assemble_run(_small(optimizer="bop", optimizer_kwargs={"gamma": 2.0}), arrays=digits)


def test_phases_restore_and_fit_then_write_results(tmp_path, digits):
    """Fit phase: checkpoints and history per epoch; a second fit of the same run
    resumes (nothing left to train); results phase: files written, checkpoints gone."""
    import time

    config = _small(epochs=2, model_kwargs={"units": 16})
    run = training.RunDirectory(tmp_path / "run")
    parts = training.assemble_run(config, arrays=digits)
    history = training.restore_and_fit(parts, run, verbose=0)
    assert len(history["loss"]) == 2 and (run.checkpoints / "checkpoint").is_file()
    assert json.loads((run.out / "history.json").read_text()) == history

    again = training.assemble_run(config, arrays=digits)
    resumed = training.restore_and_fit(again, training.RunDirectory(tmp_path / "run", state="resume"), verbose=0)
    assert resumed == history and int(again.epoch.numpy()) == 2
    for a, b in zip(parts.model.get_weights(), again.model.get_weights()):
        np.testing.assert_array_equal(a, b)

    result = training.write_results(parts, run, history, started=time.perf_counter())
    assert not run.checkpoints.exists()
    assert {p.name for p in run.out.iterdir()} >= {"config.json", "history.json", "metrics.json",
                                                   "model.keras", "curves.png"}
    assert result.metrics["epochs"] == 2 and result.run_dir == run.out


def test_config_validated_once_and_optimizer_argument_names_checked_when_made(monkeypatch, digits):
    config = _small(epochs=1, model_kwargs={"units": 16})

    def no_second_validation(self):
        raise AssertionError("validated again")

    monkeypatch.setattr(TrainConfig, "validate", no_second_validation)
    assert training.train(config, arrays=digits, verbose=0).metrics["epochs"] == 1
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"optimizer_kwargs has 'tresh'.*optimizer 'bop'.*threshold"):
        _small(optimizer="bop", optimizer_kwargs={"tresh": 1e-6})
