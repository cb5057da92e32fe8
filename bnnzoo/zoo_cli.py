"""`bnnzoo publish`: the subcommand's parser and handler (registered by `bnnzoo.cli`).

Training never writes artifacts: `bnnzoo train --recipe R --out RUN` trains and
records the recipe in the run; `bnnzoo publish RUN` turns the finished run into
`<artifacts>/<name>/<tag>/` (`bnnzoo.zoo.publish_run`).
"""

from __future__ import annotations

import argparse

from bnnzoo.cli_support import fail, one_line

__all__ = ["add_parser", "cmd_publish"]

ARTIFACTS_DIR_HELP = "artifacts folder to publish into (default: $BNNZOO_ARTIFACTS_DIR, else the installed artifacts)"
FORCE_HELP = ("replace an existing artifact even by a run with lower test accuracy, another recipe or config, "
              "or a run that differs from its recipe")


def add_parser(subparsers) -> None:
    """Add `bnnzoo publish` to `subparsers`, the `bnnzoo` parser's subcommands (`bnnzoo.cli`)."""
    p = subparsers.add_parser("publish", help="publish a finished recipe run as a pretrained artifact")
    p.set_defaults(func=cmd_publish)
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory of `bnnzoo train --recipe R --out RUN_DIR`")
    p.add_argument("--artifacts-dir", metavar="DIR", help=ARTIFACTS_DIR_HELP)
    p.add_argument("--force", action="store_true", help=FORCE_HELP)


def cmd_publish(args: argparse.Namespace) -> int:
    """Run `bnnzoo publish` (`args`: its parsed arguments); 0, or one `bnnzoo: error:` line and exit 2."""
    from bnnzoo import zoo

    try:
        zoo.publish_run(args.run_dir, args.artifacts_dir, force=args.force)
    except (ValueError, TypeError, OSError) as err:
        fail(one_line(err))
    return 0
