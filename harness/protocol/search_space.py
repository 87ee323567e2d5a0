"""Search spaces: which hyper-parameters of a method ``unlearn-bench tune`` may change, and over what range.

A method declares its space next to its defaults (``register_method(..., search_space={...})``)::

    search_space={"lr": LogUniform(1e-5, 0.5), "lr_step": Choice(1, 5, 10)}

Every other hyper-parameter stays at the suite's value (or the registered default) during tuning. The space
is plain data (``to_dict`` / ``knob_from_dict``) so a sandboxed plugin can describe it to the harness.
This module imports nothing from the harness but ``harness.core.registry`` (the registry imports it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

# A best value within this fraction of a range's width (in log space for log ranges) of an end is reported
# "at a bound": the optimum may lie outside the range. Integer ranges count their end values only. An end
# named in a range's ``hard`` (e.g. ``IntRange(1, 20, hard=("low",))``: no fewer than one epoch exists) is
# the hyper-parameter's own limit, so an optimum there is not reported.
BOUND_TOLERANCE = 0.05
ENDS = ("low", "high")


class SearchSpaceError(ValueError):
    """A search space declaration is invalid; the message names the method and the knob."""


@dataclass(frozen=True)
class _FloatRange:
    """A float drawn from [low, high], uniformly or (``LOG``) log-uniformly; the two differ only in scale."""

    low: float
    high: float
    hard: tuple[str, ...] = ()

    LOG: ClassVar[bool] = False
    KIND: ClassVar[str] = "uniform"

    def check(self, where: str) -> None:
        _check_hard(self.hard, where)
        ordered = self.low < self.high and (self.low > 0 or not self.LOG)
        if not (_finite(self.low) and _finite(self.high) and ordered):
            needs = "0 < low < high" if self.LOG else "low < high"
            raise SearchSpaceError(f"{where}: {type(self).__name__} needs {needs}, got ({self.low}, {self.high})")

    def suggest(self, trial: Any, name: str) -> float:
        return self.clip(_round(trial.suggest_float(name, self.low, self.high, log=self.LOG)))

    def _scale(self, value: Any) -> float:
        return math.log(float(value)) if self.LOG else float(value)

    def at_bound(self, value: Any) -> bool:
        position = (self._scale(value) - self._scale(self.low)) / (self._scale(self.high) - self._scale(self.low))
        return _near_end(position, self.hard)

    def clip(self, value: Any) -> float:
        return min(max(float(value), self.low), self.high)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.KIND, "low": self.low, "high": self.high, "hard": list(self.hard)}

    def __str__(self) -> str:
        return f"{self.KIND}[{self.low:g}, {self.high:g}]{_hard_note(self.hard)}"


class LogUniform(_FloatRange):
    """A float drawn log-uniformly from [low, high] (learning rates, penalty weights)."""

    LOG = True
    KIND = "log-uniform"


class Uniform(_FloatRange):
    """A float drawn uniformly from [low, high] (ratios, mixing weights)."""


@dataclass(frozen=True)
class IntRange:
    """An integer from [low, high] (epochs, step counts); ``log=True`` samples it log-uniformly."""

    low: int
    high: int
    log: bool = False
    hard: tuple[str, ...] = ()

    def check(self, where: str) -> None:
        _check_hard(self.hard, where)
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high))
        if not (ints and self.low < self.high and (self.low >= 1 or not self.log)):
            raise SearchSpaceError(f"{where}: IntRange needs integers low < high (low >= 1 with log), "
                                   f"got ({self.low!r}, {self.high!r})")

    def suggest(self, trial: Any, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log)

    def at_bound(self, value: Any) -> bool:
        return ((int(value) == self.low and "low" not in self.hard)
                or (int(value) == self.high and "high" not in self.hard))

    def clip(self, value: Any) -> int:
        return min(max(int(value), self.low), self.high)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "int", "low": self.low, "high": self.high, "log": self.log, "hard": list(self.hard)}

    def __str__(self) -> str:
        return f"int{'-log' if self.log else ''}[{self.low}, {self.high}]{_hard_note(self.hard)}"


@dataclass(frozen=True)
class Choice:
    """One of a finite set of values. The set is complete, so a choice is never reported at a bound."""

    values: tuple[Any, ...]

    def __init__(self, *values: Any):
        object.__setattr__(self, "values", tuple(values))

    def check(self, where: str) -> None:
        if len(self.values) < 2 or len(set(self.values)) != len(self.values):
            raise SearchSpaceError(f"{where}: Choice needs at least two distinct values, got {self.values!r}")
        if not all(isinstance(v, (bool, int, float, str)) for v in self.values):
            raise SearchSpaceError(f"{where}: Choice values must be bool/int/float/str, got {self.values!r}")

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.values))

    def at_bound(self, value: Any) -> bool:
        return False

    def clip(self, value: Any) -> Any:
        return value if value in self.values else None

    def to_dict(self) -> dict[str, Any]:
        return {"type": "choice", "values": list(self.values)}

    def __str__(self) -> str:
        return "{" + ", ".join(f"{v!r}" if isinstance(v, str) else f"{v:g}" if isinstance(v, float) else str(v)
                               for v in self.values) + "}"


Knob = LogUniform | Uniform | IntRange | Choice
_TYPES = {"log-uniform": LogUniform, "uniform": Uniform, "int": IntRange, "choice": Choice}


def knob_from_dict(data: Mapping[str, Any]) -> Knob:
    """The inverse of ``to_dict`` (a sandboxed plugin's space arrives as JSON)."""
    kind = data.get("type")
    if kind not in _TYPES:
        raise SearchSpaceError(f"unknown knob type {kind!r}; known: {', '.join(_TYPES)}")
    if kind == "choice":
        return Choice(*data.get("values", ()))
    hard = tuple(data.get("hard", ()))
    if kind == "int":
        return IntRange(data["low"], data["high"], bool(data.get("log", False)), hard)
    return _TYPES[kind](data["low"], data["high"], hard)


def check_space(method: str, space: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Knob]:
    """Validate a declared space against the method's hyper-parameters; returns it as ``{name: Knob}``.

    Each knob must name a hyper-parameter, be a valid range, and produce values of the default's type
    (a float knob for a float default, an integer range for an int default, a choice for anything).
    """
    out: dict[str, Knob] = {}
    for name, knob in space.items():
        where = f"method {method!r}: search_space[{name!r}]"
        if isinstance(knob, Mapping):
            knob = knob_from_dict(knob)
        if not isinstance(knob, (LogUniform, Uniform, IntRange, Choice)):
            raise SearchSpaceError(f"{where}: expected LogUniform, Uniform, IntRange or Choice, got {knob!r}")
        if name not in defaults:
            from harness.core.registry import did_you_mean  # torch-free; the registry imports this module

            raise SearchSpaceError(f"{where}: {method!r} has no hyper-parameter {name!r}"
                                   f"{did_you_mean(name, defaults)}")
        knob.check(where)
        default = defaults[name]
        if isinstance(knob, (LogUniform, Uniform)) and not isinstance(default, float):
            raise SearchSpaceError(f"{where}: a float range needs a float default, {name} = {default!r}")
        if isinstance(knob, IntRange) and not (isinstance(default, int) and not isinstance(default, bool)):
            raise SearchSpaceError(f"{where}: an integer range needs an int default, {name} = {default!r}")
        if isinstance(knob, Choice) and default is not None and not all(
                isinstance(v, type(default)) or (isinstance(default, float) and isinstance(v, int))
                for v in knob.values):
            raise SearchSpaceError(f"{where}: choices {knob.values!r} do not match the default {default!r}")
        out[name] = knob
    return out


def describe(space: Mapping[str, Knob]) -> str:
    """``lr log-uniform[1e-05, 0.5], lr_step {1, 5, 10}`` (for ``unlearn-bench methods``)."""
    return ", ".join(f"{name} {knob}" for name, knob in space.items())


def at_bound(space: Mapping[str, Knob], values: Mapping[str, Any]) -> list[str]:
    """The knobs whose value lies on (or within ``BOUND_TOLERANCE`` of) an end of their range."""
    return [name for name, knob in space.items() if name in values and knob.at_bound(values[name])]


def _near_end(position: float, hard: tuple[str, ...]) -> bool:
    return ((position <= BOUND_TOLERANCE and "low" not in hard)
            or (position >= 1 - BOUND_TOLERANCE and "high" not in hard))


def _hard_note(hard: tuple[str, ...]) -> str:
    return f" (hard {'/'.join(hard)} end)" if hard else ""


def _check_hard(hard: tuple[str, ...], where: str) -> None:
    if not isinstance(hard, tuple) or any(end not in ENDS for end in hard):
        raise SearchSpaceError(f"{where}: hard must be a tuple of {ENDS}, got {hard!r}")


def _round(value: float) -> float:
    """Three significant digits: the value written to the hparams file is exactly the one validated."""
    return float(f"{value:.3g}")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
