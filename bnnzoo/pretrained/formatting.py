"""How cards read in text: `bnnzoo list`'s line per card and the zoo table's sizes.

CLI presentation rather than card data; it stays importable as
`bnnzoo.pretrained.format_card_line` / `format_bytes`, where `bnnzoo.cli` and
`bnnzoo.zoo` use it.

!!! example
    ```python
    from bnnzoo.pretrained import get_card
    from bnnzoo.pretrained.formatting import format_bytes, format_card_line

    assert (format_bytes(None), format_bytes(1536), format_bytes(3 << 20)) == ("?", "1.5 KiB", "3.00 MiB")
    card = get_card("binarynet", "digits")
    line = format_card_line(card)
    assert line.split()[:2] == ["digits", "digits"]
    assert f"top-1 {100 * card.test_accuracy:6.2f} %" in line and "of float32" in line
    ```
"""

from __future__ import annotations

from bnnzoo.pretrained.cards import Card

__all__ = ["format_bytes", "format_card_line"]


def format_bytes(n: float | None) -> str:
    """`n` bytes as KiB or MiB (`?` for `None`)."""
    if n is None:
        return "?"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.2f} MiB"
    return f"{n / 1024:.1f} KiB"


def format_card_line(card: Card) -> str:
    """One line for `bnnzoo list`: tag, dataset, accuracy, binary-weight memory."""
    ratio = card.memory_ratio_vs_float32
    size = format_bytes(card.weight_memory_bytes)
    if ratio is not None:
        size += f" (1/{1 / ratio:.0f} of float32 {format_bytes(card.float32_memory_bytes)})"
    where = "" if card.shipped else "  [download]"
    return (f"{card.tag:22s} {card.dataset:14s} top-1 {100 * card.test_accuracy:6.2f} %  "
            f"weights {size}{where}")
