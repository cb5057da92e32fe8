"""Console-script entry of `bnnzoo`.

It lives outside the package because importing `bnnzoo` imports TensorFlow, and the
CLI must quiet TensorFlow's start-up logging before that happens; library users
keep TensorFlow's defaults. Importing `bnnzoo.cli` runs `bnnzoo/__init__.py` first,
which selects Keras 2 (TF_USE_LEGACY_KERAS on the TF 2.19 stack) before TensorFlow
is imported; that is the one place it is done.
"""

import os
import sys


def main() -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from bnnzoo.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
