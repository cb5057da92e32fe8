"""Tests of bnnzoo.tuning: spaces from the registries, trials through the shared
training routine, local searches with every tuner, SIGTERM resume, and the
distributed chief/worker mode with a worker killed mid-run.

All searches run on `digits` with tiny `binarynet_mlp` models (one hidden layer of 32
units) and 1-2 epoch trials; the subprocess tests start real `bnnzoo` processes.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import keras_tuner as kt
import numpy as np
import pytest

import bnnzoo
from bnnzoo import training
from bnnzoo.cli import main as cli_main
from bnnzoo.training import TrainConfig
from bnnzoo.tuning import (
    BNNHyperModel,
    get_search_space,
    list_search_spaces,
    list_tuners,
    make_tuner,
    object_search_space,
    run_search,
)
from bnnzoo.tuning import distributed

BNNZOO = str(Path(sys.executable).with_name("bnnzoo"))
TINY = {"units": 32, "hidden_layers": 1}


def tiny_config(**kw) -> TrainConfig:
    values = dict(model="binarynet_mlp", dataset="digits", epochs=1, model_kwargs=dict(TINY))
    values.update(kw)
    return TrainConfig(**values)


# ----------------------------------------------------------------- registries -> spaces


class _FakeQuantizer:
    """A registry entry with its own space (stands in for a bnnzoo quantizer)."""

    def __init__(self, alpha: float = 0.5):
        self.alpha = alpha

    @classmethod
    def search_space(cls, hp):
        return {"alpha": hp.Float("alpha", 0.1, 1.0, default=0.5)}


def _fake_optimizer(learning_rate, momentum: float = 0.9, nesterov: bool = False):
    import tensorflow as tf

    return tf.keras.optimizers.legacy.SGD(learning_rate, momentum=momentum, nesterov=nesterov)


_FAKE_OPTIMIZER = bnnzoo.optimizers.OptimizerSpec("fakeopt", _fake_optimizer, search_space=lambda hp: {
    "momentum": hp.Float("momentum", 0.5, 0.99, default=0.9),
    "nesterov": hp.Boolean("nesterov", default=False),
})


@pytest.fixture
def fake_registry(monkeypatch):
    monkeypatch.setitem(bnnzoo.quantizers._QUANTIZERS._entries, "fakeq", _FakeQuantizer)
    monkeypatch.setitem(bnnzoo.optimizers.builders.OPTIMIZERS._entries, "fakeopt", _FAKE_OPTIMIZER)


def test_presets_read_the_registries(fake_registry):
    assert list_search_spaces() == ["bop2ndorder", "full", "quantizers"]
    full = get_search_space("full").resolve()
    assert "fakeq" in full.quantizers and "fakeopt" in full.optimizers  # joins without edits
    assert set(full.optimizers) == set(bnnzoo.optimizers.list_optimizers())
    assert get_search_space("quantizers").resolve().quantizers == tuple(bnnzoo.quantizers.list_quantizers())
    assert get_search_space("bop2ndorder").resolve().optimizers == ("bop2ndorder",)
    # Spaces come from the objects: classmethod, OptimizerSpec field, larq mapping, none.
    assert object_search_space(_FakeQuantizer, "fakeq") == _FakeQuantizer.search_space
    assert object_search_space(bnnzoo.optimizers.optimizer_spec("bop"), "bop") is not None
    assert object_search_space(bnnzoo.quantizers.quantizer_class("swish_sign"), "swish_sign") is not None
    assert object_search_space(bnnzoo.optimizers.optimizer_spec("adam"), "adam") is None


def test_hypermodel_conditional_object_spaces(fake_registry):
    hm = BNNHyperModel(tiny_config(learning_rate=3e-3, batch_size=32), "full",
                       optimizers=["adam", "fakeopt", "bop"], quantizers=["ste_sign", "fakeq", "swish_sign"])
    hp = kt.HyperParameters()
    config = hm.config(hp)  # defaults: first choices, no object kwargs
    assert (config.optimizer, config.quantizer) == ("adam", "ste_sign")
    assert config.optimizer_kwargs == {} and config.quantizer_kwargs == {}
    assert config.learning_rate == pytest.approx(3e-3) and config.batch_size == 32
    assert config.model_kwargs == {**TINY, "width": 1.0}

    hp = kt.HyperParameters()
    hp.values.update({"quantizer": "fakeq", "optimizer": "fakeopt", "learning_rate": 2e-4, "width": 2.0,
                      "batch_size": 128})
    config = hm.config(hp)
    assert config.quantizer == "fakeq" and config.quantizer_kwargs == {"alpha": 0.5}
    assert config.optimizer == "fakeopt" and config.optimizer_kwargs == {"momentum": 0.9, "nesterov": False}
    assert (config.learning_rate, config.batch_size, config.model_kwargs["width"]) == (2e-4, 128, 2.0)
    # Object hyperparameters are name-scoped and conditional on their object.
    by_name = {p.name: p for p in hp.space}
    assert {"fakeq/alpha", "fakeopt/momentum", "fakeopt/nesterov"} <= set(by_name)
    assert [(c.name, c.values) for c in by_name["fakeopt/momentum"].conditions] == [("optimizer", ["fakeopt"])]
    hp.values.update({"optimizer": "bop", "quantizer": "swish_sign", "bop/gamma": 1e-3,
                      "swish_sign/beta": 10.0})
    config = hm.config(hp)
    assert config.optimizer_kwargs == {"threshold": 1e-8, "gamma": 1e-3}
    assert config.quantizer_kwargs == {"beta": 10.0}
    assert not hp.is_active(by_name["fakeopt/momentum"])
    # The baseline is the default choices as shipped (no object kwargs).
    assert hm.default_config().optimizer_kwargs == {} and hm.default_config().optimizer == "adam"


def test_bad_inputs_name_the_valid_choices(tmp_path, capsys):
    with pytest.raises(ValueError, match="Unknown search space 'nope'. Valid names: bop2ndorder, full, quantizers"):
        get_search_space("nope")
    with pytest.raises(ValueError, match="Unknown tuner 'grid'. Valid names: bayesian, hyperband, random"):
        run_search(tiny_config(), space="full", tuner="grid", out=tmp_path)
    with pytest.raises(ValueError, match="max_trials must be a positive integer, got 0"):
        run_search(tiny_config(), max_trials=0, out=tmp_path)
    with pytest.raises(ValueError, match="needs optimizer 'nope'.*Registered optimizers: adam"):
        run_search(tiny_config(), space="full", optimizers=["nope"], out=tmp_path)
    with pytest.raises(ValueError, match="validation_fraction must be > 0"):
        BNNHyperModel(tiny_config(validation_fraction=0.0), "full")
    hm = BNNHyperModel(tiny_config(), "full")
    with pytest.raises(ValueError, match="Unknown tuner 'grid'. Valid names: bayesian, hyperband, random"):
        make_tuner("grid", hm, max_trials=2, directory=str(tmp_path))
    with pytest.raises(ValueError, match="max_trials must be a positive integer, got 0"):
        make_tuner("random", hm, max_trials=0, directory=str(tmp_path))
    assert list_tuners() == ["bayesian", "hyperband", "random"]
    for argv, message in (
        (["tune", "--max-trials", "0"], "--max-trials/-n: must be > 0, got 0"),
        (["tune", "--space", "nope", "--out", str(tmp_path)], "Valid names: bop2ndorder, full, quantizers"),
        (["tune", "--tuner", "grid", "--out", str(tmp_path)], "Valid names: bayesian, hyperband, random"),
        (["tune", "--distributed", "worker"], "--distributed needs --oracle-ip and --oracle-port"),
    ):
        with pytest.raises(SystemExit) as exc:
            cli_main(argv)
        assert exc.value.code == 2
        assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing trained or written


def test_unreachable_chief_fails_fast(tmp_path, monkeypatch):
    for name in (distributed.ENV_TUNER_ID, distributed.ENV_ORACLE_IP, distributed.ENV_ORACLE_PORT):
        monkeypatch.setenv(name, "x")  # restored (removed) after the test
    port = _free_port()  # nothing listens there
    started = time.monotonic()
    with pytest.raises(distributed.ChiefUnreachableError, match=f"no tuning chief answered at 127.0.0.1:{port} within 2 s"):
        run_search(tiny_config(), space="bop2ndorder", max_trials=2, out=tmp_path, distributed="worker",
                   oracle_ip="127.0.0.1", oracle_port=port, connect_timeout=2.0)
    assert time.monotonic() - started < 10
    with pytest.raises(ValueError, match="worker_timeout must be >= 6"):
        run_search(tiny_config(), out=tmp_path, distributed="chief", oracle_ip="127.0.0.1",
                   oracle_port=port, worker_timeout=1.0)


# ----------------------------------------------------------------- trials are bnnzoo runs


def test_fit_is_the_shared_training_routine(digits, tmp_path):
    hm = BNNHyperModel(tiny_config(epochs=1), "bop2ndorder", arrays=digits)
    hp = kt.HyperParameters()
    hm.config(hp)
    hp.values.update({"bop2ndorder/threshold": 1e-5, "bop2ndorder/gamma": 1e-2, "bop2ndorder/sigma": 1e-3,
                      "bop2ndorder/bias_correction": "adam"})
    metrics = hm.fit(hp, None, out=tmp_path / "trial")
    config = json.loads((tmp_path / "trial" / "config.json").read_text())
    assert config["optimizer_kwargs"] == {"threshold": 1e-5, "gamma": 1e-2, "sigma": 1e-3, "bias_correction": "adam"}
    direct = training.train(TrainConfig.from_dict(config), arrays=digits, verbose=0).metrics
    assert metrics["val_accuracy"] == pytest.approx(direct["val_accuracy"], abs=1e-6)
    assert metrics["test_accuracy"] == pytest.approx(direct["test_accuracy"], abs=1e-6)
    assert set(metrics) >= {"val_accuracy", "test_accuracy", "train_accuracy", "wall_seconds"}


def test_fit_trains_the_model_keras_tuner_built(digits, tmp_path):
    """A plain keras-tuner `Tuner` passes `build(hp)`'s model to `fit`: that object is trained."""
    hm = BNNHyperModel(tiny_config(epochs=1), "quantizers", arrays=digits)
    hp = kt.HyperParameters()
    model = hm.build(hp)
    before = [w.copy() for w in model.get_weights()]
    hm.fit(hp, model, out=tmp_path / "trial")
    after = training.load_model(tmp_path / "trial").get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    for w_model, w_saved in zip(model.get_weights(), after):
        np.testing.assert_array_equal(w_model, w_saved)


def test_local_random_search_writes_table_plot_and_best_run(digits, tmp_path):
    out = tmp_path / "search"
    result = run_search(tiny_config(epochs=2), space="bop2ndorder", tuner="random", max_trials=3, out=out,
                        baseline=True, command="test")
    trials = json.loads((out / "results.json").read_text())["trials"]
    assert [t["status"] for t in trials] == ["COMPLETED"] * 3
    scores = [t["score"] for t in trials]
    assert len({json.dumps(t["hyperparameters"], sort_keys=True) for t in trials}) == 3
    assert result.best["score"] == max(scores)
    assert result.summary["best_trial"] == trials[int(np.argmax(scores))]["trial_id"]
    assert 0.1 < result.best["score"] <= 1.0
    # The best configuration is a normal run directory that `bnnzoo evaluate` reads.
    best_dir = out / "best"
    assert json.loads((best_dir / "metrics.json").read_text())["test_accuracy"] == pytest.approx(
        training.evaluate(best_dir, arrays=digits)["test_accuracy"], abs=1e-6)
    assert result.summary["best_test_accuracy"] == result.best["metrics"]["test_accuracy"]
    assert result.baseline_metrics["test_accuracy"] == pytest.approx(result.summary["baseline_test_accuracy"])
    assert json.loads((out / "baseline" / "config.json").read_text())["optimizer_kwargs"] == {}
    md = (out / "results.md").read_text()
    assert "| rank | trial | val acc | test acc | bop2ndorder/threshold" in md
    assert md.count("\n| ") == 1 + 3 + 1  # header, three trials, defaults row
    png = (out / "results.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    # Rerunning the finished search trains nothing new and keeps every trial.
    again = run_search(tiny_config(epochs=2), space="bop2ndorder", tuner="random", max_trials=3, out=out,
                       baseline=True)
    assert [t["score"] for t in again.trials] == scores
    with pytest.raises(ValueError, match="holds a different search"):
        run_search(tiny_config(epochs=2), space="bop2ndorder", tuner="bayesian", max_trials=3, out=out)


# slow: random search (default suite) uses the same trial path.
@pytest.mark.slow
@pytest.mark.parametrize("tuner", ["hyperband", "bayesian"])
def test_other_tuners(tuner, digits, tmp_path):
    result = run_search(tiny_config(epochs=2), space="quantizers", tuner=tuner, max_trials=2,
                        out=tmp_path, quantizers=["ste_sign", "swish_sign"])
    assert [t["status"] for t in result.trials] == ["COMPLETED"] * 2
    for t in result.trials:
        run = json.loads((tmp_path / "search" / f"trial_{t['trial_id']}" / "run" / "config.json").read_text())
        assert run["quantizer"] == t["hyperparameters"]["quantizer"]
        if tuner == "hyperband":  # each trial trains its bracket's budget
            assert run["epochs"] == t["hyperparameters"]["tuner/epochs"]
    assert json.loads((tmp_path / "best" / "config.json").read_text())["epochs"] == 2


# ----------------------------------------------------------------- seeds: the same search twice


def _scored_sequence(tuner, trials: int) -> list[dict]:
    """Create `trials` trials through `tuner`'s oracle, each scored by a fixed function of
    its values (no training), and return their values in order."""
    import zlib

    tuner.oracle.verbose = 0
    values = []
    for _ in range(trials):
        trial = tuner.oracle.create_trial("tuner0")
        assert trial.status == "RUNNING"
        drawn = dict(trial.hyperparameters.values)
        values.append(drawn)
        key = json.dumps({k: v for k, v in drawn.items() if not k.startswith("tuner/")}, sort_keys=True)
        tuner.oracle.update_trial(trial.trial_id, {"val_accuracy": zlib.crc32(key.encode()) / 2**32})
        trial.status = "COMPLETED"
        tuner.oracle.end_trial(trial)
    tuner.save()  # as the search loop does after each trial: a later tuner on the directory reloads it
    return values


# epochs=3: Hyperband's first bracket trains three trials for 1 epoch, then promotes the best
# for 3; 4 trials: the Bayesian tuner proposes from its Gaussian process after max(3, 4 // 3) = 3
# random ones. Scores are a fixed function of the values (the trained case is below).
@pytest.mark.parametrize("tuner", ["random", "hyperband", "bayesian"])
def test_same_seed_same_trials_whatever_the_directory(tuner, digits, tmp_path):
    def sequence(seed, directory, trials=4):
        hm = BNNHyperModel(tiny_config(epochs=3, seed=seed), "bop2ndorder", arrays=digits)
        return _scored_sequence(make_tuner(tuner, hm, max_trials=trials, directory=str(tmp_path / directory)),
                                trials)

    first = sequence(0, "a")  # 0, the CLI default, was replaced by a random seed in keras-tuner
    assert sequence(0, "b") == first
    assert sequence(7, "c") != first  # four float hyperparameters: a tie is practically impossible
    if tuner == "hyperband":
        assert [v["tuner/epochs"] for v in first] == [1, 1, 1, 3]  # the promotion is part of what repeats


# slow (~1 min on the CI machine): the default suite checks that the same seed repeats
# each tuner's trials (test_same_seed_same_trials_whatever_the_directory) and resumes
# trials in-process.
@pytest.mark.slow
def test_resumed_bayesian_search_proposes_what_an_unbroken_one_does(digits, tmp_path):
    """The Gaussian-process restarts are reseeded per proposal (keras-tuner does not save them)."""
    hm = BNNHyperModel(tiny_config(seed=3), "bop2ndorder", arrays=digits)

    def tuner(directory):
        return make_tuner("bayesian", hm, max_trials=5, directory=str(tmp_path / directory))

    unbroken = _scored_sequence(tuner("unbroken"), 5)  # 3 random trials, then 2 proposals
    resumed = _scored_sequence(tuner("resumed"), 4)
    reloaded = tuner("resumed")  # as a new process would: the project is reloaded
    assert list(reloaded.oracle.trials) == ["0", "1", "2", "3"]  # creation order, not the file system's
    resumed += _scored_sequence(reloaded, 1)
    assert resumed == unbroken


def test_tuner_seed_is_checked_and_spread(digits, tmp_path):
    from bnnzoo.tuning.tuners import oracle_seed

    hm = BNNHyperModel(tiny_config(seed=5), "quantizers", arrays=digits)
    for bad in (-1, 2**32, 1.5, True, "3"):
        with pytest.raises(ValueError, match=rf"seed must be an integer in \[0, 4294967295\], got {bad!r}"):
            make_tuner("random", hm, max_trials=2, directory=str(tmp_path / "x"), seed=bad)
    assert not (tmp_path / "x").exists()
    # The default is the seed the trials train with.
    assert make_tuner("random", hm, max_trials=2, directory=str(tmp_path / "y")).oracle.seed == oracle_seed(5)
    seeds = {oracle_seed(s) for s in range(1000)}
    assert len(seeds) == 1000 and min(seeds) >= 1 and max(seeds) < 2**31
    # Nearby seeds draw unrelated trials. keras-tuner draws value k of a search seeded s from
    # random.Random(s + k), so with its seed taken as is, seed s + m (m values per trial: every
    # hyperparameter of the bop2ndorder space is active) would start with seed s's second trial.
    bop = BNNHyperModel(tiny_config(), "bop2ndorder", arrays=digits)
    m = len(make_tuner("random", bop, max_trials=2, directory=str(tmp_path / "m"), seed=1).oracle.hyperparameters.space)
    for seed in (1, 2):
        second = _scored_sequence(make_tuner("random", bop, max_trials=2, directory=str(tmp_path / f"s{seed}"),
                                             seed=seed), 2)[1]
        first = _scored_sequence(make_tuner("random", bop, max_trials=2, directory=str(tmp_path / f"t{seed}"),
                                            seed=seed + m), 1)[0]
        assert first != second


@pytest.mark.parametrize("value", ["-1", "x", "1.5", "4294967296", ""])
def test_cli_seed_must_be_a_non_negative_integer(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(["tune", "--seed", value, "--out", str(tmp_path / "t")])
    assert exc.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines == [f"bnnzoo: error: --seed must be an integer in 0..4294967295 (0 <= S < 2**32), got {value!r}"]
    assert not any(tmp_path.iterdir())


def _search_record(out: Path) -> list[tuple]:
    """(trial id, hyperparameters, val accuracy, test loss) of every trial of a finished search, in order."""
    trials = json.loads((out / "results.json").read_text())["trials"]
    return [(t["trial_id"], t["hyperparameters"], t["metrics"]["val_accuracy"], t["metrics"]["test_loss"])
            for t in trials]


# Real searches, trained, through the command as issue #28 ran it (default seed 0): the scores
# that Hyperband promotes on and the Bayesian tuner fits repeat because every trial trains with
# the seed. Tiny trials (8 units, 1-3 epochs).
# slow (two CLI searches, 40 s-1.5 min each on the CI machine): every oracle's proposals
# repeat with the seed by default, in test_same_seed_same_trials_whatever_the_directory.
@pytest.mark.parametrize("tuner, trials, epochs", [
    pytest.param("random", 3, 1, marks=pytest.mark.slow),
    pytest.param("hyperband", 4, 3, marks=pytest.mark.slow),
    pytest.param("bayesian", 4, 1, marks=pytest.mark.slow),
])
def test_search_run_twice_with_one_seed_repeats_trial_for_trial(tuner, trials, epochs, tmp_path, capsys):
    def search(out):
        assert cli_main(["tune", "--space", "full", "--tuner", tuner, "--max-trials", str(trials),
                         "--epochs", str(epochs), "--model-arg", "units=8", "--model-arg", "hidden_layers=1",
                         "--quantizer", "ste_sign,swish_sign,approx_sign", "--optimizer", "adam,bop",
                         "--out", str(tmp_path / out)]) == 0
        return _search_record(tmp_path / out)

    first, second = search("a"), search("b")
    assert len(first) == trials and second == first  # same values, same scores, in the same order
    if tuner == "hyperband":  # bracket 1: three 1-epoch trials, then the best of them for 3 epochs
        assert [t[1]["tuner/epochs"] for t in first] == [1, 1, 1, 3]
    results = json.loads((tmp_path / "a" / "results.json").read_text())["search"]
    assert results["seed"] == 0 and results["oracle_seed"] == bnnzoo.tuning.tuners.oracle_seed(0)


# ----------------------------------------------------------------- processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Proc:
    """A `bnnzoo` subprocess whose output lines are read in the background."""

    def __init__(self, args, cwd):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
        for name in (distributed.ENV_TUNER_ID, distributed.ENV_ORACLE_IP, distributed.ENV_ORACLE_PORT):
            env.pop(name, None)
        self.proc = subprocess.Popen([BNNZOO, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, predicate, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
            if predicate(line):
                return line
        raise AssertionError(f"no expected line within {timeout} s; output:\n" + "\n".join(self.lines))

    def finish(self, timeout: float) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("process did not finish; output:\n" + "\n".join(self.lines))
        while True:
            line = self._queue.get(timeout=5)
            if line is None:
                return rc
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


SEARCH_ARGS = ["tune", "--dataset", "digits", "--space", "bop2ndorder", "--model-arg", "units=32",
               "--model-arg", "hidden_layers=1"]


# slow: a killed search resumes; the default suite resumes trials in-process.
@pytest.mark.slow
def test_sigterm_mid_trial_then_resume(tmp_path):
    args = [*SEARCH_ARGS, "--max-trials", "2", "--epochs", "2", "--out", str(tmp_path / "s")]
    first = _Proc(args, tmp_path)
    first.wait_for(lambda line: "trial 1 started" in line, timeout=120)
    ckpt = tmp_path / "s" / "search" / "trial_1" / "run" / "checkpoints" / "checkpoint"
    deadline = time.monotonic() + 60
    while not ckpt.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ckpt.exists(), first.text
    first.proc.send_signal(signal.SIGTERM)  # mid-trial: 1 of 2 epochs done
    assert first.finish(60) == 2, first.text  # one line, as `bnnzoo train` ends
    assert first.lines[-1] == (f"bnnzoo: error: terminated with 1 of 2 trial(s) finished (0); the same command "
                               f"resumes the search in {tmp_path / 's'}, retrying trial 1 from its last epoch "
                               "checkpoint")
    trial0 = json.loads((tmp_path / "s" / "search" / "trial_0" / "trial.json").read_text())
    assert trial0["status"] == "COMPLETED"
    run0_metrics = tmp_path / "s" / "search" / "trial_0" / "run" / "metrics.json"
    stamp = run0_metrics.stat().st_mtime_ns

    second = _Proc(args, tmp_path)
    assert second.finish(240) == 0, second.text
    assert "1 finished trial(s) kept" in second.text
    assert "trial 0 started" not in second.text  # the finished trial is not rerun
    assert "trial 1 started" in second.text and "after epoch" in second.text  # resumed mid-trial
    results = json.loads((tmp_path / "s" / "results.json").read_text())
    assert [t["trial_id"] for t in results["trials"]] == ["0", "1"]
    assert all(t["status"] == "COMPLETED" for t in results["trials"])
    assert results["trials"][0]["score"] == trial0["score"]
    assert run0_metrics.stat().st_mtime_ns == stamp
    assert (tmp_path / "s" / "best" / "model.keras").exists()


# slow (three processes, ~1.5 min on the CI machine): the default suite runs the chief
# and worker paths of test_one_line_errors (absent peer, SIGTERM while waiting).
@pytest.mark.slow
def test_distributed_chief_two_workers_one_killed(tmp_path):
    port = str(_free_port())
    common = [*SEARCH_ARGS, "--max-trials", "4", "--epochs", "2", "--out", str(tmp_path / "d"),
              "--oracle-ip", "127.0.0.1", "--oracle-port", port]
    chief = _Proc([*common, "--distributed", "chief", "--worker-timeout", "10"], tmp_path)
    chief.wait_for(lambda line: "oracle listening" in line, timeout=120)
    doomed = _Proc([*common, "--distributed", "worker", "--tuner-id", "worker-a"], tmp_path)
    # worker-a finishes one trial, starts another, and dies (SIGKILL, no clean-up); worker-b
    # starts after that: started together, a faster worker-b could take every other trial
    # first and leave worker-a none to die in.
    doomed.wait_for(lambda line: "done" in line, timeout=180)
    started = doomed.wait_for(lambda line: "started on worker-a" in line, timeout=60)
    doomed.proc.kill()
    doomed.finish(30)
    lost_trial = started.split("trial ")[1].split(" ")[0]
    survivor = _Proc([*common, "--distributed", "worker", "--tuner-id", "worker-b"], tmp_path)

    assert survivor.finish(300) == 0, survivor.text
    assert chief.finish(120) == 0, chief.text
    assert "no word from worker-a" in chief.text and f"trial {lost_trial} goes back to the queue" in chief.text
    results = json.loads((tmp_path / "d" / "results.json").read_text())
    trials = {t["trial_id"]: t for t in results["trials"]}
    assert len(trials) == 4 and all(t["status"] == "COMPLETED" for t in trials.values())
    owners = {t["tuner_id"] for t in trials.values()}
    assert owners == {"worker-a", "worker-b"}  # both workers' finished trials are kept
    assert trials[lost_trial]["tuner_id"] == "worker-b"  # the lost trial was rerun by the survivor
    assert results["summary"]["trials_completed"] == 4
    assert (tmp_path / "d" / "best" / "metrics.json").exists()
