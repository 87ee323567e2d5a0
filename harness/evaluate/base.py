"""The evaluator contract and registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from harness.core.registry import Registry, did_you_mean
from harness.protocol.hparams import config_hash
from harness.protocol.scoring import SCENARIO_KINDS
from harness.training.cache import cache_key
from harness.training.workspace import InWorkspace

if TYPE_CHECKING:
    from harness.protocol.methods import MethodSpec
    from harness.protocol.splits import Split
    from harness.training.workspace import Workspace


ALL_KINDS = SCENARIO_KINDS  # for a metric meaningful in every scenario kind (MetricInfo.scenarios)
# Sample-level forgetting with no class removed: the kinds where retain-vs-forget comparisons apply
SAMPLE_KINDS = ("random", "memorised", "entangled", "sequential")
# Sequential scenarios only: the metrics of request 1's examples at every step (the forgetting-reversal measure)
SEQUENTIAL_KINDS = ("sequential",)
CLASS_KINDS = ("class", "subclass")  # a whole (fine) class is forgotten, with its test images

# Part of the cache keys of evaluation results (the oracles' metrics, per-method results): bump it when an
# evaluator's computation changes, so cached results from before are recomputed, not reused.
EVALUATION_VERSION = "2"  # 2: salun_mia balances its classes when the retain set is the smaller
# How cached audit runs measured their cost (the consistency check compares it with scored runs measured now):
# "cpu" = the kernel's CPU count of the worker (earlier caches stored wall time for isolated runs).
AUDIT_COSTS = "cpu"


@dataclass(frozen=True)
class MetricInfo:
    """What a metric means: ``direction`` is 'match-oracle', 'higher' or 'lower' (is better), or 'info'
    (bookkeeping, not scored). ``scenarios`` lists the scenario kinds where the metric can vary; elsewhere it is
    constant by construction (or repeats another metric) and is neither computed into rows nor shown."""

    name: str
    description: str
    direction: str = "match-oracle"
    unit: str = "%"
    reconstructed: bool = False  # the definition is our reconstruction, not the authors' verified setting
    scenarios: tuple[str, ...] = ("random", "class")
    privacy: bool = False  # a membership/forgetting-evidence metric (plotted against the utility gaps)
    # "privacy": the one metric of an attack that enters the leaderboard's privacy axis (one per attack, so an
    # attack with three summary numbers is not counted three times); "" for every other metric.
    axis: str = ""
    # Computed only so rows can be set beside published tables (labelled so); never part of a verdict.
    paper_comparable: bool = False


@dataclass(frozen=True)
class EvalContext(InWorkspace):
    """Everything an evaluator may use (evaluators are harness code; methods never see this); ``suite``, ``data``,
    ``cache`` and ``device`` read through the workspace."""

    workspace: Workspace  # the suite, its data, the artifact cache, the device
    split: Split
    seed: int
    original: nn.Module | None  # None in an evaluator's prepare step (shadow bank only)
    # The retrained models this evaluation compares with: all K oracles for a method; the other K - 1 when
    # one oracle is itself scored as the retrain reference (leave-one-out).
    oracles: list[nn.Module]
    method: MethodSpec | None = None
    hparams: dict[str, Any] = field(default_factory=dict)
    # Runs the current method (same hyper-parameters) on another original/forget/retain and returns an
    # ``harness.pipeline.row.Unlearned`` (model and cost); used by the per-example attacks, whose shadow models
    # must be unlearned by the method under test. None where no method is evaluated.
    unlearn: Callable[..., Any] | None = None
    # How ``unlearn`` runs the method (harness/isolation/sandbox.py mode, or "off" in-process): part of
    # :meth:`method_runs_key`, so a run made without the sandbox is never reused as a sandboxed one.
    unlearn_sandbox: str = "off"
    memo: dict[str, Any] = field(default_factory=dict)  # per-process scratch shared across runs of a suite
    results_root: Path | None = None  # where evaluators may write side tables (results/<suite>/_examples/)
    run_cpu_seconds: float = float("nan")  # what the evaluated run cost (CPU seconds; NaN: not a method run)

    def method_runs_key(self, bank_key: str) -> str:
        """Cache key of the method under test's runs on a bank of extra models (U-LiRA's shadows, KLoM's
        originals): the bank, the method's configuration and how the method ran."""
        return cache_key(bank=bank_key, method=self.method.name, config=config_hash(self.method.name, self.hparams),
                         sandbox=self.unlearn_sandbox, costs=AUDIT_COSTS)

    def options(self, evaluator: str) -> dict[str, Any]:
        """The evaluator's options: its declared defaults, overridden by the suite's [evaluate.<name>] table."""
        table = self.suite.evaluate.get(evaluator)
        return {**EVALUATORS[evaluator].options, **(table if isinstance(table, dict) else {})}


NEEDS = ("shadow-bank", "shadow-originals")  # what an evaluator can ask the job graph to train first


@dataclass(frozen=True)
class Evaluator:
    name: str
    fn: Callable[[nn.Module, EvalContext], dict[str, float]]
    metrics: tuple[MetricInfo, ...]
    per_method: bool = False  # True: scores the method (via shadow runs), cost shared across seeds
    needs: tuple[str, ...] = ()  # models it reads besides the run's own: the shadow bank, or its originals
    options: dict[str, Any] = field(default_factory=dict)  # [evaluate.<name>] settings and their defaults
    # Work that depends on the method configuration and scenario only (per-method evaluators: the method's
    # runs on the shadow bank); the job graph runs it once per configuration as its own job, in parallel.
    prepare: Callable[[EvalContext], None] | None = None
    # Validates the evaluator's options (defaults merged with the suite's table) before anything trains.
    check: Callable[[dict[str, Any]], None] | None = None
    # False: a check of each run (e.g. the consistency check) whose numbers are all 'info' and never scored
    scores: bool = True

    @property
    def scenarios(self) -> tuple[str, ...]:
        """The scenario kinds the evaluator runs in: where at least one of its metrics can vary."""
        return tuple(k for k in SCENARIO_KINDS if self.metrics_for(k))

    def metrics_for(self, kind: str) -> tuple[MetricInfo, ...]:
        """The metrics that can vary in a scenario of this kind (bookkeeping 'info' ones ride along).

        A check (``scores=False``), whose metrics are all 'info', runs in every kind its metrics name."""
        mine = tuple(m for m in self.metrics if kind in m.scenarios)
        if not self.scores:
            return mine
        return mine if any(m.direction != "info" for m in mine) else ()


# The evaluators by name; the built-in ones register when harness.evaluate is imported (on first use).
EVALUATORS: Registry[Evaluator] = Registry("evaluator", builtins=("harness.evaluate",),
                                         entry_points="unlearn_bench.evaluators")


def register_evaluator(name: str, metrics: list[MetricInfo], per_method: bool = False, needs: tuple[str, ...] = (),
                       options: dict[str, Any] | None = None,
                       prepare: Callable[[EvalContext], None] | None = None,
                       check: Callable[[dict[str, Any]], None] | None = None, scores: bool = True) -> Callable:
    """Register ``fn(model, ctx) -> {metric: value}``; each metric declares where it can vary (``scenarios``).
    ``scores=False`` registers a check: every metric is 'info' (asserted)."""
    unknown = set(needs) - set(NEEDS)
    if unknown:
        raise ValueError(f"evaluator {name!r}: unknown needs {sorted(unknown)} (known: {', '.join(NEEDS)})")
    if not scores and any(m.direction != "info" for m in metrics):
        raise ValueError(f"evaluator {name!r}: a check (scores=False) declares only 'info' metrics")

    def decorate(fn: Callable) -> Callable:
        EVALUATORS.register(name, Evaluator(name, fn, tuple(metrics), per_method, tuple(needs), dict(options or {}),
                                            prepare, check, scores), getattr(fn, "__module__", ""))
        return fn

    return decorate


def get_evaluator(name: str) -> Evaluator:
    return EVALUATORS[name]


def metric_info(name: str) -> MetricInfo | None:
    for evaluator in EVALUATORS.values():
        for info in evaluator.metrics:
            if info.name == name:
                return info
    return None


# Keys of the suite's [evaluate] table besides the per-evaluator sub-tables.
EVALUATE_KEYS = {
    "evaluators": "names of the evaluators to run",
    "shadow_models": "N, the shadow bank's size (harness/training/shadow_bank.py)",
    "shadow_audit_factor": "random scenarios: size of the audit set the shadow forget sets are drawn from",
    "noop_fraction": "a run that moved its outputs less than this fraction of the oracles' shift is a no-op",
    "copy_tv_fraction": "a run whose outputs are closer than this fraction of two oracles' to one oracle is a copy",
}


def check_evaluation(evaluate: dict[str, Any], where: str) -> None:
    """Validate a suite's ``[evaluate]`` table against the registered evaluators and their options.

    Raises ``ValueError`` naming ``where`` (the suite file), the key and the closest known name.
    """
    names = evaluate.get("evaluators", ["accuracy"])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{where} [evaluate]: evaluators must be a list of names, got {names!r}")
    for name in names:
        if name not in EVALUATORS:
            raise ValueError(f"{where} [evaluate]: unknown evaluator {name!r}{did_you_mean(name, EVALUATORS)}")
    for key, value in evaluate.items():
        if key in EVALUATE_KEYS:
            continue
        if key not in EVALUATORS:
            raise ValueError(f"{where} [evaluate]: unknown key {key!r}"
                             f"{did_you_mean(key, [*EVALUATE_KEYS, *EVALUATORS])}")
        if not isinstance(value, dict):
            raise ValueError(f"{where} [evaluate.{key}]: must be a table of option = value")
        options = EVALUATORS[key].options
        for option in value:
            if option not in options:
                known = did_you_mean(option, options) if options else f"; {key!r} takes no options"
                raise ValueError(f"{where} [evaluate.{key}]: unknown option {option!r}{known}")
    for name in names:  # option values, for the evaluators that declare a check
        evaluator = EVALUATORS[name]
        table = evaluate.get(name)
        if evaluator.check is not None:
            try:
                evaluator.check({**evaluator.options, **(table if isinstance(table, dict) else {})})
            except ValueError as exc:
                raise ValueError(f"{where} [evaluate.{name}]: {exc}") from exc
