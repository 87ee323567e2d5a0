"""The evaluator contract and registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from harness.registry import did_you_mean

if TYPE_CHECKING:
    from harness.cache import ArtifactCache
    from harness.registry import MethodSpec
    from harness.splits import Split
    from harness.suite import Suite, SuiteData


@dataclass(frozen=True)
class MetricInfo:
    """What a metric means: ``direction`` is 'match-oracle', 'higher' or 'lower' (is better)."""

    name: str
    description: str
    direction: str = "match-oracle"
    in_avg_gap: bool = False
    unit: str = "%"
    reconstructed: bool = False  # the definition is our reconstruction, not the authors' verified setting


@dataclass
class EvalContext:
    """Everything an evaluator may use (evaluators are harness code; methods never see this)."""

    suite: Suite
    data: SuiteData
    split: Split
    seed: int
    device: torch.device
    cache: ArtifactCache
    original: nn.Module
    oracle: nn.Module
    method: MethodSpec | None = None
    hparams: dict[str, Any] = field(default_factory=dict)
    # Runs the current method (same hyper-parameters) on another original/forget/retain; used by the
    # per-example attacks, whose shadow models must be unlearned by the method under test.
    unlearn: Callable[..., nn.Module] | None = None
    memo: dict[str, Any] = field(default_factory=dict)  # per-process scratch shared across runs of a suite
    results_root: Path | None = None  # where evaluators may write side tables (results/<suite>/examples/)


@dataclass(frozen=True)
class Evaluator:
    name: str
    fn: Callable[[nn.Module, EvalContext], dict[str, float]]
    metrics: tuple[MetricInfo, ...]
    scenarios: tuple[str, ...] = ("random", "class")
    per_method: bool = False  # True: scores the method (via shadow runs), cost shared across seeds


EVALUATORS: dict[str, Evaluator] = {}


def register_evaluator(name: str, metrics: list[MetricInfo], scenarios: tuple[str, ...] = ("random", "class"),
                       per_method: bool = False) -> Callable:
    def decorate(fn: Callable) -> Callable:
        if name in EVALUATORS:
            raise ValueError(f"evaluator {name!r} is already registered")
        EVALUATORS[name] = Evaluator(name, fn, tuple(metrics), scenarios, per_method)
        return fn

    return decorate


def get_evaluator(name: str) -> Evaluator:
    if name not in EVALUATORS:
        raise KeyError(f"unknown evaluator {name!r}{did_you_mean(name, EVALUATORS)}")
    return EVALUATORS[name]


def metric_info(name: str) -> MetricInfo | None:
    for evaluator in EVALUATORS.values():
        for info in evaluator.metrics:
            if info.name == name:
                return info
    return None
