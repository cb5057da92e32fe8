"""benchmarks/reproduce.py: the resumable claim runner, its analysis and report."""

import json

import pytest


@pytest.fixture(scope="module")
def reproduce(load_script):
    return load_script("benchmarks/reproduce.py")


@pytest.fixture(scope="module")
def quick_run(reproduce, tmp_path_factory):
    """One real `--quick` run of the ProxConnect++ claim (9 tiny trainings on digits)."""
    root = tmp_path_factory.mktemp("reproduce")
    args = ["--quick", "--claims", "proxconnect", "--results-dir", str(root / "results"),
            "--out-dir", str(root / "out")]
    assert reproduce.main(args) == 0
    return root, args


def test_quick_run_writes_every_result_and_the_report(reproduce, quick_run):
    root, _ = quick_run
    files = sorted(p.relative_to(root / "results").as_posix()
                   for p in (root / "results" / "proxconnect").rglob("*.json"))
    arms = ("bnn", "bnn_plus", "bnnpp")
    assert files == sorted(f"proxconnect/{a}/{r}.json" for a in arms
                           for r in ("search_lr0.01", "seed0", "seed1"))
    report = json.loads((root / "out" / "reproduce.json").read_text())
    summary = report["summary"]["proxconnect"]
    assert summary["verdict"] in ("reproduced", "not reproduced", "reversed")
    assert set(summary) == {"verdict", "ratio", "delta_accuracy", "method"}
    claim = report["claims"]["proxconnect"]
    for arm in arms:  # every arm's hyperparameters and search budget are in the JSON
        entry = claim["arms"][arm]
        assert entry["config"]["quantizer"] == arm and entry["seeds_done"] == [0, 1]
        assert entry["chosen_learning_rate"] == 0.01 and list(entry["search"]) == ["0.01"]
        assert all(0 <= a <= 1 for a in entry["test_accuracy"])
    assert claim["search"] == {"learning_rates": [0.01], "seed": 0, "epochs": 1,
                               "picked_on": "final val_accuracy"}
    delta = (claim["arms"]["bnnpp"]["test_accuracy_median"]
             - claim["arms"]["bnn"]["test_accuracy_median"])
    assert summary["delta_accuracy"] == pytest.approx(delta)
    md = (root / "out" / "reproduce.md").read_text()
    assert "BNN++ (SS_mu, SS'_mu) vs BNN" in md and (root / "out" / "reproduce.png").stat().st_size


def test_rerun_skips_finished_results(reproduce, quick_run, monkeypatch):
    _, args = quick_run

    def no_training(*a, **k):
        raise AssertionError("a finished result was trained again")

    monkeypatch.setattr(reproduce, "_run", no_training)
    assert reproduce.main(args) == 0


def test_half_written_result_is_discarded_and_redone(reproduce, quick_run, monkeypatch):
    root, args = quick_run
    path = root / "results" / "proxconnect" / "bnnpp" / "seed1.json"
    before = json.loads(path.read_text())
    path.write_text(path.read_text()[:40])  # as if killed mid-write without the atomic rename
    calls = []
    real = reproduce._run
    monkeypatch.setattr(reproduce, "_run", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    assert reproduce.main(args) == 0
    assert [p.name for p in calls] == ["seed1"]
    after = json.loads(path.read_text())
    assert after["finished"] and after["config"] == before["config"]


def test_results_of_another_version_or_benchmark_are_refused(reproduce, tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    (results / "benchmark.json").write_text(json.dumps(
        {"benchmark": "reproduce", "version": reproduce.VERSION - 1, "quick": True,
         "dataset": "digits"}))
    assert reproduce.main(["--quick", "--results-dir", str(results), "--out-dir",
                           str(tmp_path / "out")]) == 2
    assert "holds results of" in capsys.readouterr().err
    (results / "benchmark.json").write_text(json.dumps({"benchmark": "optimizers"}))
    assert reproduce.main(["--quick", "--results-dir", str(results), "--report-only"]) == 2


def test_unknown_claim_lists_the_valid_ones(reproduce, capsys):
    assert reproduce.main(["--claims", "bnn_plus_plus"]) == 2
    err = capsys.readouterr().err
    assert "Unknown claim 'bnn_plus_plus'. Valid names: proxconnect, hyper_binarynet, bop2ndorder" in err


def test_verdict_rules(reproduce):
    assert reproduce.accuracy_verdict([0.90, 0.91, 0.92], [0.85, 0.86, 0.89]) == "reproduced"
    assert reproduce.accuracy_verdict([0.80, 0.81], [0.85, 0.86]) == "reversed"
    assert reproduce.accuracy_verdict([0.80, 0.90], [0.85, 0.86]) == "not reproduced"
    assert reproduce.speed_verdict(0.5, "not reproduced") == "reproduced"
    assert reproduce.speed_verdict(0.5, "reversed") == "not reproduced"
    assert reproduce.speed_verdict(2.0, "not reproduced") == "reversed"
    assert reproduce.speed_verdict(2.0, "reproduced") == "not reproduced"
    assert reproduce.speed_verdict(None, "reproduced") == "not reproduced"
    # a claim of faster *and* more accurate needs both halves
    assert reproduce.speed_verdict(0.5, "not reproduced", "higher") == "not reproduced"
    assert reproduce.speed_verdict(0.5, "reproduced", "higher") == "reproduced"
    assert reproduce.CLAIMS["hyper_binarynet"].accuracy_claim == "higher"
    with pytest.raises(ValueError, match="accuracy_claim must be"):
        reproduce.speed_verdict(0.5, "reproduced", "better")
    assert reproduce.epochs_to([0.5, 0.7, 0.8], 0.7, True) == 2
    assert reproduce.epochs_to([0.5, 0.6], 0.7, True) is None
    assert reproduce.epochs_to([2.0, 1.0, 0.5], 0.9, False) == 3


def test_speed_claim_ratio_from_the_stored_curves(reproduce, tmp_path):
    """Epochs to the baseline's best validation accuracy, median over seeds."""
    settings = reproduce.Settings(dataset="digits", lr_grid=(0.01,), seeds=(0, 1, 2), quick=True)
    store = reproduce.ResultStore(tmp_path, settings)
    claim = reproduce.CLAIMS["bop2ndorder_cnn"]
    curves = {  # val accuracy per epoch; bop's best is reached at epoch 4 in every seed
        "bop": [[0.5, 0.6, 0.7, 0.8], [0.5, 0.6, 0.7, 0.81], [0.4, 0.6, 0.7, 0.79]],
        "bop2ndorder_biased": [[0.6, 0.8, 0.8, 0.8], [0.7, 0.75, 0.82, 0.8], [0.8, 0.8, 0.8, 0.8]],
    }
    for arm, per_seed in curves.items():
        store.put({"history": {"val_accuracy": [0.5]}, "test_accuracy": 0.0,
                   "wall_seconds": 0}, claim.name, arm, "search_lr0.01")
        for seed, curve in enumerate(per_seed):
            store.put({"history": {"val_accuracy": curve, "loss": [1.0] * 4},
                       "test_accuracy": curve[-1], "wall_seconds": 1.0},
                      claim.name, arm, f"seed{seed}")
    analysis = reproduce.analyse_claim(claim, settings, store)
    comparison = analysis["comparisons"]["bop2ndorder_biased"]
    assert comparison["baseline_epochs_to_target"] == [4, 4, 4]
    assert comparison["epochs_to_target"] == [2, 3, 1]
    assert comparison["ratio"] == pytest.approx(2 / 4)
    assert comparison["delta_accuracy"] == pytest.approx(0.8 - 0.8)
    assert analysis["summary"]["verdict"] == comparison["verdict"] == "reproduced"


def test_isolated_run_matches_the_in_process_run(reproduce, tmp_path, digits):
    """A result computed in its own Python process (the default outside --quick) is the
    same run as in-process: same test accuracy and history, bit for bit."""
    fields = dict(model="binarynet_mlp", model_kwargs={"units": 16, "hidden_layers": 1}, dataset="digits", epochs=2,
                  batch_size=64, learning_rate=1e-2, seed=3, quantizer="ste_warmup", data_dir=None)
    isolated = reproduce._run_isolated(fields, tmp_path / "isolated")
    local = reproduce._run(fields, tmp_path / "local", digits)
    assert isolated["test_accuracy"] == local["test_accuracy"]
    assert isolated["history"] == local["history"]
    assert not list(tmp_path.glob(".*.json"))  # request and answer files are cleaned up
    with pytest.raises(RuntimeError, match="failed in its own process"):
        reproduce._run_isolated({**fields, "model": "no_such_model"}, tmp_path / "bad")
