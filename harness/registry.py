"""Method registry: ``@register_method`` and the lookup helpers (with "did you mean")."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

SCENARIO_KINDS = ("random", "class")
METHOD_KINDS = ("reference", "baseline", "seed", "plugin")


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ``; did you mean 'x'?`` suffix (or the list of choices when nothing is close)."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    if close:
        return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    return f"; known: {', '.join(choices)}" if choices else ""


class PluginError(ValueError):
    """A method or plugin is malformed; the message names it and the problem."""


@dataclass(frozen=True)
class MethodSpec:
    """A registered unlearning method and its metadata."""

    name: str
    fn: Callable[..., Any]
    scenarios: tuple[str, ...]
    needs_retain: bool
    hparams: dict[str, Any]
    kind: str = "baseline"
    source: str = ""  # where the algorithm and defaults come from
    summary: str = ""
    hparam_sources: dict[str, str] = field(default_factory=dict)

    @property
    def module(self) -> str:
        return getattr(self.fn, "__module__", "?")

    def supports(self, scenario_kind: str) -> bool:
        return scenario_kind in self.scenarios


METHODS: dict[str, MethodSpec] = {}


def _hyperparameters(fn: Callable[..., Any], name: str) -> dict[str, Any]:
    """Check the contract ``fn(task, *, hp=default, ...)`` and return the defaults."""
    where = f"method {name!r} ({getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', fn)})"
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError) as exc:
        raise PluginError(f"{where}: not a function with an inspectable signature ({exc})") from exc
    if not params or params[0].kind not in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
        raise PluginError(f"{where}: the first parameter must be the positional UnlearningTask")
    defaults: dict[str, Any] = {}
    for param in params[1:]:
        if param.kind is not inspect.Parameter.KEYWORD_ONLY:
            raise PluginError(f"{where}: hyper-parameter {param.name!r} must be keyword-only (put it after '*')")
        if param.default is inspect.Parameter.empty:
            raise PluginError(f"{where}: hyper-parameter {param.name!r} needs a default value")
        if not isinstance(param.default, (bool, int, float, str, type(None))):
            raise PluginError(f"{where}: hyper-parameter {param.name!r} default must be bool/int/float/str/None")
        defaults[param.name] = param.default
    return defaults


def register_method(name: str, *, scenarios: Iterable[str] = SCENARIO_KINDS, needs_retain: bool = True,
                    kind: str = "plugin", source: str = "", hparam_sources: dict[str, str] | None = None,
                    registry: dict[str, MethodSpec] | None = None) -> Callable[[Callable], Callable]:
    """Register ``fn(task, *, hyper=default, ...) -> nn.Module`` as an unlearning method.

    ``scenarios`` lists the scenario kinds the method handles ("random", "class"); ``needs_retain=False``
    means the task's retain data is ``None``. ``source`` says where the algorithm and defaults come from.
    """
    registry = METHODS if registry is None else registry
    scenarios = tuple(scenarios)
    bad = [s for s in scenarios if s not in SCENARIO_KINDS]
    if bad or not scenarios:
        raise PluginError(f"method {name!r}: scenarios must be a non-empty subset of {SCENARIO_KINDS}, got {scenarios}")
    if kind not in METHOD_KINDS:
        raise PluginError(f"method {name!r}: kind must be one of {METHOD_KINDS}")
    if not name or not isinstance(name, str) or any(ch.isspace() for ch in name):
        raise PluginError(f"method name {name!r} must be a non-empty string without spaces")

    def decorate(fn: Callable) -> Callable:
        if name in registry:
            existing = registry[name]
            raise PluginError(f"method {name!r} is already registered (by {existing.module}); choose another name")
        defaults = _hyperparameters(fn, name)
        doc = inspect.getdoc(fn) or ""
        registry[name] = MethodSpec(name, fn, scenarios, needs_retain, defaults, kind, source,
                                    doc.splitlines()[0] if doc else "", dict(hparam_sources or {}))
        return fn

    return decorate


def get_method(name: str) -> MethodSpec:
    ensure_builtins()
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}{did_you_mean(name, METHODS)}")
    return METHODS[name]


_BUILTINS_LOADED = False


def ensure_builtins() -> None:
    """Import the built-in method packages (registration happens on import)."""
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    import baselines  # noqa: F401
    import harness.references  # noqa: F401
    import methods  # noqa: F401


def all_methods() -> dict[str, MethodSpec]:
    ensure_builtins()
    return dict(METHODS)
