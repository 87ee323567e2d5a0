"""Named things: the one registry type (methods, evaluators, models, datasets) and "did you mean".

Torch-free on purpose: the leaderboard imports it to suggest names without loading any model code.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import TypeVar

T = TypeVar("T")


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ``; did you mean 'x'?`` suffix (or the list of choices when nothing is close)."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    if close:
        return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    return f"; known: {', '.join(choices)}" if choices else ""


class DuplicateName(ValueError):
    """A second registration under a name that is taken."""


class Registry(MutableMapping[str, T]):
    """Entries of one kind by name: the methods, the model architectures, the datasets, the evaluators.

    One duplicate error (:class:`DuplicateName`), one unknown-name error (a ``KeyError`` with "did you mean"),
    built-in entries imported lazily, and registration by name or by decorator, for built-ins and plugins alike.
    Built-ins are the modules named by ``builtins``: they register their entries when imported, and are imported
    the first time the registry is read or written (the way plugins are), so importing the registry never imports
    the code that fills it. ``registry[name] = entry`` replaces an entry; :meth:`register` refuses a taken name.
    """

    def __init__(self, kind: str, builtins: Iterable[str] = ()):
        self.kind = kind
        self.builtins = tuple(builtins)
        self.origins: dict[str, str] = {}  # name -> the module that registered it
        self._entries: dict[str, T] = {}
        self._loaded = not self.builtins

    def load_builtins(self) -> None:
        if not self._loaded:
            self._loaded = True  # first, so a built-in module that looks itself up does not recurse
            for module in self.builtins:
                importlib.import_module(module)

    def register(self, name: str, entry: T, origin: str = "") -> T:
        self.load_builtins()  # a plugin must not take a built-in's name before the built-ins are in
        if name in self._entries:
            by = f" (by {self.origins[name]})" if self.origins.get(name) else ""
            raise DuplicateName(f"{self.kind} {name!r} is already registered{by}; choose another name")
        self._entries[name] = entry
        self.origins[name] = origin
        return entry

    def decorator(self, name: str) -> Callable[[T], T]:
        """``@registry.decorator(name)``: register the decorated object under ``name`` (its module as origin)."""

        def decorate(entry: T) -> T:
            return self.register(name, entry, getattr(entry, "__module__", "") or "")

        return decorate

    def __getitem__(self, name: str) -> T:
        """The entry called ``name`` (built-ins loaded first); ``KeyError`` with the closest names."""
        self.load_builtins()
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}{did_you_mean(name, self._entries)}") from None

    def __contains__(self, name: object) -> bool:
        self.load_builtins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        self.load_builtins()
        return iter(self._entries)

    def __len__(self) -> int:
        self.load_builtins()
        return len(self._entries)

    def __setitem__(self, name: str, entry: T) -> None:
        self.load_builtins()
        self._entries[name] = entry

    def __delitem__(self, name: str) -> None:
        self.load_builtins()
        del self._entries[name]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._entries)})"

    def lookup(self, name: str) -> T:
        """``registry[name]``."""
        return self[name]

    def everything(self) -> dict[str, T]:
        """A snapshot of every entry, built-ins included."""
        return dict(self)
