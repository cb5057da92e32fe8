"""benchmarks/_common.py: the runner every benchmark script shares (command line,
isolated runs, resumable per-result files, epochs to a target, report files)."""

from __future__ import annotations

import json
import math
import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (REPO / "benchmarks").glob("*.py") if not p.name.startswith("_"))


@pytest.fixture(scope="module")
def common():
    sys.path.insert(0, str(REPO / "benchmarks"))  # as every script does
    import _common

    return _common


# ------------------------------------------------------------------ every script


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_uses_the_shared_runner(script):
    """No script keeps its own parser, process spawning or JSON writing."""
    source = (REPO / "benchmarks" / script).read_text()
    assert "from _common import" in source
    # its options come from _common.base_parser, directly or through the step-time main
    assert "base_parser(" in source or "step_benchmark_main(" in source
    for own in ("argparse.ArgumentParser", "subprocess", "os.wait4(", ".write_text(", "atomic_write_json"):
        assert own not in source, f"{script} uses {own} instead of benchmarks/_common.py"


# ------------------------------------------------------------------ command line


def test_base_parser_takes_named_options_and_the_hidden_child_option(common):
    p = common.base_parser("x", ("quick", "results_dir", "report_only"),
                           results_dir={"default": "somewhere"})
    args = p.parse_args(["--quick", "--report-only"])
    assert args.quick and args.report_only and args.results_dir == "somewhere" and args.run_one is None
    assert p.parse_args(["--run-one", "req.json"]).run_one == "req.json"
    assert "--run-one" not in p.format_help()  # internal: the child of run_isolated
    with pytest.raises(SystemExit):
        p.parse_args(["--epochs", "3"])  # not one of this script's options
    with pytest.raises(ValueError, match="Unknown or unused benchmark option 'epoch'. Valid names: quick"):
        common.base_parser("x", ("quick", "epoch"))
    with pytest.raises(ValueError, match="'data_dir'"):
        common.base_parser("x", ("quick",), data_dir={"default": "d"})


def test_settings_from_applies_the_overrides(common):
    p = common.base_parser("x")
    full, quick = {"epochs": 10, "seeds": [0, 1], "train_subset": 100}, {"epochs": 1, "seeds": [0]}
    assert common.settings_from(p.parse_args([]), full, quick) == full
    args = p.parse_args(["--quick", "--epochs", "2", "--seeds", "3", "4", "--train-subset", "0"])
    assert common.settings_from(args, full, quick) == {"epochs": 2, "seeds": [3, 4], "train_subset": None}
    assert quick == {"epochs": 1, "seeds": [0]}  # the script's own settings are not changed


# ------------------------------------------------------------------ isolated runs

CHILD = textwrap.dedent("""\
    import os, sys
    sys.path.insert(0, {benchmarks!r})
    from _common import base_parser, serve_child

    def handler(payload):
        print("child says hello", flush=True)
        if payload.get("exit"):
            sys.exit(payload["exit"])
        return {{"doubled": [2 * x for x in payload["values"]], "pid": os.getpid(),
                 "nan": float("nan"), "cwd": os.getcwd(), "env": os.environ.get("RUNNER_TEST")}}

    sys.exit(serve_child(base_parser("child", ()).parse_args().run_one, handler))
    """)


@pytest.fixture(scope="module")
def child_script(tmp_path_factory):
    path = tmp_path_factory.mktemp("child") / "child.py"
    path.write_text(CHILD.format(benchmarks=str(REPO / "benchmarks")))
    return path


def test_isolated_run_returns_the_childs_json_from_a_fresh_process(common, child_script, tmp_path):
    child = common.run_isolated(child_script, {"values": [1, 2.5]}, tmp_path / "runs", "point_a",
                                env={"RUNNER_TEST": "yes"})
    assert child.ok and child.returncode == 0
    assert child.answer["doubled"] == [2, 5.0]
    assert child.answer["pid"] != os.getpid()  # its own process
    assert child.answer["nan"] is None  # written as strict JSON
    assert child.answer["cwd"] == str(REPO) and child.answer["env"] == "yes"
    assert child.peak_rss_bytes > 10 * 2**20  # the child's own ru_maxrss (it imports TensorFlow)
    assert not list((tmp_path / "runs").iterdir())  # request and answer files are removed


def test_isolated_run_reports_a_failing_child_with_its_exit_status(common, child_script, tmp_path):
    log = tmp_path / "child.log"
    child = common.run_isolated(child_script, {"exit": 3}, tmp_path, "point_b", log_path=log)
    assert not child.ok and child.answer is None and child.returncode == 3
    assert "child says hello" in child.log_tail  # the end of its output, for the report
    assert not list(tmp_path.glob(".point_b.*"))


# ------------------------------------------------------------------ per-result files


def test_resume_skips_finished_results_and_redoes_half_written_ones(common, tmp_path):
    store = common.ResultStore(tmp_path, {"benchmark": "b", "version": 1})
    runs = []

    def run(name):
        runs.append(name)
        return {"name": name, "accuracy": 0.5}

    for _ in range(2):  # the second pass is a rerun after everything finished
        for name in ("p1", "p2"):
            assert store.get_or_run(lambda name=name: run(name), "arm", name)["accuracy"] == 0.5
    assert runs == ["p1", "p2"]
    stored = json.loads((tmp_path / "arm" / "p1.json").read_text())
    assert stored == {"name": "p1", "accuracy": 0.5, "finished": True}

    (tmp_path / "arm" / "p2.json").write_text('{"name": "p2", "accu')  # killed mid-write
    assert store.get("arm", "p2") is None and not (tmp_path / "arm" / "p2.json").exists()
    (tmp_path / "arm" / "p3.json").write_text('{"name": "p3"}')  # never marked finished
    assert store.get("arm", "p3") is None
    for name in ("p1", "p2", "p3"):
        store.get_or_run(lambda name=name: run(name), "arm", name)
    assert runs == ["p1", "p2", "p2", "p3"]  # only the unfinished ones ran again


def test_result_store_refuses_another_benchmark_and_can_accept_or_refuse_results(common, tmp_path):
    common.ResultStore(tmp_path, {"benchmark": "b", "version": 1})
    assert json.loads((tmp_path / "benchmark.json").read_text()) == {"benchmark": "b", "version": 1}
    common.ResultStore(tmp_path, {"benchmark": "b", "version": 1})  # the same: accepted
    with pytest.raises(ValueError, match="holds results of .*'version': 1.*not .*'version': 2"):
        common.ResultStore(tmp_path, {"benchmark": "b", "version": 2})
    plain = common.ResultStore(tmp_path / "plain", mark_finished=False)  # no stamp, no mark
    assert not (tmp_path / "plain").exists()
    plain.put({"settings": 1, "x": 2}, "cap2")
    assert json.loads((tmp_path / "plain" / "cap2.json").read_text()) == {"settings": 1, "x": 2}
    assert plain.get("cap2", accept=lambda r: r["settings"] == 1) == {"settings": 1, "x": 2}
    assert plain.get("cap2", accept=lambda r: r["settings"] == 9) is None  # other settings
    assert plain.get_or_run(lambda: {"settings": 9}, "cap2", accept=lambda r: r["settings"] == 9) == {"settings": 9}


# ------------------------------------------------------------------ epochs to a target


def test_epochs_to(common):
    epochs_to = common.epochs_to
    assert epochs_to([0.5, 0.79, 0.81, 0.9], 0.8) == 3
    assert epochs_to([0.5, 0.6], 0.8) is None
    assert epochs_to([2.0, 1.0, 0.5], 0.9, higher_is_better=False) == 3
    assert epochs_to([0.9, 0.95, 0.7, 0.8], 0.75, True, [False, False, True, True]) == 4  # counted only
    assert epochs_to([None, 0.9], 0.5) == 2  # a missing value never reaches it
    assert epochs_to([0.7 - 1e-12], 0.7) is None
    assert epochs_to([0.7 - 1e-12], 0.7, tolerance=1e-9) == 1
    assert epochs_to([1.0 + 1e-12], 1.0, False, tolerance=1e-9) == 1
    assert epochs_to([], 0.1) is None


# ------------------------------------------------------------------ reports


def test_report_files_are_strict_json_and_markdown(common, tmp_path):
    report = {"a": np.float32(0.5), "b": [math.nan, math.inf, 1], "c": np.arange(2), 3: "int key"}
    common.write_report(tmp_path / "new" / "out", "bench", report, ["# Title", "", "| x |", ""])
    text = (tmp_path / "new" / "out" / "bench.json").read_text()
    assert json.loads(text) == {"a": 0.5, "b": [None, None, 1], "c": [0, 1], "3": "int key"}
    assert text.startswith('{\n  "a": 0.5,') and text.endswith("}\n")
    assert (tmp_path / "new" / "out" / "bench.md").read_text() == "# Title\n\n| x |\n"
    common.write_json_atomic(tmp_path / "one.json", {"k": [1]}, indent=1, final_newline=False)
    assert (tmp_path / "one.json").read_text() == '{\n "k": [\n  1\n ]\n}'
    assert not list(tmp_path.rglob(".*tmp*"))  # no temporary file left


# ------------------------------------------------------------------ step times


class _Stub:
    """A stand-in model whose `train_on_batch` records who stepped, in order."""

    def __init__(self, name, calls):
        self.name, self.calls = name, calls

    def train_on_batch(self, x, y):
        self.calls.append(self.name)


def test_interleaved_step_times_warm_up_then_alternate(common):
    calls = []
    models = {"a": _Stub("a", calls), "b": _Stub("b", calls)}
    timing = common.interleaved_step_times(models, None, None, rounds=3, steps=2, warmup=1)
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 3  # warm-up, then rounds of 2 steps each
    assert set(timing["seconds_per_step"]) == set(timing["cpu_seconds_per_step"]) == {"a", "b"}
    assert all(len(samples) == 3 for samples in timing["samples"].values())
    assert timing["seconds_per_step"]["a"] == pytest.approx(float(np.median(timing["samples"]["a"])))
    assert timing["method"] == "interleaved rounds of 2 train_on_batch steps, 3 rounds"
