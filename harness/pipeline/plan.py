"""Planning: from the command line's options and a suite to the list of runs (no training happens here).

Every name, hyper-parameter and evaluator setting is validated before anything trains; a run is one method
configuration on one (scenario, seed), identified by a ``run_id`` that names its results file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pyarrow.parquet as pq

from harness.core.registry import did_you_mean
from harness.core.results import ResultsStore
from harness.evaluate.base import check_evaluation
from harness.pipeline.options import RunOptions  # re-exported: the flat layout's place
from harness.protocol.hparams import config_hash, resolve_hparams, suite_layer, tuning_columns, tuning_record
from harness.protocol.methods import METHODS, MethodSpec
from harness.protocol.scoring import SEQUENTIAL, hparams_kind
from harness.protocol.splits import parse_scenario
from harness.protocol.suite import Suite
from harness.training.cache import cache_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSpec:
    """One planned run: a method configuration on one (scenario, seed)."""

    scenario: str
    seed: int
    method: str
    hparams: dict[str, Any]
    config_hash: str
    run_id: str
    tuning: dict[str, Any] = field(default_factory=dict)  # row columns: how this configuration was tuned
    step: int | None = None  # sequential scenarios: the step (1..S) this run's row scores; None for other kinds


def run_id_for(suite: Suite, scenario: str, seed: int, method: str, chash: str, step: int | None = None) -> str:
    # the step joins the key only where there is one, so the other kinds' run ids stay as they were
    extra = {} if step is None else {"step": step}
    return cache_key(suite=suite.name, version=suite.version, scenario=scenario, seed=seed, method=method,
                     config=chash, **extra)[:20]


def select_methods(suite: Suite, requested: list[str], extra: list[str] = ()) -> list[MethodSpec]:
    """The request, else the suite's list, else every registered method; plus ``extra`` (plugins)."""
    names = list(requested or suite.methods or METHODS)
    names += [n for n in extra if n not in names]
    return [METHODS[name] for name in names]  # an unknown name: KeyError with "did you mean"


def with_references(specs: list[MethodSpec]) -> list[MethodSpec]:
    """``specs`` plus every reference method (``original``, ``retrain``) they lack: the leaderboard's verdicts
    test each entry against the ``retrain`` floor row and place it against ``original``, so a run that names
    only some methods still plans (and, unless stored, writes) the reference rows of each (scenario, seed)."""
    have = {s.name for s in specs}
    return [*(s for s in METHODS.everything().values() if s.kind == "reference" and s.name not in have), *specs]


def plan_runs(suite: Suite, options: RunOptions, specs: list[MethodSpec]) -> list[RunSpec]:
    """Every run the options ask for, with resolved hyper-parameters (validated before any training)."""
    check_evaluation(suite.evaluate, suite.path or suite.name)
    scenarios = options.scenarios or list(suite.scenarios)
    seeds = options.seeds or list(suite.seeds)
    for name in scenarios:
        parse_scenario(name)
    unknown = set(options.overrides) - {s.name for s in specs}
    if unknown:
        name = min(unknown)
        raise KeyError(f"--set names method {name!r}, which is not selected{did_you_mean(name, [s.name for s in specs])}")
    plan = []
    for spec in specs:
        unsupported = [s for s in scenarios if not spec.supports(parse_scenario(s).family)]
        if unsupported and spec.name in (options.methods or ()):  # asked for by name: say why it is not run
            log.warning("method %r handles %s scenarios only: not run on %s", spec.name,
                        " and ".join(spec.scenarios), ", ".join(unsupported))
        for scenario in scenarios:
            parsed = parse_scenario(scenario)
            kind = parsed.kind
            if not spec.supports(parsed.family):  # a method declares families: random or class forgetting
                continue
            # per scenario kind: defaults < [method] < [method.<kind>] < --set (harness/protocol/hparams.py)
            overrides = options.overrides.get(spec.name, {})
            layer = hparams_kind(kind)  # sequential runs use the random kind's settings
            hp = resolve_hparams(spec, suite_layer(suite.hparams, spec.name, layer), overrides,
                                 where=f"suite {suite.name} / --set")
            chash = config_hash(spec.name, hp)
            tuning = tuning_columns(tuning_record(suite.hparams, spec.name, layer), overridden=bool(overrides))
            # a sequential scenario is one run per step (each its own row), executed in order (pipeline/graph.py)
            steps = [None] if parsed.kind != SEQUENTIAL else list(range(1, parsed.steps + 1))
            for seed in seeds:
                for step in steps:
                    plan.append(RunSpec(scenario, seed, spec.name, hp, chash,
                                        run_id_for(suite, scenario, seed, spec.name, chash, step), tuning, step))
    return plan


def should_retry(store: ResultsStore, run: RunSpec, options: RunOptions) -> bool:
    if not options.retry_failed or not store.exists(run.run_id):
        return False
    return pq.read_table(store.path(run.run_id), columns=["status"]).column("status")[0].as_py() != "ok"




def pending_runs(plan: list[RunSpec], store: ResultsStore, options: RunOptions) -> list[RunSpec]:
    """The planned runs without a stored row (all with ``force``; failed ones too with ``retry_failed``),
    grouped by (scenario, seed) so each split's original and oracles are built once."""
    pending = [r for r in plan if options.force or not store.exists(r.run_id) or should_retry(store, r, options)]
    return sorted(pending, key=lambda r: (r.scenario, r.seed, r.step or 0))
