"""Running one planned run: the (scenario, seed) context with its original and K oracles, the method (in an
isolated worker), the evaluators, the gaps to the oracles, and the results row.

:func:`produce_row` never raises for a fault of the method or of an evaluator: it returns a row whose status
says what went wrong, so the other runs go on.

Why one module: a row's columns are assembled here, in one order, from one context (provenance, the method's run
and its cost, the copy check, the metrics, the gaps and headlines, the no-op check); split, the row's schema would
be spread over several files.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.core.version import HARNESS_VERSION
from harness.evaluate import EvalContext, MetricInfo, get_evaluator
from harness.evaluate.base import EVALUATION_VERSION
from harness.evaluate.consistency import consistency_columns
from harness.isolation.method_call import (
    InvalidOutput,
    MethodRun,
    build_task,
    call_method,
    method_family,
    task_memoizer,
)
from harness.isolation.plugins import PluginFailure
from harness.isolation.workers import Isolation, IsolationLimits, MethodFault
from harness.pipeline.noop import DEFAULT_NOOP_FRACTION, is_noop, output_shift
from harness.pipeline.oracle_copy import COPY_TV_FRACTION, functional_copy_check
from harness.pipeline.plan import RunSpec, run_id_for
from harness.pipeline.provenance import git_sha, hardware, package_versions
from harness.protocol.hparams import tuning_columns
from harness.protocol.methods import MethodSpec, get_method
from harness.protocol.scoring import (
    HEADLINE_DESCRIPTIONS,
    HEADLINES,
    ORACLE_METHOD,
    SCENARIO_KINDS,
    TOW_DESCRIPTION,
    TOW_TERMS,
    floor_gaps,
    gaps_to_targets,
    headlines,
    oracle_targets,
    tow,
)
from harness.protocol.splits import Split, parse_scenario, stable_seed
from harness.protocol.suite import Suite, SuiteData
from harness.training.cache import ArtifactCache, cache_key
from harness.training.difficulty import scenario_split
from harness.training.loop import warm_up
from harness.training.reference_models import TrainedModel, get_oracle, get_original
from harness.training.workspace import InWorkspace, Workspace

log = logging.getLogger(__name__)


class SeedContext(InWorkspace):
    """Lazily built artifacts for one (scenario, seed): split, original, the K oracles and their metrics.

    ``isolation`` runs methods (and the evaluators' shadow runs) in workers (None: in this process);
    evaluators write side tables under ``results_root`` (None: nowhere); ``memo`` is the process's scratch.
    """

    def __init__(self, workspace: Workspace, scenario: str, seed: int, memo: dict,
                 isolation: Isolation | None = None, results_root: Path | None = None, step: int | None = None):
        self.workspace, self.seed, self.memo = workspace, seed, memo
        self.isolation, self.results_root = isolation, results_root
        # a sequential scenario's step: its split (forget = the union so far) and its own K oracles
        self.split: Split = scenario_split(workspace, scenario, seed, memo, step)
        self._original: TrainedModel | None = None
        self._oracles: list[TrainedModel] | None = None
        self._oracle_metrics: list[dict[str, float]] | None = None

    @property
    def original(self) -> TrainedModel:
        if self._original is None:
            self._original = get_original(self.workspace, self.seed)
        return self._original

    @property
    def oracles(self) -> list[TrainedModel]:
        """The suite's K independent retrains on this split (oracle 0 shares the original's seed)."""
        if self._oracles is None:
            self._oracles = [get_oracle(self.workspace, self.split, k) for k in range(self.suite.oracles)]
        return self._oracles

    @property
    def oracle(self) -> TrainedModel:
        return self.oracles[0]

    def eval_context(self, spec: MethodSpec | None, hparams: dict[str, Any],
                     references: list[nn.Module] | None = None, with_models: bool = True,
                     run_cpu_seconds: float = math.nan) -> EvalContext:
        """Evaluation context of a run; ``references`` are the oracles it is compared with (default: all K).

        ``with_models=False`` leaves out the original and the oracles (an evaluator's ``prepare`` step, which
        works on the shadow bank only, then does not wait for them to train). ``run_cpu_seconds`` is what the
        evaluated run cost (the consistency check compares it with the method's audit runs).
        """
        refs = [o.model for o in self.oracles] if references is None and with_models else (references or [])
        original = self.original.model if with_models else None
        unlearn_shadow = None
        if spec is not None:
            # original_key (the shadow original's cache key) lets task.cached store derived artifacts.
            def unlearn_shadow(original, forget, retain, seed, original_key=None):
                return shadow_unlearn(self.method_run(spec, hparams, original, forget, retain, seed, original_key),
                                      self.cache if original_key else None, self.isolation)
        return EvalContext(self.workspace, self.split, self.seed, original, refs, spec, hparams,
                           unlearn=unlearn_shadow, unlearn_sandbox=sandbox_label(self.isolation) if spec is not None else "off",
                           memo=self.memo, results_root=self.results_root, run_cpu_seconds=run_cpu_seconds)

    def method_run(self, spec: MethodSpec, hparams: dict[str, Any], original: nn.Module, forget: torch.Tensor,
                   retain: torch.Tensor, seed: int, original_key: str | None = None) -> MethodRun:
        """A run of ``spec`` on ``original`` with positions of the suite's train pool, in this scenario."""
        scenario = self.split.scenario
        return MethodRun.select(spec, hparams, original, self.suite.model, self.data.train_x, self.data.train_y,
                                forget, retain, num_classes=self.data.num_classes, scenario_kind=scenario.family,
                                forget_class=scenario.forget_class, device=self.device,
                                seed=stable_seed("unlearn", scenario.name, seed, *self._step_part),
                                augment=self.suite.unlearn_augment,
                                original_key=original_key)

    @property
    def _step_part(self) -> tuple:
        """What a sequential step adds to seeds (nothing for other kinds, whose seeds stay as they were)."""
        return () if self.split.step is None else (f"step-{self.split.step}",)

    def oracle_metrics(self) -> list[dict[str, float]]:
        """Each oracle's metrics, evaluated as the retrain reference against the *other* oracles.

        The per-run evaluators' values are stored in the artifact cache per (split, original, oracles, evaluation
        settings), so every run group of the split -- the suite's and, later, one more method's -- computes them
        once; the per-method evaluators (the retrain row's U-LiRA, KLoM) are cached by their own keys and also
        write their side tables into the results folder being filled.
        """
        if self._oracle_metrics is None:
            key = ("oracle-metrics", self.split.hash, self.data.fingerprint, self.original.key,
                   tuple(o.key for o in self.oracles), json.dumps(self.suite.evaluate, sort_keys=True, default=str))
            if key not in self.memo:  # memoised per process too: `unlearn-bench tune` trials reuse them
                spec = get_method(ORACLE_METHOD)
                models = [o.model for o in self.oracles]
                out = []
                for k, model in enumerate(models):
                    ctx = self.eval_context(spec, {}, models[:k] + models[k + 1:])
                    stored = self.cache.get_or_compute(
                        "oracle-metrics", cache_key(parts=key, oracle=k, version=EVALUATION_VERSION),
                        lambda: evaluate_model(model, ctx, per_method=False),  # noqa: B023 - called at once
                        parts={"suite": self.suite.name, "scenario": self.split.scenario.name, "seed": self.seed},
                        tally=False)
                    out.append({**stored, **evaluate_model(model, ctx, per_method=True)})
                self.memo[key] = out
            self._oracle_metrics = self.memo[key]
        return self._oracle_metrics


def unlearn(run: MethodRun, cache: ArtifactCache | None = None, isolation: Isolation | None = None) -> nn.Module:
    """Run a method; with ``isolation`` in a (sandboxed) worker process, where faults raise :class:`MethodFault`
    (the reference ``original`` stays in-process). With ``cache`` and the run's ``original_key``,
    ``task.cached`` stores derived artifacts (e.g. AMUN's adversarial sets)."""
    if isolation is not None and run.spec.kind != "reference":
        return isolation.unlearn(run, cache=cache)
    memoize = (task_memoizer(cache, run.original_key, run.forget_hash, method_family(run.spec))
               if cache is not None and run.original_key and run.forget_hash else None)
    return call_method(run.spec, build_task(run, memoize), run.hparams)


@dataclass(frozen=True)
class Unlearned:
    """A method's returned model and what producing it cost."""

    model: nn.Module
    cpu_seconds: float  # measured outside the method: the worker's CPU time (kernel), or this process's
    wall_seconds: float


def unlearn_measured(run: MethodRun, cache: ArtifactCache | None = None,
                     isolation: Isolation | None = None) -> Unlearned:
    """:func:`unlearn` with its cost: an isolated run's time from sending the job to the answer (never the
    worker's start-up) and its CPU time as the isolation measured it; an in-process run's own process time."""
    if isolation is None or run.spec.kind == "reference":  # timed here: torch's lazy imports must not count
        warm_up()
    start, cpu = time.perf_counter(), time.process_time()
    model = unlearn(run, cache, isolation)
    wall, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    if isolation is not None and run.spec.kind != "reference":
        wall = isolation.last_job_seconds
        measured = getattr(isolation, "last_job_cpu_seconds", None)
        cpu_seconds = wall if measured is None or not math.isfinite(measured) else measured
    return Unlearned(model, cpu_seconds, wall)


def shadow_unlearn(run: MethodRun, cache: ArtifactCache | None, isolation: Isolation | None) -> Unlearned:
    """An evaluator's run of the method under test on a shadow model; any fault raises MethodFault."""
    try:
        return unlearn_measured(run, cache, isolation)
    except MethodFault:
        raise
    except InvalidOutput as exc:
        raise MethodFault("invalid", str(exc)) from exc
    except Exception as exc:
        raise MethodFault("failed", _format_exception(exc)) from exc


class EvaluatorFailure(RuntimeError):
    """An evaluator raised on a run (harness or evaluator bug, not a method fault): the row is ``failed``."""


def evaluate_model(model: nn.Module, ctx: EvalContext, per_method: bool | None = None,
                   seconds: dict[str, float] | None = None) -> dict[str, float]:
    """The suite's evaluators' metrics that can vary in this scenario kind (only the per-method evaluators, or
    only the others, when ``per_method`` says so); ``seconds`` collects each evaluator's time.

    A method fault inside an evaluator's shadow runs propagates as :class:`MethodFault`; any other exception
    becomes :class:`EvaluatorFailure` naming the evaluator, which the runner records as a failed row.
    """
    kind = ctx.split.scenario.kind
    metrics: dict[str, float] = {}
    for name in ctx.suite.evaluators:
        evaluator = get_evaluator(name)
        wanted = {m.name for m in evaluator.metrics_for(kind)}
        if not wanted or (per_method is not None and evaluator.per_method != per_method):
            continue
        start = time.perf_counter()
        try:
            values = evaluator.fn(model, ctx)
        except MethodFault:
            raise
        except Exception as exc:
            raise EvaluatorFailure(f"evaluator {name!r} failed: {_format_exception(exc)}") from exc
        metrics.update({k: float(v) for k, v in values.items() if k in wanted})
        if seconds is not None:
            seconds[name] = time.perf_counter() - start
    return metrics


def scored_metrics(suite: Suite, kind: str) -> dict[str, MetricInfo]:
    """Metrics of the suite's evaluators that are meaningful in this scenario kind, by name."""
    return {m.name: m for name in suite.evaluators for m in get_evaluator(name).metrics_for(kind)}


def per_method_metrics(suite: Suite, kind: str) -> set[str]:
    return {m.name for name in suite.evaluators if get_evaluator(name).per_method
            for m in get_evaluator(name).metrics_for(kind)}


def gaps(metrics: dict[str, float], ctx: SeedContext, is_reference: bool) -> dict[str, float]:
    """``gap_<m>`` for the match-oracle metrics, and the headlines (``avg_gap``, ``avg_gap_rmia``).

    A method is measured against the mean of the K oracles. The retrain reference gets the noise floor: each
    oracle against the others (:func:`harness.protocol.scoring.floor_gaps`); its per-method metrics (U-LiRA) have no
    leave-one-out counterpart, so their gap is left empty rather than set to 0.
    """
    kind = ctx.split.scenario.kind
    info = scored_metrics(ctx.suite, kind)
    matched = [n for n, m in info.items() if m.direction == "match-oracle"]
    per_oracle = ctx.oracle_metrics()
    if is_reference:
        out = floor_gaps(per_oracle, [n for n in matched if n not in per_method_metrics(ctx.suite, kind)])
    else:
        out = gaps_to_targets(metrics, oracle_targets(per_oracle), matched)
    out.update(headlines(out, kind))
    if set(TOW_TERMS) <= set(matched):  # derived from the accuracy gaps (the retrain row: its floor)
        out["tow"] = tow(out)
    return out


def metric_metadata(suite: Suite, kind: str) -> str:
    """JSON: every metric of this scenario kind (direction, unit, ...) and the headlines' definitions."""
    meta: dict[str, dict] = {}
    avg_terms = HEADLINES["avg_gap"][kind]
    for name in suite.evaluators:
        evaluator = get_evaluator(name)
        for m in evaluator.metrics_for(kind):
            meta[m.name] = {"direction": m.direction, "in_avg_gap": m.name in avg_terms, "unit": m.unit,
                            "reconstructed": m.reconstructed, "evaluator": name, "per_method": evaluator.per_method,
                            "scenarios": list(m.scenarios), "description": m.description,
                            "privacy": m.privacy, "axis": m.axis, "paper_comparable": m.paper_comparable}
    for name, terms in HEADLINES.items():
        meta[name] = {"direction": "lower", "unit": "%", "evaluator": "protocol", "terms": list(terms[kind]),
                      "per_method": False, "reconstructed": False, "scenarios": list(SCENARIO_KINDS),
                      "description": HEADLINE_DESCRIPTIONS[name], "oracles": suite.oracles}
    if all(t in meta for t in TOW_TERMS):  # no "terms" key: readers take entries with terms for mean-gap headlines
        meta["tow"] = {"direction": "higher", "unit": "fraction", "evaluator": "protocol", "in_avg_gap": False,
                       "from": [f"gap_{t}" for t in TOW_TERMS], "per_method": False, "reconstructed": False,
                       "scenarios": list(SCENARIO_KINDS), "description": TOW_DESCRIPTION, "oracles": suite.oracles}
    return json.dumps(meta, sort_keys=True)


def base_row(suite: Suite, data: SuiteData, run: RunSpec, spec_kind: str, device: torch.device,
             reconstructed: bool = False) -> dict[str, Any]:
    return {
        "run_id": run.run_id, "suite": suite.name, "suite_version": suite.version, "scenario": run.scenario,
        "seed": run.seed, "method": run.method, "method_kind": spec_kind, "method_reconstructed": reconstructed,
        "config_hash": run.config_hash,
        "hparams": json.dumps(run.hparams, sort_keys=True), "dataset_fingerprint": data.fingerprint,
        "model": suite.model, "harness_version": HARNESS_VERSION, "git_sha": git_sha(),
        "packages": package_versions(), "device": str(device), "hardware": hardware(device),
        "metric_meta": metric_metadata(suite, parse_scenario(run.scenario).kind),
        "suite_hash": suite.definition_hash, "suite_definition": suite.definition, "oracles": suite.oracles,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "status": "ok", "error": "",
        "grade": suite.grade,
        **(run.tuning or tuning_columns(None)),  # tuning_budget, tuning_trials, tuned_on, tuning_at_bound
        # sequential rows only: the step they score (other kinds' rows keep their columns; readers see null)
        **({} if run.step is None else {"step": int(run.step)}),
    }


def produce_row(run: RunSpec, ctx: SeedContext) -> dict[str, Any]:
    """Run one method on one (scenario, seed) and return its row (never raises for method faults)."""
    return produce_scored(run, ctx)[0]


def produce_sequential_rows(runs: list[RunSpec], context: Callable[[int], SeedContext],
                            on_row: Callable[[dict[str, Any]], None]) -> None:
    """The rows of a sequential scenario's runs (one (scenario, seed)), each method configuration's steps in order.

    Step s gives the method the model it returned at step s - 1 (step 1: the original) and request s, with the
    retain set of step s (the pool without requests 1..s); the row scores the returned model on step s's split
    (forget = the union so far) against step s's K oracles. Steps before the last wanted one are run even when
    their rows are stored (their model is the next step's input) and then not written again. After a step whose row
    is not ok (failed, timeout, invalid: also a copy of an oracle) the chain is broken: later steps are failed rows
    that name it. ``context(step)`` gives a step's context.
    """
    chains: dict[tuple[str, str], dict[int, RunSpec]] = {}
    for run in runs:
        chains.setdefault((run.method, run.config_hash), {})[int(run.step)] = run
    for wanted in chains.values():
        template = next(iter(wanted.values()))
        model: nn.Module | None = None
        broken = ""
        for step in range(1, max(wanted) + 1):
            ctx = context(step)
            run = wanted.get(step) or dataclasses.replace(template, step=step, run_id=f"{template.run_id}-s{step}")
            if broken:
                if step in wanted:
                    row = base_row(ctx.suite, ctx.data, run, get_method(run.method).kind, ctx.device)
                    on_row(_failed(row, "failed", broken, 0.0))
                continue
            row, model = produce_scored(run, ctx, model)
            if row["status"] != "ok":
                broken = f"step {step} of this sequence ended {row['status']}: the later steps have no input model"
            if step in wanted:
                on_row(row)


def produce_scored(run: RunSpec, ctx: SeedContext, start: nn.Module | None = None
                   ) -> tuple[dict[str, Any], nn.Module | None]:
    """:func:`produce_row`, and the model the method returned (None when it failed); ``start`` is the model the
    method unlearns from (default: the original; a sequential step's predecessor's output)."""
    suite, data = ctx.suite, ctx.data
    spec = get_method(run.method)
    is_oracle = spec.name == ORACLE_METHOD
    row = base_row(suite, data, run, spec.kind, ctx.device, spec.reconstructed)
    row["sandbox"] = sandbox_label(ctx.isolation)
    row["limits"] = limits_label(ctx.isolation, ctx.device)
    row.update(split_hash=ctx.split.hash, original_key=ctx.original.key, oracle_key=ctx.oracle.key,
               oracle_keys=json.dumps([o.key for o in ctx.oracles]), oracle_train_s=ctx.oracle.train_seconds)
    began = time.perf_counter()
    try:
        if is_oracle:  # the retrain reference is oracle 0, served from the cache
            done = Unlearned(ctx.oracle.model, ctx.oracle.cost_seconds, ctx.oracle.train_seconds)
        else:
            # a sequential step's input is the previous step's output: no cache key names it (task.cached is off)
            source, source_key = (ctx.original.model, ctx.original.key) if start is None else (start, None)
            done = unlearn_measured(ctx.method_run(spec, run.hparams, source, ctx.split.given, ctx.split.retain,
                                                   run.seed, source_key), ctx.cache, ctx.isolation)
        model, wall = done.model, done.wall_seconds
    except MethodFault as exc:
        return _failed(row, exc.status, str(exc), time.perf_counter() - began), None
    except InvalidOutput as exc:
        return _failed(row, "invalid", str(exc), time.perf_counter() - began), None
    except Exception as exc:  # noqa: BLE001 - a method's crash becomes a failed row; others go on
        return _failed(row, "failed", _format_exception(exc), time.perf_counter() - began), None
    row.update(cost_columns(done, ctx.oracle, suite.max_time_ratio))
    if not is_oracle:  # a copy of an oracle, by weights or by its predictions on the test split
        fraction = float(suite.evaluate.get("copy_tv_fraction", COPY_TV_FRACTION))
        evidence = functional_copy_check(model, [o.model for o in ctx.oracles], ctx.original.model, data.test_x,
                                         fraction)
        row.update(evidence.columns())
        if evidence.reason:
            return _failed(row, "invalid", evidence.reason, wall), None
    seconds: dict[str, float] = {}
    try:
        if is_oracle:  # the mean of the K oracles, each scored against the others
            metrics = oracle_targets(ctx.oracle_metrics())
        else:
            metrics = evaluate_model(model, ctx.eval_context(spec, run.hparams, run_cpu_seconds=done.cpu_seconds),
                                     seconds=seconds)
    except MethodFault as exc:  # a shadow run of the same method (U-LiRA, MIA-NN) failed
        return _failed(row, exc.status, f"in a shadow run for an evaluator: {exc}", time.perf_counter() - began), None
    except EvaluatorFailure as exc:
        return _failed(row, "failed", str(exc), time.perf_counter() - began), None
    row.update(metrics)
    row["evaluator_seconds"] = json.dumps({k: round(v, 4) for k, v in seconds.items()}, sort_keys=True)
    row.update(consistency_columns(metrics))
    row.update(gaps(metrics, ctx, is_reference=is_oracle))
    row.update(_noop(model, ctx))
    return row, model


def cost_columns(done: Unlearned, oracle: TrainedModel, budget: float | None) -> dict[str, Any]:
    """What a run cost and whether it stayed within the suite's compute budget.

    ``time_ratio`` is CPU time over CPU time, both at the suite's fixed thread count: the method's run (measured
    outside the method) over the training of oracle 0 of the same split. CPU time, unlike wall time, does not
    grow when other processes share the machine, so the budget check does not depend on the load.
    """
    ratio = done.cpu_seconds / max(oracle.cost_seconds, 1e-9)
    return {"wall_time_s": done.wall_seconds, "cpu_time_s": done.cpu_seconds, "oracle_cpu_s": oracle.cost_seconds,
            "time_ratio": ratio, "time_budget": math.nan if budget is None else float(budget),
            "over_budget": budget is not None and ratio > budget}


def _noop(model: nn.Module, ctx: SeedContext) -> dict[str, Any]:
    x = torch.cat([ctx.data.train_x[ctx.split.forget], ctx.data.test_x])
    shift = output_shift(model, ctx.original.model, [o.model for o in ctx.oracles], x)
    fraction = float(ctx.suite.evaluate.get("noop_fraction", DEFAULT_NOOP_FRACTION))
    return {**shift, "noop": is_noop(shift, fraction)}


def _format_exception(exc: BaseException) -> str:
    tail = traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:]
    return "".join(tail).strip()[-2000:]


def _failed(row: dict[str, Any], status: str, error: str, wall: float) -> dict[str, Any]:
    row.update(status=status, error=error, wall_time_s=wall)
    log.warning("run %s %s/%s seed %s: %s: %s", row["run_id"], row["method"], row["scenario"], row["seed"], status,
                error.splitlines()[-1] if error else "")
    return row


def plugin_failure_rows(suite: Suite, data: SuiteData, failures: list[PluginFailure], scenarios: list[str],
                        seeds: list[int], device: torch.device) -> list[dict[str, Any]]:
    """One failed row per (scenario, seed) for each plugin file that could not be loaded."""
    rows = []
    for failure in failures:
        for scenario in scenarios:
            for seed in seeds:
                run = RunSpec(scenario, seed, failure.method_name, {}, "-",
                              run_id_for(suite, scenario, seed, failure.method_name, "plugin-load"))
                row = base_row(suite, data, run, "plugin", device)
                rows.append(_failed(row, "failed", failure.error, 0.0))
    return rows


def sandbox_label(isolation: Isolation | None) -> str:
    """How method runs are protected: the workers' sandbox mode (harness/isolation/sandbox.py), or "off" in-process."""
    return isolation.sandbox if isolation is not None else "off"


def limits_label(isolation: Isolation | None, device: torch.device) -> str:
    """The resource limits method runs had (harness/isolation/limits.py), or "none" in-process."""
    return isolation.limits_label(str(device)) if isolation is not None else "none"


def make_isolation(suite: Suite, isolate: bool, timeout: float | None = None,
                   memory_mb: int | None = None, peers: int = 1) -> Isolation | None:
    """The worker pool for isolated method runs, or None for in-process runs (``--no-isolation``); limits
    default to the suite's ``[run]`` settings; ``peers`` pools on this machine share its memory."""
    if not isolate:
        return None
    timeout = timeout if timeout is not None else suite.timeout
    memory = memory_mb if memory_mb is not None else suite.memory_mb
    # No fork server is started here: each starts with the first run that needs it (outside that run's clocks).
    return Isolation(IsolationLimits(timeout_s=timeout, memory_mb=memory), peers=peers)


