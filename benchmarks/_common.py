"""The one runner the benchmark scripts share.

- **Command line**: `base_parser` builds a script's parser from named options (`--quick`,
  `--out-dir`, `--results-dir`, `--report-only`, the settings overrides, ...) plus the
  hidden `--run-one` that isolated runs use; `settings_from` applies the overrides.
- **Isolated runs**: `run_isolated` runs one result in a fresh Python process (the script
  itself with `--run-one`) and returns the child's JSON answer, exit status and peak
  memory; `serve_child` is the child's side.
- **Resumable per-result files**: `ResultStore` keeps one JSON file per result, written
  atomically, so an interrupted benchmark continues with the same command.
- **Epochs to a target**: `epochs_to`; **step times**: `interleaved_step_times`.
- **Reports**: `write_json_atomic`, `write_markdown` and `write_report` (both, side by side).
- **Per-epoch logging**: `TestAccuracy` (`bnnzoo.training.train` logs each epoch's seconds and
  load itself, `bnnzoo.callbacks.EpochStats`); and `subset` of the training data.

The scripts run as `python benchmarks/<name>.py` and are loaded by file path in the
tests, so each puts this folder on `sys.path` before importing this module.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from bnnzoo._atomic import atomic_write_text, json_safe

REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------ command line

# Every option a benchmark may take, by name: (flags, `add_argument` keywords).
OPTIONS: dict[str, tuple[tuple[str, ...], dict]] = {
    "quick": (("--quick",), {"action": "store_true", "help": "seconds-long run on digits (tests)"}),
    "out_dir": (("--out-dir",), {"default": str(REPO / "docs" / "benchmarks"),
                                 "help": "where the report goes (default docs/benchmarks)"}),
    "results_dir": (("--results-dir",), {"help": "per-result JSON files"}),
    "data_dir": (("--data-dir",), {"help": "dataset folder (default: bnnzoo.data's lookup)"}),
    "report_only": (("--report-only",), {"action": "store_true",
                                         "help": "rebuild the report from the stored results"}),
    "epochs": (("--epochs",), {"type": int}),
    "seeds": (("--seeds",), {"type": int, "nargs": "+"}),
    "train_subset": (("--train-subset",), {"type": int, "help": "training examples used (0: all)"}),
    "verbose": (("--verbose",), {"type": int, "default": 0}),
}
SETTINGS_OPTIONS = ("quick", "out_dir", "epochs", "seeds", "train_subset", "verbose")


def base_parser(description: str, options: tuple[str, ...] = SETTINGS_OPTIONS,
                **changes: dict) -> argparse.ArgumentParser:
    """A parser with the named `options` of `OPTIONS` (default: `--quick`, `--out-dir`
    and the overrides of a script's settings) and the hidden `--run-one REQUEST` of
    `run_isolated`'s child.

    Args:
        description: the script's one-line description.
        options: names in `OPTIONS`, in the order they are added.
        **changes: per option name, `add_argument` keywords replacing its defaults
            (e.g. `results_dir={"default": ...}`).
    """
    unknown = sorted(set(options) - set(OPTIONS)) + sorted(set(changes) - set(options))
    if unknown:
        raise ValueError(f"Unknown or unused benchmark option {unknown[0]!r}. Valid names: {', '.join(OPTIONS)}")
    p = argparse.ArgumentParser(description=description)
    for name in options:
        flags, keywords = OPTIONS[name]
        p.add_argument(*flags, **{**keywords, **changes.get(name, {})})
    p.add_argument("--run-one", metavar="REQUEST", help=argparse.SUPPRESS)
    return p


def settings_from(args, full: dict, quick: dict) -> dict:
    """`quick` or `full` settings with the command-line overrides of `base_parser` applied."""
    settings = dict(quick if args.quick else full)
    if args.epochs:
        settings["epochs"] = args.epochs
    if args.seeds:
        settings["seeds"] = args.seeds
    if args.train_subset is not None:
        settings["train_subset"] = args.train_subset or None
    return settings


# ------------------------------------------------------------------ reports and files


def _to_json(obj):
    """numpy scalars and arrays as Python numbers and lists; anything else as its text."""
    return obj.tolist() if hasattr(obj, "tolist") else str(obj)


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int = 2, final_newline: bool = True) -> None:
    """Write `obj` as JSON to `path` atomically (temp file + rename), into a folder made if
    missing; NaN and ±inf as `null`, numpy values as Python numbers.

    `indent` and `final_newline` exist for reports whose committed layout differs
    (`zoo_pareto.json`: indent 1, no final newline), so a rebuild is byte-identical.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(json_safe(obj, _to_json), indent=indent, allow_nan=False)
    atomic_write_text(path, text + ("\n" if final_newline else ""))


def write_markdown(path: str | os.PathLike, lines: list[str]) -> None:
    """Write `lines` joined by newlines to `path` atomically (end `lines` with "" for a
    final newline), into a folder made if missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "\n".join(lines))


def write_report(out_dir: str | os.PathLike, name: str, report: dict, lines: list[str], **json_layout) -> None:
    """`<out_dir>/<name>.json` (the report) and `<out_dir>/<name>.md` (`lines`), each
    written atomically; `json_layout`: `write_json_atomic`'s `indent`, `final_newline`."""
    out_dir = Path(out_dir)
    write_json_atomic(out_dir / f"{name}.json", report, **json_layout)
    write_markdown(out_dir / f"{name}.md", lines)


class ResultStore:
    """Per-result JSON files, `<root>/<part>/.../<last part>.json`, each written
    atomically as soon as its result is finished, so that a rerun skips it.

    Args:
        root: the results folder.
        stamp: when given, `<root>/benchmark.json` holds it (written on first use) and a
            folder stamped otherwise (another benchmark or version) is refused with a
            `ValueError`.
        mark_finished: `put` adds `"finished": true` and `get` returns only results
            with it; off for benchmarks whose stored files never had the mark.
    """

    STAMP = "benchmark.json"

    def __init__(self, root: str | os.PathLike, stamp: dict | None = None, *, mark_finished: bool = True):
        self.root = Path(root)
        self.mark_finished = mark_finished
        if stamp is None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / self.STAMP
        if path.exists():
            try:
                found = json.loads(path.read_text())
            except json.JSONDecodeError:
                found = {}
            if {k: found.get(k) for k in stamp} != stamp:
                raise ValueError(
                    f"results directory {self.root} holds results of {found or 'an unknown benchmark'}, "
                    f"not {stamp}; use another --results-dir (or delete that one to start over)"
                )
        else:
            write_json_atomic(path, stamp)

    def path(self, *parts: str) -> Path:
        """The file of the result named by `parts` (folders, then the file's stem)."""
        return self.root.joinpath(*parts[:-1], parts[-1] + ".json")

    def get(self, *parts: str, accept: Callable[[dict], bool] | None = None) -> dict | None:
        """The stored result, or `None`: missing, half-written (the file is then removed),
        not marked finished, or refused by `accept(result)` (e.g. other settings)."""
        path = self.path(*parts)
        if not path.exists():
            return None
        try:
            result = json.loads(path.read_text())
        except json.JSONDecodeError:
            print(f"  discarding half-written result {path}", flush=True)
            path.unlink()
            return None
        if not isinstance(result, dict) or (self.mark_finished and not result.get("finished")):
            return None
        return result if accept is None or accept(result) else None

    def put(self, result: dict, *parts: str) -> None:
        """Store `result` under `parts` (atomically; marked finished when the store marks)."""
        write_json_atomic(self.path(*parts), {**result, "finished": True} if self.mark_finished else result)

    def get_or_run(self, run: Callable[[], dict], *parts: str,
                   accept: Callable[[dict], bool] | None = None) -> dict:
        """The stored result under `parts` (see `get`), or `run()`'s, stored first: how a
        rerun of a benchmark skips every finished result."""
        result = self.get(*parts, accept=accept)
        if result is None:
            self.put(run(), *parts)
            result = self.get(*parts)
        return result


# ------------------------------------------------------------------ isolated runs


@dataclasses.dataclass
class ChildResult:
    """What one `run_isolated` child gave back.

    Attributes:
        ok: the child exited with status 0 and wrote its answer.
        answer: the child's JSON answer (`None` unless `ok`).
        returncode: the child's exit status (negative: killed by that signal).
        peak_rss_bytes: the child's peak resident memory (`ru_maxrss` from `os.wait4`).
        log_tail: the end of the child's output when it went to a log file and the child failed.
    """

    ok: bool
    answer: Any
    returncode: int
    peak_rss_bytes: int
    log_tail: str = ""


def run_isolated(script: str | os.PathLike, payload: dict, folder: str | os.PathLike, name: str, *,
                 log_path: str | os.PathLike | None = None, env: dict | None = None) -> ChildResult:
    """Run `python SCRIPT --run-one REQUEST` in a fresh Python process and read its answer.

    Why a process per result: in one long-lived process that had trained ~20 runs
    before, every STE-Warmup run of reproduce.py's protocol-1 claim `hyper_binarynet`
    stayed at chance until its exact-sign last epoch, while the same config in a fresh
    process learned from epoch 0 (cause not found); a fresh process rules out any state
    carried from one run to the next, and makes the child's peak memory its own figure.

    Request and answer are the hidden files `<folder>/.<name>.request.json` and
    `.<name>.result.json`, removed afterwards. The child (the script's `main` seeing
    `--run-one`) calls `serve_child`, which passes `payload` to the script's handler.

    Args:
        script: the benchmark script (run with this interpreter, in the repository root).
        payload: JSON-able input of the child's handler.
        folder: where the request and answer files go (made if missing).
        name: the result's name, for the two files.
        log_path: the child's stdout and stderr go there (default: this process's).
        env: variables added to this process's environment for the child.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    request, answer = folder / f".{name}.request.json", folder / f".{name}.result.json"
    answer.unlink(missing_ok=True)
    write_json_atomic(request, {"payload": payload, "answer": str(answer)})
    command = [sys.executable, str(Path(script).resolve()), "--run-one", str(request)]
    try:
        with open(log_path, "w") if log_path else contextlib.nullcontext() as log:
            proc = subprocess.Popen(command, cwd=REPO, env={**os.environ, **(env or {})}, stdout=log,
                                    stderr=subprocess.STDOUT if log else None)
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            except BaseException:  # interrupted: the child must not outlive its parent
                proc.kill()
                proc.wait()
                raise
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4, not by Popen
        ok = proc.returncode == 0 and answer.exists()
        result = json.loads(answer.read_text()) if ok else None
    finally:
        request.unlink(missing_ok=True)
        answer.unlink(missing_ok=True)
    tail = Path(log_path).read_text()[-1500:] if log_path and not ok else ""
    # ru_maxrss is in KiB on Linux.
    return ChildResult(ok, result, proc.returncode, int(usage.ru_maxrss) * 1024, tail)


def serve_child(request_path: str | os.PathLike, handler: Callable[[dict], Any]) -> int:
    """The child's side of `run_isolated`: `handler(payload)`, written atomically where
    the parent reads it; returns the exit status 0 (an exception exits non-zero)."""
    request = json.loads(Path(request_path).read_text())
    write_json_atomic(request["answer"], handler(request["payload"]))
    return 0


# ------------------------------------------------------------------ analysis


def epochs_to(curve: list[float | None], target: float, higher_is_better: bool = True,
              counted: list[bool] | None = None, *, tolerance: float = 0.0) -> int | None:
    """First epoch (1-based) whose value reaches `target` (at least `target - tolerance`,
    or at most `target + tolerance` when lower is better), among the epochs that
    `counted` marks (all when `None`); missing values (`None`) never reach it; `None`
    when no epoch does."""
    for i, value in enumerate(curve):
        if value is None or (counted is not None and not counted[i]):
            continue
        if (value >= target - tolerance) if higher_is_better else (value <= target + tolerance):
            return i + 1
    return None


# ------------------------------------------------------------------ step times


def interleaved_step_times(models: dict, x, y, rounds: int, steps: int, warmup: int = 3) -> dict:
    """Median seconds per `train_on_batch` step of each compiled model, in interleaved
    rounds (`steps` steps of the first model, then of the second, ..., `rounds` times),
    so that a change of machine load hits every model alike; the first `warmup` steps of
    each (tracing) are not timed.

    Returns `seconds_per_step` (wall) and `cpu_seconds_per_step` (this process's CPU
    time, less sensitive to other processes), each the median per model, the per-round
    `samples` (wall) and a `method` sentence for the report.
    """
    import time

    for model in models.values():
        for _ in range(warmup):
            model.train_on_batch(x, y)
    wall = {name: [] for name in models}
    cpu = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            for _ in range(steps):
                model.train_on_batch(x, y)
            wall[name].append((time.perf_counter() - started) / steps)
            cpu[name].append((time.process_time() - started_cpu) / steps)
    median = lambda samples: {name: float(np.median(t)) if t else None for name, t in samples.items()}  # noqa: E731
    return {"seconds_per_step": median(wall), "cpu_seconds_per_step": median(cpu), "samples": wall,
            "method": f"interleaved rounds of {steps} train_on_batch steps, {rounds} rounds"}


def random_batch(batch: int, input_shape) -> tuple[tf.Tensor, tf.Tensor]:
    """One fixed batch of random inputs and 10-class labels (a step's cost does not
    depend on the values)."""
    rng = np.random.default_rng(0)
    return (tf.constant(rng.random((batch, *input_shape), dtype=np.float32)),
            tf.constant(rng.integers(0, 10, batch)))


def compile_as_trained(model: tf.keras.Model, config) -> tf.keras.Model:
    """`model` compiled with `config`'s optimizer and schedule as `bnnzoo.training.train`
    compiles it for Fashion-MNIST (54 000 training images after 10 % validation)."""
    from bnnzoo import training

    training.compile_model(model, training.build_optimizer(config, 54000 // config.batch_size))
    return model


def timed_with_load(models: dict, x, y, settings: dict) -> dict:
    """`interleaved_step_times` over `settings["rounds"]` rounds of `settings["steps"]`
    steps, announced on one line, with the load average before and after."""
    load_before = os.getloadavg()
    print(f"timing {', '.join(models)}: {settings['rounds']} interleaved rounds of {settings['steps']} steps "
          f"(load {load_before[0]:.2f})", flush=True)
    timing = interleaved_step_times(models, x, y, settings["rounds"], settings["steps"])
    timing["load_before"], timing["load_after"] = list(load_before), list(os.getloadavg())
    return timing


def step_benchmark_main(argv, script: str, doc: str, version: int, full: dict, quick: dict,
                        measure: Callable[[dict], dict], summarize: Callable[[dict], dict],
                        report_lines: Callable[[dict], list[str]]) -> int:
    """`main` of a step-time benchmark (`fsg_step.py`, `distill_step.py`): parse `--quick`
    and `--out-dir`, `measure(settings)` (the timing), `summarize(timing)`, then write
    `<out-dir>/<name>.{json,md}` with the command, date and machine, and print the
    report's table and verdict lines (all but its title and command). `script` is the
    script's `__file__`, `doc` its docstring (the first paragraph describes it)."""
    import datetime
    import platform

    name = Path(script).stem
    args = base_parser(doc.split("\n\n")[0], ("quick", "out_dir")).parse_args(argv)
    timing = measure(dict(quick if args.quick else full))
    report = {
        "benchmark": name, "version": version,
        "command": f"python benchmarks/{name}.py" + (" --quick" if args.quick else ""), "quick": args.quick,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, TensorFlow {tf.__version__}",
        "timing": timing, "summary": summarize(timing),
    }
    write_report(args.out_dir, name, report, report_lines(report))
    for line in report_lines(report)[4:]:
        print(line)
    return 0


# ------------------------------------------------------------------ data and callbacks


def subset(arrays, n, seed=1234):
    """The first `n` training examples of a fixed permutation (validation/test untouched)."""
    if not n or n >= len(arrays.x_train):
        return arrays
    idx = np.random.default_rng(seed).permutation(len(arrays.x_train))[:n]
    return dataclasses.replace(arrays, x_train=arrays.x_train[idx], y_train=arrays.y_train[idx])


class TestAccuracy(tf.keras.callbacks.Callback):
    """Test accuracy (top-1 of the model's outputs) after every epoch, into
    `logs["test_accuracy"]`; independent of the metrics the model was compiled with."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def on_epoch_end(self, epoch, logs=None):
        pred = self.model.predict(self.x, batch_size=512, verbose=0)
        if logs is not None:
            logs["test_accuracy"] = float(np.mean(np.argmax(pred, 1) == self.y))


