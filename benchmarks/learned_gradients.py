"""Learned gradients: STE vs FSG (GRU, attention slow nets) vs HyperConv + STE-Warmup.

(a) Convergence: the same binary CNN (`binarynet`, width 1/8) on Fashion-MNIST, fixed
    epochs, several seeds; training loss (from `fit`) and test accuracy after every
    epoch. Every run trains through `bnnzoo.training.train` (FSG through its model
    wrap hook, STE-Warmup with the routine's automatic temperature annealing).
(b) Step time: one model per method, `train_on_batch` on the same batch, repeats
    interleaved (STE, FSG-GRU, FSG-attention, Hyper, STE, ...) so machine load hits
    all alike; ratios of the medians.
(c) Extra memory: FSG's history (L × binary params floats) and generator (plus its
    Adam slots); HyperConv's generator parameters beyond the plain kernels (plus Adam
    slots).

Writes `<out-dir>/learned_gradients.{json,md,png}`. `--quick` runs a seconds-long
version on digits (for the test suite).

    flock /tmp/bnnzoo-long.lock .venv/bin/python benchmarks/learned_gradients.py
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import bnnzoo  # noqa: E402
from bnnzoo import training  # noqa: E402
from bnnzoo.optimizers import get_optimizer  # noqa: E402
from bnnzoo.fsg import binary_kernel_layers  # noqa: E402
from bnnzoo.training import TrainConfig  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    TestAccuracy, base_parser, interleaved_step_times, settings_from, subset, write_report,
)

METHODS = {
    "ste": dict(optimizer="adam", quantizer="ste_sign", model_kwargs={}),
    "fsg_gru": dict(optimizer="fsg", quantizer="ste_sign", model_kwargs={}),
    "fsg_attention": dict(optimizer="fsg_attention", quantizer="ste_sign", model_kwargs={}),
    "hyper_ste_warmup": dict(optimizer="adam", quantizer="ste_warmup", model_kwargs={"hyper": True}),
}

FULL = dict(dataset="fashion_mnist", model="binarynet", model_kwargs={"width": 0.125},
            epochs=4, seeds=[0, 1, 2], batch_size=64, learning_rate=1e-3, train_subset=8000,
            timing_rounds=12, timing_steps=5)
QUICK = dict(dataset="digits", model="binarynet_mlp", model_kwargs={"units": 16, "hidden_layers": 1},
             epochs=1, seeds=[0], batch_size=64, learning_rate=1e-3, train_subset=256,
             timing_rounds=0, timing_steps=0)  # no interleaved phase: step times from the runs


class StepTimer(tf.keras.callbacks.Callback):
    """Seconds of every training batch (the first 2 excluded: tracing, warm-up)."""

    def __init__(self):
        super().__init__()
        self.seconds, self._count = [], 0

    def on_train_batch_begin(self, batch, logs=None):
        self._started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._count += 1
        if self._count > 2:
            self.seconds.append(time.perf_counter() - self._started)






def config_for(settings, method, seed, epochs=None):
    spec = METHODS[method]
    return TrainConfig(
        model=settings["model"], dataset=settings["dataset"], optimizer=spec["optimizer"],
        quantizer=spec["quantizer"], epochs=epochs or settings["epochs"],
        batch_size=settings["batch_size"], learning_rate=settings["learning_rate"], seed=seed,
        model_kwargs={**settings["model_kwargs"], **spec["model_kwargs"]},
    )


def run_convergence(settings, arrays, verbose):
    """Per-run curves; also the trained models of the first seed (for memory figures)."""
    runs, models = [], {}
    for seed in settings["seeds"]:
        for method in METHODS:
            started = time.perf_counter()
            timer = StepTimer()
            result = training.train(config_for(settings, method, seed), arrays=arrays, verbose=verbose,
                                    callbacks=[TestAccuracy(arrays.x_test, arrays.y_test), timer])
            models.setdefault(method, (result.model, result.model.optimizer))
            runs.append({
                "method": method, "seed": seed,
                "train_loss": result.history["loss"],
                "test_accuracy": result.history["test_accuracy"],
                "final_test_accuracy": result.metrics["test_accuracy"],
                "wall_seconds": round(time.perf_counter() - started, 1),
                "median_step_seconds": statistics.median(timer.seconds) if timer.seconds else None,
            })
            print(f"{method} seed {seed}: loss {runs[-1]['train_loss'][-1]:.4f} "
                  f"test {runs[-1]['final_test_accuracy']:.4f} ({runs[-1]['wall_seconds']} s)", flush=True)
    return runs, models


def _timing_model(settings, arrays, method):
    config = config_for(settings, method, seed=0)
    tf.keras.utils.set_random_seed(0)
    model = training.build_model(config, arrays.input_shape, arrays.num_classes)
    optimizer = get_optimizer(config.optimizer, config.learning_rate)
    model = training.wrap_for_optimizer(model, config.optimizer)
    training.compile_model(model, optimizer)
    return model, optimizer


def time_steps(settings, arrays):
    """Median seconds per training step of every method, interleaved."""
    models = {m: _timing_model(settings, arrays, m) for m in METHODS}
    n = settings["batch_size"]
    x, y = tf.constant(arrays.x_train[:n]), tf.constant(arrays.y_train[:n])
    timing = interleaved_step_times({m: model for m, (model, _) in models.items()}, x, y,
                                    settings["timing_rounds"], settings["timing_steps"])
    return {key: timing[key] for key in ("seconds_per_step", "samples", "method")}


def extra_memory(models):
    """Training-state bytes each method adds to STE, from built `(model, optimizer)` pairs."""
    memory = {}
    ste_params = models["ste"][0].count_params()
    for method, (model, optimizer) in models.items():
        if method.startswith("fsg"):
            generator = optimizer.generator_memory_bytes()
            memory[method] = {"history_bytes": optimizer.history_memory_bytes(),
                              "generator_bytes_with_adam_slots": 3 * generator,
                              "extra_bytes": optimizer.history_memory_bytes() + 3 * generator}
        else:
            extra_params = model.count_params() - ste_params
            memory[method] = {"extra_params": int(extra_params),
                              "extra_bytes": int(extra_params) * 4 * 3}  # weights + Adam m, v
    memory["ste_model_params"] = int(ste_params)
    memory["binary_params"] = sum(int(np.prod(layer.kernel.shape))
                                  for layer in binary_kernel_layers(models["ste"][0]))
    return memory


def summarize(runs, timing):
    def median(method, key):
        values = [r[key] for r in runs if r["method"] == method]
        return float(statistics.median(values)) if values else None

    t = timing["seconds_per_step"]
    return {
        "step_time_ratio_fsg_vs_ste": round(t["fsg_gru"] / t["ste"], 3),
        "step_time_ratio_fsg_attention_vs_ste": round(t["fsg_attention"] / t["ste"], 3),
        "step_time_ratio_hyper_vs_ste": round(t["hyper_ste_warmup"] / t["ste"], 3),
        "final_test_accuracy": {m: median(m, "final_test_accuracy") for m in METHODS},
        "final_train_loss": {m: float(statistics.median(r["train_loss"][-1] for r in runs if r["method"] == m))
                             for m in METHODS},
        "median_train_loss_per_epoch": {
            m: [float(statistics.median(v)) for v in zip(*[r["train_loss"] for r in runs if r["method"] == m])]
            for m in METHODS},
        "median_test_accuracy_per_epoch": {
            m: [float(statistics.median(v)) for v in zip(*[r["test_accuracy"] for r in runs if r["method"] == m])]
            for m in METHODS},
        "extra_memory_bytes": {m: timing["memory"][m]["extra_bytes"] for m in METHODS if m != "ste"},
    }


def plot(runs, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    colors = dict(zip(METHODS, ["tab:blue", "tab:red", "tab:orange", "tab:green"]))
    for run in runs:
        epochs = range(1, len(run["train_loss"]) + 1)
        label = run["method"] if run["seed"] == runs[0]["seed"] else None
        axes[0].plot(epochs, run["train_loss"], color=colors[run["method"]], alpha=0.7, label=label)
        axes[1].plot(epochs, run["test_accuracy"], color=colors[run["method"]], alpha=0.7, label=label)
    for ax, name in zip(axes, ("training loss", "test accuracy")):
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report_lines(report):
    """The Markdown report's lines."""
    s, cfg, timing = report["summary"], report["config"], report["timing"]
    lines = [
        "# Learned gradients: STE vs FSG vs HyperConv + STE-Warmup",
        "",
        f"Date: {report['date']}; machine: {report['machine']}",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Sizing: `{cfg['model']}` {cfg['model_kwargs']} on `{cfg['dataset']}`, {cfg['epochs']} epochs, "
        f"batch {cfg['batch_size']}, Adam lr {cfg['learning_rate']}, seeds {cfg['seeds']}, training subset "
        f"{cfg['train_subset'] or 'all'} of the training split ({cfg['train_size']} examples), full test split "
        f"({cfg['test_size']}). FSG: L = 5, α = 0.9, fast net 1→100→100→1, GRU 4 units / attention "
        "8-dim tokens, 8-dim LREs. HyperConv: every conv generated (d = 9), STE-Warmup temperature annealed "
        "by the training routine, exact sign in the last epoch.",
        "",
        "| method | final test accuracy (median) | final training loss (median) | "
        "training loss per epoch (median) | test accuracy per epoch (median) | s/step | extra memory |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in METHODS:
        extra = "-" if m == "ste" else f"{s['extra_memory_bytes'][m] / 1e6:.2f} MB"
        lines.append(
            f"| {m} | {s['final_test_accuracy'][m]:.4f} | {s['final_train_loss'][m]:.4f} | "
            + ", ".join(f"{v:.3f}" for v in s["median_train_loss_per_epoch"][m]) + " | "
            + ", ".join(f"{v:.3f}" for v in s["median_test_accuracy_per_epoch"][m]) + " | "
            + f"{timing['seconds_per_step'][m] * 1000:.1f} ms | {extra} |"
        )
    lines += [
        "",
        f"Step-time ratio FSG (GRU) / STE: **{s['step_time_ratio_fsg_vs_ste']}** (target ≤ 2.5); "
        f"FSG (attention) / STE: {s['step_time_ratio_fsg_attention_vs_ste']}; "
        f"HyperConv / STE: {s['step_time_ratio_hyper_vs_ste']} (ratios of median step times, batch "
        f"{cfg['batch_size']}; {timing['method']}).",
        "",
        f"Extra memory: FSG's history is {timing['memory']['fsg_gru']['history_bytes']} bytes "
        f"(5 × {timing['memory']['binary_params']} binary weights × 4 bytes); its generator with Adam "
        f"slots {timing['memory']['fsg_gru']['generator_bytes_with_adam_slots']} bytes (GRU). "
        f"HyperConv adds {timing['memory']['hyper_ste_warmup']['extra_params']} parameters "
        "(embeddings and W_h minus the plain conv kernels), counted with their Adam slots.",
        "",
        "![curves](learned_gradients.png)",
        "",
        "",
    ]
    return lines


def main(argv=None):
    args = base_parser(__doc__.split("\n")[0]).parse_args(argv)
    settings = settings_from(args, FULL, QUICK)
    started = time.perf_counter()
    arrays = subset(bnnzoo.data.load_arrays(settings["dataset"]), settings["train_subset"])
    if settings["timing_rounds"]:
        timing = time_steps(settings, arrays)
        print("seconds per step:", {k: round(v, 4) for k, v in timing["seconds_per_step"].items()}, flush=True)
    runs, models = run_convergence(settings, arrays, args.verbose)
    if not settings["timing_rounds"]:
        timing = {"seconds_per_step": {m: statistics.median(r["median_step_seconds"] for r in runs
                                                            if r["method"] == m) for m in METHODS},
                  "method": "median batch time inside the training runs"}
    timing["memory"] = extra_memory(models)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "summary": summarize(runs, timing),
        "command": " ".join(["python", "benchmarks/learned_gradients.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, "
                   f"tensorflow {tf.__version__}".strip(),
        "config": {**settings, "train_size": len(arrays.x_train), "test_size": len(arrays.x_test)},
        "timing": timing,
        "runs": runs,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    write_report(out, "learned_gradients", report, report_lines(report))
    plot(runs, out / "learned_gradients.png",
         f"{settings['model']} {settings['model_kwargs']} on {settings['dataset']}")
    print(json.dumps(report["summary"], indent=2))
    return report


if __name__ == "__main__":
    main()
