"""The one registry type behind every named thing in bnnzoo.

Quantizers, optimizers, model families, FSG slow nets, tuners, training strategies
and tuner search spaces are each a `Registry`: a name -> object mapping with one
`register` (decorator or call), one `get` whose error lists the valid names, one
`names(filter)` listing, and an `unregister` for throwaway entries. This module
imports nothing from bnnzoo, so every other module may use it.

!!! example
    ```python
    from bnnzoo.registry import Registry

    colours = Registry("colour")

    @colours.register("red")
    def red():
        return "#f00"

    assert colours.get("red")() == "#f00" and colours.names() == ["red"]
    try:
        colours.get("blue", argument="background")
    except ValueError as err:
        assert str(err) == "Unknown colour 'blue' (background). Valid names: red"
    else:
        raise AssertionError("an unknown name was found")
    ```
"""

from __future__ import annotations

import fnmatch
from typing import Callable, Generic, Iterator, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Named objects of one kind.

    Args:
        kind: what the objects are, for messages ("quantizer", "model", ...).
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Add `obj` under `name`; without `obj`, a decorator that adds what it decorates.

        Registering the same object twice under one name is a no-op (a reloaded
        module); another object under a taken name is a `ValueError`.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def add(item: T) -> T:
            if name in self._entries and self._entries[name] is not item:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = item
            return item

        return add(obj) if obj is not None else add

    def get(self, name: str, argument: str | None = None) -> T:
        """The object registered under `name`; `ValueError` listing the valid names otherwise.

        Args:
            name: the registered name.
            argument: the argument `name` was given as, named in the error if given.
        """
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            given = f" ({argument})" if argument else ""
            raise ValueError(
                f"Unknown {self.kind} {name!r}{given}. Valid names: {', '.join(self.names())}"
            ) from None

    def unregister(self, name: str) -> T:
        """Remove `name` and return the object it held; `ValueError` listing the valid
        names if nothing is registered under it (as `get`).

        For a test or an example that registers a throwaway object: afterwards the
        registry holds what it held before.

        !!! example
            ```python
            from bnnzoo.registry import Registry

            colours = Registry("colour")
            red = colours.register("red", lambda: "#f00")
            colours.register("blue", lambda: "#00f")
            assert colours.unregister("red") is red and colours.names() == ["blue"]
            try:
                colours.unregister("red")
            except ValueError as err:
                assert str(err) == "Unknown colour 'red'. Valid names: blue"
            else:
                raise AssertionError("a name was removed twice")
            ```
        """
        obj = self.get(name)
        del self._entries[name]
        return obj

    def names(self, filter: str = "*") -> list[str]:
        """Sorted registered names matching the shell-style pattern `filter`."""
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, filter))

    def items(self) -> list[tuple[str, T]]:
        """(name, object) pairs sorted by name."""
        return [(n, self._entries[n]) for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
