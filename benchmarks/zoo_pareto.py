"""Size against accuracy for every shipped artifact: the zoo's Pareto table.

For each shipped card (`artifacts/<family>/<tag>/card.json`) this loads the artifact,
converts it with the Larq Compute Engine and checks the flatbuffer on the whole test
set (`bnnzoo.zoo.measure_lce_export`), then tabulates test accuracy, binary-weight
memory, float32 memory and the LCE file size per dataset, marking the artifacts no
other artifact of the same dataset beats on both accuracy and LCE size.

Each artifact's measurement is its own JSON file under
`benchmarks/results/zoo_pareto/` (keyed by the card's sha256), so a rerun only
measures new or retrained artifacts.

    .venv/bin/python benchmarks/zoo_pareto.py            # every shipped card
    .venv/bin/python benchmarks/zoo_pareto.py --dataset fashion_mnist
    .venv/bin/python benchmarks/zoo_pareto.py --update-cards   # and write each card's lce_export
"""

from __future__ import annotations

import dataclasses
import datetime
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ResultStore, base_parser, write_json_atomic, write_report as write_files  # noqa: E402

BENCHMARK, VERSION = "zoo_pareto", 2
# Largest |softmax output difference| accepted between LCE and Keras; top-1 must agree
# on every test image. Looser than export's 1e-4: binarynet_mlp:fashion_mnist differs by
# 0.0063 at 100 % top-1 agreement, and the table reports each artifact's difference.
ATOL = 1e-2


def shipped_cards(dataset: str | None = None):
    """Every shipped (local) card, optionally of one dataset, sorted by dataset and name."""
    from bnnzoo import pretrained
    from bnnzoo.models import list_models

    cards = [c for name in list_models() for c in pretrained.list_cards(name) if c.shipped]
    if dataset is not None:
        known = sorted({c.dataset for c in cards})
        if dataset not in known:
            raise SystemExit(f"--dataset {dataset!r} has no shipped artifact; datasets with one: {', '.join(known)}")
        cards = [c for c in cards if c.dataset == dataset]
    return sorted(cards, key=lambda c: (c.dataset, c.name, c.tag))


def measure(card, results_dir: Path) -> dict:
    """The card's LCE measurement, from its result file or measured now and stored."""
    from bnnzoo import zoo
    from bnnzoo.models import create_model

    def run():
        print(f"measuring {card.name}:{card.tag} ...", flush=True)
        model = create_model(card.name, weights=card.tag)
        lce = zoo.measure_lce_export(model, card.dataset, atol=ATOL)
        return {"benchmark": BENCHMARK, "version": VERSION, "sha256": card.sha256, "lce_export": lce,
                "date": datetime.date.today().isoformat()}

    return ResultStore(results_dir, mark_finished=False).get_or_run(
        run, f"{card.name}-{card.tag}",
        accept=lambda r: r.get("version") == VERSION and r.get("sha256") == card.sha256)


def update_card(card, measured: dict) -> bool:
    """Record the measurement as the shipped card's `lce_export`; False when it is
    already there or the export failed (a failed export never replaces a good record)."""
    from bnnzoo import pretrained

    lce = measured["lce_export"]
    if "error" in lce or card.lce_export == lce:
        return False
    updated = dataclasses.replace(card, lce_export=lce)
    write_json_atomic(pretrained.artifacts_dir() / card.name / card.tag / pretrained.CARD_FILE, updated.to_dict())
    return True


def _size(r: dict) -> float:
    return float("inf") if r["lce_bytes"] is None else r["lce_bytes"]


def pareto_front(rows: list[dict]) -> set[str]:
    """Artifacts (by `artifact`) of `rows` that no other row beats on both accuracy
    (higher) and LCE file size (smaller); a row without a size counts as infinitely large."""
    def beats(o, r):
        return (o["test_accuracy"] >= r["test_accuracy"] and _size(o) <= _size(r)
                and (o["test_accuracy"] > r["test_accuracy"] or _size(o) < _size(r)))

    return {r["artifact"] for r in rows if not any(beats(o, r) for o in rows if o is not r)}


def row(card, measured: dict) -> dict:
    lce = measured["lce_export"]  # a failed export has only "error" (and the versions)
    return {
        "artifact": f"{card.name}:{card.tag}", "dataset": card.dataset,
        "test_accuracy": card.test_accuracy, "params": card.params, "binary_params": card.binary_params,
        "binary_weight_bytes": card.weight_memory_bytes, "float32_bytes": card.float32_memory_bytes,
        "lce_bytes": lce.get("file_bytes"),
        "lce_top1_agreement": lce.get("top1_agreement"),
        "lce_test_images": lce.get("test_images"),
        "lce_max_abs_diff": lce.get("max_abs_diff"),
        "lce_error": lce.get("error"),
        "recipe": card.recipe,
    }


def _fmt_diff(x):
    return "–" if x is None else f"{x:.1e}"


def kib(n):
    return "–" if n is None else f"{n / 1024:.1f}"


def write_report(rows: list[dict], out_dir: Path, command: str) -> None:
    """`<out_dir>/zoo_pareto.json` and `.md` from `rows`, each row marked `pareto` or not."""
    fronts = set()
    for dataset in sorted({r["dataset"] for r in rows}):
        fronts |= pareto_front([r for r in rows if r["dataset"] == dataset])
    for r in rows:
        r["pareto"] = r["artifact"] in fronts
    machine = f"{platform.machine()}, {platform.python_version()}"
    report = {"benchmark": BENCHMARK, "version": VERSION, "date": datetime.date.today().isoformat(),
              "command": command, "machine": machine, "rows": rows}
    lines = [
        "# Shipped artifacts: accuracy against size",
        "",
        f"Generated by `{command}` on {datetime.date.today().isoformat()} ({machine}). "
        "Binary-weight memory counts 1 bit per binary weight and 32 bits per other "
        "parameter (the card's `weight_memory_bytes`); the LCE file is the converted "
        f"flatbuffer, checked against Keras on every test image (top-1, and softmax outputs within {ATOL:g}). "
        "★: no other artifact of the "
        "same dataset is both at least as accurate and at most as large (LCE file).",
        "",
        "| artifact | dataset | test accuracy | binary-weight KiB | float32 KiB | ratio | LCE file KiB "
        "| LCE top-1 agreement | max output diff | Pareto |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        ratio = (f"1/{r['float32_bytes'] / r['binary_weight_bytes']:.0f}"
                 if r["binary_weight_bytes"] and r["float32_bytes"] else "–")
        agree = ("–" if r["lce_top1_agreement"] is None
                 else f"{100 * r['lce_top1_agreement']:.2f} % of {r['lce_test_images']}")
        if r["lce_error"]:
            agree = f"export failed: {r['lce_error'][:80]}"
        lines.append(f"| `{r['artifact']}` | {r['dataset']} | {100 * r['test_accuracy']:.2f} % | "
                     f"{kib(r['binary_weight_bytes'])} | {kib(r['float32_bytes'])} | {ratio} | "
                     f"{kib(r['lce_bytes'])} | {agree} | "
                     f"{_fmt_diff(r['lce_max_abs_diff'])} | "
                     f"{'★' if r['pareto'] else ''} |")
    # The committed layout of zoo_pareto.json (indent 1, no final newline) is kept.
    write_files(out_dir, "zoo_pareto", report, lines + [""], indent=1, final_newline=False)


def main(argv=None) -> int:
    p = base_parser(__doc__.split("\n\n")[0], ("results_dir", "out_dir"),
                    results_dir={"default": str(ROOT / "benchmarks" / "results" / "zoo_pareto")})
    p.add_argument("--dataset", help="only the artifacts of this dataset (default: every one)")
    p.add_argument("--update-cards", action="store_true",
                   help="also record each measurement as the shipped card's lce_export")
    args = p.parse_args(argv)
    cards = shipped_cards(args.dataset)
    measured = [(c, measure(c, Path(args.results_dir))) for c in cards]
    if args.update_cards:
        for c, m in measured:
            if update_card(c, m):
                print(f"updated artifacts/{c.name}/{c.tag}/card.json", flush=True)
    rows = [row(c, m) for c, m in measured]
    command = "python benchmarks/zoo_pareto.py" + (f" --dataset {args.dataset}" if args.dataset else "")
    write_report(rows, Path(args.out_dir), command)
    for r in rows:
        print(f"{r['artifact']:32s} {100 * r['test_accuracy']:6.2f} %  binary {kib(r['binary_weight_bytes'])} KiB  "
              f"LCE {kib(r['lce_bytes'])} KiB  agreement {r['lce_top1_agreement']}{'  *' if r['pareto'] else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
