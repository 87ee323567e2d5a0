"""Named things: the one registry type (methods, evaluators, models, datasets) and "did you mean".

Torch-free on purpose: the leaderboard imports it to suggest names without loading any model code.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import logging
import sys
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from pathlib import Path
from types import ModuleType
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ``; did you mean 'x'?`` suffix (or the list of choices when nothing is close)."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    if close:
        return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    return f"; known: {', '.join(choices)}" if choices else ""


_REGISTRIES: list[Registry] = []  # every registry made, so a plugin file's additions can be named by kind


class DuplicateName(ValueError):
    """A second registration under a name that is taken."""


class Registry(MutableMapping[str, T]):
    """Entries of one kind by name: the methods, the model architectures, the datasets, the evaluators.

    One duplicate error (:class:`DuplicateName`), one unknown-name error (a ``KeyError`` with "did you mean"),
    built-in entries imported lazily, and registration by name or by decorator, for built-ins and plugins alike.
    Built-ins are the modules named by ``builtins``: they register their entries when imported, and are imported
    the first time the registry is read or written (the way plugins are), so importing the registry never imports
    the code that fills it. ``registry[name] = entry`` replaces an entry; :meth:`register` refuses a taken name.

    Two ways in besides registration:

    * ``entry_points``: an entry-point group (``unlearn_bench.models``, ...) whose entry points are loaded with the
      built-ins, in every process that reads the registry (a broken one is logged, and named by the unknown-name
      error, never fatal to the other names);
    * :meth:`add_resolver`: a family of names under a prefix (``timm:<name>``) resolved on first use by a function
      of the rest of the name, which raises ``KeyError`` (with its own "did you mean") for a name it lacks. A
      resolved entry is a pure function of its name, so every process resolves it alike.
    """

    def __init__(self, kind: str, builtins: Iterable[str] = (), entry_points: str | None = None):
        self.kind = kind
        self.builtins = tuple(builtins)
        self.entry_points = entry_points
        self.origins: dict[str, str] = {}  # name -> the module that registered it
        self.failures: dict[str, str] = {}  # entry point -> why it did not load
        self._entries: dict[str, T] = {}
        self._resolvers: dict[str, Callable[[str], T]] = {}
        self._loaded = not self.builtins
        self._plugged = not entry_points
        _REGISTRIES.append(self)

    def load_builtins(self) -> None:
        if not self._loaded:
            self._loaded = True  # first, so a built-in module that looks itself up does not recurse
            for module in self.builtins:
                importlib.import_module(module)

    def _load(self) -> None:
        """Built-ins, then (on the first read, never on a registration, so a module registering its own built-ins
        does not start them) the entry points."""
        self.load_builtins()
        if not self._plugged:
            self._plugged = True
            self._load_entry_points()

    def _load_entry_points(self) -> None:
        for ep in importlib.metadata.entry_points(group=self.entry_points or ""):
            try:
                ep.load()  # importing it registers its entries
            except Exception as exc:  # noqa: BLE001 - one broken package must not hide every other name
                self.failures[ep.name] = f"entry point {ep.name} ({ep.value}) failed: {type(exc).__name__}: {exc}"
                log.warning("%s", self.failures[ep.name])

    def add_resolver(self, prefix: str, resolve: Callable[[str], T]) -> None:
        """Names ``<prefix>:<rest>`` resolve on first use to ``resolve(rest)`` (which raises ``KeyError``)."""
        self._resolvers[prefix] = resolve

    def _resolve(self, name: str) -> T:
        prefix, colon, rest = name.partition(":")
        if not colon or prefix not in self._resolvers:
            families = f" (or {', '.join(f'{p}:<name>' for p in self._resolvers)})" if self._resolvers else ""
            raise KeyError(f"unknown {self.kind} {name!r}{did_you_mean(name, self._entries)}{families}"
                           f"{self._failed()}")
        try:
            entry = self._resolvers[prefix](rest)
        except KeyError as exc:
            raise KeyError(f"unknown {self.kind} {name!r}: {exc.args[0] if exc.args else rest}") from None
        self._entries[name] = entry
        self.origins[name] = f"{prefix}:"
        return entry

    def _failed(self) -> str:
        return f" ({'; '.join(self.failures.values())})" if self.failures else ""

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
        """The entry called ``name`` (built-ins loaded first, then the resolvers); ``KeyError`` with the closest
        names."""
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            return self._resolve(name)

    def __contains__(self, name: object) -> bool:
        self._load()
        if name in self._entries:
            return True
        try:
            self._resolve(str(name))
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(self._entries)

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def __setitem__(self, name: str, entry: T) -> None:
        self._load()
        self._entries[name] = entry

    def __delitem__(self, name: str) -> None:
        self._load()
        del self._entries[name]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._entries)})"

    def lookup(self, name: str) -> T:
        """``registry[name]``."""
        return self[name]

    def everything(self) -> dict[str, T]:
        """A snapshot of every entry, built-ins included."""
        return dict(self)


# ---------------------------------------------------------------- driver-side plugin files

EXTENSION_MODULE_PREFIX = "unlearn_bench_extension_"  # the module name a plugin file is imported under
_EXTENSIONS: dict[str, list[str]] = {}  # resolved path -> what the file registered ("evaluator 'x'", ...)


class ExtensionError(ValueError):
    """A driver-side plugin file (evaluators, datasets, models) could not be loaded; the message says why."""


class NotAModule(ImportError):
    """A file Python cannot import as a module (its message names the file)."""


def import_file_module(path: Path, module_name: str) -> ModuleType:
    """Import the Python file ``path`` as ``module_name`` (registered in ``sys.modules``, so its classes pickle);
    whatever it raises is raised again, with the half-made module removed."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise NotAModule(f"{path.name} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def load_extension_file(path: str | Path) -> list[str]:
    """Import a driver-side plugin file -- the user's own evaluators, dataset loaders or model builders -- in this
    process, once per file; returns what it registered (``"evaluator 'my_attack'"``, ...).

    Unlike a method plugin (a submission, imported only inside its sandbox), this is the user's own harness code:
    it runs in the driver and its job workers, unsandboxed, as the built-in evaluators do.
    """
    file = Path(path).expanduser().resolve()
    if str(file) in _EXTENSIONS:
        return _EXTENSIONS[str(file)]
    if not file.is_file():
        raise ExtensionError(f"plugin file {path} not found (a Python file that registers evaluators, datasets or "
                             "models; a relative path in a suite is relative to the suite file's folder)")
    for registry in _REGISTRIES:
        registry.load_builtins()  # a plugin must not take a built-in's name before the built-ins are in
    before = {id(r): set(r._entries) for r in _REGISTRIES}
    try:
        import_file_module(file, EXTENSION_MODULE_PREFIX + file.stem.replace("-", "_"))
    except NotAModule as exc:
        raise ExtensionError(f"plugin file {exc}") from exc
    except Exception as exc:  # reported as one line naming the file
        raise ExtensionError(f"plugin file {file.name} failed to import: {type(exc).__name__}: {exc}") from exc
    added = [f"{r.kind} {name!r}" for r in _REGISTRIES for name in sorted(set(r._entries) - before.get(id(r), set()))]
    if not added:
        raise ExtensionError(f"plugin file {file.name} registered nothing (decorate an evaluator with "
                             "@register_evaluator, a model builder with @register_model, or call DATASETS.register)")
    _EXTENSIONS[str(file)] = added
    return added
