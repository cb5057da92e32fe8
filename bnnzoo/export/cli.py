"""`bnnzoo export`: the subcommand's parser and handler (registered by `bnnzoo.cli`)."""

from __future__ import annotations

import argparse
import json

from bnnzoo.cli_support import ctrl_c_as_interrupt, fail, positive_float, positive_int
from bnnzoo.data import DataUnavailableError
from bnnzoo.export.errors import ExportError
from bnnzoo.export.report import FORMATS, export_model

__all__ = ["add_parser", "cmd_export"]


def add_parser(subparsers) -> None:
    """Add `bnnzoo export` to the CLI.

    Args:
        subparsers: the `bnnzoo` parser's subparsers action.
    """
    p = subparsers.add_parser(
        "export", help="convert a model to LCE/TFLite/SavedModel and check it against Keras"
    )
    p.add_argument("source", metavar="RUN_OR_MODEL",
                   help="run directory, saved model file, or NAME:TAG of a pretrained model")
    p.add_argument("--format", "-f", choices=FORMATS, default="lce")
    p.add_argument("--out", "-o", help="output file (directory for savedmodel)")
    p.add_argument("--dataset", "-d", help="dataset whose test images check the export")
    p.add_argument("--data-dir")
    p.add_argument("--num-images", type=positive_int, help="check on the first N test images")
    p.add_argument("--atol", type=positive_float, default=1e-4,
                   help="largest allowed |output difference| (default 1e-4)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--allow-non-binary", action="store_true",
                   help="export a model whose annealed quantizers (bnnpp, ste_warmup, proxconnect) have "
                        "not reached exact sign; refused by default")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    """Run `bnnzoo export` and print its report (as JSON with `--json`).

    Args:
        args: the parsed `bnnzoo export` arguments.

    Returns:
        0; a failed export exits with the error message instead.
    """
    try:
        with ctrl_c_as_interrupt():
            report = export_model(args.source, args.format, args.out, dataset=args.dataset,
                                  num_images=args.num_images, data_dir=args.data_dir, atol=args.atol,
                                  allow_non_binary=args.allow_non_binary)
    except (ExportError, ValueError, FileNotFoundError, DataUnavailableError) as err:
        fail(str(err))
    except KeyboardInterrupt:
        fail(f"interrupted; {args.out or 'the output'} was not written (a file already there is unchanged)")
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.summary())
    return 0
