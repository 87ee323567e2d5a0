"""Discovery of outside methods: ``--plugin path.py`` files and the ``unlearn_bench.methods`` entry points."""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from harness.isolation import plugin_proxy
from harness.isolation.plugin_import import import_plugin_file
from harness.isolation.plugin_import import short_error as _short_error
from harness.protocol.methods import METHODS, PluginError, ensure_builtins

ENTRY_POINT_GROUP = "unlearn_bench.methods"


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded; the runner records it as a ``failed`` row."""

    plugin: str
    error: str

    @property
    def method_name(self) -> str:
        return f"plugin:{self.plugin}"


def load_plugin_file(path: str | Path) -> list[str]:
    """Load a plugin file; returns the names it registered. Raises PluginError on any problem.

    The harness process never runs the plugin's code: it is imported and described inside its sandbox
    and registered here as proxies (harness/isolation/plugin_proxy.py).
    """
    if plugin_proxy.enabled():
        return plugin_proxy.load_file(path)
    return import_plugin_file(path)


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
        if plugin_proxy.enabled():  # described in its sandbox, registered here as proxies
            try:
                names += plugin_proxy.load_entry_point(ep)
            except PluginError as exc:
                failures.append(PluginFailure(ep.name, str(exc)))
            continue
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
