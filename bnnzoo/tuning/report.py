"""Results of a search: a table (Markdown + JSON) and a plot."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["collect_trials", "markdown_table", "plot_results", "searched_hyperparameters"]


def collect_trials(oracle, owners: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every trial of `oracle` as a plain dict, in start order."""
    rows = []
    order = list(getattr(oracle, "start_order", [])) or sorted(oracle.trials)
    for trial_id in order:
        trial = oracle.trials[trial_id]
        metrics = {}
        for name, history in trial.metrics.metrics.items():
            value = history.get_last_value()
            if value is not None:
                metrics[name] = float(value)
        row = {
            "trial_id": trial_id,
            "status": trial.status,
            "score": None if trial.score is None else float(trial.score),
            "hyperparameters": dict(trial.hyperparameters.values),
            "metrics": metrics,
        }
        if owners and trial_id in owners:
            row["tuner_id"] = owners[trial_id]
        rows.append(row)
    return rows


def searched_hyperparameters(space_hps) -> list[dict[str, Any]]:
    """Name, kind and scale of every non-fixed hyperparameter of a keras-tuner space."""
    out = []
    for hp in space_hps:
        kind = type(hp).__name__
        if kind == "Fixed" or hp.name.startswith("tuner/"):
            continue
        out.append({"name": hp.name, "kind": kind, "log": getattr(hp, "sampling", None) == "log"})
    return out


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if (abs(value) < 1e-2 or abs(value) >= 1e4) and value != 0 else f"{value:.4g}"
    return str(value)


def markdown_table(trials: list[dict[str, Any]], hp_names: list[str], top: int | None = None,
                   baseline: dict[str, Any] | None = None) -> str:
    """Trials ranked by score (best first) with their hyperparameters."""
    done = [t for t in trials if t["score"] is not None and t["status"] == "COMPLETED"]
    done.sort(key=lambda t: -t["score"])
    if top:
        done = done[:top]
    header = ["rank", "trial", "val acc", "test acc", *hp_names]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rank, t in enumerate(done, 1):
        cells = [str(rank), t["trial_id"], f"{t['score']:.4f}",
                 _fmt(t["metrics"].get("test_accuracy")),
                 *(_fmt(t["hyperparameters"].get(n)) for n in hp_names)]
        lines.append("| " + " | ".join(cells) + " |")
    if baseline is not None:
        cells = ["default", "-", _fmt(baseline.get("val_accuracy")), _fmt(baseline.get("test_accuracy")),
                 *("default" for _ in hp_names)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_results(trials: list[dict[str, Any]], hps: list[dict[str, Any]], path: Path, title: str,
                 baseline: dict[str, Any] | None = None, max_panels: int = 8) -> None:
    """Score per trial (with the running best), then one panel per hyperparameter vs score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator, NullFormatter

    done = [t for t in trials if t["score"] is not None and t["status"] == "COMPLETED"]
    panels = hps[: max_panels - 1]
    cols = min(3, 1 + len(panels))
    rows = math.ceil((1 + len(panels)) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    axes = axes.ravel()

    ax = axes[0]
    numbers = [int(t["trial_id"]) for t in done]
    scores = [t["score"] for t in done]
    ax.plot(numbers, scores, "o", label="val accuracy")
    tests = [(int(t["trial_id"]), t["metrics"]["test_accuracy"]) for t in done if "test_accuracy" in t["metrics"]]
    if tests:
        ax.plot(*zip(*tests), "x", label="test accuracy")
    best, running = -math.inf, []
    for s in scores:
        best = max(best, s)
        running.append(best)
    ax.step(numbers, running, where="post", label="best val so far")
    if baseline and baseline.get("val_accuracy") is not None:
        ax.axhline(baseline["val_accuracy"], color="gray", ls=":", label="defaults (val)")
    if baseline and baseline.get("test_accuracy") is not None:
        ax.axhline(baseline["test_accuracy"], color="gray", ls="--", label="defaults (test)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel("accuracy")
    ax.set_title("score per trial")
    ax.legend(fontsize=7)

    for ax, hp in zip(axes[1:], panels):
        points = [(t["hyperparameters"].get(hp["name"]), t["score"]) for t in done
                  if t["hyperparameters"].get(hp["name"]) is not None]
        if points:
            xs, ys = zip(*points)
            if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs):
                ax.plot(xs, ys, "o")
                if hp["log"]:
                    ax.set_xscale("log")
                    ax.xaxis.set_minor_formatter(NullFormatter())
            else:
                labels = sorted({str(x) for x in xs})
                ax.plot([labels.index(str(x)) for x in xs], ys, "o")
                ax.set_xticks(range(len(labels)))
                ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
        ax.set_xlabel(hp["name"])
        ax.set_ylabel("val accuracy")
    for ax in axes[1 + len(panels):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
