"""A tiny name -> object registry, filled by decorators as modules import (timm-style)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownName(KeyError):
    """Raised for a name that is not registered; the message lists what is."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0])


class Registry(Generic[T]):
    """Holds registered objects of one kind (datasets, encoders, tasks, ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = item
        return item

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form: ``@DATASETS.register("matek-bm")``."""
        return lambda item: self.add(name, item)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise UnknownName(self.unknown_message(name)) from None

    def unknown_message(self, name) -> str:
        """``unknown encoder 'dinoblom-b'; did you mean 'dinobloom-b'? registered: ...`` (difflib)."""
        close = difflib.get_close_matches(str(name), list(self._items), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown {self.kind} {name!r}; {hint}registered: {', '.join(sorted(self._items)) or 'none'}"

    def check(self, names) -> None:
        """Raise UnknownName for the first name that is not registered (before any work is done)."""
        for name in names or ():
            if name not in self._items:
                raise UnknownName(self.unknown_message(name))

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(self._items[name] for name in self.names())

    def __len__(self) -> int:
        return len(self._items)
