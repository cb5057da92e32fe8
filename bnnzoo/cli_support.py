"""What every `bnnzoo` subcommand shares: argument types, one-line errors, environment,
sizes as text (`format_bytes`, also the docs' zoo table's).

The subcommands live next to their features (`bnnzoo.tuning.cli`, `bnnzoo.export.cli`)
and `bnnzoo.cli` puts them together; all of them use these helpers, so this module
imports nothing from bnnzoo.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import threading
import sys

__all__ = [
    "SEED_LIMIT",
    "SeedAction",
    "Terminated",
    "ctrl_c_as_interrupt",
    "fail",
    "format_bytes",
    "is_expected",
    "key_value",
    "non_negative_float",
    "non_negative_int",
    "one_line",
    "one_line_warnings",
    "positive_float",
    "positive_int",
    "quiet_tensorflow",
    "set_debug",
    "split_logical_cpus",
]


# ----------------------------------------------------------------- sizes as text


def format_bytes(n: float | None) -> str:
    """`n` bytes as KiB (one decimal) below 1 MiB, else MiB (two decimals); `?` for `None`.

    !!! example
        ```python
        from bnnzoo.cli_support import format_bytes

        assert (format_bytes(None), format_bytes(1536), format_bytes(3 << 20)) == ("?", "1.5 KiB", "3.00 MiB")
        assert format_bytes((1 << 20) - 1) == f"{((1 << 20) - 1) / 1024:.1f} KiB"  # just below 1 MiB
        ```
    """
    if n is None:
        return "?"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.2f} MiB"
    return f"{n / 1024:.1f} KiB"


# ----------------------------------------------------------------- argument types


def _number_type(kind: type, strict: bool, what: str):
    """An argparse type: `kind(text)`, finite, and > 0 (`strict`) or >= 0."""
    noun = "an integer" if kind is int else "a number"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
        if not (math.isfinite(value) and (value > 0 if strict else value >= 0)):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    parse.__name__ = f"{'positive' if strict else 'non_negative'}_{kind.__name__}"
    parse.__doc__ = f"argparse type: {noun}, {what}."
    return parse


positive_int = _number_type(int, True, "> 0")
non_negative_int = _number_type(int, False, ">= 0")
positive_float = _number_type(float, True, "a finite number > 0")
non_negative_float = _number_type(float, False, "a finite number >= 0")


def key_value(text: str) -> tuple[str, object]:
    """`KEY=VALUE`; VALUE is parsed as JSON when it can be (numbers, true, lists)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip().replace("-", "_"), value


# ----------------------------------------------------------------- environment


def quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ and Python start-up chatter off the terminal (CLI only)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="keras")


def split_logical_cpus(count: int | None) -> None:
    """Split the CPU into `count` logical devices (before TensorFlow starts its runtime)."""
    if not count or count < 2:
        return
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    )


# Set by `bnnzoo.cli.main` from `--debug`: errors keep their traceback instead of one line.
_DEBUG = False


def set_debug(debug: bool) -> None:
    """`--debug`: `fail` re-raises the exception being handled, with its traceback."""
    global _DEBUG
    _DEBUG = bool(debug)


def fail(message: str) -> None:
    """End the command with `bnnzoo: error: <message>` on stderr and exit status 2."""
    if _DEBUG and sys.exc_info()[1] is not None:
        raise  # noqa: PLE0704  (--debug: the exception being handled, with its traceback)
    print(f"bnnzoo: error: {message}", file=sys.stderr)
    raise SystemExit(2)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's `KeyboardInterrupt` (so every cleanup that runs for
    Ctrl-C runs for it) inside `ctrl_c_as_interrupt(terminate=True)`."""


# Delay before a signal whose exception Python dropped is delivered again.
_REDELIVER_SECONDS = 0.05


class ctrl_c_as_interrupt:
    """Context manager: an exception raised after Ctrl-C (SIGINT) is reported as the
    `KeyboardInterrupt` it is; with `terminate=True` SIGTERM too, as `Terminated`.

    Python raises `KeyboardInterrupt` at the next bytecode, which may be inside a
    Python callback of TensorFlow's C++ code; that code then turns it into another
    error (e.g. an `AttributeError` from `tf.keras.Input`), and the one-line
    "interrupted" message would become a traceback. A signal that arrives inside a
    `__del__` or a weakref callback (where Python would print and drop the exception, and
    the command would go on) is delivered again once that has returned. Off the main thread it does
    nothing.
    """

    def __init__(self, terminate: bool = False):
        self.signals = (signal.SIGINT, signal.SIGTERM) if terminate else (signal.SIGINT,)

    def __enter__(self):
        self.interrupted = None  # the exception type of the signal received
        self._previous = {}
        try:
            for signum in self.signals:
                self._previous[signum] = signal.signal(signum, self._handler)
        except ValueError:  # not the main thread: signals cannot be caught here
            pass
        self._previous_hook = sys.unraisablehook
        sys.unraisablehook = self._unraisable
        return self

    def _handler(self, signum, frame):
        self.interrupted = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        self._signum = signum
        raise self.interrupted

    def _unraisable(self, unraisable) -> None:
        """`sys.unraisablehook` while active: Python drops an exception raised in a
        `__del__` or a weakref callback (TensorFlow runs Python in both during garbage
        collection); when it is this signal's, the signal is delivered again a moment
        later, outside the finalizer, instead of being lost."""
        if self.interrupted and isinstance(unraisable.exc_value, KeyboardInterrupt):
            threading.Timer(_REDELIVER_SECONDS, os.kill, (os.getpid(), self._signum)).start()
            return
        self._previous_hook(unraisable)

    def __exit__(self, kind, value, traceback):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        sys.unraisablehook = self._previous_hook
        if self.interrupted and kind is not None and not issubclass(kind, (KeyboardInterrupt, SystemExit)):
            raise self.interrupted from value
        return False


def one_line_warnings() -> None:
    """Show Python warnings as `bnnzoo: warning: <message>`, one line each (CLI only)."""
    import warnings

    def formatwarning(message, category, filename, lineno, line=None):
        return f"bnnzoo: warning: {' '.join(str(message).split())}\n"

    warnings.formatwarning = formatwarning


def one_line(err: BaseException) -> str:
    """An exception as one line (some libraries' messages span several)."""
    return " ".join(str(err).split()) or type(err).__name__


def is_expected(err: BaseException) -> bool:
    """Whether `err` is a failure of the inputs (files, data, arguments), not a bug.

    Those are reported in one line on stderr; anything else keeps its traceback.
    """
    import zipfile

    expected: tuple[type, ...] = (ValueError, OSError, EOFError, zipfile.BadZipFile)
    if "bnnzoo.data" in sys.modules:
        expected += (sys.modules["bnnzoo.data"].DataUnavailableError,)
    return isinstance(err, expected)


SEED_LIMIT = 2**32  # seeds are integers in [0, SEED_LIMIT), as TensorFlow and NumPy take them


class SeedAction(argparse.Action):
    """`--seed S`: an integer in [0, 2**32), else one error line naming `--seed`.

    An action rather than a `type=`, because argparse prints its usage block
    before a type error; here the error is the one line every `bnnzoo` failure is.

    !!! example
        ```python
        import argparse
        from bnnzoo.cli_support import SeedAction

        parser = argparse.ArgumentParser()
        parser.add_argument("--seed", action=SeedAction, default=0, metavar="S")
        assert parser.parse_args(["--seed", "7"]).seed == 7
        ```
    """

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            seed = int(values.strip(), 10)
        except ValueError:
            seed = None
        if seed is None or not 0 <= seed < SEED_LIMIT:
            fail(f"{option_string or '--seed'} must be an integer in 0..{SEED_LIMIT - 1} (0 <= S < 2**32), "
                 f"got {values!r}")
        setattr(namespace, self.dest, seed)
