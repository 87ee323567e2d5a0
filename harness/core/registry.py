"""Named things: the one registry type (methods, evaluators, models, datasets) and "did you mean".

Torch-free on purpose: the leaderboard imports it to suggest names without loading any model code.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
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


class Registry(dict[str, T]):
    """Entries of one kind by name: one duplicate error, one unknown-name error with "did you mean", and
    built-in entries imported lazily, by module name, the first time the registry is asked for them (the way
    plugins are imported), so importing the registry never imports the code that fills it."""

    def __init__(self, kind: str, builtins: Iterable[str] = ()):
        super().__init__()
        self.kind = kind
        self.builtins = tuple(builtins)
        self.origins: dict[str, str] = {}  # name -> the module that registered it
        self._loaded = not self.builtins

    def register(self, name: str, entry: T, origin: str = "") -> T:
        if name in self:
            by = f" (by {self.origins[name]})" if self.origins.get(name) else ""
            raise DuplicateName(f"{self.kind} {name!r} is already registered{by}; choose another name")
        self[name] = entry
        self.origins[name] = origin
        return entry

    def load_builtins(self) -> None:
        if not self._loaded:
            self._loaded = True  # first, so a built-in module that looks itself up does not recurse
            for module in self.builtins:
                importlib.import_module(module)

    def lookup(self, name: str) -> T:
        """The entry called ``name`` (built-ins loaded first); ``KeyError`` with the closest names."""
        self.load_builtins()
        if name not in self:
            raise KeyError(f"unknown {self.kind} {name!r}{did_you_mean(name, self)}")
        return self[name]

    def everything(self) -> dict[str, T]:
        """A snapshot of every entry, built-ins included."""
        self.load_builtins()
        return dict(self)
