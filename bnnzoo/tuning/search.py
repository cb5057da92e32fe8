"""`run_search`: one search end to end (what `bnnzoo tune` runs).

Layout of the output directory `out`:

| path | content |
| --- | --- |
| `search.json` | the search's settings (a restart must match them) |
| `search/` | keras-tuner's project: `oracle.json`, `trial_<id>/trial.json`, `trial_<id>/run/` (a bnnzoo run directory per trial) |
| `results.json` | summary, best trial, every trial's hyperparameters and metrics, command, date, machine |
| `results.md` | the same as a ranked Markdown table |
| `results.png` | score per trial, and each searched hyperparameter vs score |
| `best/` | the best configuration as a normal bnnzoo run directory (`bnnzoo evaluate out/best`) |
| `.bnnzoo.lock` | the writer lock a running search holds (`bnnzoo._runlock`; a second `bnnzoo tune` on `out` is refused) |
| `baseline/` | with `baseline=True`: the default hyperparameters trained the same way |
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import keras_tuner as kt

from bnnzoo import data as _data
from bnnzoo import training as _training
from bnnzoo._runlock import LOCK_FILE, directory_lock
from bnnzoo.tuning import distributed as _distributed
from bnnzoo.tuning import report as _report
from bnnzoo.tuning.hypermodel import OBJECTIVE, BNNHyperModel
from bnnzoo.tuning.spaces import get_search_space
from bnnzoo.tuning.tuners import TUNERS, format_hp_values, list_tuners, make_tuner

__all__ = ["SearchResult", "run_search"]

PROJECT = "search"
SETTINGS_FILE = "search.json"


@dataclass
class SearchResult:
    """What a finished search produced (`None` fields where not made)."""

    out: Path
    trials: list[dict[str, Any]]
    best: dict[str, Any] | None
    best_metrics: dict[str, Any] | None
    baseline_metrics: dict[str, Any] | None
    summary: dict[str, Any]


def _machine() -> str:
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


_START_OVER = "start the search over in another --out (or delete the file to rebuild it)"


def _check_search_files(out: Path) -> None:
    """keras-tuner's own files (`oracle.json`, `trial_*/trial.json`) are JSON objects;
    `ValueError` naming the first that is not (keras-tuner's decoder error names none)."""
    project = out / PROJECT
    for path in [project / "oracle.json", *sorted(project.glob("trial_*/trial.json"))]:
        if path.is_file():
            _training.read_json(path, hint=_START_OVER)


def _check_settings(out: Path, settings: dict[str, Any]) -> None:
    path = out / SETTINGS_FILE
    if path.exists():
        previous = _training.read_json(path, hint=_START_OVER)
        if previous != settings:
            changed = sorted(k for k in set(previous) | set(settings) if previous.get(k) != settings.get(k))
            raise ValueError(
                f"{out} holds a different search (changed: {', '.join(changed)}); restart it with the "
                "same arguments to resume, or use another --out."
            )
    else:
        out.mkdir(parents=True, exist_ok=True)
        _training.write_json(path, settings)


def _train_or_reuse(config: _training.TrainConfig, run_dir: Path, arrays, candidates: Sequence[Path] = ()):
    """Metrics of `config` trained into `run_dir`, copying an identical finished run if one exists."""
    wanted = config.to_dict()
    for source in (run_dir, *candidates):
        metrics_path, config_path = source / "metrics.json", source / "config.json"
        if (metrics_path.exists() and config_path.exists()
                and _training.read_json(config_path, hint=_START_OVER) == wanted):
            if source != run_dir:
                shutil.rmtree(run_dir, ignore_errors=True)
                shutil.copytree(source, run_dir, ignore=shutil.ignore_patterns(LOCK_FILE))
            return _training.read_json(metrics_path, hint=_START_OVER)
    # Not an identical finished run (checked above): replace whatever run_dir holds.
    return _training.train(config, run_dir, arrays=arrays, verbose=0, overwrite=True).metrics


def run_search(
    base: _training.TrainConfig,
    *,
    space: str = "full",
    tuner: str = "random",
    max_trials: int = 10,
    out: str | os.PathLike = "tune",
    optimizers: Sequence[str] | None = None,
    quantizers: Sequence[str] | None = None,
    final_epochs: int | None = None,
    baseline: bool = False,
    distributed: str | None = None,
    oracle_ip: str | None = None,
    oracle_port: int | None = None,
    tuner_id: str | None = None,
    connect_timeout: float = 60.0,
    rpc_timeout: float = 600.0,
    worker_timeout: float = 120.0,
    command: str | None = None,
    say: Callable[[str], None] = print,
) -> SearchResult | None:
    """Run (or resume) a search over `space` with `tuner`; write the results to `out`.

    Reproducible with `base.seed` (`bnnzoo tune --seed S`, default 0): the same
    call run again, into any `out`, samples the same trials in the same order with
    the same hyperparameter values, for every tuner, and trains each from the same
    initial weights, because the tuner's oracle is seeded from `base.seed`
    (`make_tuner`) and every trial trains with `base.seed` (`bnnzoo.training.train`:
    seeded Python, NumPy and TensorFlow, deterministic TensorFlow ops). Random
    search's trials depend on the seed alone; Hyperband's promotions and the
    Bayesian tuner's proposals after its random initial points also depend on the
    trials' scores, which repeat on the same machine type and software stack, not
    necessarily across them. A search interrupted and resumed samples what an
    uninterrupted one does. With `distributed`, only the tuner's random draws
    follow the seed: which trial a worker gets, and what Hyperband and Bayesian
    decide, depend on the order in which workers finish; each worker trains with
    its own `base.seed`, so start every worker with the chief's.
    `results.json` records the seed (`search.seed`) and keras-tuner's oracle
    seed derived from it (`search.oracle_seed`).

    Args:
        base: the config every trial starts from (model, dataset, epochs per
            trial, seed of the search and of every trial, fixed values of what
            the space does not search).
        space: a preset name (`list_search_spaces()`).
        tuner: `random`, `hyperband` or `bayesian`.
        max_trials: number of trials (> 0).
        out: output directory; an existing search there with the same settings
            resumes (finished trials kept, an interrupted one retried).
        optimizers / quantizers: restrict the space's choices to these names.
        final_epochs: epochs for retraining the best configuration into `out/best`
            (default: the trials' epochs, so the best trial's run is reused).
        baseline: also train the default hyperparameters (`out/baseline`).
        distributed: `None`, `"chief"` or `"worker"` (keras-tuner's chief/worker mode).
        oracle_ip / oracle_port: the chief's address (distributed mode).
        tuner_id: a worker's id (default `worker-<host>-<pid>`).
        connect_timeout: seconds a worker waits for the chief before failing.
        rpc_timeout: bound on each later worker->chief call.
        worker_timeout: seconds without word from a worker before the chief
            gives its trial to another worker (>= 6; workers ping every 2 s).
        command: the command line to record in the results.

    Returns:
        The `SearchResult` (local search or chief), `None` on a worker.
    """
    started = time.perf_counter()
    preset = get_search_space(space)
    TUNERS.get(tuner)  # ValueError listing the valid names
    if isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials <= 0:
        raise ValueError(f"max_trials must be a positive integer, got {max_trials!r}")
    if distributed == "chief" and not worker_timeout >= _distributed.MIN_WORKER_TIMEOUT:
        raise ValueError(f"worker_timeout must be >= {_distributed.MIN_WORKER_TIMEOUT:g} seconds, "
                         f"got {worker_timeout}")
    if final_epochs is not None and final_epochs <= 0:
        raise ValueError(f"final_epochs must be a positive integer, got {final_epochs!r}")
    preset.resolve(optimizers, quantizers)  # unknown names fail before any work
    out = Path(out)
    if distributed is not None:
        _distributed.configure(distributed, oracle_ip, oracle_port, tuner_id)
        if distributed == "worker":
            say(f"[tune] worker {os.environ[_distributed.ENV_TUNER_ID]}: connecting to the chief at "
                f"{oracle_ip}:{oracle_port}")
            _distributed.wait_for_chief(oracle_ip, oracle_port, connect_timeout)
            _distributed.set_rpc_timeout(rpc_timeout)

    # One writer per tuning directory (workers write only their trials, through the chief).
    lock = (directory_lock(out, "tuning directory") if distributed != "worker"
            else contextlib.nullcontext())
    with lock:
        settings = {"base": base.to_dict(), "space": space, "tuner": tuner, "max_trials": max_trials,
                    "optimizers": list(optimizers or []), "quantizers": list(quantizers or [])}
        if distributed != "worker":
            _check_settings(out, settings)
            _check_search_files(out)
        arrays = _data.load_arrays(base.dataset, validation_fraction=base.validation_fraction,
                                   data_dir=base.data_dir)
        hypermodel = BNNHyperModel(base, preset, optimizers=optimizers, quantizers=quantizers, arrays=arrays)
        kt_tuner = make_tuner(tuner, hypermodel, max_trials=max_trials, directory=str(out),
                              project_name=PROJECT, seed=base.seed)
        done_before = sum(1 for t in kt_tuner.oracle.trials.values() if t.status == "COMPLETED") \
            if distributed != "worker" else 0
        if done_before:
            say(f"[tune] resuming {out}: {done_before} finished trial(s) kept")

        owners: dict[str, str] = {}
        if distributed == "chief":

            def chief_line(trial, owner):
                metrics = {k: h.get_last_value() for k, h in trial.metrics.metrics.items()}
                values = "  ".join(f"{k} {metrics[k]:.4f}" for k in (OBJECTIVE, "test_accuracy") if k in metrics)
                say(f"[tune] trial {trial.trial_id}/{max_trials} {trial.status.lower()} on {owner}: {values}")

            kt_tuner.chief_options = {"worker_timeout": worker_timeout, "on_trial_end": chief_line, "say": say}
        if distributed == "worker":
            kt_tuner.heartbeat_seconds = _distributed.HEARTBEAT_SECONDS

        try:
            kt_tuner.search(verbose=0)
        except kt.errors.FatalError as err:
            if isinstance(err.__cause__, OSError):  # a full disk (BNNHyperModel.fit): its one line
                raise err.__cause__ from None
            raise
        if distributed == "worker":
            say(f"[tune] worker {kt_tuner.tuner_id}: the chief says the search is over")
            return None
        servicer = getattr(kt_tuner, "chief_servicer", None)
        if servicer is not None:
            owners = dict(servicer.trial_owner)
        return _finish(kt_tuner, hypermodel, out, base, space, tuner, max_trials, final_epochs, baseline,
                       owners, started, command, say)


def _finish(kt_tuner, hypermodel: BNNHyperModel, out: Path, base, space, tuner, max_trials,
            final_epochs, baseline, owners, started, command, say) -> SearchResult:
    oracle = kt_tuner.oracle
    previous = {}
    results_path = out / "results.json"
    if results_path.exists():  # keep who ran each trial across restarts of the chief
        trials_before = _training.read_json(results_path, hint=_START_OVER).get("trials")
        if not isinstance(trials_before, list) or not all(isinstance(t, dict) and "trial_id" in t
                                                          for t in trials_before):
            raise ValueError(f"{results_path} holds no list of trials; {_START_OVER}")
        previous = {t["trial_id"]: t.get("tuner_id") for t in trials_before}
    owners = {**{k: v for k, v in previous.items() if v}, **owners}
    trials = _report.collect_trials(oracle, owners)
    hps = _report.searched_hyperparameters(oracle.get_space().space)
    best_trials = [t for t in oracle.get_best_trials(1) if t.status == "COMPLETED"]
    best = next((t for t in trials if best_trials and t["trial_id"] == best_trials[0].trial_id), None)

    best_metrics = baseline_metrics = None
    best_config = None
    if best is not None:
        hp = best_trials[0].hyperparameters
        best_config = hypermodel.config(hp)
        best_config = dataclasses.replace(best_config, epochs=final_epochs or base.epochs)
        trial_run = Path(kt_tuner.get_trial_dir(best["trial_id"])) / "run"
        say(f"[tune] best trial {best['trial_id']}: {OBJECTIVE} {best['score']:.4f}; "
            f"saving its configuration as a run directory in {out / 'best'}")
        best_metrics = _train_or_reuse(best_config, out / "best", hypermodel.arrays, [trial_run])
    if baseline:
        say(f"[tune] training the default hyperparameters for comparison -> {out / 'baseline'}")
        baseline_metrics = _train_or_reuse(hypermodel.default_config(), out / "baseline", hypermodel.arrays)

    completed = [t for t in trials if t["status"] == "COMPLETED"]
    summary: dict[str, Any] = {
        "objective": OBJECTIVE,
        "trials_completed": len(completed),
        "trials_failed": sum(1 for t in trials if t["status"] in ("FAILED", "INVALID")),
        "best_trial": best["trial_id"] if best else None,
        "best_val_accuracy": best["score"] if best else None,
        "best_test_accuracy": best_metrics["test_accuracy"] if best_metrics else None,
        "best_hyperparameters": best["hyperparameters"] if best else None,
        "trial_seconds_total": round(sum(t["metrics"].get("wall_seconds", 0.0) for t in completed), 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    if baseline_metrics is not None:
        summary["baseline_val_accuracy"] = baseline_metrics.get("val_accuracy")
        summary["baseline_test_accuracy"] = baseline_metrics["test_accuracy"]
        if best_metrics is not None:
            summary["test_accuracy_gain_vs_defaults"] = round(
                best_metrics["test_accuracy"] - baseline_metrics["test_accuracy"], 4)
    results = {
        "summary": summary,
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "search": {"model": base.model, "dataset": base.dataset, "space": space, "tuner": tuner,
                   "max_trials": max_trials, "epochs_per_trial": base.epochs, "seed": base.seed,
                   "oracle_seed": oracle.seed,
                   "final_epochs": final_epochs or base.epochs, "train_size": len(hypermodel.arrays.x_train),
                   "val_size": len(hypermodel.arrays.x_val), "test_size": len(hypermodel.arrays.x_test),
                   "searched_hyperparameters": hps},
        "best": {**best, "config": best_config.to_dict(), "run_dir": str(out / "best"),
                 "metrics": best_metrics} if best else None,
        "baseline": {"config": hypermodel.default_config().to_dict(), "run_dir": str(out / "baseline"),
                     "metrics": baseline_metrics} if baseline_metrics else None,
        "trials": trials,
    }
    _training.write_json(results_path, results)

    hp_names = [h["name"] for h in hps]
    table = _report.markdown_table(trials, hp_names, baseline=baseline_metrics)
    title = f"{base.model} on {base.dataset}: {space} space, {tuner} tuner"
    md = [f"# Search: {title}", "", f"Command: `{command}`" if command else "", "",
          f"Model `{base.model}` {json.dumps(base.model_kwargs) if base.model_kwargs else '(family defaults)'}, "
          f"batch size {base.batch_size}, learning rate {base.learning_rate:g} unless searched; data "
          f"`{base.dataset}`: {len(hypermodel.arrays.x_train)} train / {len(hypermodel.arrays.x_val)} validation / "
          f"{len(hypermodel.arrays.x_test)} test images.", "",
          f"{summary['trials_completed']} completed trial(s) of {max_trials}, {base.epochs} epoch(s) each, "
          f"seed {base.seed}; objective `{OBJECTIVE}` (test accuracy reported, never used to select). "
          f"Wall time {summary['wall_seconds']} s on {_machine()}.", ""]
    if best:
        md += [f"Best: trial {best['trial_id']} - val accuracy {best['score']:.4f}, test accuracy "
               f"{best_metrics['test_accuracy']:.4f} ({final_epochs or base.epochs} epochs, `{out / 'best'}`): "
               f"{format_hp_values(best['hyperparameters'])}", ""]
    if baseline_metrics is not None:
        md += [f"Default hyperparameters ({', '.join(f'{k}={v}' for k, v in _default_description(hypermodel).items())}):"
               f" val accuracy {_num(baseline_metrics.get('val_accuracy'))}, test accuracy "
               f"{baseline_metrics['test_accuracy']:.4f}.", ""]
    md += [table, "![score per trial and hyperparameters vs score](results.png)", ""]
    (out / "results.md").write_text("\n".join(md))
    _report.plot_results(trials, hps, out / "results.png", title, baseline=baseline_metrics)
    say(table)
    say(f"[tune] results: {results_path}, {out / 'results.md'}, {out / 'results.png'}; best run: {out / 'best'}")
    return SearchResult(out=out, trials=trials, best=best, best_metrics=best_metrics,
                        baseline_metrics=baseline_metrics, summary=summary)


def _num(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _default_description(hypermodel: BNNHyperModel) -> dict[str, Any]:
    config = hypermodel.default_config()
    return {"optimizer": config.optimizer, "quantizer": config.quantizer,
            "learning_rate": config.learning_rate, "batch_size": config.batch_size,
            **{f"{config.optimizer} kwargs": "constructor defaults"}}
