"""Console-script entry of `bnnzoo`.

It lives outside the package because importing `bnnzoo` imports TensorFlow, and the
CLI must quiet TensorFlow's start-up logging before that happens; library users
keep TensorFlow's defaults. Importing `bnnzoo.cli` runs `bnnzoo/__init__.py` first,
which selects Keras 2 (TF_USE_LEGACY_KERAS on the tf-keras stacks) before TensorFlow
is imported; that is the one place it is done.

`TF_CPP_MIN_LOG_LEVEL` quiets TensorFlow's C++ logging once absl logging is set up.
From TF 2.20 some notices (oneDNN's "custom operations are on") are written before
that, straight to the process's stderr, whatever the variable says; so the import runs
with file descriptor 2 captured, and what it wrote is passed on without the absl lines
below the requested level.
"""

import os
import re
import sys
import tempfile

# absl's prefix: severity letter, date (MMDD), time (before absl starts: seconds since the epoch), thread, file:line]
_ABSL_LINE = re.compile(r"^([IWEF])\d{4} \S+ +\d+ [^ ]+:\d+\] ")
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_LEVELS = "IWEF"


def _is_startup_noise(line: str, min_level: int) -> bool:
    if line.startswith(_ABSL_PREAMBLE):
        return True
    match = _ABSL_LINE.match(line)
    return bool(match) and _LEVELS.index(match.group(1)) < min_level


def _import_cli():
    """`bnnzoo.cli`, imported with TensorFlow's pre-logging notices filtered from stderr."""
    try:
        min_level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        min_level = 0
    if min_level <= 0:
        from bnnzoo import cli
        return cli
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            from bnnzoo import cli
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors="replace")
            sys.stderr.write("".join(line for line in text.splitlines(keepends=True)
                                     if not _is_startup_noise(line, min_level)))
            sys.stderr.flush()
    return cli


def main() -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return _import_cli().main()


if __name__ == "__main__":
    sys.exit(main())
