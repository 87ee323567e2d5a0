"""Method registry: ``@register_method`` and the lookup helpers (with "did you mean")."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.core.registry import DuplicateName, Registry, did_you_mean
from harness.protocol.search_space import Knob, SearchSpaceError, check_space

SCENARIO_KINDS = ("random", "class")
METHOD_KINDS = ("reference", "baseline", "seed", "plugin")


__all__ = ["METHODS", "MethodSpec", "PluginError", "all_methods", "did_you_mean", "ensure_builtins", "get_method",
           "register_method", "register_variant"]


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
    # What ``unlearn-bench tune`` may change, and over what range (harness/protocol/search_space.py); empty: not tunable.
    search_space: dict[str, Knob] = field(default_factory=dict)
    # The algorithm is our reconstruction from incomplete sources, not the authors' verified code: every row
    # and leaderboard entry of the method says so.
    reconstructed: bool = False

    @property
    def module(self) -> str:
        return getattr(self.fn, "__module__", "?")

    def supports(self, scenario_kind: str) -> bool:
        return scenario_kind in self.scenarios


# Built-in methods live in these modules and register on import, as a plugin file does.
METHODS: Registry[MethodSpec] = Registry("method", builtins=("harness.pipeline.references", "baselines", "methods"))


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
                    search_space: dict[str, Any] | None = None, reconstructed: bool = False,
                    registry: Registry[MethodSpec] | None = None) -> Callable[[Callable], Callable]:
    """Register ``fn(task, *, hyper=default, ...) -> nn.Module`` as an unlearning method.

    ``scenarios`` lists the scenario kinds the method handles ("random", "class"); ``needs_retain=False``
    means the task's retain data is ``None``. ``source`` says where the algorithm and defaults come from.
    ``search_space`` maps hyper-parameter names to ranges (``harness.protocol.search_space``: LogUniform, Uniform,
    IntRange, Choice) that ``unlearn-bench tune`` searches; the other hyper-parameters stay fixed.
    ``reconstructed=True`` marks a method rebuilt from incomplete sources (rows and leaderboards label it).
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
        defaults = _hyperparameters(fn, name)
        try:
            space = check_space(name, search_space or {}, defaults)
        except SearchSpaceError as exc:
            raise PluginError(str(exc)) from exc
        doc = inspect.getdoc(fn) or ""
        spec = MethodSpec(name, fn, scenarios, needs_retain, defaults, kind, source,
                          doc.splitlines()[0] if doc else "", dict(hparam_sources or {}), space,
                          reconstructed=bool(reconstructed))
        try:
            registry.register(name, spec, spec.module)
        except DuplicateName as exc:
            raise PluginError(str(exc)) from exc
        return fn

    return decorate


def register_variant(name: str, base: Callable[..., Any], *, fixed: Mapping[str, Any],
                     hparams: Mapping[str, Any], summary: str, **options: Any) -> Callable[..., Any]:
    """Register ``name`` as ``base`` with the keyword arguments in ``fixed`` pinned: one definition serves
    several methods (e.g. AMUN's variants), and each still declares its full hyper-parameters (``hparams``,
    name -> default), so ``unlearn-bench methods`` and the results show every value.

    ``options`` are :func:`register_method`'s (scenarios, needs_retain, kind, source, ...).
    """
    overlap = set(fixed) & set(hparams)
    if overlap:
        raise PluginError(f"variant {name!r}: {sorted(overlap)} are both fixed and hyper-parameters")

    def variant(task: Any, **values: Any) -> Any:
        return base(task, **fixed, **values)

    variant.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("task", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in hparams.items()])
    variant.__name__ = variant.__qualname__ = name.replace("-", "_")
    variant.__module__ = base.__module__  # workers import the method from the base's module
    variant.__doc__ = summary
    return register_method(name, **options)(variant)


def get_method(name: str) -> MethodSpec:
    return METHODS[name]


def ensure_builtins() -> None:
    """Import the built-in method packages (registration happens on import)."""
    METHODS.load_builtins()


def all_methods() -> dict[str, MethodSpec]:
    return METHODS.everything()
