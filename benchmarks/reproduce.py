"""Reproduce each source paper's claim against its own baseline, under one protocol.

Protocol 2 (`VERSION` 2; protocol 1's results and report are kept, labelled, in
`benchmarks/results/reproduce-protocol1/` and `docs/benchmarks/reproduce-protocol1.*`).
One claim per paper, each on a binary CNN (BinaryNet at width 0.25 on Fashion-MNIST,
15 epochs), comparing the paper's method(s) with *that paper's* baseline:

| claim | arms (first: the baseline) | what is compared |
| --- | --- | --- |
| `bop2ndorder` | Bop (its own recipe), Bop2ndOrder biased, Bop2ndOrder with the authors' constant-form correction, Bop2ndOrder with τ = 0 | epochs to Bop's best validation accuracy; test accuracy |
| `proxconnect` | BNN, BNN++, BNN+, ProxConnect | test accuracy (BNN++ against every arm) |
| `hyper_binarynet` | STE, STE-Warmup (weights and activations), STE-Warmup (weights only), HyperConv + STE-Warmup | epochs to STE's final validation accuracy; test accuracy |
| `fsg` | STE, FSG, FSG (authors' variant); weights-only with ReLU float activations, from a float start | epochs to STE's final training loss; test accuracy |

Protocol (every arm alike):

- Data: real Fashion-MNIST, 54 k train / 6 k validation / 10 k test.
- **Binary models only**: every annealed arm (BNN++, ProxConnect, STE-Warmup) ends
  with an exact-sign phase of `EXACT_SIGN_FRACTION` of its epochs
  (`TrainConfig.exact_sign_fraction`); only epochs whose forward is exact sign count,
  for epochs-to-target and for the best-validation checkpoint.
- **Each arm on its own paper's recipe** (the arm's config: optimizer schedules, Adam
  betas, learning-rate schedule, clipping), scaled to the run.
- **The same search budget for every arm**: `SEARCH_POINTS` points over the learning
  rate and the arm's own key hyperparameter (a "plus" design: the centre and one step
  down and up on each axis; an arm without a key hyperparameter gets five learning
  rates), one seed (`SEARCH_SEED`), `search_epochs` = 1/3 of the claim's epochs, picked
  on the best validation accuracy of an exact-sign epoch, never on test. A winner on
  an outer point of an axis gets that axis extended by one step, once.
- Then every seed in `SEEDS` at the chosen point for the claim's full budget. Each
  seed reports its final-epoch test accuracy and the test accuracy of its
  best-validation (exact-sign) epoch, which is chosen on validation only.
- Verdicts: the difference of mean test accuracy (method − baseline) with a 95 %
  bootstrap interval over seeds (`bootstrap_interval`); accuracy `reproduced` when the
  interval is above 0, `reversed` when below, else `not reproduced`, on the
  best-validation checkpoint (the final-epoch one is reported beside it). Speed claims
  as in protocol 1 (median epochs-to-target ratio < 1 without an accuracy reversal;
  with an accuracy `reproduced` where the paper also claims higher accuracy).
- Arms whose whole configuration (claim base, arm and search axes) equals an earlier
  claim's arm are trained once and shared.

Every run goes through `bnnzoo.training.train` and logs, per epoch, the test accuracy,
the exact-sign switch of each annealed quantizer, the epoch's seconds and the machine's
load average (`bnnzoo.callbacks.EpochStats`), and for the Bop family the flip rates and
the fraction of would-be flips that τ blocks (`bnnzoo.optimizers.ThresholdBlocking`).

Resumable: each result — a search point or a (claim, arm, seed) run — is written to
its own JSON file under `--results-dir` (temp file + rename) as soon as it finishes,
and each run trains in its own run directory with per-epoch checkpoints under
`--runs-dir`, so an interrupted benchmark continues with the same command: finished
results are skipped, a half-written result file is discarded and redone, and an
interrupted run resumes after its last finished epoch. A results directory written by
another benchmark or another `VERSION` of this one is refused. Each result trains in
a fresh Python process (`_run_isolated`); `--quick` runs in-process.

Writes `<out-dir>/reproduce.json`, `.md` and `.png` from whatever results exist
(claims with missing results are reported as `pending`). `--quick` runs a
seconds-long version on the digits data (for the test suite).

    .venv/bin/python benchmarks/reproduce.py                      # run (or continue) everything
    .venv/bin/python benchmarks/reproduce.py --claims bop2ndorder # one claim
    .venv/bin/python benchmarks/reproduce.py --report-only        # rebuild the report
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import (TestAccuracy, base_parser, epochs_to, run_isolated,  # noqa: E402
                     serve_child)

BENCHMARK = "reproduce"
# Bump when a claim's protocol, arms or settings change: old results are then refused.
VERSION = 2
SEEDS = (0, 1, 2)
SEARCH_SEED = 0
SEARCH_POINTS = 5
EXACT_SIGN_FRACTION = 0.2
BOOTSTRAP_RESAMPLES = 10_000


@dataclasses.dataclass(frozen=True)
class Axis:
    """One searched hyperparameter: a `TrainConfig` field, or `<dict field>.<key>`
    (e.g. `optimizer_kwargs.gamma`), around `centre` in steps of `step` — multiplied
    (`scale="log"`) or added (`"linear"`) — within [`low`, `high`]."""

    field: str
    centre: float
    step: float
    scale: str = "log"
    low: float = 0.0
    high: float = math.inf

    def value(self, offset: int) -> float | None:
        """The grid value `offset` steps from the centre, `None` outside [low, high]."""
        v = self.centre * self.step ** offset if self.scale == "log" else self.centre + self.step * offset
        v = float(f"{v:.3g}")
        return v if self.low <= v <= self.high and (self.scale != "log" or v > 0) else None

    @property
    def short(self) -> str:
        return {"learning_rate": "lr"}.get(self.field, self.field.split(".")[-1])


def lr_axis(centre: float) -> Axis:
    """Learning rates in half-decade steps around `centre`."""
    return Axis("learning_rate", centre, math.sqrt(10.0))


@dataclasses.dataclass(frozen=True)
class Arm:
    """One compared method: a label, its `TrainConfig` fields (on top of the claim's),
    its learning-rate axis and its own key hyperparameter (`None`: none)."""

    name: str
    label: str
    config: dict
    lr: Axis = lr_axis(3e-3)
    key: Axis | None = None

    @property
    def axes(self) -> tuple[Axis, ...]:
        return (self.lr,) if self.key is None else (self.lr, self.key)


@dataclasses.dataclass(frozen=True)
class Claim:
    """A paper's claim, its arms (the first is the paper's baseline) and its budget."""

    name: str
    paper: str
    claim: str
    paper_setting: str
    paper_result: str
    ours_differs: str
    # (history key, "best" | "final") of the baseline: a speed claim (epochs to that
    # target, and accuracy); `None`: an accuracy claim
    target: tuple[str, str] | None
    base: dict
    arms: tuple[Arm, ...]
    # Protocol 2 gives every claim the same budget: 15 epochs, searched at 1/3 of them.
    epochs: int = 15
    search_epochs: int = 5
    float_start_epochs: int = 0  # > 0: every arm starts from a float run of the same net
    # speed claims: "no_worse" (faster at equal or higher accuracy) or "higher" (the
    # paper also claims higher accuracy, so a speed-up alone does not reproduce it)
    accuracy_claim: str = "no_worse"

    @property
    def kind(self) -> str:
        """`"speed"` (the claim has a `target`) or `"accuracy"`."""
        return "accuracy" if self.target is None else "speed"

    @property
    def baseline(self) -> Arm:
        return self.arms[0]

    @property
    def methods(self) -> tuple[Arm, ...]:
        return self.arms[1:]


_CNN = {"model": "binarynet", "model_kwargs": {"width": 0.25}, "batch_size": 128,
        "exact_sign_fraction": EXACT_SIGN_FRACTION}
_CNN_TEXT = "Fashion-MNIST BinaryNet CNN at width 0.25 (32-32-64-64-128-128 conv, 256-256 dense), batch 128"
_GAMMA_SCALE = Axis("optimizer_kwargs.gamma_scale", 1.0, 10.0)
_BOP2 = {"optimizer": "bop2ndorder", "lr_schedule": "linear"}
_T0 = Axis("quantizer_kwargs.temperature", 1.0, 2.0)
_HBN = {"lr_schedule": "halving", "clipnorm": 5.0, "optimizer": "adam",
        "optimizer_kwargs": {"beta_1": 0.5, "beta_2": 0.99}}
_ALPHA = Axis("optimizer_kwargs.alpha", 0.8, 0.1, scale="linear", low=0.05, high=0.95)

CLAIMS: dict[str, Claim] = {c.name: c for c in (
    Claim(
        name="bop2ndorder",
        paper="Suarez-Ramirez et al., CVPR-W 2021 (Bop2ndOrder), arXiv 2104.05124",
        claim="Bop2ndOrder converges faster than Bop and reaches equal or higher accuracy",
        paper_setting="CIFAR-10 BinaryNet, batch 50, 500 epochs; Bop2ndOrder: tau 1e-5->1e-8, "
                      "gamma 1e-2->1e-5, sigma 1e-7->1e-2 (linear), Adam 1e-2->1e-3; Bop (its own "
                      "recipe, hparams bop_sec52): tau 1e-8, gamma 1e-4 x0.1 every 100 epochs, Adam 0.01",
        paper_result="CIFAR-10 91.9 % (biased), 91.4 % (constant-form correction) vs Bop 91.3 %",
        ours_differs=f"{_CNN_TEXT}, 15 epochs; each arm's schedules scaled to the run (Bop's "
                     "gamma x0.1 after every 3 epochs); key hyperparameter searched: Bop's gamma, "
                     "Bop2ndOrder's gamma schedule (scaled as a whole)",
        target=("val_accuracy", "best"),
        base=_CNN,
        arms=(
            Arm("bop", "Bop (own recipe)",
                {"optimizer": "bop", "lr_schedule": "constant",
                 "optimizer_kwargs": {"schedule": "helwegen", "threshold": 1e-8, "gamma": 1e-4}},
                lr=lr_axis(1e-2), key=Axis("optimizer_kwargs.gamma", 1e-4, 10.0, high=1.0)),
            Arm("bop2ndorder_biased", "Bop2ndOrder (biased)",
                {**_BOP2, "optimizer_kwargs": {"schedule": "paper", "bias_correction": None}},
                lr=lr_axis(1e-2), key=_GAMMA_SCALE),
            Arm("bop2ndorder_constant", "Bop2ndOrder (constant-form correction)",
                {**_BOP2, "optimizer_kwargs": {"schedule": "paper", "bias_correction": "constant"}},
                lr=lr_axis(1e-2), key=_GAMMA_SCALE),
            Arm("bop2ndorder_tau0", "Bop2ndOrder (biased, tau = 0)",
                {**_BOP2, "optimizer_kwargs": {"schedule": "paper", "bias_correction": None,
                                               "threshold_scale": 0.0}},
                lr=lr_axis(1e-2), key=_GAMMA_SCALE),
        ),
    ),
    Claim(
        name="proxconnect",
        paper="Lu et al., NeurIPS 2023 (ProxConnect++ / BNN++), arXiv 2402.17710",
        claim="BNN++ is as accurate as or more accurate than BNN, BNN+ and ProxConnect",
        paper_setting="CIFAR-10 CNNs and binarized vision transformers; tables not retrieved "
                      "(shared/papers.md)",
        paper_result="competitive or better accuracy than BNN/BNN+ (numbers not retrieved)",
        ours_differs=f"{_CNN_TEXT}, 15 epochs, Adam with linear decay to 1/10 for every arm "
                     "(the paper's optimizer recipe was not retrieved); BNN++'s mu grows to mu_max "
                     "(searched), ProxConnect's from its searched start; exact sign in the last "
                     "20 % of the epochs",
        target=None,
        base={**_CNN, "optimizer": "adam", "lr_schedule": "linear"},
        arms=(
            Arm("bnn", "BNN (sign, clipped STE)", {"quantizer": "bnn"}),
            Arm("bnnpp", "BNN++ (SS_mu, SS'_mu)", {"quantizer": "bnnpp"},
                key=Axis("mu_max", 5.0, 2.0)),
            Arm("bnn_plus", "BNN+ (sign, SS'_beta)", {"quantizer": "bnn_plus"},
                key=Axis("quantizer_kwargs.beta", 5.0, 2.0)),
            Arm("proxconnect", "ProxConnect (P^mu, identity)", {"quantizer": "proxconnect"},
                key=Axis("quantizer_kwargs.mu", 0.1, 3.0)),
        ),
    ),
    Claim(
        name="hyper_binarynet",
        paper="Wang et al., TPAMI 2022 (Hyper-BinaryNet)",
        claim="STE-Warmup and HyperConv converge faster and to higher accuracy than STE",
        paper_setting="CIFAR-10/100 ResNets and ImageNet, hundreds of epochs; Adam(0.5, 0.99), "
                      "lr 1e-2 halved every 60 epochs, batch 128, grad-norm clip 5, "
                      "T = T0 * 0.95^epoch on weights and activations",
        paper_result="faster convergence and higher accuracy than BNNs of its time "
                     "(tables not retrieved)",
        ours_differs=f"{_CNN_TEXT} (HyperConv2D convs for the hyper arm), 15 epochs, lr halved "
                     "every 5 epochs; T0 searched; exact sign in the last 20 % of the epochs (the "
                     "authors evaluate hardtanh(x/T) after hundreds of epochs, when T is ~0)",
        target=("val_accuracy", "final"),
        base={**_CNN, **_HBN},
        arms=(
            Arm("ste", "STE", {"quantizer": "ste_sign"}, lr=lr_axis(3e-3)),
            Arm("ste_warmup", "STE-Warmup (weights and activations)", {"quantizer": "ste_warmup"},
                key=_T0),
            Arm("ste_warmup_weights", "STE-Warmup (weights only)",
                {"quantizer": "ste_warmup", "input_quantizer": "ste_sign"}, key=_T0),
            Arm("hyperconv_ste_warmup", "HyperConv + STE-Warmup",
                {"quantizer": "ste_warmup", "model_kwargs": {"width": 0.25, "hyper": True}}, key=_T0),
        ),
        accuracy_claim="higher",
    ),
    Claim(
        name="fsg",
        paper="Chen et al., AAAI 2025 (FSG), arXiv 2412.11777",
        claim="FSG's learned gradients converge faster and to a lower loss than STE",
        paper_setting="CIFAR-10/100 ResNet-20/44/56, weights-only binarization (DoReFa), "
                      "from a float model, Adam 1e-3 x0.1 every 30 epochs, 100 epochs",
        paper_result="faster convergence and lower loss than STE (tables not retrieved)",
        ours_differs=f"{_CNN_TEXT} with ReLU float activations, weights-only (dorefa_weights), "
                     "5 float epochs then 15 binary epochs, lr x0.1 every 5 epochs; GRU slow net "
                     "instead of Mamba; alpha searched",
        target=("loss", "final"),
        base={**_CNN, "model_kwargs": {"width": 0.25, "activation": "relu"},
              "input_quantizer": "none", "kernel_quantizer": "dorefa_weights", "lr_schedule": "step"},
        arms=(
            Arm("ste", "STE", {"optimizer": "adam"}, lr=lr_axis(1e-3)),
            Arm("fsg", "FSG (ours)", {"optimizer": "fsg"}, lr=lr_axis(1e-3), key=_ALPHA),
            Arm("fsg_authors", "FSG (authors' variant)", {"optimizer": "fsg_authors"},
                lr=lr_axis(1e-3), key=_ALPHA),
        ),
        float_start_epochs=5,
    ),
)}

# --quick: seconds-long settings on digits, for the test suite.
QUICK = dict(dataset="digits", epochs=2, search_epochs=1, float_start_epochs=1, seeds=(0,),
             model_kwargs={"width": 0.0625})


# ------------------------------------------------------------------------ settings


@dataclasses.dataclass
class Settings:
    dataset: str = "fashion_mnist"
    seeds: tuple[int, ...] = SEEDS
    quick: bool = False
    data_dir: str | None = None
    # Each result in a fresh Python process (see `_run_isolated`); --quick runs in-process.
    isolate: bool = True


def check_claims(names) -> list[str]:
    """`names` (default: all) if every one is a claim, else a `ValueError` listing them."""
    if not names:
        return list(CLAIMS)
    unknown = [n for n in names if n not in CLAIMS]
    if unknown:
        raise ValueError(f"Unknown claim {unknown[0]!r}. Valid names: {', '.join(CLAIMS)}")
    return list(names)


def _merge(*parts: dict) -> dict:
    """TrainConfig fields, later parts overriding; `*_kwargs` dicts merged key by key."""
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key.endswith("_kwargs") and isinstance(value, dict):
                out[key] = {**out.get(key, {}), **value}
            else:
                out[key] = value
    return out


def _set(fields: dict, path: str, value: float) -> None:
    """Set `TrainConfig` field `path` (or `<dict field>.<key>`) in `fields`."""
    if "." in path:
        outer, key = path.split(".", 1)
        fields[outer] = {**fields.get(outer, {}), key: value}
    else:
        fields[path] = value


Point = tuple[int, ...]  # offsets from the centre, one per axis


def point_values(arm: Arm, point: Point) -> dict[str, float] | None:
    values = {}
    for axis, offset in zip(arm.axes, point):
        value = axis.value(offset)
        if value is None:
            return None
        values[axis.field] = value
    return values


def point_name(arm: Arm, point: Point) -> str:
    """The result name of a search point, e.g. `search_lr0.01_gamma0.0001`."""
    values = point_values(arm, point)
    return "search_" + "_".join(f"{axis.short}{values[axis.field]:g}" for axis in arm.axes)


def initial_points(arm: Arm) -> list[Point]:
    """`SEARCH_POINTS` points: a plus design (2 axes) or five learning rates (1 axis)."""
    if len(arm.axes) == 1:
        return [(o,) for o in (-2, -1, 0, 1, 2)]
    return [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]


def extension(arm: Arm, points: list[Point], winner: Point) -> Point | None:
    """One step beyond `winner` along the axis on whose outer point it sits (`None`
    when it sits on no outer point, or the next value leaves the axis' range)."""
    for i in range(len(arm.axes)):
        along = [p[i] for p in points if all(p[j] == winner[j] for j in range(len(winner)) if j != i)]
        if len(along) < 2:
            continue
        for edge, direction in ((max(along), 1), (min(along), -1)):
            if winner[i] == edge and edge != 0:
                beyond = tuple(winner[j] + (direction if j == i else 0) for j in range(len(winner)))
                return beyond if point_values(arm, beyond) is not None else None
    return None


def arm_config(claim: Claim, arm: Arm, settings: Settings, *, values: dict[str, float], seed: int,
               epochs: int, init_from: str | None = None) -> dict:
    """The `TrainConfig` fields of one run of `arm` at the search values `values`."""
    fields = _merge(claim.base, arm.config)
    for path, value in values.items():
        _set(fields, path, value)
    if settings.quick:
        fields["model_kwargs"] = {**fields.get("model_kwargs", {}), **QUICK["model_kwargs"]}
        fields["batch_size"] = 64
    fields.update(dataset=settings.dataset, seed=seed, epochs=epochs, data_dir=settings.data_dir,
                  init_from=init_from)
    return fields


def claim_epochs(claim: Claim, settings: Settings) -> tuple[int, int, int]:
    """(epochs, search_epochs, float_start_epochs) under `settings`."""
    if settings.quick:
        return (QUICK["epochs"], QUICK["search_epochs"],
                QUICK["float_start_epochs"] if claim.float_start_epochs else 0)
    return claim.epochs, claim.search_epochs, claim.float_start_epochs


def _canonical(claim: Claim, arm: Arm) -> tuple[str, str]:
    """(claim, arm) whose results `arm` of `claim` uses: the first arm, in claim order,
    with the same configuration and search axes (itself when there is none)."""
    mine = (_merge(claim.base, arm.config), arm.axes, claim.epochs, claim.search_epochs,
            claim.float_start_epochs)
    for other in CLAIMS.values():
        for candidate in other.arms:
            theirs = (_merge(other.base, candidate.config), candidate.axes, other.epochs,
                      other.search_epochs, other.float_start_epochs)
            if theirs == mine:
                return other.name, candidate.name
    return claim.name, arm.name


# ------------------------------------------------------------------------ results store


class ResultStore(_common.ResultStore):
    """`_common.ResultStore` stamped with this benchmark, its `VERSION`, and whether the
    results are `--quick` ones on which dataset."""

    def __init__(self, root: Path, settings: Settings):
        super().__init__(root, {"benchmark": BENCHMARK, "version": VERSION, "quick": settings.quick,
                                "dataset": settings.dataset})


# ------------------------------------------------------------------------ running


def _diagnostics(fields: dict, arrays) -> list:
    """The per-epoch logging every protocol-2 run gets beyond `train`'s own (which logs
    each epoch's seconds and load): test accuracy, and for the Bop family the fraction
    of would-be flips that tau blocks."""
    from bnnzoo.optimizers import ThresholdBlocking

    callbacks = [TestAccuracy(arrays.x_test, arrays.y_test)]
    if fields.get("optimizer") in ("bop", "bop2ndorder"):
        callbacks.append(ThresholdBlocking(every=10))
    return callbacks


def _run(fields: dict, run_dir: Path, arrays) -> dict:
    from bnnzoo.training import TrainConfig, train

    started = time.perf_counter()
    result = train(TrainConfig(**fields), out=run_dir, arrays=arrays, verbose=0,
                   callbacks=_diagnostics(fields, arrays))
    history = {k: [None if v is None else float(v) for v in vals] for k, vals in result.history.items()}
    return {
        "config": fields,
        "test_accuracy": float(result.metrics["test_accuracy"]),
        "test_loss": float(result.metrics["test_loss"]),
        "history": history,
        "wall_seconds": round(time.perf_counter() - started, 1),  # this process's stretch
        "train_seconds": result.metrics.get("train_seconds"),  # every epoch's, resumed ones too
    }


def _run_isolated(fields: dict, run_dir: Path) -> dict:
    """`_run` in a fresh Python process, which loads the data itself
    (`_common.run_isolated`: why a process per result)."""
    run_dir = Path(run_dir)
    child = run_isolated(__file__, {"fields": fields, "run_dir": str(run_dir)}, run_dir.parent, run_dir.name)
    if not child.ok:
        raise RuntimeError(f"the run {run_dir} failed in its own process (exit status {child.returncode})")
    return child.answer


def _run_one(request: dict) -> dict:
    """Child side of `_run_isolated`: load the data, train, return the result."""
    import bnnzoo

    fields = request["fields"]
    arrays = bnnzoo.data.load_arrays(fields["dataset"], data_dir=fields.get("data_dir"))
    return _run(fields, Path(request["run_dir"]), arrays)


def _execute(fields: dict, run_dir: Path, arrays, settings: Settings) -> dict:
    return _run_isolated(fields, run_dir) if settings.isolate else _run(fields, run_dir, arrays)


def binary_epochs(history: dict) -> list[bool]:
    """Per epoch, whether every annealed quantizer's forward was exact sign (the keys
    `*_exact_sign` that `QuantizerAnnealing` logs; a run without them is binary, or
    weights-only binary, throughout)."""
    n = len(history.get("val_accuracy") or history.get("loss") or [])
    switches = [v for k, v in history.items() if k.endswith("_exact_sign")]
    return [all((s[i] or 0) > 0.5 for s in switches) for i in range(n)]


def selection_score(result: dict) -> float:
    """Best validation accuracy over the exact-sign epochs of a result (-inf if none)."""
    best = best_checkpoint(result["history"])["val_accuracy"]
    return -math.inf if best is None else best


def search(claim: Claim, arm: Arm, settings: Settings, store: ResultStore, run_point=None) -> dict:
    """The arm's search: its points' scores, the winner and whether the grid was
    extended. With `run_point(point)` missing points are trained; without it only
    stored results are read (the search is then `complete` or not)."""
    owner = _canonical(claim, arm)
    points = initial_points(arm)
    scores: dict[Point, float | None] = {}

    def score(point):
        result = store.get(*owner, point_name(arm, point))
        if result is None and run_point is not None:
            run_point(point)
            result = store.get(*owner, point_name(arm, point))
        scores[point] = None if result is None else selection_score(result)
        return scores[point]

    def best(candidates):  # the highest score; on ties the point nearest the centre
        return max(candidates, key=lambda p: (scores[p], -sum(map(abs, p))))

    for point in points:
        score(point)
    extended = None
    complete = all(v is not None for v in scores.values())
    if complete:
        extended = extension(arm, points, best(points))
        if extended is not None:
            points.append(extended)
            complete = score(extended) is not None
    out = {"points": {point_name(arm, p): {"values": point_values(arm, p), "val_accuracy": scores.get(p)}
                      for p in points},
           "extended": None if extended is None else point_name(arm, extended),
           "complete": complete, "chosen": None, "chosen_on_edge": None}
    if complete:
        winner = best(points)
        out["chosen"] = point_values(arm, winner)
        out["chosen_point"] = point_name(arm, winner)
        out["chosen_on_edge"] = extension(arm, points, winner) is not None or any(
            axis.value(o + (1 if o > 0 else -1)) is None for axis, o in zip(arm.axes, winner) if o)
    return out


class BudgetSpent(Exception):
    """No time is left in `Budget` for the next run."""


class Budget:
    """The seconds an invocation may spend on runs (`--time-budget`; 0: no limit).

    A run starts only if its epochs fit in what is left at the slowest epoch timed so
    far in this invocation (any run fits before the first one is timed), so a session
    can stop the benchmark between runs instead of inside one. Runs are started only
    while `check` passes; `record` learns each finished run's epoch time.
    """

    def __init__(self, seconds: float = 0.0, clock=time.perf_counter):
        self.seconds, self.clock = seconds, clock
        self.started = clock()
        self.epoch_seconds: float | None = None

    def check(self, epochs: int, what: str) -> None:
        """`BudgetSpent` unless `epochs` more epochs fit in the time left."""
        if not self.seconds:
            return
        left = self.seconds - (self.clock() - self.started)
        needed = epochs * (self.epoch_seconds or 0.0)
        if left <= 0 or needed > left:
            raise BudgetSpent(f"time budget of {self.seconds:.0f} s: {what} needs ~{needed:.0f} s "
                              f"({epochs} epochs of {self.epoch_seconds or 0:.0f} s), {max(left, 0):.0f} s left")

    def record(self, result: dict) -> None:
        """Learn the slowest epoch of a finished run (its history's `epoch_seconds`)."""
        timed = [t for t in (result.get("history") or {}).get("epoch_seconds") or [] if t]
        if timed:
            self.epoch_seconds = max(self.epoch_seconds or 0.0, max(timed))


def run_claim(claim: Claim, settings: Settings, store: ResultStore, runs_dir: Path, arrays,
              log=print, arms: list[str] | None = None, budget: Budget | None = None) -> None:
    """Every missing result of `claim`: float starts, each arm's search, then the seeds.
    With a `budget`, `BudgetSpent` stops it before a run that would not fit."""
    budget = budget or Budget()
    epochs, search_epochs, float_epochs = claim_epochs(claim, settings)

    def execute(fields: dict, run_dir: Path, message: str) -> dict:
        budget.check(fields["epochs"], str(run_dir.relative_to(runs_dir)))
        log(f"[{claim.name}] {message}, {fields['epochs']} epochs")
        result = _execute(fields, run_dir, arrays, settings)
        budget.record(result)
        return result

    float_dirs: dict[int, str] = {}
    if float_epochs:
        for seed in sorted({SEARCH_SEED, *settings.seeds}):
            run_dir = runs_dir / claim.name / "float_start" / f"seed{seed}"
            key = (claim.name, "float_start", f"seed{seed}")
            if store.get(*key) is None or not (run_dir / "model.keras").exists():
                fields = arm_config(claim, claim.baseline, settings, values={"learning_rate": 1e-3},
                                    seed=seed, epochs=float_epochs)
                fields.update(optimizer="adam", quantizer="none", input_quantizer="none",
                              kernel_quantizer="none", lr_schedule="constant", optimizer_kwargs={})
                store.put(execute(fields, run_dir, f"float start, seed {seed}"), *key)
            float_dirs[seed] = str(run_dir)
    chosen = {}
    for arm in claim.arms:
        if arms and arm.name not in arms:
            continue
        owner = _canonical(claim, arm)

        def run_point(point, arm=arm, owner=owner):
            name = point_name(arm, point)
            fields = arm_config(claim, arm, settings, values=point_values(arm, point), seed=SEARCH_SEED,
                                epochs=search_epochs, init_from=float_dirs.get(SEARCH_SEED))
            store.put(execute(fields, runs_dir / owner[0] / owner[1] / name, f"{arm.name} {name}"), *owner, name)

        chosen[arm.name] = search(claim, arm, settings, store, run_point)["chosen"]
    for seed in settings.seeds:
        for arm in claim.arms:
            if arm.name not in chosen:
                continue
            owner = _canonical(claim, arm)
            if store.get(*owner, f"seed{seed}") is not None:
                continue
            values = chosen[arm.name]
            fields = arm_config(claim, arm, settings, values=values, seed=seed, epochs=epochs,
                                init_from=float_dirs.get(seed))
            store.put(execute(fields, runs_dir / owner[0] / owner[1] / f"seed{seed}",
                              f"{arm.name} seed {seed}, {values}"), *owner, f"seed{seed}")


# ------------------------------------------------------------------------ analysis


def best_checkpoint(history: dict) -> dict:
    """The exact-sign epoch with the best validation accuracy (first on ties) and its
    test accuracy: the checkpoint a user would keep, chosen on validation only."""
    val, test = history.get("val_accuracy") or [], history.get("test_accuracy") or []
    candidates = [i for i, (b, v) in enumerate(zip(binary_epochs(history), val))
                  if b and v is not None]
    if not candidates:
        return {"epoch": None, "val_accuracy": None, "test_accuracy": None}
    best = max(candidates, key=lambda i: (val[i], -i))
    return {"epoch": best + 1, "val_accuracy": val[best],
            "test_accuracy": test[best] if best < len(test) else None}


def exact_sign_switch(history: dict) -> dict | None:
    """Validation accuracy around an annealed run's switch to an exact-sign forward:
    the last soft epoch, the first exact-sign epoch and the best exact-sign epoch
    (`None` for a run that is binary throughout or never switches). How much the
    exact-sign phase recovers after its first epoch is the evidence for its length."""
    binary, val = binary_epochs(history), history.get("val_accuracy") or []
    first = binary.index(True) if True in binary else 0
    if first == 0:  # no soft epoch before the first exact-sign one, or no exact-sign epoch
        return None
    return {"epoch": first + 1, "last_soft": val[first - 1], "first_exact": val[first],
            "best_exact": best_checkpoint(history)["val_accuracy"]}


def bootstrap_interval(method: list[float], baseline: list[float], *, level: float = 0.95,
                       resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float, float]:
    """(difference of means, low, high): the percentile bootstrap interval of
    mean(method) − mean(baseline), resampling each arm's seeds with replacement."""
    import numpy as np

    rng = np.random.default_rng(seed)
    a, b = np.asarray(method, float), np.asarray(baseline, float)
    diffs = (rng.choice(a, (resamples, len(a))).mean(1) - rng.choice(b, (resamples, len(b))).mean(1))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return float(a.mean() - b.mean()), float(low), float(high)


def accuracy_verdict(interval: tuple[float, float, float]) -> str:
    """`reproduced` when the interval of method − baseline lies above 0, `reversed`
    when below, else `not reproduced`."""
    _, low, high = interval
    if low > 0:
        return "reproduced"
    if high < 0:
        return "reversed"
    return "not reproduced"


def speed_verdict(ratio: float | None, acc_verdict: str, accuracy_claim: str = "no_worse") -> str:
    """Faster (ratio < 1) without losing accuracy (`accuracy_claim="no_worse"`), or
    faster and more accurate (`"higher"`): `reproduced`; slower without gaining
    accuracy: `reversed`; otherwise `not reproduced`."""
    if accuracy_claim not in ("no_worse", "higher"):
        raise ValueError(f"accuracy_claim must be 'no_worse' or 'higher', got {accuracy_claim!r}")
    if ratio is None:
        return "not reproduced"
    accurate = acc_verdict == "reproduced" if accuracy_claim == "higher" else acc_verdict != "reversed"
    if ratio < 1 and accurate:
        return "reproduced"
    if ratio > 1 and acc_verdict != "reproduced":
        return "reversed"
    return "not reproduced"


def _median(values):
    finite = [v for v in values if v is not None]
    if len(finite) < len(values):  # a seed that never reached the target counts as slowest
        values = [v if v is not None else math.inf for v in values]
        med = statistics.median(values)
        return None if math.isinf(med) else med
    return statistics.median(values) if values else None


def _spread(values: list[float]) -> dict:
    return {"values": values, "mean": statistics.fmean(values) if values else None,
            "min": min(values) if values else None, "max": max(values) if values else None}


def _mean_of(series: list[list]) -> list[float | None]:
    """Per-epoch mean over seeds of per-layer/overall diagnostics (None-safe)."""
    if not series:
        return []
    n = min(len(s) for s in series)
    out = []
    for i in range(n):
        vals = [s[i] for s in series if s[i] is not None and not math.isnan(s[i])]
        out.append(statistics.fmean(vals) if vals else None)
    return out


def analyse_claim(claim: Claim, settings: Settings, store: ResultStore) -> dict:
    """Per-arm searches and results and, when every seed of every arm is there, the verdicts."""
    epochs, search_epochs, float_epochs = claim_epochs(claim, settings)
    arms = {}
    for arm in claim.arms:
        owner = _canonical(claim, arm)
        found = search(claim, arm, settings, store)
        seeds = {s: store.get(*owner, f"seed{s}") for s in settings.seeds}
        done = {s: r for s, r in seeds.items() if r is not None}
        best = {s: best_checkpoint(r["history"]) for s, r in done.items()}
        switches = [w for w in (exact_sign_switch(r["history"]) for r in done.values()) if w]
        diagnostics = {}
        if switches:
            diagnostics["exact_sign_switch"] = {
                "epoch": switches[0]["epoch"],
                **{k: _spread([w[k] for w in switches]) for k in ("last_soft", "first_exact", "best_exact")}}
        for key in ("tau_blocked", "would_flip_rate", "step_flip_rate", "flip_rate"):
            series = [r["history"][key] for r in done.values() if key in r["history"]]
            if series:
                diagnostics[key] = _mean_of(series)
        arms[arm.name] = {
            "label": arm.label,
            "config": _merge(claim.base, arm.config),
            "results_of": "/".join(owner),
            "search_axes": [dataclasses.asdict(a) for a in arm.axes],
            "search": found,
            "seeds_done": sorted(done),
            "final": _spread([r["test_accuracy"] for r in done.values()]),
            "best_checkpoint": _spread([b["test_accuracy"] for b in best.values()
                                        if b["test_accuracy"] is not None]),
            "best_epochs": [b["epoch"] for b in best.values()],
            "best_val": _spread([b["val_accuracy"] for b in best.values() if b["val_accuracy"] is not None]),
            "binary_epochs": {str(s): binary_epochs(r["history"]) for s, r in done.items()},
            "curves": {str(s): {k: v for k, v in r["history"].items() if "/" not in k}
                       for s, r in done.items()},
            "diagnostics": diagnostics,
            # Results from before train_seconds was recorded count their last stretch only.
            "wall_seconds": round(sum(r.get("train_seconds") or r["wall_seconds"] for r in done.values()), 1),
        }
    out = {"paper": claim.paper, "claim": claim.claim, "paper_setting": claim.paper_setting,
           "paper_result": claim.paper_result, "ours_differs": claim.ours_differs,
           "kind": claim.kind, "baseline": claim.baseline.name, "arms": arms,
           "epochs": epochs, "float_start_epochs": float_epochs, "seeds": list(settings.seeds),
           "search": {"points": SEARCH_POINTS, "seed": SEARCH_SEED, "epochs": search_epochs,
                      "picked_on": "best validation accuracy of an exact-sign epoch"}}
    complete = all(len(a["seeds_done"]) == len(settings.seeds) for a in arms.values())
    comparisons = {}
    if complete:
        base = arms[claim.baseline.name]
        for arm in claim.methods:
            mine = arms[arm.name]
            final = bootstrap_interval(mine["final"]["values"], base["final"]["values"])
            best = bootstrap_interval(mine["best_checkpoint"]["values"], base["best_checkpoint"]["values"])
            entry = {"best_checkpoint_difference": best, "final_difference": final,
                     "accuracy_verdict": accuracy_verdict(best),
                     "final_accuracy_verdict": accuracy_verdict(final), "ratio": None,
                     "epochs_to_target": None, "baseline_epochs_to_target": None}
            if claim.kind == "speed":
                key, how = claim.target
                higher = key != "loss"
                mine_e, base_e, targets = [], [], []
                for s in map(str, settings.seeds):
                    b_curve, b_bin = base["curves"][s][key], base["binary_epochs"][s]
                    b_vals = [v for v, b in zip(b_curve, b_bin) if b]
                    target = (max(b_vals) if higher else min(b_vals)) if how == "best" else b_curve[-1]
                    targets.append(target)
                    base_e.append(epochs_to(b_curve, target, higher, b_bin))
                    mine_e.append(epochs_to(mine["curves"][s][key], target, higher, mine["binary_epochs"][s]))
                m, b = _median(mine_e), _median(base_e)
                entry.update(epochs_to_target=mine_e, baseline_epochs_to_target=base_e,
                             target={"metric": key, "of_baseline": how, "per_seed": targets},
                             ratio=(m / b) if (m is not None and b) else None)
                entry["verdict"] = speed_verdict(entry["ratio"], entry["accuracy_verdict"], claim.accuracy_claim)
            else:
                entry["verdict"] = entry["accuracy_verdict"]
            comparisons[arm.name] = entry
    out["comparisons"] = comparisons
    headline = claim.methods[0].name
    if complete:
        c = comparisons[headline]
        verdict = c["verdict"]
        if claim.kind == "accuracy":  # the new method against every other arm: the worst verdict
            others = {a.name: accuracy_verdict(bootstrap_interval(
                arms[headline]["best_checkpoint"]["values"], arms[a.name]["best_checkpoint"]["values"]))
                for a in claim.arms if a.name != headline}
            out["headline_vs_every_arm"] = others
            verdict = min(others.values(), key=("reversed", "not reproduced", "reproduced").index)
        out["summary"] = {"verdict": verdict, "ratio": c["ratio"],
                          "difference": c["best_checkpoint_difference"], "method": headline}
    else:
        out["summary"] = {"verdict": "pending", "ratio": None, "difference": None, "method": headline}
    return out


# The STE baselines of the claims on the fully binary CNN: Adam with the clipped STE,
# each on its own paper's recipe. The ranking compares every arm with the one of them
# that validates best.
STE_ARMS = (("proxconnect", "bnn"), ("hyper_binarynet", "ste"))


def fully_binary(config: dict) -> bool:
    """Binary weights and activations in every quantized layer, with no float
    nonlinearity: what the claims on `_CNN` train (not FSG's weights-only ReLU net)."""
    return ("activation" not in config.get("model_kwargs", {})
            and "none" not in (config.get("input_quantizer"), config.get("kernel_quantizer")))


def cnn_ranking(analysis: dict) -> dict:
    """Every arm with all its seeds that trained the fully binary CNN, across claims
    (an arm shared between claims once), ranked by its mean best exact-sign validation
    accuracy, with the best-validation checkpoint's test accuracy and its difference
    from the best-validating STE baseline (`STE_ARMS`): the answer to "which method
    trains this network best", chosen on validation only."""
    rows, seen = [], set()
    for claim_name, a in analysis.items():
        for arm_name, arm in a["arms"].items():
            if (not fully_binary(arm["config"]) or arm["results_of"] in seen
                    or len(arm["seeds_done"]) != len(a["seeds"]) or not arm["best_val"]["values"]):
                continue
            seen.add(arm["results_of"])
            rows.append({"claim": claim_name, "arm": arm_name, "label": arm["label"],
                         "val": arm["best_val"], "test": arm["best_checkpoint"],
                         "chosen": arm["search"]["chosen"]})
    rows.sort(key=lambda r: -r["val"]["mean"])
    stes = [r for r in rows if (r["claim"], r["arm"]) in STE_ARMS]
    reference = stes[0] if stes else None
    for rank, row in enumerate(rows, 1):
        row["rank"], row["reference"] = rank, row is reference
        row["vs_ste"] = (None if reference is None or row is reference else
                         bootstrap_interval(row["test"]["values"], reference["test"]["values"]))
    return {"reference": None if reference is None else f"{reference['claim']}/{reference['arm']}",
            "rows": rows}


# ------------------------------------------------------------------------ report


def _fmt_pct(x):
    return "–" if x is None else f"{100 * x:.2f}"


def _fmt_spread(spread):
    if spread["mean"] is None:
        return "–"
    return f"{_fmt_pct(spread['mean'])} ({_fmt_pct(spread['min'])}–{_fmt_pct(spread['max'])})"


def _fmt_interval(interval):
    if interval is None:
        return "–"
    d, low, high = interval
    return f"{100 * d:+.2f} [{100 * low:+.2f}, {100 * high:+.2f}]"


def _fmt_epochs(comparison):
    mine, base = comparison.get("epochs_to_target"), comparison.get("baseline_epochs_to_target")
    if not mine:
        return "–"
    seq = lambda xs: ", ".join("never" if x is None else str(x) for x in xs)  # noqa: E731
    return f"{seq(mine)} / {seq(base)}"


def _fmt_values(values):
    return ", ".join(f"{k.split('.')[-1]}={v:g}" for k, v in (values or {}).items()) or "–"


PROTOCOL = (
    "every arm on a binary CNN, its own paper's recipe, the same data and epoch budget; "
    f"the same search budget per arm ({SEARCH_POINTS} points over the learning rate and the "
    "arm's key hyperparameter, one seed, 1/3 of the epochs, picked on the best validation "
    "accuracy of an exact-sign epoch; a winner on an outer point extended once); annealed arms "
    f"end with an exact-sign phase of {EXACT_SIGN_FRACTION:.0%} of the epochs and only exact-sign "
    "epochs count; per seed the final-epoch test accuracy and the test accuracy of the "
    "best-validation exact-sign epoch; verdicts on the latter: the difference of means with a 95 % "
    "bootstrap interval over seeds, 'reproduced' above 0, 'reversed' below 0, else 'not "
    "reproduced'; speed claims 'reproduced' when the median ratio of epochs to the baseline's "
    "target (exact-sign epochs only) is < 1 without an accuracy reversal (with an accuracy "
    "'reproduced' where the paper also claims higher accuracy: hyper_binarynet)")


def write_report(analysis: dict, out_dir: Path, command: str, settings: Settings) -> None:
    """`<out_dir>/reproduce.json`, `.md` and `.png` from the claims' analyses."""
    report = {
        "benchmark": BENCHMARK, "version": VERSION,
        "date": datetime.date.today().isoformat(),
        "command": command,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "dataset": settings.dataset, "seeds": list(settings.seeds),
        "protocol": PROTOCOL,
        "summary": {name: a["summary"] for name, a in analysis.items()},
        "claims": analysis,
        "cnn_ranking": cnn_ranking(analysis),
    }
    lines = [
        "# Reproducing the source papers' claims (protocol 2)",
        "",
        f"Generated by `{command}` on {report['date']} ({report['machine']}). "
        f"Data: {settings.dataset}; seeds {list(settings.seeds)}. Protocol 1's report (MLPs, "
        "superseded) is kept as [reproduce-protocol1.md](reproduce-protocol1.md).",
        "",
        "Protocol: " + PROTOCOL + ".",
        "",
        "| claim | method vs baseline | verdict | test acc., best-val checkpoint, mean (min–max) "
        "| difference [95 % CI] (points) | final-epoch test acc. | difference [95 % CI] "
        "| epochs to target per seed (method / baseline) | ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, a in analysis.items():
        base = a["arms"][a["baseline"]]
        for arm_name, arm in a["arms"].items():
            if arm_name == a["baseline"]:
                continue
            c = a["comparisons"].get(arm_name, {})
            ratio = c.get("ratio")
            lines.append(
                f"| `{name}` | {arm['label']} vs {base['label']} | {c.get('verdict', 'pending')} | "
                f"{_fmt_spread(arm['best_checkpoint'])} vs {_fmt_spread(base['best_checkpoint'])} | "
                f"{_fmt_interval(c.get('best_checkpoint_difference'))} | "
                f"{_fmt_spread(arm['final'])} vs {_fmt_spread(base['final'])} | "
                f"{_fmt_interval(c.get('final_difference'))} | "
                f"{_fmt_epochs(c)} | {'–' if ratio is None else f'{ratio:.2f}'} |"
            )
    for name, a in analysis.items():
        lines += ["", f"## `{name}`: {a['claim']}", "",
                  f"- Paper: {a['paper']}; setting: {a['paper_setting']}; result: {a['paper_result']}.",
                  f"- Ours: {a['ours_differs']}; {a['epochs']} epochs"
                  + (f" after {a['float_start_epochs']} float epochs" if a["float_start_epochs"] else "")
                  + f"; search: {a['search']['points']} points, {a['search']['epochs']} epochs, seed "
                  f"{a['search']['seed']}.",
                  f"- Verdict: **{a['summary']['verdict']}**.", "",
                  "| arm | search (point: best exact-sign val acc) | chosen | seeds done "
                  "| best-val checkpoint test acc. per seed (epoch) | final test acc. per seed |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for arm in a["arms"].values():
            found = arm["search"]
            points = ", ".join(f"{_fmt_values(p['values'])}: {_fmt_pct(p['val_accuracy'])}"
                               for p in found["points"].values())
            if found["extended"]:
                points += f" (extended: {found['extended']})"
            chosen = _fmt_values(found["chosen"]) + (" (on an edge)" if found["chosen_on_edge"] else "")
            best = ", ".join(f"{_fmt_pct(v)} ({e})" for v, e in zip(arm["best_checkpoint"]["values"],
                                                                     arm["best_epochs"])) or "–"
            final = ", ".join(_fmt_pct(x) for x in arm["final"]["values"]) or "–"
            lines.append(f"| {arm['label']} | {points} | {chosen} | "
                         f"{len(arm['seeds_done'])}/{len(a['seeds'])} | {best} | {final} |")
        switched = {arm["label"]: arm["diagnostics"]["exact_sign_switch"] for arm in a["arms"].values()
                    if "exact_sign_switch" in arm["diagnostics"]}
        if switched:
            lines += ["", "Validation accuracy at the switch to the exact-sign forward, mean (min–max) "
                      "over seeds: the last soft epoch, the first exact-sign epoch, the best exact-sign "
                      "epoch.", ""]
            for label, w in switched.items():
                lines.append(f"- {label} (exact sign from epoch {w['epoch']}): {_fmt_spread(w['last_soft'])} "
                             f"→ {_fmt_spread(w['first_exact'])} → {_fmt_spread(w['best_exact'])}")
        blocked = {arm["label"]: arm["diagnostics"] for arm in a["arms"].values()
                   if arm["diagnostics"].get("tau_blocked")}
        if blocked:
            lines += ["", "Flip diagnostics (mean over seeds, per epoch): share of would-be flips "
                      "that tau blocked / share of weights flipped per step.", ""]
            for label, d in blocked.items():
                tb = ", ".join("–" if v is None else f"{100 * v:.1f}" for v in d["tau_blocked"])
                fr = ", ".join("–" if v is None else f"{100 * v:.3f}" for v in d.get("step_flip_rate", []))
                lines.append(f"- {label}: tau blocked % [{tb}]; flipped per step % [{fr}]")
    ranking = report["cnn_ranking"]
    if ranking["rows"]:
        lines += ["", "## Every arm on the fully binary CNN, ranked on validation", "",
                  "Arms of every claim that trained the same binary network (same data, epochs and "
                  "search budget) and have all their seeds, ranked by the mean best exact-sign "
                  "validation accuracy; the test accuracy is that checkpoint's. Difference from the "
                  f"best-validating STE baseline (`{ranking['reference'] or 'none finished yet'}`) "
                  "with its 95 % bootstrap interval over seeds.", "",
                  "| rank | arm (claim) | chosen | val. acc. mean (min–max) | test acc. mean (min–max) "
                  "| vs STE, points [95 % CI] |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for r in ranking["rows"]:
            lines.append(f"| {r['rank']} | {r['label']} (`{r['claim']}`) | {_fmt_values(r['chosen'])} | "
                         f"{_fmt_spread(r['val'])} | {_fmt_spread(r['test'])} | "
                         f"{'reference' if r['reference'] else _fmt_interval(r['vs_ste'])} |")
    lines += ["", "![curves](reproduce.png)", ""]
    _common.write_report(out_dir, "reproduce", report, lines)
    _plot(analysis, out_dir / "reproduce.png")


def _plot(analysis: dict, path: Path) -> None:
    """Validation curves (training loss for fsg) per claim, exact-sign phase shaded,
    and a row of Bop-family flip diagnostics."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(analysis)
    fig, axes = plt.subplots(2, len(names), figsize=(4.2 * len(names), 6.4), squeeze=False)
    for col, name in enumerate(names):
        a = analysis[name]
        ax = axes[0][col]
        key = "loss" if name == "fsg" else "val_accuracy"
        shaded = False
        for i, arm in enumerate(a["arms"].values()):
            curves = [c[key] for c in arm["curves"].values() if c.get(key)]
            if not curves:
                continue
            n = min(len(c) for c in curves)
            stack = np.array([[np.nan if v is None else v for v in c[:n]] for c in curves], float)
            x = np.arange(1, n + 1)
            ax.plot(x, np.nanmedian(stack, 0), color=f"C{i}", label=arm["label"])
            ax.fill_between(x, np.nanmin(stack, 0), np.nanmax(stack, 0), color=f"C{i}", alpha=0.2)
            binary = next(iter(arm["binary_epochs"].values()), [])
            if not shaded and binary and not all(binary):
                first = binary.index(True) if True in binary else n
                ax.axvspan(first + 0.5, n + 0.5, color="grey", alpha=0.12, label="exact-sign phase")
                shaded = True
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss" if key == "loss" else "validation accuracy")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
        ax = axes[1][col]
        plotted = False
        for i, arm in enumerate(a["arms"].values()):  # an arm has the same colour in both rows
            for key, style in (("tau_blocked", "-"), ("step_flip_rate", "--")):
                series = arm["diagnostics"].get(key)
                if series:
                    ax.plot(np.arange(1, len(series) + 1), [np.nan if v is None else v for v in series],
                            style, color=f"C{i}", label=arm["label"] if style == "-" else None)
                    plotted = True
        if plotted:
            ax.set_yscale("symlog", linthresh=1e-4)
            ax.set_xlabel("epoch")
            ax.set_ylabel("share (symlog scale)")
            ax.set_title(f"{name}: tau-blocked share of would-be flips (solid),\n"
                         "share of weights flipped per step (dashed)", fontsize=8)
            ax.legend(fontsize=6)
        else:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ------------------------------------------------------------------------ main


def parse_args(argv=None):
    p = base_parser(__doc__.split("\n\n")[0], ("quick", "results_dir", "out_dir", "data_dir", "report_only"),
                    results_dir={"help": "per-result JSON files (default benchmarks/results/reproduce, "
                                         "or runs/reproduce-quick with --quick)"},
                    data_dir={"help": "Fashion-MNIST folder (default: bnnzoo.data's lookup)"})
    p.add_argument("--claims", nargs="+", help=f"claims to run (default all): {', '.join(CLAIMS)}")
    p.add_argument("--arms", nargs="+", help="run only these arms of the claims (default all)")
    p.add_argument("--runs-dir", help="run directories with checkpoints (default runs/reproduce)")
    p.add_argument("--time-budget", type=float, default=0,
                   help="seconds for this invocation's runs: a run starts only if its epochs fit in "
                        "what is left, at the slowest epoch timed so far (0: no limit)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.run_one:
        return serve_child(args.run_one, _run_one)
    try:
        names = check_claims(args.claims)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    known_arms = {a.name for n in names for a in CLAIMS[n].arms}
    unknown = sorted(set(args.arms or ()) - known_arms)
    if unknown:
        print(f"error: Unknown arm {unknown[0]!r} of claims {', '.join(names)}. Valid names: "
              f"{', '.join(sorted(known_arms))}", file=sys.stderr)
        return 2
    settings = Settings(data_dir=args.data_dir)
    if args.quick:
        settings = Settings(dataset=QUICK["dataset"], seeds=QUICK["seeds"], quick=True, isolate=False)
    results_dir = Path(args.results_dir or (REPO / ("runs/reproduce-quick" if args.quick
                                                    else "benchmarks/results/reproduce")))
    runs_dir = Path(args.runs_dir or (results_dir / "runs" if args.quick else REPO / "runs/reproduce"))
    try:
        store = ResultStore(results_dir, settings)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    command = "python benchmarks/reproduce.py" + (" " + " ".join(argv) if argv else
                                                   (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else ""))
    if not args.report_only:
        import bnnzoo

        # Isolated runs load the data in their own process.
        arrays = None if settings.isolate else bnnzoo.data.load_arrays(settings.dataset, data_dir=settings.data_dir)
        budget = Budget(args.time_budget)
        try:
            for name in names:
                run_claim(CLAIMS[name], settings, store, runs_dir, arrays, arms=args.arms, budget=budget,
                          log=lambda m: print(f"{datetime.datetime.now():%H:%M:%S} {m}", flush=True))
        except BudgetSpent as spent:
            print(f"{spent}; rerun the same command to continue", flush=True)
    analysis = {name: analyse_claim(CLAIMS[name], settings, store) for name in CLAIMS
                if args.quick is False or name in names}
    write_report(analysis, Path(args.out_dir), command.replace(str(REPO) + "/", ""), settings)
    for name, a in analysis.items():
        s = a["summary"]
        print(f"{name}: {s['verdict']} (difference={s['difference']}, ratio={s['ratio']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
