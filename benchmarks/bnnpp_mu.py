"""BNN++: how far should mu grow? Validation accuracy for each cap of the mu schedule.

BNN++'s backward is the derivative of the sign-Swish SS_mu it anneals; for large mu
that derivative is near zero or negative for most inputs. This sweep trains the same
binary MLP on Fashion-MNIST with mu growing geometrically from 1 to each cap in
`CAPS` (exact sign in the last epoch, as `bnnzoo.training.train` does), one seed,
and reports the final and best *validation* accuracy (the test split is not used to
choose). It is the evidence behind `bnnzoo.callbacks.MU_MAX["sign_swish"]`.

Resumable: one JSON per cap under `--results-dir`; a rerun skips finished caps.
Writes `<out-dir>/bnnpp_mu.json` and `.md`.

    .venv/bin/python benchmarks/bnnpp_mu.py
"""

from __future__ import annotations

import datetime
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ResultStore, base_parser, write_report  # noqa: E402

CAPS = (2.0, 3.0, 5.0, 10.0, 20.0, 100.0)
FULL = dict(dataset="fashion_mnist", epochs=10, units=256, batch_size=128, learning_rate=3e-3)
QUICK = dict(dataset="digits", epochs=2, units=16, batch_size=32, learning_rate=1e-2)


def run_cap(cap: float | None, settings: dict, arrays, data_dir=None) -> dict:
    """One run: mu from 1 to `cap`; `cap=None` is the `ste_sign` reference run."""
    from bnnzoo.callbacks import GeometricSchedule, QuantizerAnnealing
    from bnnzoo.training import TrainConfig, train

    config = TrainConfig(model="binarynet_mlp", dataset=settings["dataset"],
                         quantizer="bnnpp" if cap else "ste_sign",
                         epochs=settings["epochs"], batch_size=settings["batch_size"],
                         learning_rate=settings["learning_rate"], lr_schedule="linear",
                         annealing="none", model_kwargs={"units": settings["units"]},
                         data_dir=data_dir)
    callbacks = [QuantizerAnnealing(GeometricSchedule(1.0, cap, config.epochs), "mu",
                                    final_epoch=config.epochs - 1)] if cap else []
    result = train(config, callbacks=callbacks, arrays=arrays, verbose=0)
    val = result.history["val_accuracy"]
    return {"cap": cap, "val_accuracy_final": val[-1], "val_accuracy_best": max(val),
            "val_accuracy": val, "mu": result.history.get("quantizer_mu")}


def main(argv=None) -> int:
    p = base_parser(__doc__.split("\n\n")[0], ("quick", "results_dir", "out_dir", "data_dir"),
                    results_dir={"help": "one JSON per cap (default benchmarks/results/bnnpp_mu)"})
    p.add_argument("--caps", type=float, nargs="+", default=list(CAPS))
    args = p.parse_args(argv)
    settings = QUICK if args.quick else FULL
    # Results of other settings are not reused: their cap is trained again.
    results = ResultStore(args.results_dir or REPO / "benchmarks/results/bnnpp_mu", mark_finished=False)
    import bnnzoo

    arrays = bnnzoo.data.load_arrays(settings["dataset"], data_dir=args.data_dir)
    rows = []
    reference = None
    for cap in [*args.caps, None]:
        def run(cap=cap):
            what = f"mu 1 -> {cap:g}" if cap else "ste_sign reference"
            print(f"{datetime.datetime.now():%H:%M:%S} {what}", flush=True)
            return {**run_cap(cap, settings, arrays, args.data_dir), "settings": settings}

        row = results.get_or_run(run, f"cap{cap:g}" if cap else "ste_sign",
                                 accept=lambda r: r.get("settings") == settings)
        if cap:
            rows.append(row)
        else:
            reference = row
    best = max(rows, key=lambda r: r["val_accuracy_final"])
    command = "python benchmarks/bnnpp_mu.py" + (" " + " ".join(argv) if argv else "")
    report = {"command": command, "settings": settings, "date": datetime.date.today().isoformat(),
              "best_cap": best["cap"], "results": rows, "ste_sign_reference": reference}
    lines = ["# BNN++: validation accuracy per cap of the mu schedule", "",
             f"`{command}`; binary MLP {settings['units']} units x 3, {settings['dataset']}, "
             f"{settings['epochs']} epochs, Adam {settings['learning_rate']:g} (linear decay), "
             "mu from 1 to the cap geometrically, exact sign in the last epoch, seed 0.", "",
             "| mu cap | final val accuracy | best val accuracy |", "| --- | --- | --- |"]
    lines += [f"| {r['cap']:g} | {100 * r['val_accuracy_final']:.2f} | {100 * r['val_accuracy_best']:.2f} |"
              for r in rows]
    lines += [f"| `ste_sign` (reference, same settings) | {100 * reference['val_accuracy_final']:.2f} | "
              f"{100 * reference['val_accuracy_best']:.2f} |"]
    lines += ["", f"Best final validation accuracy: cap {best['cap']:g}. One seed, validation split "
              "only: a guide for the default, not a comparison (that is `benchmarks/reproduce.py`).", ""]
    write_report(args.out_dir, "bnnpp_mu", report, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
