"""BiBench-style comparison of every registered gradient approximation and optimizer.

One command trains the same binary network on the same data with each registered
quantizer (with Adam on the latent weights) and each registered optimizer (with
`ste_sign`), for several seeds and a fixed epoch budget, all through
`bnnzoo.training.train`, and writes

- `docs/benchmarks.md`: the report (command and date in its header);
- `docs/benchmarks/compare.json`: `summary` (method -> median final test accuracy),
  `command`, `date`, `machine`, the sizing, and every run's raw data;
- `docs/benchmarks/compare.png`: validation-accuracy curves (median over seeds).

Each method runs in its own worker process, so its peak resident memory
(`ru_maxrss` of that process from `os.wait4`) is a per-method figure.

    .venv/bin/python benchmarks/compare.py                 # the full report (~25 min here)
    .venv/bin/python benchmarks/compare.py --quick --out /tmp/cmp   # seconds: digits, 1 epoch
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (base_parser, epochs_to, run_isolated, serve_child, write_json_atomic,  # noqa: E402
                     write_markdown)

BASELINE = "ste_sign+adam"

# The full run: BinaryNet MLP (Courbariaux et al.'s MNIST network, narrowed) on a
# Fashion-MNIST training subset, sized so that every method x 3 seeds fits ~25 min
# on the 2-core development machine. FSG dominates: its fast net runs a 1-100-100-1
# MLP on every binary weight each step (~0.2 s/step at units=256 here, 75x STE), so
# the network has 128 units and the training subset 10,000 images.
FULL = dict(
    dataset="fashion_mnist", model="binarynet_mlp", model_kwargs={"units": 128, "hidden_layers": 3},
    epochs=10, batch_size=100, learning_rate=1e-3, train_subset=10000, seeds=(0, 1, 2),
    target_accuracy=0.80,
)
QUICK = dict(
    dataset="digits", model="binarynet_mlp", model_kwargs={"units": 32, "hidden_layers": 1},
    epochs=1, batch_size=64, learning_rate=1e-3, train_subset=None, seeds=(0,),
    target_accuracy=0.5, methods=("ste_sign+adam", "bnn+adam", "ste_sign+bop"),
)

# Published results, NOT reproduced here (other models, datasets and budgets).
# Only numbers stated in ../shared/papers.md; the rest is each paper's claim in words.
PUBLISHED = {
    "bop": "91.3 % CIFAR-10 BinaryNet [1]",
    "bop2ndorder": "91.9 % CIFAR-10 BinaryNet, biased (91.4 % bias-corrected) [1]",
    "bnnpp": "competitive with or better than BNN/BNN+ on CIFAR-10 CNNs and binary ViTs; tables not retrieved [2]",
    "proxconnect": "special case of ProxConnect++ [2]; tables not retrieved",
    "bnn_plus": "baseline in [2]; tables not retrieved",
    "ste_warmup": "faster convergence, higher accuracy than BNNs of its time on CIFAR-10/100, ImageNet; tables not retrieved [3]",
    "fsg": "faster convergence, lower loss than STE on CIFAR-10/100 ResNet-20..110; tables not retrieved [4]",
    "fsg_attention": "FSG with an attention slow net instead of the paper's Mamba [4]",
}
REFERENCES = [
    "[1] Suarez-Ramirez et al., *Bop and Beyond: A Second Order Optimizer for Binarized Neural "
    "Networks*, CVPR-W 2021 (arXiv 2104.05124); numbers from the authors' repository.",
    "[2] Lu et al., *Understanding Neural Network Binarization with Forward and Backward Proximal "
    "Quantizers*, NeurIPS 2023 (arXiv 2402.17710).",
    "[3] Wang et al., *Gradient Matters: Designing Binarized Neural Networks via Enhanced "
    "Information-Flow*, IEEE TPAMI 44(11), 2022.",
    "[4] Chen et al., *Fast and Slow Gradient Approximation for Binary Neural Network "
    "Optimization*, AAAI 2025 (arXiv 2412.11777).",
]


def all_methods() -> list[str]:
    """`quantizer+optimizer` names: every quantizer with Adam, every optimizer with ste_sign."""
    import bnnzoo

    methods = [f"{q}+adam" for q in bnnzoo.quantizers.list_quantizers()]
    methods += [f"ste_sign+{o}" for o in bnnzoo.optimizers.list_optimizers() if o != "adam"]
    return sorted(set(methods), key=lambda m: (m != BASELINE, m))


# --------------------------------------------------------------------------- worker


def run_method(method: str, sizing: dict, out_dir: Path) -> list[dict]:
    """Train `method` once per seed (in this process) and return one record per seed."""
    import numpy as np
    import tensorflow as tf

    from bnnzoo import data, training

    quantizer, optimizer = method.split("+")
    arrays = data.load_arrays(sizing["dataset"])
    if sizing.get("train_subset"):
        n = int(sizing["train_subset"])
        arrays = data.ArraySplits(**{**vars(arrays), "x_train": arrays.x_train[:n],
                                     "y_train": arrays.y_train[:n]})

    class StepTimer(tf.keras.callbacks.Callback):
        """Seconds per training step of each epoch (first batch of the epoch excluded)."""

        def __init__(self):
            super().__init__()
            self.per_epoch = []

        def on_train_batch_end(self, batch, logs=None):
            now = time.perf_counter()
            if batch == 0:
                self.start, self.steps = now, 0
            else:
                self.steps += 1
                self.end = now

        def on_epoch_end(self, epoch, logs=None):
            if getattr(self, "steps", 0):
                self.per_epoch.append((self.end - self.start) / self.steps)

    records = []
    for seed in sizing["seeds"]:
        config = training.TrainConfig(
            model=sizing["model"], dataset=sizing["dataset"], optimizer=optimizer,
            quantizer=quantizer, epochs=sizing["epochs"], batch_size=sizing["batch_size"],
            learning_rate=sizing["learning_rate"], seed=seed, model_kwargs=dict(sizing["model_kwargs"]),
        )
        timer = StepTimer()
        result = training.train(config, out_dir / f"{method}-seed{seed}", callbacks=[timer],
                                 arrays=arrays, verbose=0, resume=False, overwrite=True)
        model = result.model
        state_bytes = sum(int(np.prod(v.shape)) * v.dtype.size
                          for v in _trackable_variables(model, model.optimizer))
        # Steady-state step time: later epochs (the first one includes tracing).
        steady = timer.per_epoch[1:] or timer.per_epoch
        records.append({
            "method": method,
            "quantizer": quantizer,
            "optimizer": optimizer,
            "seed": seed,
            "test_accuracy": result.metrics["test_accuracy"],
            "val_accuracy": result.history.get("val_accuracy", []),
            "train_loss": result.history.get("loss", []),
            "step_seconds": float(np.median(steady)) if steady else None,
            "wall_seconds": result.metrics["wall_seconds"],
            "weight_memory_bytes": result.metrics["weight_memory_bytes"],
            "float32_memory_bytes": result.metrics["float32_memory_bytes"],
            "training_state_bytes": state_bytes,
            "train_size": result.metrics["train_size"],
        })
    return records


def _trackable_variables(*roots) -> list:
    """Every variable reachable from `roots` through TensorFlow's object graph, once
    (optimizer slots, wrapped optimizers, FSG histories and generator networks)."""
    import tensorflow as tf
    from tensorflow.python.checkpoint import graph_view
    from tensorflow.python.checkpoint import util as checkpoint_util

    seen, found = set(), []
    for root in roots:
        for obj in checkpoint_util.list_objects(graph_view.ObjectGraphView(root)):
            if isinstance(obj, tf.Variable) and id(obj) not in seen:
                seen.add(id(obj))
                found.append(obj)
    return found


def _worker(request: dict) -> list[dict]:
    """Child side of `_spawn`: one method's records."""
    return run_method(request["method"], request["sizing"], Path(request["run_dir"]))


def _inline(method: str, sizing: dict, run_dir: Path, tmp: Path) -> dict:
    """Run one method in this process (`--quick`): peak RSS is this process's so far."""
    import resource

    records = run_method(method, sizing, run_dir)
    return {"method": method, "records": records,
            "peak_rss_bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024}


def _spawn(method: str, sizing: dict, run_dir: Path, tmp: Path) -> dict:
    """Run one method in a worker process (`_common.run_isolated`); its records plus the
    process's peak RSS."""
    child = run_isolated(__file__, {"method": method, "sizing": sizing, "run_dir": str(run_dir)}, tmp, method,
                         log_path=tmp / f"{method}.log",
                         env={"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"})
    if not child.ok:
        return {"method": method, "error": f"worker exited with {child.returncode}", "log_tail": child.log_tail}
    return {"method": method, "records": child.answer, "peak_rss_bytes": child.peak_rss_bytes}


# --------------------------------------------------------------------------- report


def summarize(results: list[dict], target: float) -> dict:
    """Per-method medians, spreads and ratios from the workers' raw results."""
    base_steps = [r["step_seconds"] for res in results if res["method"] == BASELINE
                  for r in res.get("records", []) if r["step_seconds"]]
    base_step = statistics.median(base_steps) if base_steps else None
    rows = {}
    for res in results:
        method = res["method"]
        if "error" in res:
            rows[method] = {"error": res["error"]}
            continue
        recs = res["records"]
        accs = [r["test_accuracy"] for r in recs]
        epochs = [epochs_to(r["val_accuracy"], target) for r in recs]
        reached = [e for e in epochs if e is not None]
        steps = [r["step_seconds"] for r in recs if r["step_seconds"]]
        rows[method] = {
            "median_test_accuracy": statistics.median(accs),
            "min_test_accuracy": min(accs),
            "max_test_accuracy": max(accs),
            "seeds": len(accs),
            "epochs_to_target": epochs,
            "median_epochs_to_target": statistics.median(reached) if len(reached) == len(epochs) else None,
            "step_seconds": statistics.median(steps) if steps else None,
            "step_time_ratio_vs_baseline": (statistics.median(steps) / base_step
                                            if steps and base_step else None),
            "peak_rss_bytes": res["peak_rss_bytes"],
            "training_state_bytes": recs[0]["training_state_bytes"],
            "weight_memory_bytes": recs[0]["weight_memory_bytes"],
            "float32_memory_bytes": recs[0]["float32_memory_bytes"],
        }
    return rows


def _pct(x):
    return "–" if x is None else f"{100 * x:.2f}"


def _kib(x):
    return "–" if x is None else f"{x / 1024:.1f}"


def write_report(payload: dict, md_path: Path, png_path: Path | None) -> None:
    rows, sizing = payload["methods"], payload["sizing"]
    target = sizing["target_accuracy"]
    lines = [
        "# Benchmarks",
        "",
        "## Comparison of gradient approximations and optimizers",
        "",
        f"Generated by `{payload['command']}` on {payload['date']} ({payload['machine']}).",
        "",
        "This is a quick survey of every registered method at its registered defaults of "
        "that date, not a test of the papers' claims: each claim is tested against its own "
        "paper's baseline with equal budgets in [Reproducing the papers](reproduce.md).",
        "",
        f"Every registered quantizer (with Adam on the latent weights) and every registered "
        f"optimizer (with `ste_sign`) trains the same `{sizing['model']}` "
        f"({', '.join(f'{k}={v}' for k, v in sizing['model_kwargs'].items())}) on `{sizing['dataset']}`"
        + (f" (first {sizing['train_subset']} training images)" if sizing.get("train_subset") else "")
        + f" for {sizing['epochs']} epoch(s), batch {sizing['batch_size']}, learning rate "
        f"{sizing['learning_rate']} (real-valued variables), seeds {', '.join(map(str, sizing['seeds']))}, "
        "each method's registered default hyperparameters, through `bnnzoo.training.train`. "
        "The network was narrowed and the training set subsampled so that the whole "
        "comparison fits in about 25 minutes on this 2-core CPU machine; accuracies are "
        "therefore below full-size, full-budget numbers.",
        "",
        "| method | test accuracy % (median) | min–max over seeds | epochs to "
        f"{100 * target:.0f} % val. accuracy | step time vs `{BASELINE}` | peak RSS MiB | "
        "training state KiB | binary-weight memory KiB (float32) | published (not reproduced here) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for method, row in rows.items():
        _, optimizer = method.split("+")
        quantizer = method.split("+")[0]
        published = PUBLISHED.get(optimizer) or PUBLISHED.get(quantizer) or "–"
        if "error" in row:
            lines.append(f"| `{method}` | failed: {row['error']} | | | | | | | {published} |")
            continue
        epochs = row["median_epochs_to_target"]
        ratio = row["step_time_ratio_vs_baseline"]
        lines.append(
            f"| `{method}` | {_pct(row['median_test_accuracy'])} | {_pct(row['min_test_accuracy'])}–"
            f"{_pct(row['max_test_accuracy'])} | "
            f"{'not reached by every seed' if epochs is None else f'{epochs:g}'} | "
            f"{'–' if ratio is None else f'{ratio:.2f}×'} | {row['peak_rss_bytes'] / 2**20:.0f} | "
            f"{_kib(row['training_state_bytes'])} | {_kib(row['weight_memory_bytes'])} "
            f"({_kib(row['float32_memory_bytes'])}) | {published} |"
        )
    lines += [
        "",
        "How the columns are measured:",
        "",
        "- *test accuracy*: on the full test set after the last epoch; median and range over seeds.",
        f"- *epochs to {100 * target:.0f} %*: first epoch whose validation accuracy (10 % of the "
        "training data, held out) reaches the target; median over seeds.",
        "- *step time*: median seconds per training step of epochs 2.. (the first epoch includes "
        "tracing), measured with a batch callback in the same kind of process for every method, "
        f"divided by `{BASELINE}`'s.",
        f"- *peak RSS*: {payload['peak_memory_measure']}; it includes TensorFlow and the dataset.",
        "- *training state*: bytes of the model's variables plus the optimizer's variables "
        "(momenta, second moments, gradient histories, generator networks).",
        "- *binary-weight memory*: larq's model profile (1 bit per binary weight, 32 per real "
        "weight), float32 equivalent in parentheses.",
        "- *published*: numbers and claims from the papers (`shared/papers.md`), on other models, "
        "datasets and epoch budgets; **not reproduced here**.",
        "",
        *[f"- {ref}" for ref in REFERENCES],
        "",
    ]
    if png_path is not None:
        lines += [f"![validation accuracy per epoch](benchmarks/{png_path.name})", ""]
    lines += [
        "## Other benchmarks",
        "",
        "<!-- bnnzoo:benchmark-pages -->",
        "",
    ]
    write_markdown(md_path, lines)


def plot_curves(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for res in results:
        if "error" in res:
            continue
        for ax, key in zip(axes, ("val_accuracy", "train_loss")):
            curves = [r[key] for r in res["records"] if r[key]]
            if not curves:
                continue
            length = min(len(c) for c in curves)
            median = np.median([c[:length] for c in curves], axis=0)
            style = "-" if res["method"].endswith("+adam") else "--"
            ax.plot(range(1, length + 1), median, style, label=res["method"])
    axes[0].set_title("validation accuracy (median over seeds)")
    axes[1].set_title("training loss (median over seeds)")
    for ax in axes:
        ax.set_xlabel("epoch")
    axes[1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _machine() -> str:
    import tensorflow as tf

    return (f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}, TensorFlow {tf.__version__}")


def compare(methods: list[str] | None = None, *, quick: bool = False, out: str | os.PathLike | None = None,
            seeds: list[int] | None = None, epochs: int | None = None, command: str | None = None,
            in_process: bool | None = None, log=print) -> dict:
    """Run the comparison and write the report; returns the JSON payload.

    `out`: folder for `benchmarks.md` and `benchmarks/compare.{json,png}` (default `docs/`).
    `in_process` (default: only with `quick`) trains every method in this process
    instead of one worker process per method; peak RSS is then the process's peak so far.
    """
    in_process = quick if in_process is None else in_process
    sizing = dict(QUICK if quick else FULL)
    default_methods = sizing.pop("methods", None)
    if seeds:
        sizing["seeds"] = tuple(seeds)
    if epochs:
        sizing["epochs"] = epochs
    sizing["seeds"] = list(sizing["seeds"])
    import bnnzoo

    known = all_methods()
    methods = list(methods or default_methods or known)
    for method in methods:
        q, _, o = method.partition("+")
        bnnzoo.quantizers.quantizer_class(q)
        bnnzoo.optimizers.optimizer_builder(o or "?")
    if BASELINE not in methods:
        methods.insert(0, BASELINE)  # the step-time reference
    out_dir = Path(out) if out is not None else REPO / "docs"
    started = time.time()
    results = []
    with tempfile.TemporaryDirectory(prefix="bnnzoo-compare-") as tmp:
        tmp = Path(tmp)
        for i, method in enumerate(methods):
            t0 = time.time()
            res = (_inline if in_process else _spawn)(method, sizing, tmp / "runs", tmp)
            results.append(res)
            accs = [f"{r['test_accuracy']:.4f}" for r in res.get("records", [])]
            log(f"[{i + 1}/{len(methods)}] {method}: {res.get('error') or ' '.join(accs)} "
                f"({time.time() - t0:.0f} s)", flush=True)
    rows = summarize(results, sizing["target_accuracy"])
    payload = {
        "summary": {m: r.get("median_test_accuracy") for m, r in rows.items()},
        "command": command or "benchmarks/compare.py" + (" --quick" if quick else ""),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": _machine(),
        "wall_seconds": round(time.time() - started, 1),
        "baseline": BASELINE,
        "sizing": sizing,
        "peak_memory_measure": ("ru_maxrss of this process so far (--quick, in-process)" if in_process
                                else "ru_maxrss of the worker process that trained the method (os.wait4)"),
        "methods": rows,
        "runs": results,
    }
    json_path = out_dir / "benchmarks" / "compare.json"
    png_path = out_dir / "benchmarks" / "compare.png"
    write_json_atomic(json_path, payload)
    plot_curves(results, png_path)
    write_report(payload, out_dir / "benchmarks.md", png_path)
    return payload


def main(argv=None) -> int:
    p = base_parser(__doc__.split("\n\n")[0], ("quick", "seeds", "epochs"),
                    quick={"help": "seconds: digits, 1 epoch, 1 seed, 3 methods"})
    p.add_argument("--out", help="folder for benchmarks.md and benchmarks/ (default docs/)")
    p.add_argument("--methods", nargs="+", help="quantizer+optimizer names (default: every registered one)")
    args = p.parse_args(argv)
    if args.run_one:
        return serve_child(args.run_one, _worker)
    argv = sys.argv[1:] if argv is None else list(argv)
    command = " ".join([".venv/bin/python benchmarks/compare.py", *map(shlex.quote, argv)])
    payload = compare(args.methods, quick=args.quick, out=args.out, seeds=args.seeds,
                      epochs=args.epochs, command=command)
    failed = [m for m, r in payload["methods"].items() if "error" in r]
    print(f"wrote {args.out or 'docs'}/benchmarks.md in {payload['wall_seconds']} s"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
