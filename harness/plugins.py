"""Discovery of outside methods: ``--plugin path.py`` files and the ``unlearn_bench.methods`` entry points."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from harness.registry import METHODS, PluginError, ensure_builtins

ENTRY_POINT_GROUP = "unlearn_bench.methods"


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded; the runner records it as a ``failed`` row."""

    plugin: str
    error: str

    @property
    def method_name(self) -> str:
        return f"plugin:{self.plugin}"


def _short_error(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {Path(last[0].filename).name}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def load_plugin_file(path: str | Path) -> list[str]:
    """Import a plugin file; returns the names it registered. Raises PluginError on any problem."""
    ensure_builtins()
    path = Path(path)
    if not path.is_file():
        raise PluginError(f"plugin {path}: file not found")
    before = set(METHODS)
    module_name = f"unlearn_bench_plugin_{path.stem.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin {path.name}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except PluginError as exc:
        raise PluginError(f"plugin {path.name}: {exc}") from exc
    except BaseException as exc:
        sys.modules.pop(module_name, None)
        raise PluginError(f"plugin {path.name} failed to import: {_short_error(exc)}") from exc
    added = sorted(set(METHODS) - before)
    if not added:
        raise PluginError(f"plugin {path.name} registered no method (decorate a function with @register_method)")
    return added


def load_plugins(paths: list[str] | None, entry_points: bool = True) -> tuple[list[str], list[PluginFailure]]:
    """Load every plugin; failures are collected, not raised, so the rest of the run goes on."""
    names: list[str] = []
    failures: list[PluginFailure] = []
    for path in paths or []:
        try:
            names += load_plugin_file(path)
        except PluginError as exc:
            failures.append(PluginFailure(Path(path).stem, str(exc)))
    if entry_points:
        names_ep, failures_ep = load_entry_points()
        names += names_ep
        failures += failures_ep
    return names, failures


_LOADED_ENTRY_POINTS: set[str] = set()


def load_entry_points() -> tuple[list[str], list[PluginFailure]]:
    ensure_builtins()
    names: list[str] = []
    failures: list[PluginFailure] = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.value in _LOADED_ENTRY_POINTS:
            continue
        _LOADED_ENTRY_POINTS.add(ep.value)
        before = set(METHODS)
        try:
            ep.load()
        except BaseException as exc:  # noqa: BLE001
            failures.append(PluginFailure(ep.name, f"entry point {ep.name} ({ep.value}) failed: {_short_error(exc)}"))
            continue
        added = sorted(set(METHODS) - before)
        if not added:
            failures.append(PluginFailure(ep.name, f"entry point {ep.name} ({ep.value}) registered no method"))
        names += added
    return names, failures
