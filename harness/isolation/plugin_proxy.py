"""Plugins are imported inside the sandbox, never in the harness process.

Importing a plugin runs its code. Done in the harness process, that code could read the oracles from the
cache, patch the integrity checks or write rows, whatever the workers are barred from. So the harness
asks a worker of the plugin's own fork server (:mod:`harness.isolation.sandbox`) to import it and describe what it
registered (names, scenarios, retain access, hyper-parameters, sources), and registers **proxies**: specs
with the same metadata whose function only forwards a call. Isolated runs send the worker the plugin's
origin and never call the proxy; ``--no-isolation`` (explicitly unprotected) imports the real plugin in
this process on its first call.

The harness also assigns each plugin its ``task.cached`` family here, from what it controls: the file's
name and content hash, or the entry point's module. A plugin cannot claim another method's family.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import inspect
import json
import logging
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from harness.isolation import sandbox
from harness.isolation.method_call import FAMILY_ATTR, ORIGIN_ATTR, PluginOrigin, plugin_origin
from harness.isolation.plugin_import import file_module_name, import_plugin_file, short_error
from harness.protocol.methods import METHODS, MethodSpec, PluginError, ensure_builtins, register_method

log = logging.getLogger(__name__)

DESCRIBE_TIMEOUT_S = 300  # importing a plugin may import heavy packages; the sandbox has no network to hang on


def enabled() -> bool:
    """Proxy plugins here; inside the sandbox (fork server, workers) plugins are imported for real."""
    return not sandbox.INSIDE


def load_file(path: str | Path) -> list[str]:
    """Describe a plugin file in its sandbox and register proxies; returns the names. Raises PluginError."""
    path = Path(path).resolve()
    if not path.is_file():
        raise PluginError(f"plugin {path}: file not found")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    origin = PluginOrigin(file_module_name(path), str(path), f"plugin:{path.stem}:{digest}", path.name)
    if origin.family in _LOADED_FILES:  # the same file, unchanged, loaded again (a second run in this process)
        return list(_LOADED_FILES[origin.family])
    names = _register(_describe(origin, {"kind": "file", "path": str(path)}), origin)
    _LOADED_FILES[origin.family] = tuple(names)
    return names


_LOADED_FILES: dict[str, tuple[str, ...]] = {}  # family (path stem and content digest) -> the names it registered


def load_entry_point(ep: importlib.metadata.EntryPoint) -> list[str]:
    """Describe an entry point's package in its sandbox and register proxies. Raises PluginError."""
    origin = PluginOrigin(ep.module, "", f"entry-point:{ep.module}", f"entry point {ep.name} ({ep.value})")
    return _register(_describe(origin, {"kind": "entry_point", "name": ep.name, "value": ep.value,
                                        "group": ep.group}), origin)


# ------------------------------------------------------------------------------------------ the parent side
def _describe(origin: PluginOrigin, request: dict) -> list[dict[str, Any]]:
    try:
        server = sandbox.fork_server(origin.family, sandbox.PRELOAD, [origin.path] if origin.path else [])
        if origin.path:
            request = {**request, "path": server.where(origin.path)}
        child = server.spawn("describe", request)
    except sandbox.SandboxError as exc:
        raise PluginError(f"plugin {origin.label}: {exc}") from exc
    try:
        if not child.conn.poll(DESCRIBE_TIMEOUT_S):
            raise PluginError(f"plugin {origin.label}: importing it took more than {DESCRIBE_TIMEOUT_S} s")
        try:
            reply = json.loads(child.conn.recv_bytes(1 << 24))
        except (EOFError, OSError, ValueError):
            raise PluginError(f"plugin {origin.label} failed to import: "
                              f"{sandbox.describe_exit(child.join(5))}") from None
    finally:
        child.kill()
        child.join(5)
        child.close()
    if not isinstance(reply, dict) or ("error" not in reply and not isinstance(reply.get("methods"), list)):
        raise PluginError(f"plugin {origin.label}: malformed description from its sandbox")
    if "error" in reply:
        raise PluginError(str(reply["error"])[:4000])
    return reply["methods"]


def _register(described: list[dict[str, Any]], origin: PluginOrigin) -> list[str]:
    names = []
    for entry in described:
        try:
            name, kind = str(entry["name"]), str(entry["kind"])
            if kind == "reference":  # references run in the harness process: only the harness defines them
                raise PluginError(f"method {name!r}: kind 'reference' is reserved for the harness's references")
            register_method(name, scenarios=tuple(entry["scenarios"]), needs_retain=bool(entry["needs_retain"]),
                            kind=kind, source=str(entry["source"]),
                            hparam_sources={str(k): str(v) for k, v in dict(entry["hparam_sources"]).items()},
                            search_space=dict(entry.get("search_space") or {}),  # harness/protocol/search_space.py
                            )(_proxy(entry, origin))
        except PluginError as exc:
            raise PluginError(f"plugin {origin.label}: {exc}") from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise PluginError(f"plugin {origin.label}: malformed description from its sandbox ({exc})") from exc
        names.append(name)
    return names


def _proxy(entry: dict[str, Any], origin: PluginOrigin) -> Callable:
    """A function with the plugin method's signature and docstring that forwards to the real one."""
    name = str(entry["name"])

    def method(task, **hparams):
        return _real_function(origin, name)(task, **hparams)

    params = [inspect.Parameter("task", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(str(k), inspect.Parameter.KEYWORD_ONLY, default=v)
               for k, v in dict(entry["hparams"]).items()]
    method.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    method.__module__ = origin.module
    method.__name__ = method.__qualname__ = str(entry.get("function") or name.replace("-", "_"))
    method.__doc__ = str(entry.get("doc") or "") or None
    if origin.path:  # error rows name the plugin file (harness.isolation.method_call.method_label uses inspect.getfile)
        method.__code__ = method.__code__.replace(co_filename=origin.path)
    setattr(method, ORIGIN_ATTR, origin)
    setattr(method, FAMILY_ATTR, origin.family)
    return method


_REAL: dict[tuple[str, str], Callable] = {}


def _real_function(origin: PluginOrigin, name: str) -> Callable:
    """Import the plugin in this process (``--no-isolation`` only) and return the named method's function."""
    if (origin.family, name) not in _REAL:
        log.warning("importing plugin %s in the harness process (--no-isolation): it is not sandboxed",
                    origin.label)
        proxies = {n: s for n, s in METHODS.items() if plugin_origin(s) == origin}
        for n in proxies:
            del METHODS[n]
        try:
            if origin.path:
                import_plugin_file(origin.path)
            else:
                importlib.import_module(origin.module)
            for n in proxies:
                if n in METHODS:
                    _REAL[(origin.family, n)] = METHODS[n].fn
        finally:
            METHODS.update(proxies)
    if (origin.family, name) not in _REAL:
        raise PluginError(f"plugin {origin.label} no longer registers {name!r} when imported in this process")
    return _REAL[(origin.family, name)]


# ------------------------------------------------------------------------------------------ the sandbox side
def _describe_role(conn: Connection, request: dict) -> None:
    """In a worker of the plugin's fork server: import it and send back what it registered."""
    ensure_builtins()
    before = set(METHODS)
    try:
        if request["kind"] == "file":
            names = import_plugin_file(request["path"])
        else:
            ep = importlib.metadata.EntryPoint(request["name"], request["value"], request["group"])
            label = f"entry point {ep.name} ({ep.value})"
            try:
                ep.load()
            except BaseException as exc:  # the plugin's import fails, not the harness
                raise PluginError(f"{label} failed: {short_error(exc)}") from exc
            names = sorted(set(METHODS) - before)
            if not names:
                raise PluginError(f"{label} registered no method")
        reply: dict[str, Any] = {"methods": [_description(METHODS[n]) for n in names]}
    except PluginError as exc:
        reply = {"error": str(exc)}
    conn.send_bytes(json.dumps(reply).encode())


def _description(spec: MethodSpec) -> dict[str, Any]:
    return {"name": spec.name, "scenarios": list(spec.scenarios), "needs_retain": spec.needs_retain,
            "hparams": spec.hparams, "kind": spec.kind, "source": spec.source,
            "hparam_sources": spec.hparam_sources, "function": getattr(spec.fn, "__name__", ""),
            "search_space": {k: knob.to_dict() for k, knob in spec.search_space.items()},
            "doc": inspect.getdoc(spec.fn) or ""}


sandbox.ROLES["describe"] = _describe_role
