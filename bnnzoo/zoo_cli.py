"""`bnnzoo publish`: the subcommand's parser and handler (registered by `bnnzoo.cli`).

Training never writes artifacts: `bnnzoo train --recipe R --out RUN` trains and
records the recipe in the run; `bnnzoo publish RUN` turns the finished run into
`<artifacts>/<name>/<tag>/` (`bnnzoo.zoo.publish_run`).
"""

from __future__ import annotations

import argparse

from bnnzoo.cli_support import fail, one_line

__all__ = ["add_parser", "cmd_publish"]


def add_parser(subparsers) -> None:
    """Add `bnnzoo publish` to the CLI.

    Args:
        subparsers: the `bnnzoo` parser's subparsers action.
    """
    p = subparsers.add_parser(
        "publish", help="publish a finished recipe run as a pretrained artifact (weights and card)"
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory of `bnnzoo train --recipe R --out RUN_DIR`")
    p.add_argument("--artifacts-dir", metavar="DIR",
                   help="artifacts folder to publish into (default: $BNNZOO_ARTIFACTS_DIR, else the "
                        "installed artifacts)")
    p.add_argument("--force", action="store_true",
                   help="replace an existing artifact even by a run with lower test accuracy, another "
                        "recipe or config, or a run that differs from its recipe")
    p.set_defaults(func=cmd_publish)


def cmd_publish(args: argparse.Namespace) -> int:
    """Run `bnnzoo publish`.

    Args:
        args: the parsed `bnnzoo publish` arguments.

    Returns:
        0; a refused or failed publish exits with status 2 and one `bnnzoo: error:` line.
    """
    from bnnzoo import zoo

    try:
        zoo.publish_run(args.run_dir, args.artifacts_dir, force=args.force)
    except (ValueError, TypeError, OSError) as err:
        fail(one_line(err))
    return 0
