"""Gradient approximations (quantizers): step time relative to larq `ste_sign`, and accuracy.

(a) Step time: the same binary network (`binarynet_mlp`, 512 units, Fashion-MNIST
    input, batch 64, Adam) is built once per registered quantizer (used for
    activations and weights) and its compiled training step (the function `fit`
    calls per step, on a fixed batch, after warm-up) is timed side by side in one process. Measurements are
    interleaved (every quantizer once per repeat, in a rotated order) so machine
    load hits all alike; per quantizer the ratio to `ste_sign` is taken within each
    repeat and the median over repeats is reported (target <= 1.05).
(b) Accuracy: every quantizer trains the same model on Fashion-MNIST for the same
    epochs and seeds through `bnnzoo.training.train` (annealed quantizers with their
    default schedules, forward exactly sign in the last epoch); final test accuracy.

Writes `<out-dir>/quantizers.json`, `.md` and `.png`. `--quick` runs a seconds-long
version on the digits data (for the test suite).

    flock /tmp/bnnzoo-long.lock .venv/bin/python benchmarks/quantizers.py
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

import bnnzoo  # noqa: E402
from bnnzoo import training  # noqa: E402
from bnnzoo.quantizers import list_quantizers  # noqa: E402
from bnnzoo.training import TrainConfig  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import base_parser, write_report  # noqa: E402

BASELINE = "ste_sign"
TARGET_RATIO = 1.05

FULL = dict(dataset="fashion_mnist", model="binarynet_mlp", model_kwargs={"units": 512},
            batch_size=64, learning_rate=1e-3, epochs=5, seeds=[0],
            timing_steps=20, timing_repeats=21, timing_warmup=10, quantizers=None)
QUICK = dict(dataset="digits", model="binarynet_mlp", model_kwargs={"units": 8, "hidden_layers": 1},
             batch_size=64, learning_rate=1e-3, epochs=1, seeds=[0],
             timing_steps=2, timing_repeats=2, timing_warmup=1, quantizers=[BASELINE, "bnnpp"])


def machine() -> str:
    return f"{platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}, TF {tf.__version__}"


def time_steps(names, arrays, sizing, log) -> dict:
    """Per-step training time of each quantizer, interleaved; ratios to the baseline."""
    batch = sizing["batch_size"]
    data = tf.data.Dataset.from_tensors(
        (arrays.x_train[:batch], arrays.y_train[:batch])).repeat()
    models, steps = {}, {}
    for name in names:
        config = TrainConfig(model=sizing["model"], dataset=sizing["dataset"], quantizer=name,
                             model_kwargs=sizing["model_kwargs"], batch_size=batch)
        tf.keras.utils.set_random_seed(0)
        model = training.build_model(config, arrays.input_shape, arrays.num_classes)
        training.compile_model(model, bnnzoo.optimizers.get_optimizer("adam", sizing["learning_rate"]))
        # The compiled step that `fit` runs, fed from an iterator as `fit` feeds it
        # (`train_on_batch` would add per-call data-adapter overhead to every step).
        step, iterator = model.make_train_function(), iter(data)
        for _ in range(sizing["timing_warmup"]):
            step(iterator)
        models[name], steps[name] = model, (step, iterator)
    seconds = {name: [] for name in names}
    for repeat in range(sizing["timing_repeats"]):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            step, iterator = steps[name]
            start = time.perf_counter()
            for _ in range(sizing["timing_steps"]):
                logs = step(iterator)
            float(logs["loss"])  # wait for the last step
            seconds[name].append((time.perf_counter() - start) / sizing["timing_steps"])
        log(f"timing repeat {repeat + 1}/{sizing['timing_repeats']}")
    ratios = {
        name: statistics.median(s / b for s, b in zip(seconds[name], seconds[BASELINE]))
        for name in names
    }
    return {
        "step_seconds": seconds,
        "median_step_ms": {n: 1000 * statistics.median(s) for n, s in seconds.items()},
        "ratio_vs_ste_sign": ratios,
    }


def train_all(names, arrays, sizing, log) -> list[dict]:
    runs = []
    for seed in sizing["seeds"]:
        for name in names:
            config = TrainConfig(model=sizing["model"], dataset=sizing["dataset"], quantizer=name,
                                 epochs=sizing["epochs"], batch_size=sizing["batch_size"],
                                 learning_rate=sizing["learning_rate"], seed=seed,
                                 model_kwargs=sizing["model_kwargs"])
            result = training.train(config, arrays=arrays, verbose=0)
            m = result.metrics
            runs.append({
                "quantizer": name, "seed": seed, "test_accuracy": m["test_accuracy"],
                "test_loss": m["test_loss"], "wall_seconds": m["wall_seconds"],
                "history": result.history,
            })
            log(f"{name} seed {seed}: test accuracy {m['test_accuracy']:.4f} ({m['wall_seconds']:.0f} s)")
    return runs


def report_lines(report: dict) -> list[str]:
    """The Markdown report's lines."""
    s, timing = report["summary"], report["timing"]
    sizing = report["sizing"]
    lines = [
        f"# Quantizers: step time vs larq `ste_sign` and {sizing['dataset']} accuracy",
        "",
        f"Model `{sizing['model']}` {sizing['model_kwargs']}, dataset `{sizing['dataset']}`, "
        f"batch {sizing['batch_size']}, Adam lr {sizing['learning_rate']}, {sizing['epochs']} epoch(s), "
        f"{sizing['train_size']} training images, "
        f"seeds {sizing['seeds']}; the quantizer is used for activations and weights. "
        f"Step time: the compiled training step (`model.make_train_function()`, as `fit` runs it) on one fixed batch, {sizing['timing_steps']} steps per "
        f"measurement, {sizing['timing_repeats']} interleaved repeats, ratio to `ste_sign` within "
        f"each repeat, median over repeats (target <= {TARGET_RATIO}). Annealed quantizers "
        "(`bnnpp`, `proxconnect`, `ste_warmup`) use `train`'s default schedules and end with an "
        "exact-sign forward in the last epoch.",
        "",
        "| quantizer | median step (ms) | ratio vs ste_sign | test accuracy (median) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in report["quantizers"]:
        acc = s["test_accuracy"].get(name)
        lines.append(
            f"| `{name}` | {timing['median_step_ms'][name]:.2f} | "
            f"{timing['ratio_vs_ste_sign'][name]:.3f} | {acc:.4f} |"
        )
    lines += [
        "",
        f"**max step-time ratio vs ste_sign: {s['max_step_time_ratio_vs_ste_sign']:.3f}** "
        f"(`{s['slowest_quantizer']}`; target <= {TARGET_RATIO}: "
        f"{'met' if s['max_step_time_ratio_vs_ste_sign'] <= TARGET_RATIO else 'missed'}).",
        "",
        f"Machine: {report['machine']}. Date: {report['date']}. Wall time: "
        f"{report['wall_seconds']:.0f} s.",
        "",
        "Command:",
        "",
        "```",
        report["command"],
        "```",
        "",
    ]
    if report.get("notes"):
        lines += ["Notes:", ""] + [f"- {n}" for n in report["notes"]] + [""]
    return lines


def plot(path: Path, report: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = report["quantizers"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    ratios = [report["timing"]["ratio_vs_ste_sign"][n] for n in names]
    axes[0].bar(names, ratios, color="tab:blue")
    axes[0].axhline(TARGET_RATIO, color="tab:red", ls="--", label=f"target {TARGET_RATIO}")
    axes[0].set_ylabel("step time / ste_sign")
    axes[0].legend()
    accs = [report["summary"]["test_accuracy"][n] for n in names]
    axes[1].bar(names, accs, color="tab:green")
    axes[1].set_ylim(max(0.0, min(accs) - 0.05), min(1.0, max(accs) + 0.02))
    axes[1].set_ylabel("test accuracy")
    for ax in axes:
        ax.tick_params(axis="x", rotation=45)
    fig.suptitle(f"{report['sizing']['model']} on {report['sizing']['dataset']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(quick: bool, out_dir: Path, command: str, log=print) -> dict:
    started = time.perf_counter()
    sizing = dict(QUICK if quick else FULL)
    names = sizing.pop("quantizers") or list_quantizers()
    names = [BASELINE] + [n for n in names if n != BASELINE]
    arrays = bnnzoo.data.load_arrays(sizing["dataset"])
    if quick:
        arrays = dataclasses.replace(arrays, x_train=arrays.x_train[:256], y_train=arrays.y_train[:256])
    sizing["train_size"] = len(arrays.x_train)
    timing = time_steps(names, arrays, sizing, log)
    runs = train_all(names, arrays, sizing, log)
    accuracy = {
        name: statistics.median(r["test_accuracy"] for r in runs if r["quantizer"] == name)
        for name in names
    }
    worst = max(timing["ratio_vs_ste_sign"], key=timing["ratio_vs_ste_sign"].get)
    report = {
        "summary": {
            "max_step_time_ratio_vs_ste_sign": timing["ratio_vs_ste_sign"][worst],
            "slowest_quantizer": worst,
            "target_ratio": TARGET_RATIO,
            "test_accuracy": accuracy,
        },
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "quick": quick,
        "sizing": sizing,
        "quantizers": names,
        "timing": timing,
        "runs": runs,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    write_report(out_dir, "quantizers", report, report_lines(report))
    plot(out_dir / "quantizers.png", report)
    return report


def main(argv=None) -> int:
    parser = base_parser(__doc__.splitlines()[0], ("quick", "out_dir"))
    args = parser.parse_args(argv)
    command = " ".join([".venv/bin/python", "benchmarks/quantizers.py"] + (argv if argv is not None else sys.argv[1:]))
    report = run(args.quick, Path(args.out_dir), command, log=lambda m: print(m, flush=True))
    print(json.dumps(report["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
