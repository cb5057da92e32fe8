"""benchmarks/reproduce.py (protocol 2): the resumable claim runner, its search, its
analysis on exact-sign epochs only, and its report."""

import json

import pytest


@pytest.fixture(scope="module")
def reproduce(load_script):
    return load_script("benchmarks/reproduce.py")


@pytest.fixture(scope="module")
def quick_run(reproduce, tmp_path_factory):
    """One real `--quick` run of one arm of the ProxConnect++ claim on digits: BNN++ (a
    plus design over the learning rate and mu_max); one seed of 2 epochs, 1-epoch search
    points. (One arm: each run costs ~10 s on the 2-core CI machine.)"""
    root = tmp_path_factory.mktemp("reproduce")
    args = ["--quick", "--claims", "proxconnect", "--arms", "bnnpp",
            "--results-dir", str(root / "results"), "--out-dir", str(root / "out")]
    assert reproduce.main(args) == 0
    return root, args


def test_quick_run_writes_every_result_and_the_report(reproduce, quick_run):
    root, _ = quick_run
    report = json.loads((root / "out" / "reproduce.json").read_text())
    assert report["version"] == reproduce.VERSION >= 2
    claim = report["claims"]["proxconnect"]
    arm = "bnnpp"
    entry = claim["arms"][arm]
    found = entry["search"]
    assert found["complete"] and len(found["points"]) >= reproduce.SEARCH_POINTS
    files = {p.stem for p in (root / "results" / "proxconnect" / arm).glob("*.json")}
    assert files == set(found["points"]) | {"seed0"}  # every search point is stored
    assert entry["seeds_done"] == [0] and entry["config"]["quantizer"] == arm
    assert found["chosen"] in [p["values"] for p in found["points"].values()]
    assert all(0 <= a <= 1 for a in entry["final"]["values"] + entry["best_checkpoint"]["values"])
    for history in entry["curves"].values():  # the per-epoch diagnostics are logged
        assert len(history["test_accuracy"]) == 2 and len(history["load_1min"]) == 2
        assert len(history["epoch_seconds"]) == 2
    # every epoch's seconds add up to the run's train_seconds, and to the arm's time
    seed0 = json.loads((root / "results" / "proxconnect" / arm / "seed0.json").read_text())
    assert seed0["train_seconds"] == pytest.approx(sum(entry["curves"]["0"]["epoch_seconds"]), abs=0.01)
    assert entry["wall_seconds"] == pytest.approx(seed0["train_seconds"], abs=0.1)
    axes = [a["field"] for a in entry["search_axes"]]
    assert axes == ["learning_rate", "mu_max"]
    # BNN++ is binary only in its exact-sign phase: the last of its 2 epochs
    assert entry["binary_epochs"]["0"] == [False, True]
    assert claim["arms"]["bnn"]["seeds_done"] == [] and claim["arms"]["bnn"]["binary_epochs"] == {}
    assert claim["summary"]["verdict"] == "pending"  # one of the four arms ran
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
    path = root / "results" / "proxconnect" / "bnnpp" / "seed0.json"
    before = json.loads(path.read_text())
    path.write_text(path.read_text()[:40])  # as if killed mid-write without the atomic rename
    calls = []
    real = reproduce._run
    monkeypatch.setattr(reproduce, "_run", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    assert reproduce.main(args) == 0
    assert [p.name for p in calls] == ["seed0"]
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


def test_unknown_claim_or_arm_lists_the_valid_ones(reproduce, capsys):
    assert reproduce.main(["--claims", "bnn_plus_plus"]) == 2
    err = capsys.readouterr().err
    assert "Unknown claim 'bnn_plus_plus'. Valid names: bop2ndorder, proxconnect, hyper_binarynet, fsg" in err
    assert reproduce.main(["--claims", "proxconnect", "--arms", "bop"]) == 2
    assert "Unknown arm 'bop' of claims proxconnect. Valid names: bnn, bnn_plus, bnnpp, proxconnect" in \
        capsys.readouterr().err


def test_every_claim_is_on_a_binary_cnn_with_the_search_budget_and_the_exact_sign_phase(reproduce):
    from bnnzoo.training import TrainConfig

    for claim in reproduce.CLAIMS.values():
        assert claim.base["model"] == "binarynet" and claim.epochs >= 15
        assert claim.search_epochs * 3 >= claim.epochs
        assert claim.base["exact_sign_fraction"] >= 0.2
        for arm in claim.arms:
            assert len(reproduce.initial_points(arm)) == reproduce.SEARCH_POINTS
            centre = {a.field: a.centre for a in arm.axes}
            fields = reproduce.arm_config(claim, arm, reproduce.Settings(), values=centre, seed=0,
                                          epochs=claim.epochs)
            TrainConfig(**fields)  # a valid config
    fsg = reproduce.CLAIMS["fsg"].base  # weights-only binary with a float nonlinearity
    assert fsg["model_kwargs"]["activation"] == "relu" and fsg["input_quantizer"] == "none"


def test_plus_design_and_the_one_extension(reproduce):
    Arm, Axis = reproduce.Arm, reproduce.Axis
    arm = Arm("x", "x", {}, lr=reproduce.lr_axis(1e-2), key=Axis("optimizer_kwargs.gamma", 1e-4, 10.0, high=1e-3))
    points = reproduce.initial_points(arm)
    assert points == [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]
    assert [reproduce.point_values(arm, p) for p in points[:3]] == [
        {"learning_rate": 0.01, "optimizer_kwargs.gamma": 1e-4},
        {"learning_rate": 0.00316, "optimizer_kwargs.gamma": 1e-4},
        {"learning_rate": 0.0316, "optimizer_kwargs.gamma": 1e-4}]
    assert reproduce.extension(arm, points, (0, 0)) is None  # the centre is inside the grid
    assert reproduce.extension(arm, points, (1, 0)) == (2, 0)  # a larger learning rate next
    assert reproduce.extension(arm, points, (0, -1)) == (0, -2)
    assert reproduce.extension(arm, points, (0, 1)) is None  # gamma 1e-3 is the axis' bound
    one_axis = Arm("y", "y", {})
    line = reproduce.initial_points(one_axis)
    assert line == [(-2,), (-1,), (0,), (1,), (2,)]
    assert reproduce.extension(one_axis, line, (-2,)) == (-3,)
    assert reproduce.extension(one_axis, line, (1,)) is None


def _result(val, exact=None, loss=None, test=None):
    history = {"val_accuracy": list(val), "loss": list(loss or [1.0] * len(val)),
               "test_accuracy": list(test or val)}
    if exact is not None:
        history["sign_swish_mu_exact_sign"] = [float(e) for e in exact]
    return {"history": history, "test_accuracy": (test or val)[-1], "wall_seconds": 1.0}


def test_search_extends_an_edge_winner_once_and_picks_on_exact_sign_epochs(reproduce, tmp_path):
    settings = reproduce.Settings(dataset="digits", seeds=(0,), quick=True)
    store = reproduce.ResultStore(tmp_path, settings)
    claim = reproduce.CLAIMS["proxconnect"]
    arm = next(a for a in claim.arms if a.name == "bnnpp")
    # the score of a point: best val accuracy of an exact-sign epoch (the soft epochs'
    # higher values do not count)
    scores = {(0, 0): 0.5, (-1, 0): 0.4, (1, 0): 0.7, (0, -1): 0.3, (0, 1): 0.2, (2, 0): 0.6}
    trained = []

    def run_point(point):
        trained.append(point)
        store.put(_result([0.99, scores[point]], exact=[0, 1]), claim.name, arm.name,
                  reproduce.point_name(arm, point))

    found = reproduce.search(claim, arm, settings, store, run_point)
    assert trained == [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1), (2, 0)]  # extended once, up
    assert found["extended"] == reproduce.point_name(arm, (2, 0))
    assert found["chosen"] == reproduce.point_values(arm, (1, 0)) and found["chosen_on_edge"] is False
    assert found["points"][reproduce.point_name(arm, (1, 0))]["val_accuracy"] == 0.7
    # read back without training: the same answer
    assert reproduce.search(claim, arm, settings, store)["chosen"] == found["chosen"]


def test_binary_epochs_and_epochs_to_target_ignore_soft_epochs(reproduce):
    history = {"val_accuracy": [0.9, 0.95, 0.7, 0.8],
               "sign_swish_mu_exact_sign": [0.0, 0.0, 1.0, 1.0],
               "hardtanh_temperature_exact_sign": [0.0, 1.0, 1.0, 1.0]}
    binary = reproduce.binary_epochs(history)
    assert binary == [False, False, True, True]  # every annealed quantizer must be exact
    assert reproduce.epochs_to(history["val_accuracy"], 0.75, True, binary) == 4
    assert reproduce.epochs_to(history["val_accuracy"], 0.75, True) == 1
    assert reproduce.epochs_to([2.0, 1.0, 0.5], 0.9, False) == 3
    assert reproduce.epochs_to([0.5, 0.6], 0.7, True) is None
    assert reproduce.binary_epochs({"val_accuracy": [0.1, 0.2]}) == [True, True]
    best = reproduce.best_checkpoint({**history, "test_accuracy": [0.91, 0.96, 0.71, 0.79]})
    assert best == {"epoch": 4, "val_accuracy": 0.8, "test_accuracy": 0.79}


def test_bootstrap_interval_and_verdict_rules(reproduce):
    diff, low, high = reproduce.bootstrap_interval([0.90, 0.91, 0.92], [0.85, 0.86, 0.89])
    assert diff == pytest.approx(0.91 - 0.8666666666)
    assert low > 0 and high > low  # every resample of the method beats every one of the baseline
    assert low >= 0.90 - 0.89 - 1e-12 and high <= 0.92 - 0.85 + 1e-12
    assert reproduce.accuracy_verdict((0.01, 0.005, 0.02)) == "reproduced"
    assert reproduce.accuracy_verdict((-0.01, -0.02, -0.005)) == "reversed"
    assert reproduce.accuracy_verdict((0.01, -0.01, 0.03)) == "not reproduced"
    same = reproduce.bootstrap_interval([0.9, 0.8], [0.9, 0.8])
    assert same[0] == 0 and same[1] < 0 < same[2]
    assert reproduce.speed_verdict(0.5, "not reproduced") == "reproduced"
    assert reproduce.speed_verdict(0.5, "reversed") == "not reproduced"
    assert reproduce.speed_verdict(2.0, "not reproduced") == "reversed"
    assert reproduce.speed_verdict(2.0, "reproduced") == "not reproduced"
    assert reproduce.speed_verdict(None, "reproduced") == "not reproduced"
    assert reproduce.speed_verdict(0.5, "not reproduced", "higher") == "not reproduced"
    assert reproduce.speed_verdict(0.5, "reproduced", "higher") == "reproduced"
    assert reproduce.CLAIMS["hyper_binarynet"].accuracy_claim == "higher"
    with pytest.raises(ValueError, match="accuracy_claim must be"):
        reproduce.speed_verdict(0.5, "reproduced", "better")


def test_speed_claim_from_stored_curves_counts_exact_sign_epochs_only(reproduce, tmp_path):
    """Epochs to the baseline's best (exact-sign) validation accuracy, median over seeds."""
    settings = reproduce.Settings(dataset="digits", seeds=(0, 1, 2), quick=True)
    store = reproduce.ResultStore(tmp_path, settings)
    claim = reproduce.CLAIMS["hyper_binarynet"]  # target: the baseline's final val accuracy
    curves = {  # STE: binary throughout; warm-up arms: soft in the first two epochs
        "ste": ([[0.5, 0.6, 0.7, 0.8], [0.5, 0.6, 0.7, 0.81], [0.4, 0.6, 0.7, 0.79]], None),
        "ste_warmup": ([[0.9, 0.9, 0.85, 0.86], [0.9, 0.9, 0.8, 0.9], [0.9, 0.9, 0.8, 0.85]], [0, 0, 1, 1]),
    }
    for arm in claim.arms:
        per_seed, exact = curves.get(arm.name, curves["ste_warmup"])
        for point in reproduce.initial_points(arm):
            store.put(_result([0.5], exact=None if exact is None else [1]), claim.name, arm.name,
                      reproduce.point_name(arm, point))
        for seed, curve in enumerate(per_seed):
            store.put(_result(curve, exact=exact), claim.name, arm.name, f"seed{seed}")
    analysis = reproduce.analyse_claim(claim, settings, store)
    comparison = analysis["comparisons"]["ste_warmup"]
    assert comparison["baseline_epochs_to_target"] == [4, 4, 4]
    assert comparison["epochs_to_target"] == [3, 4, 3]  # not 1: epochs 1-2 are not binary
    assert comparison["ratio"] == pytest.approx(3 / 4)
    assert comparison["best_checkpoint_difference"][0] == pytest.approx(
        (0.86 + 0.9 + 0.85) / 3 - (0.8 + 0.81 + 0.79) / 3)
    assert comparison["accuracy_verdict"] == "reproduced"
    assert analysis["summary"]["verdict"] == comparison["verdict"] == "reproduced"
    assert analysis["arms"]["ste_warmup"]["best_epochs"] == [4, 4, 4]


# slow (~1 min): the fresh-process runner itself is tested by default in
# test_benchmark_runner.py; this checks reproduce's child gives the in-process result.
@pytest.mark.slow
def test_isolated_run_matches_the_in_process_run(reproduce, tmp_path, digits):
    """A result computed in its own Python process (the default outside --quick) is the
    same run as in-process: same test accuracy and history, bit for bit."""
    fields = dict(model="binarynet_mlp", model_kwargs={"units": 16, "hidden_layers": 1}, dataset="digits", epochs=2,
                  batch_size=64, learning_rate=1e-2, seed=3, quantizer="ste_warmup", data_dir=None)
    isolated = reproduce._run_isolated(fields, tmp_path / "isolated")
    local = reproduce._run(fields, tmp_path / "local", digits)
    assert isolated["test_accuracy"] == local["test_accuracy"]
    drop = {"load_1min", "epoch_seconds"}  # the machine's load and timing differ between the two
    assert {k: v for k, v in isolated["history"].items() if k not in drop} == \
        {k: v for k, v in local["history"].items() if k not in drop}
    assert isolated["history"]["test_accuracy"][-1] == pytest.approx(local["test_accuracy"], abs=1e-6)
    assert not list(tmp_path.glob(".*.json"))  # request and answer files are cleaned up
    with pytest.raises(RuntimeError, match="failed in its own process"):
        reproduce._run_isolated({**fields, "model": "no_such_model"}, tmp_path / "bad")


def test_protocol_1_results_stay_readable_and_labelled():
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    stamp = json.loads((repo / "benchmarks/results/reproduce-protocol1/benchmark.json").read_text())
    assert stamp["version"] == 1
    report = json.loads((repo / "docs/benchmarks/reproduce-protocol1.json").read_text())
    assert report["version"] == 1 and len(report["claims"]) == 5
    assert "protocol 1" in (repo / "docs/benchmarks/reproduce-protocol1.md").read_text().lower()


def test_cnn_ranking_orders_fully_binary_arms_on_validation_against_the_best_ste(reproduce):
    """Arms across claims on the fully binary CNN, ranked by mean best exact-sign
    validation accuracy; FSG's weights-only ReLU net and unfinished arms are left out,
    and the difference is taken from the STE baseline that validates best."""
    def arm(label, val, test, seeds=(0, 1, 2), config=None):
        return {"label": label, "config": config or {"model_kwargs": {"width": 0.25}},
                "results_of": label, "seeds_done": list(seeds), "search": {"chosen": {"learning_rate": 0.01}},
                "best_val": reproduce._spread(val), "best_checkpoint": reproduce._spread(test)}

    analysis = {
        "proxconnect": {"seeds": [0, 1, 2], "arms": {
            "bnn": arm("BNN", [0.90, 0.91, 0.92], [0.90, 0.90, 0.90]),
            "bnnpp": arm("BNN++", [0.93, 0.93, 0.93], [0.92, 0.92, 0.93]),
            "proxconnect": arm("PC", [0.95, 0.95], [0.95, 0.95], seeds=(0, 1))}},
        "hyper_binarynet": {"seeds": [0, 1, 2], "arms": {
            "ste": arm("STE", [0.89, 0.89, 0.89], [0.91, 0.91, 0.91])}},
        "fsg": {"seeds": [0, 1, 2], "arms": {
            "ste": arm("FSG STE", [0.99] * 3, [0.99] * 3,
                       config={"model_kwargs": {"activation": "relu"}, "input_quantizer": "none"})}},
    }
    ranking = reproduce.cnn_ranking(analysis)
    assert [r["label"] for r in ranking["rows"]] == ["BNN++", "BNN", "STE"]  # PC: 2 of 3 seeds
    assert ranking["reference"] == "proxconnect/bnn"  # validates at 0.91 > STE's 0.89
    bnnpp, bnn, ste = ranking["rows"]
    assert bnn["reference"] and bnn["vs_ste"] is None
    assert bnnpp["vs_ste"][0] == pytest.approx((0.92 + 0.92 + 0.93) / 3 - 0.90)
    assert ste["vs_ste"] == pytest.approx((0.01, 0.01, 0.01))  # constant seeds: a point interval
    assert reproduce.fully_binary({"model_kwargs": {}, "input_quantizer": "ste_sign"})
    assert not reproduce.fully_binary({"kernel_quantizer": "none"})


def test_exact_sign_switch_reads_the_epochs_around_the_switch(reproduce):
    history = {"val_accuracy": [0.90, 0.93, 0.89, 0.91, 0.90],
               "sign_swish_mu_exact_sign": [0.0, 0.0, 1.0, 1.0, 1.0]}
    assert reproduce.exact_sign_switch(history) == {"epoch": 3, "last_soft": 0.93, "first_exact": 0.89,
                                                    "best_exact": 0.91}
    assert reproduce.exact_sign_switch({"val_accuracy": [0.5, 0.6]}) is None  # binary throughout
    assert reproduce.exact_sign_switch({**history, "sign_swish_mu_exact_sign": [0.0] * 5}) is None


def test_time_budget_starts_only_runs_that_fit(reproduce, tmp_path, monkeypatch):
    """`--time-budget`: a run starts only if its epochs fit in the time left at the
    slowest epoch timed so far, so a session stops the benchmark between runs."""
    now, ran = [0.0], []

    def fake_execute(fields, run_dir, arrays, settings):  # 100 s per epoch, on a fake clock
        ran.append(run_dir.name)
        now[0] += 100.0 * fields["epochs"]
        epochs = fields["epochs"]
        return {"config": fields, "history": {"val_accuracy": [0.5] * epochs, "epoch_seconds": [100.0] * epochs}}

    monkeypatch.setattr(reproduce, "_execute", fake_execute)
    settings = reproduce.Settings(dataset="digits", seeds=(0,), quick=True, isolate=False)
    store = reproduce.ResultStore(tmp_path / "results", settings)
    budget = reproduce.Budget(250, clock=lambda: now[0])
    # search points of 1 epoch: the first (no epoch timed yet) and the second (100 s of 150 s
    # left) start; the third would need 100 s of the 50 s left
    with pytest.raises(reproduce.BudgetSpent, match=r"needs ~100 s \(1 epochs of 100 s\), 50 s left"):
        reproduce.run_claim(reproduce.CLAIMS["proxconnect"], settings, store, tmp_path / "runs", None,
                            arms=["bnn"], budget=budget, log=lambda message: None)
    assert len(ran) == 2 and all(name.startswith("search_") for name in ran)
    assert sorted(p.stem for p in (tmp_path / "results" / "proxconnect" / "bnn").glob("*.json")) == sorted(ran)
    # spent, a run is refused even before any epoch is timed; no budget never refuses
    with pytest.raises(reproduce.BudgetSpent, match="0 s left"):
        reproduce.Budget(10, clock=iter([0.0, 11.0]).__next__).check(1, "x")
    reproduce.Budget(0).check(10**6, "x")
