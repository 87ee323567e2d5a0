"""Importing a plugin file in this process: what the sandboxed workers do (harness/isolation/plugin_proxy.py sends them
here), and what ``--no-isolation`` does in the harness process."""

from __future__ import annotations

import traceback
from pathlib import Path

from harness.core.registry import NotAModule, import_file_module
from harness.protocol.methods import METHODS, PluginError, ensure_builtins


def file_module_name(path: Path) -> str:
    """The module name the harness gives a plugin file (never the plugin's own choice)."""
    return f"unlearn_bench_plugin_{path.stem.replace('-', '_')}"


def short_error(exc: BaseException) -> str:
    """``Type: message (at file.py:line)`` for a plugin's import error."""
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {Path(last[0].filename).name}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def import_plugin_file(path: str | Path) -> list[str]:
    """Import a plugin file in this process; returns the names it registered. Raises PluginError."""
    ensure_builtins()
    path = Path(path)
    if not path.is_file():
        raise PluginError(f"plugin {path}: file not found")
    before = set(METHODS)
    try:
        import_file_module(path, file_module_name(path))
    except NotAModule as exc:
        raise PluginError(f"plugin {path.name}: cannot be imported as a Python module") from exc
    except PluginError as exc:
        raise PluginError(f"plugin {path.name}: {exc}") from exc
    except BaseException as exc:
        raise PluginError(f"plugin {path.name} failed to import: {short_error(exc)}") from exc
    added = sorted(set(METHODS) - before)
    if not added:
        raise PluginError(f"plugin {path.name} registered no method (decorate a function with @register_method)")
    return added
