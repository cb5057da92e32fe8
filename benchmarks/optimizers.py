"""Bop2ndOrder vs larq Bop (and Adam+STE): step time and convergence.

(a) Step time: the same binary network compiled with `bop` and with `bop2ndorder`
    (biased and Adam-corrected), timed side by side in one process: repeats are
    interleaved (Bop, Bop2ndOrder, Bop2ndOrder-adam, Bop, ...) so that load on the
    machine hits all alike; the ratio is of the medians. Both the whole training step
    (`train_on_batch`) and the optimizer update alone (`apply_gradients` of fixed
    gradients in a `tf.function`) are timed.
(b) Convergence: a BinaryNet-style CNN on Fashion-MNIST, fixed epochs, several seeds,
    for Adam+STE (latent weights), Bop, Bop2ndOrder biased, Bop2ndOrder bias-corrected
    (Adam-style); test accuracy after every epoch; epochs to reach Bop's final
    accuracy; final accuracy median and spread. Every run trains through
    `bnnzoo.training.train`.

Writes `<out-dir>/optimizers.json`, `.md` and `.png`. `--quick` runs a seconds-long
version on the digits data (for the test suite).

    flock /tmp/bnnzoo-long.lock .venv/bin/python benchmarks/optimizers.py
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
from bnnzoo.training import TrainConfig  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (TestAccuracy, base_parser, epochs_to, settings_from, subset,  # noqa: E402
                     write_json_atomic, write_markdown)

# Hyperparameters per compared optimizer. Chosen on the validation split only
# (see TUNING below and the .md); `learning_rate` is Adam's for real-valued variables.
OPTIMIZERS = {
    "adam_ste": dict(optimizer="adam", learning_rate=1e-3, optimizer_kwargs={}),
    "bop": dict(optimizer="bop", learning_rate=1e-3,
                optimizer_kwargs={"threshold": 1e-6, "gamma": 1e-3}),
    "bop2ndorder_biased": dict(optimizer="bop2ndorder", learning_rate=1e-3,
                               optimizer_kwargs={"threshold": 1e-5, "gamma": 1e-3, "sigma": 1e-2,
                                                 "epsilon": 1e-10, "bias_correction": None}),
    "bop2ndorder_bias_corrected": dict(optimizer="bop2ndorder", learning_rate=1e-3,
                                       optimizer_kwargs={"threshold": 1e-5, "gamma": 1e-3,
                                                         "sigma": 1e-2, "epsilon": 1e-10,
                                                         "bias_correction": "adam"}),
}
BOP2_LABELS = ("bop2ndorder_biased", "bop2ndorder_bias_corrected")

FULL = dict(dataset="fashion_mnist", model="binarynet",
            model_kwargs={"filters": [16, 16, 32, 32], "dense_units": [128]},
            epochs=5, seeds=[0, 1, 2], batch_size=64, train_subset=10000,
            timing_batch=64, timing_steps=10, timing_repeats=15)
QUICK = dict(dataset="digits", model="binarynet_mlp", model_kwargs={"units": 8, "hidden_layers": 1},
             epochs=1, seeds=[0], batch_size=64, train_subset=256,
             timing_batch=32, timing_steps=2, timing_repeats=2)






# Validation-split grid (one seed, `TUNING_EPOCHS` epochs); `--tune` runs it.
TUNING_EPOCHS = 3
TUNING_GRID = {
    "adam_ste": [{"learning_rate": 1e-3}, {"learning_rate": 1e-2}],
    "bop": [{"threshold": 1e-8, "gamma": 1e-4}, {"threshold": 1e-6, "gamma": 1e-3},
            {"threshold": 1e-5, "gamma": 1e-2}],
    "bop2ndorder_biased": [{"threshold": 1e-5, "gamma": 1e-3}, {"threshold": 1e-3, "gamma": 1e-3},
                           {"threshold": 1e-3, "gamma": 1e-5}, {"threshold": 5e-4, "gamma": 1e-5},
                           {"threshold": 1e-2, "gamma": 1e-2}],
    "bop2ndorder_bias_corrected": [{"threshold": 1e-5, "gamma": 1e-3},
                                   {"threshold": 1e-3, "gamma": 1e-3},
                                   {"threshold": 1e-3, "gamma": 1e-5},
                                   {"threshold": 1e-2, "gamma": 1e-2}],
}


def tune(settings, arrays, verbose):
    """Final validation accuracy of every grid point (no test data involved)."""
    results = []
    for label, grid in TUNING_GRID.items():
        for point in grid:
            spec = dict(OPTIMIZERS[label])
            spec["optimizer_kwargs"] = {**spec["optimizer_kwargs"],
                                        **{k: v for k, v in point.items() if k != "learning_rate"}}
            spec["learning_rate"] = point.get("learning_rate", spec["learning_rate"])
            config = TrainConfig(model=settings["model"], dataset=settings["dataset"],
                                 model_kwargs=settings["model_kwargs"], epochs=TUNING_EPOCHS,
                                 batch_size=settings["batch_size"], seed=0, **spec)
            t0 = time.perf_counter()
            result = training.train(config, arrays=arrays, verbose=verbose)
            val = result.history["val_accuracy"]
            results.append({"optimizer": label, "point": point, "val_accuracy": val,
                            "seconds": round(time.perf_counter() - t0, 1)})
            print(f"{label:28s} {point}: val acc {' '.join(f'{a:.4f}' for a in val)} "
                  f"({results[-1]['seconds']} s)", flush=True)
    best = {}
    for label in TUNING_GRID:
        rows = [r for r in results if r["optimizer"] == label]
        best[label] = max(rows, key=lambda r: r["val_accuracy"][-1])["point"]
    return {"epochs": TUNING_EPOCHS, "seed": 0, "results": results, "best": best}


# --------------------------------------------------------------------------- (a) timing


def _timing_models(settings, arrays, labels):
    models = {}
    for label in labels:
        spec = OPTIMIZERS[label]
        tf.keras.utils.set_random_seed(0)
        config = TrainConfig(model=settings["model"], dataset=settings["dataset"],
                             model_kwargs=settings["model_kwargs"], **spec)
        model = training.build_model(config, arrays.input_shape, arrays.num_classes)
        training.compile_model(model, get_optimizer(config.optimizer, config.learning_rate,
                                                    **config.optimizer_kwargs))
        models[label] = model
    return models


def _update_fn(optimizer, grads, variables):
    @tf.function
    def update():
        optimizer.apply_gradients(zip(grads, variables))

    return update


def time_steps(settings, arrays):
    labels = ["bop", "bop2ndorder_biased", "bop2ndorder_bias_corrected"]
    models = _timing_models(settings, arrays, labels)
    n = settings["timing_batch"]
    x, y = tf.constant(arrays.x_train[:n]), tf.constant(arrays.y_train[:n])
    # Optimizer update alone: fixed gradients, one compiled apply per step.
    updates = {}
    for label, model in models.items():
        grads = [tf.random.stateless_normal(v.shape, [1, i]) * 1e-3
                 for i, v in enumerate(model.trainable_variables)]
        updates[label] = _update_fn(model.optimizer, grads, model.trainable_variables)
    for label in labels:  # warm up: trace, build slots
        for _ in range(2):
            models[label].train_on_batch(x, y)
            updates[label]()
    step_times = {label: [] for label in labels}
    update_times = {label: [] for label in labels}
    k = settings["timing_steps"]
    for _ in range(settings["timing_repeats"]):
        for label in labels:
            t0 = time.perf_counter()
            for _ in range(k):
                models[label].train_on_batch(x, y)
            step_times[label].append((time.perf_counter() - t0) / k)
            t0 = time.perf_counter()
            for _ in range(k):
                updates[label]()
            update_times[label].append((time.perf_counter() - t0) / k)
    med = {label: statistics.median(v) for label, v in step_times.items()}
    umed = {label: statistics.median(v) for label, v in update_times.items()}
    return {
        "batch_size": n,
        "steps_per_repeat": k,
        "repeats": settings["timing_repeats"],
        "median_step_seconds": med,
        "median_update_seconds": umed,
        "step_time_ratio": {label: med[label] / med["bop"] for label in BOP2_LABELS},
        "update_time_ratio": {label: umed[label] / umed["bop"] for label in BOP2_LABELS},
        "raw_step_seconds": step_times,
        "raw_update_seconds": update_times,
    }


# --------------------------------------------------------------------------- (b) convergence


def run_convergence(settings, arrays, labels, verbose):
    runs = []
    for seed in settings["seeds"]:
        for label in labels:
            spec = OPTIMIZERS[label]
            config = TrainConfig(model=settings["model"], dataset=settings["dataset"],
                                 model_kwargs=settings["model_kwargs"], epochs=settings["epochs"],
                                 batch_size=settings["batch_size"], seed=seed, **spec)
            t0 = time.perf_counter()
            callbacks = [TestAccuracy(arrays.x_test, arrays.y_test)]
            if spec["optimizer"] == "adam":  # `train` attaches FlipRate to Bop-family runs
                callbacks.append(bnnzoo.callbacks.FlipRate())
            result = training.train(config, arrays=arrays, verbose=verbose, callbacks=callbacks)
            h = result.history
            runs.append({
                "optimizer": label, "seed": seed, "config": config.to_dict(),
                "test_accuracy": h["test_accuracy"], "val_accuracy": h.get("val_accuracy"),
                "train_accuracy": h["accuracy"], "loss": h["loss"], "flip_rate": h.get("flip_rate"),
                "final_test_accuracy": result.metrics["test_accuracy"],
                "seconds": round(time.perf_counter() - t0, 1),
            })
            print(f"{label:28s} seed {seed}: test acc per epoch "
                  + " ".join(f"{a:.4f}" for a in h["test_accuracy"])
                  + f"  ({runs[-1]['seconds']} s)", flush=True)
    return runs


def first_epoch_reaching(curve, target):
    """1-based epoch at which `curve` first reaches `target` (None if never); within 1e-9,
    so that Bop reaches its own final accuracy at the epoch it first had it."""
    return epochs_to(curve, target, tolerance=1e-9)


def summarize(runs, labels, seeds):
    by = {(r["optimizer"], r["seed"]): r for r in runs}
    final = {label: [by[label, s]["final_test_accuracy"] for s in seeds] for label in labels}
    per_seed = {}
    ratios = {label: [] for label in BOP2_LABELS if label in labels}
    for s in seeds:
        bop_curve = by["bop", s]["test_accuracy"]
        target = bop_curve[-1]
        bop_epochs = first_epoch_reaching(bop_curve, target)
        row = {"bop_final": target, "bop_epochs": bop_epochs}
        for label in ratios:
            e = first_epoch_reaching(by[label, s]["test_accuracy"], target)
            row[f"{label}_epochs"] = e
            # Never reached within the run: counted as +inf (worse than any finite ratio).
            ratios[label].append(e / bop_epochs if e is not None else float("inf"))
        per_seed[s] = row

    def median_or_none(values):
        m = statistics.median(values)
        return None if m == float("inf") else m

    return {
        "final": final,
        "per_seed_epochs": per_seed,
        "ratios": ratios,
        "epochs_to_bop_final_ratio": {label: median_or_none(v) for label, v in ratios.items()},
        "final_test_accuracy": {label: statistics.median(v) for label, v in final.items()},
        "final_test_accuracy_spread": {
            label: {"min": min(v), "max": max(v),
                    "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0}
            for label, v in final.items()
        },
    }


def plot(runs, labels, seeds, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    colors = dict(zip(labels, ["tab:gray", "tab:blue", "tab:red", "tab:green"]))
    for label in labels:
        curves = np.array([r["test_accuracy"] for r in runs if r["optimizer"] == label])
        epochs = np.arange(1, curves.shape[1] + 1)
        ax.plot(epochs, np.median(curves, axis=0), "-o", color=colors[label], label=label, ms=3)
        ax.fill_between(epochs, curves.min(axis=0), curves.max(axis=0), color=colors[label], alpha=0.15)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fmt(x, digits=4):
    if x is None:
        return "not reached"
    if isinstance(x, float) and x == float("inf"):
        return "not reached"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def report_lines(report):
    """The Markdown report's lines, from the report as written to JSON."""
    s, c, t = report["summary"], report["convergence"], report["timing"]
    cfg = report["settings"]
    lines = [
        "# Optimizers: Bop2ndOrder vs Bop vs Adam+STE",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}; machine: {report['machine']}",
        "",
        "## (a) Step time (same network, side by side, interleaved repeats, median)",
        "",
        f"Network: `{cfg['model']}` {cfg['model_kwargs']} on {cfg['dataset']} input, batch "
        f"{t['batch_size']}, {t['repeats']} repeats x {t['steps_per_repeat']} steps.",
        "",
        "| optimizer | train step (ms) | ratio vs Bop | optimizer update only (ms) | ratio vs Bop |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label in ["bop", *BOP2_LABELS]:
        ratio = 1.0 if label == "bop" else t["step_time_ratio"][label]
        uratio = 1.0 if label == "bop" else t["update_time_ratio"][label]
        lines.append(f"| {label} | {t['median_step_seconds'][label] * 1e3:.2f} | {ratio:.3f} | "
                     f"{t['median_update_seconds'][label] * 1e3:.3f} | {uratio:.3f} |")
    lines += [
        "",
        f"`step_time_ratio_bop2ndorder_vs_bop` = **{s['step_time_ratio_bop2ndorder_vs_bop']:.3f}** "
        "(biased variant, whole training step; target <= 1.15).",
        "",
        "## (b) Convergence",
        "",
        f"`{cfg['model']}` {cfg['model_kwargs']} on `{cfg['dataset']}`, {cfg['epochs']} epochs, "
        f"batch {cfg['batch_size']}, seeds {cfg['seeds']}, training subset: "
        f"{cfg['train_subset'] or 'all'} of the training split ({cfg['train_size']} examples after "
        f"the 10% validation split), full test set ({cfg['test_size']} examples).",
        "",
        "| optimizer | hyperparameters | final test acc. median | min | max | epochs to Bop's final (per seed) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label in report["labels"]:
        spec = OPTIMIZERS[label]
        hp = ", ".join(f"{k}={v}" for k, v in spec["optimizer_kwargs"].items())
        hp = (hp + ", " if hp else "") + f"Adam lr={spec['learning_rate']}"
        spread = s["final_test_accuracy_spread"][label]
        if label == "bop":
            ep = ", ".join(fmt(c["per_seed_epochs"][str(k)]["bop_epochs"]) for k in cfg["seeds"])
        elif label in BOP2_LABELS:
            ep = ", ".join(fmt(c["per_seed_epochs"][str(k)][f"{label}_epochs"]) for k in cfg["seeds"])
        else:
            ep = "-"
        lines.append(f"| {label} | {hp} | {s['final_test_accuracy'][label]:.4f} | "
                     f"{spread['min']:.4f} | {spread['max']:.4f} | {ep} |")
    lines += [
        "",
        "`epochs_to_bop_final_ratio` (Bop2ndOrder epochs to reach Bop's final test accuracy / "
        "epochs Bop took, median over seeds; 'not reached' when the median run never got there): "
        + ", ".join(f"{k}: {fmt(v, 3)}" for k, v in s["epochs_to_bop_final_ratio"].items()),
        "",
        "Median test accuracy per epoch:",
        "",
        "| epoch | " + " | ".join(report["labels"]) + " |",
        "| --- |" + " --- |" * len(report["labels"]),
    ]
    curves = {label: np.median([r["test_accuracy"] for r in report["runs"] if r["optimizer"] == label],
                               axis=0) for label in report["labels"]}
    for e in range(cfg["epochs"]):
        lines.append(f"| {e + 1} | " + " | ".join(f"{curves[label][e]:.4f}" for label in report["labels"]) + " |")
    lines += ["", "![test accuracy per epoch](optimizers.png)", ""]
    tuning = report.get("tuning")
    if tuning:
        lines += [
            "## Hyperparameter choice (validation split only)",
            "",
            f"Grid, seed {tuning['seed']}, {tuning['epochs']} epochs, same network and data; the point "
            "with the best final validation accuracy is used above. Command: "
            f"`{tuning.get('command', '')}`",
            "",
            "| optimizer | point | val. accuracy per epoch | chosen |",
            "| --- | --- | --- | --- |",
        ]
        for r in tuning["results"]:
            chosen = "yes" if r["point"] == tuning["best"][r["optimizer"]] else ""
            lines.append(f"| {r['optimizer']} | {r['point']} | "
                         + " ".join(f"{a:.4f}" for a in r["val_accuracy"]) + f" | {chosen} |")
        lines.append("")
    lines += ["## Notes", ""]
    lines += [f"- {note}" for note in report["notes"]]
    return lines + [""]


def main(argv=None):
    p = base_parser(__doc__.split("\n")[0])
    p.add_argument("--skip-convergence", action="store_true")
    p.add_argument("--tune", metavar="JSON", help="run the validation grid, write it to JSON, exit")
    p.add_argument("--tuning-results", metavar="JSON", help="grid results to embed in the report")
    args = p.parse_args(argv)

    settings = settings_from(args, FULL, QUICK)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    arrays = subset(bnnzoo.data.load_arrays(settings["dataset"]), settings["train_subset"])
    settings.update(train_size=len(arrays.x_train), val_size=len(arrays.x_val),
                    test_size=len(arrays.x_test))
    labels = list(OPTIMIZERS)
    if args.tune:
        tuning = tune(settings, arrays, args.verbose)
        tuning["command"] = " ".join(["python", "benchmarks/optimizers.py", *(argv or sys.argv[1:])])
        write_json_atomic(args.tune, tuning)
        print("best:", tuning["best"])
        return tuning
    tuning = json.loads(Path(args.tuning_results).read_text()) if args.tuning_results else None
    if tuning:  # use the grid's best point (by validation accuracy) of every optimizer
        for label, point in tuning["best"].items():
            OPTIMIZERS[label]["learning_rate"] = point.get("learning_rate", OPTIMIZERS[label]["learning_rate"])
            OPTIMIZERS[label]["optimizer_kwargs"].update(
                {k: v for k, v in point.items() if k != "learning_rate"})

    timing = time_steps(settings, arrays)
    print("step time ratio vs bop:", {k: round(v, 3) for k, v in timing["step_time_ratio"].items()},
          "update-only:", {k: round(v, 3) for k, v in timing["update_time_ratio"].items()}, flush=True)
    runs, conv = [], None
    if not args.skip_convergence:
        runs = run_convergence(settings, arrays, labels, args.verbose)
        conv = summarize(runs, labels, settings["seeds"])
    summary = {
        "step_time_ratio_bop2ndorder_vs_bop": timing["step_time_ratio"]["bop2ndorder_biased"],
        "step_time_ratio_bop2ndorder_bias_corrected_vs_bop":
            timing["step_time_ratio"]["bop2ndorder_bias_corrected"],
        "update_time_ratio_bop2ndorder_vs_bop": timing["update_time_ratio"]["bop2ndorder_biased"],
    }
    if conv:
        summary.update({
            "epochs_to_bop_final_ratio": conv["epochs_to_bop_final_ratio"],
            "final_test_accuracy": conv["final_test_accuracy"],
            "final_test_accuracy_spread": conv["final_test_accuracy_spread"],
        })
    report = {
        "summary": summary,
        "command": " ".join([Path(sys.executable).name, "benchmarks/optimizers.py", *(argv or sys.argv[1:])]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, "
                   f"TF {tf.__version__}, {platform.python_version()}".replace("  ", " "),
        "wall_seconds": None,
        "settings": settings,
        "labels": labels,
        "optimizers": OPTIMIZERS,
        "timing": timing,
        "convergence": conv,
        "runs": runs,
        "notes": notes(tuning),
        "tuning": tuning,
    }
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    write_json_atomic(out / "optimizers.json", report)
    if conv:
        plot(runs, labels, settings["seeds"], out / "optimizers.png",
             f"{settings['model']} on {settings['dataset']}: median and range over seeds")
        # JSON round trip turns int keys into strings; use the written form for the table.
        write_markdown(out / "optimizers.md", report_lines(json.loads((out / "optimizers.json").read_text())))
    print(f"wrote {out}/optimizers.json ({report['wall_seconds']} s)")
    return report


def notes(tuning) -> list[str]:
    chosen = (
        f"Hyperparameters: the best point of each optimizer's grid by validation accuracy "
        f"(`tuning` in the .json: one seed, {tuning['epochs']} epochs, no test data); "
        "Bop's grid includes larq's defaults." if tuning else
        "Hyperparameters: the fixed values in `OPTIMIZERS` (no grid run for this report; "
        "`--tune FILE` then `--tuning-results FILE` picks them on the validation split)."
    )
    return [
        "All runs train through `bnnzoo.training.train` (same data order per seed for every "
        "optimizer); test accuracy per epoch is measured by a callback on the full test split.",
        chosen,
        "The machine is a shared 2-core CPU box: absolute times are noisy, the interleaved ratio "
        "is the figure.",
    ]


if __name__ == "__main__":
    main()
