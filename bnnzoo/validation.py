"""Checks for numeric arguments, shared by every constructor and builder.

Each check returns the value converted (an `int` or a `float`) or raises a
`ValueError` that names the argument, the value and what is allowed, e.g.
``width must be a finite number > 0, got -0.5``. This module imports nothing from
bnnzoo.

!!! example
    ```python
    from bnnzoo.validation import check_int, check_number, check_positive

    assert check_positive("width", 0.5) == 0.5
    assert check_int("units", 64, 1, 4096) == 64
    assert check_number("gamma", 1e-4, low=0, high=1, low_open=True) == 1e-4
    try:
        check_positive("width", 0)
    except ValueError as err:
        assert str(err) == "width must be a finite number > 0, got 0"
    else:
        raise AssertionError("width=0 was accepted")
    ```
"""

from __future__ import annotations

import math
import numbers

__all__ = ["check_int", "check_number", "check_positive"]


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive(name: str, value, *, convert: bool = False) -> float:
    """`value` as a float, or `ValueError` naming `name` unless a finite number > 0.

    Args:
        name: the argument's name, for the message.
        value: the value to check.
        convert: also accept what `float()` converts (e.g. the string "0.5"), except a bool.
    """
    number = value
    if convert and not _is_real(value) and not isinstance(value, bool):  # True is not a number
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
    if not _is_real(number) or not (math.isfinite(number) and number > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(number)


def check_int(name: str, value, low: int, high: int) -> int:
    """`value` as an int, or `ValueError` naming `name` unless an integer in [low, high].

    Args:
        name: the argument's name, for the message.
        value: the value to check (bools and non-integral floats are refused).
        low: smallest allowed value.
        high: largest allowed value.
    """
    integral = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not integral or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return int(value)


def check_number(name: str, value, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """`value` as a float, or `ValueError` naming `name` and the interval it must lie in.

    Args:
        name: the argument's name, for the message.
        value: the value to check (must be a finite real number, not a bool).
        low: lower bound (`None`: unbounded).
        high: upper bound (`None`: unbounded).
        low_open: exclude `low` itself.
        high_open: exclude `high` itself.
    """
    ok = _is_real(value) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        left = "(" if (low is None or low_open) else "["
        right = ")" if (high is None or high_open) else "]"
        raise ValueError(f"{name} must be in {left}{lo}, {hi}{right}, got {value!r}")
    return float(value)
