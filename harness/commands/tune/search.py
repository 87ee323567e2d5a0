"""One Optuna study per (method, scenario kind), every trial evaluated by the runner on the validation suite.

Protocol (docs/tuning.md): the same number of trials for every method and kind; trial 0 is the method's
current setting (the suite's value, else the registered default, clipped into the range), the next
``startup`` trials are drawn at random from the declared space and the rest by TPE (Optuna's
``TPESampler`` with a seed fixed per (method, kind), so a rerun asks for the same configurations). A trial
runs the configuration on every validation (scenario, seed) of that kind through
:func:`harness.pipeline.driver.run_suite`, and scores the mean ``avg_gap`` over them; a run that fails, times out or
returns an invalid model scores 100, the largest value ``avg_gap`` can take (every term is a percentage), and so
does a run over ``BUDGET_MARGIN`` of the suite's compute budget (``[run] max_time_ratio``): every method is tuned
under the same compute limit it is scored under.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from harness.commands.tune.validation import ValidationSuite
from harness.core.results import ResultsStore
from harness.pipeline.driver import run_suite
from harness.pipeline.options import Options, RunOptions
from harness.pipeline.plan import plan_runs
from harness.protocol.hparams import resolve_hparams, suite_layer
from harness.protocol.methods import MethodSpec
from harness.protocol.search_space import Knob, at_bound
from harness.protocol.splits import parse_scenario, stable_seed

log = logging.getLogger(__name__)

OBJECTIVE = "avg_gap"
FAILED_SCORE = 100.0  # avg_gap's maximum: a failed run is worse than any run that returned a model
BUDGET_MARGIN = 0.9  # a trial must stay within this share of the suite's compute budget (max_time_ratio)


@dataclass
class Trial:
    """One evaluated configuration."""

    number: int
    origin: str  # "current" (trial 0), "random" (start-up) or "tpe"
    params: dict[str, Any]
    objective: float
    per_run: dict[str, float]  # "<scenario>/<seed>" -> avg_gap (FAILED_SCORE for a failed run)
    avg_gap_rmia: float  # the other headline, for the log (not optimised)
    failed: int
    noop: int
    seconds: float


@dataclass
class TuneResult:
    """The outcome of one study."""

    method: str
    kind: str
    space: dict[str, Knob]
    budget: int
    tuned_on: str
    trials: list[Trial] = field(default_factory=list)

    @property
    def best(self) -> Trial:
        return min(self.trials, key=lambda t: (t.objective, t.number))  # ties: the earlier trial

    @property
    def at_bound(self) -> list[str]:
        return at_bound(self.space, self.best.params)


def startup_trials(budget: int) -> int:
    """Random trials before TPE takes over: half the budget, at most 10 (Optuna's default)."""
    return max(1, min(10, budget // 2))


def current_params(spec: MethodSpec, suite: ValidationSuite, kind: str) -> dict[str, Any]:
    """Trial 0: the method's present setting for this kind, clipped into its declared ranges."""
    resolved = resolve_hparams(spec, suite_layer(suite.hparams, spec.name, kind))
    out = {}
    for name, knob in spec.search_space.items():
        value = knob.clip(resolved[name])
        if value is not None:  # a Choice whose current value is not among its choices: sampled instead
            out[name] = value
    return out


def _stored_rows(suite: ValidationSuite, options: RunOptions, spec: MethodSpec) -> list[dict[str, Any]]:
    """The rows of the planned runs (just written, or stored by an earlier, interrupted tune)."""
    store = ResultsStore(options.results_root, suite.name)
    rows = []
    for run in plan_runs(suite, options, [spec]):
        if store.exists(run.run_id):
            rows.append(pq.read_table(store.path(run.run_id)).to_pylist()[0])
    return rows


def evaluate(spec: MethodSpec, suite: ValidationSuite, kind: str, params: dict[str, Any],
             base: RunOptions) -> tuple[float, list[dict[str, Any]]]:
    """Run ``params`` on every validation (scenario, seed) of ``kind``; the mean avg_gap and the rows."""
    scenarios = [s for s in suite.scenarios if parse_scenario(s).kind == kind]
    options = RunOptions(**{**vars(base), "methods": [spec.name], "scenarios": scenarios,
                            "seeds": list(suite.seeds), "overrides": {spec.name: dict(params)}, "plugins": []})
    run_suite(suite, options)
    rows = _stored_rows(suite, options, spec)
    expected = len(scenarios) * len(suite.seeds)
    if len(rows) != expected:
        raise RuntimeError(f"tuning {spec.name}: {len(rows)} of {expected} validation rows were stored")
    scores = [_score(row) for row in rows]
    return float(sum(scores) / len(scores)), rows


def within_tuning_budget(row: dict[str, Any]) -> bool:
    """A validation run within ``BUDGET_MARGIN`` of the suite's compute budget (always, without a budget).

    Tuning selects with a margin below the budget so that a chosen setting does not cross it on the scored seeds
    (a run's CPU time varies by a few percent between tasks of the same size)."""
    budget, ratio = row.get("time_budget"), row.get("time_ratio")
    if not (isinstance(budget, float) and math.isfinite(budget)):
        return True
    return isinstance(ratio, float) and math.isfinite(ratio) and ratio <= BUDGET_MARGIN * budget


def _score(row: dict[str, Any]) -> float:
    value = row.get(OBJECTIVE)
    ok = row.get("status") == "ok" and isinstance(value, float) and math.isfinite(value)
    return float(value) if ok and within_tuning_budget(row) else FAILED_SCORE


def _mean(values: list[Any]) -> float:
    finite = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return float(sum(finite) / len(finite)) if finite else math.nan


def tune(spec: MethodSpec, suite: ValidationSuite, kind: str, budget: int, base: RunOptions,
         seed: int = 0, progress: Any = None) -> TuneResult:
    """Run one study of ``budget`` trials for ``spec`` on the validation scenarios of ``kind``."""
    import optuna

    if not spec.search_space:
        raise ValueError(f"method {spec.name!r} declares no search space (register_method(..., "
                         "search_space={...}); docs/tuning.md)")
    if budget < 1:
        raise ValueError(f"the budget must be at least one trial, got {budget}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    startup = startup_trials(budget)
    sampler = optuna.samplers.TPESampler(seed=stable_seed("tune", spec.name, kind, seed) % (2**31),
                                         n_startup_trials=startup)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.enqueue_trial(current_params(spec, suite, kind))
    result = TuneResult(spec.name, kind, dict(spec.search_space), budget, suite.describe())
    for number in range(budget):
        trial = study.ask()
        params = {name: knob.suggest(trial, name) for name, knob in spec.search_space.items()}
        start = time.perf_counter()
        value, rows = evaluate(spec, suite, kind, params, base)
        study.tell(trial, value)
        origin = "current" if number == 0 else "random" if number < startup else "tpe"  # Optuna counts trial 0
        per_run = {f"{r['scenario']}/{r['seed']}": _score(r) for r in rows}
        result.trials.append(Trial(number, origin, params, value, per_run,
                                   _mean([r.get("avg_gap_rmia") for r in rows]),
                                   sum(r.get("status") != "ok" for r in rows), sum(bool(r.get("noop")) for r in rows),
                                   time.perf_counter() - start))
        if progress is not None:
            progress(result, result.trials[-1])
    return result


def default_options(results_root: Path, options: Options) -> RunOptions:
    """The runner options every trial shares (the validation suite's rows go under ``results_root``); no plugin
    files: the plugins are registered in this process already."""
    return RunOptions(**{**options.shared(), "plugins": ()}, results_root=results_root, progress=False)
