"""Which method won on validation, as a model card states it.

A recipe's `[artifact]` table may name the reproduction benchmark's report
(`method_evidence = "docs/benchmarks/reproduce.json"`, written by
`benchmarks/reproduce.py`); `bnnzoo publish` then records on the card
(`Card.method_selection`) what that report's cross-claim ranking found: the arm
with the best mean validation accuracy on its fully binary CNN, the STE
baseline it is measured against, the arms whose test-accuracy difference from
STE has a 95 % bootstrap interval above zero (they "beat STE"), and the claims
still pending. The card says in words which of these the recipe follows.

The report's network is the benchmark's (BinaryNet at width 0.25 on
Fashion-MNIST), not necessarily the recipe's: the card names it.

!!! example
    ```python
    import json
    from pathlib import Path
    from bnnzoo.pretrained.evidence import method_selection

    ranking = {"reference": "proxconnect/bnn", "rows": [
        {"claim": "proxconnect", "arm": "bnn_plus", "label": "BNN+", "rank": 1, "reference": False,
         "val": {"mean": 0.920}, "test": {"mean": 0.911}, "vs_ste": [0.0, -0.002, 0.001]},
        {"claim": "proxconnect", "arm": "bnn", "label": "BNN (STE)", "rank": 2, "reference": True,
         "val": {"mean": 0.919}, "test": {"mean": 0.911}, "vs_ste": None}]}
    Path("reproduce.json").write_text(json.dumps({
        "benchmark": "reproduce", "version": 2, "date": "2026-12-07", "dataset": "fashion_mnist",
        "summary": {"proxconnect": {"verdict": "reversed"}, "fsg": {"verdict": "pending"}},
        "cnn_ranking": ranking}))
    report = json.loads(Path("reproduce.json").read_text())
    selection = method_selection(report, followed="proxconnect/bnn", source="reproduce.json")
    assert selection["best_on_validation"] == "proxconnect/bnn_plus"
    assert selection["beats_ste"] == [] and selection["pending_claims"] == ["fsg"]
    print(selection["statement"])
    ```
"""

from __future__ import annotations

from typing import Any

__all__ = ["method_selection"]

# The network every arm of the reproduction benchmark's ranking trained.
BENCHMARK_NETWORK = "BinaryNet CNN at width 0.25"


def _arm(row: dict[str, Any]) -> str:
    return f"{row['claim']}/{row['arm']}"


def method_selection(report: dict[str, Any], followed: str | None = None, *,
                     source: str = "docs/benchmarks/reproduce.json") -> dict[str, Any]:
    """What the reproduction report `report` says about the best training method.

    Args:
        report: the JSON object of a `reproduce.json` written by
            `benchmarks/reproduce.py` (`bnnzoo publish` reads the file a recipe's
            `method_evidence` names).
        followed: the ranked arm (`"claim/arm"`) whose method the recipe uses, or
            `None` when it uses the STE baseline's (the default).
        source: where the report came from, recorded on the card and named in errors.

    Returns:
        A dict with `source`, `report_version`, `report_date`, `network`, `dataset`,
        `reference` (the STE baseline), `best_on_validation` and its
        `validation_accuracy`, `reference_validation_accuracy`, `beats_ste` (arms
        whose 95 % interval of the test-accuracy difference from STE lies above
        zero), `pending_claims`, `followed` and a one-sentence `statement`.

    Raises:
        ValueError: `report` is not a reproduction report, ranks no arm yet, or
            `followed` is not one of its ranked arms.
    """
    if not isinstance(report, dict) or report.get("benchmark") != "reproduce":
        raise ValueError(f"method_evidence {source!r} is not a reproduction report "
                         "(benchmarks/reproduce.py writes docs/benchmarks/reproduce.json)")
    rows = (report.get("cnn_ranking") or {}).get("rows") or []
    reference = next((row for row in rows if row.get("reference")), None)
    if not rows or reference is None:
        raise ValueError(f"method_evidence {source!r} ranks no arm against STE yet; "
                         "finish a claim of benchmarks/reproduce.py first")
    ranked = [_arm(row) for row in rows]
    followed = followed or _arm(reference)
    if followed not in ranked:
        raise ValueError(f"method_followed {followed!r} is not an arm of {source!r}'s ranking; "
                         f"expected one of {', '.join(ranked)}")
    best = min(rows, key=lambda row: row["rank"])
    beats = [_arm(row) for row in rows if row.get("vs_ste") and row["vs_ste"][1] > 0]
    pending = sorted(name for name, s in (report.get("summary") or {}).items()
                     if (s or {}).get("verdict", "pending") == "pending")
    labels = {_arm(row): row.get("label", _arm(row)) for row in rows}
    won = (f"{labels[_arm(best)]} validated best ({100 * best['val']['mean']:.2f} % vs STE's "
           f"{100 * reference['val']['mean']:.2f} %)")
    if beats:
        verdict = f"{', '.join(labels[a] for a in beats)} beat STE on test with a 95 % interval above 0"
    else:
        verdict = "no method beat STE with a 95 % interval above 0"
    statement = (f"On the reproduction benchmark's fully binary {BENCHMARK_NETWORK} "
                 f"({report.get('dataset', 'its dataset')}, report of {report.get('date', '?')}): {won}; "
                 f"{verdict}"
                 + (f"; claims still pending: {', '.join(pending)}" if pending else "")
                 + f". This recipe uses {labels[followed]}'s method.")
    return {
        "source": str(source),
        "report_version": report.get("version"),
        "report_date": report.get("date"),
        "network": BENCHMARK_NETWORK,
        "dataset": report.get("dataset"),
        "reference": _arm(reference),
        "reference_validation_accuracy": reference["val"]["mean"],
        "best_on_validation": _arm(best),
        "validation_accuracy": best["val"]["mean"],
        "beats_ste": beats,
        "pending_claims": pending,
        "followed": followed,
        "statement": statement,
    }
