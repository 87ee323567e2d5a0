"""The runner: plan the runs of a suite, get originals and oracles from the cache, run each method,
evaluate, and write one results row per run.

Flow for each (scenario, seed): split -> original + oracle (cached) -> for each method not yet stored:
unlearn -> evaluators -> gaps to the oracle -> Parquet row. Existing rows are skipped unless ``force``.
"""

from __future__ import annotations

import json
import logging
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.artifacts import TrainedModel, get_oracle, get_original
from harness.cache import ArtifactCache, cache_key
from harness.evaluate import EVALUATORS, EvalContext, get_evaluator
from harness.execution import InvalidOutput, build_task, call_method, task_memoizer
from harness.executors import run_with_executor, uses_executor
from harness.hparams import config_hash, resolve_hparams
from harness.integrity import oracle_copy_reason
from harness.isolation import Isolation, IsolationLimits, MethodFault
from harness.plugins import PluginFailure, load_plugins
from harness.provenance import HARNESS_VERSION, git_sha, hardware, package_versions
from harness.references import ORACLE_METHOD
from harness.registry import MethodSpec, all_methods, did_you_mean, get_method
from harness.results import ResultsStore
from harness.splits import Split, hash_indices, make_split, parse_scenario, stable_seed
from harness.suite import Suite, SuiteData
from harness.task import TensorData
from harness.train import resolve_device

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    """What to run; empty selections mean 'everything the suite declares'."""

    methods: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    scenarios: list[str] = field(default_factory=list)
    results_root: Path = Path("results")
    cache_dir: Path | None = None
    device: str = "auto"
    force: bool = False
    retry_failed: bool = False
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # --set method.key=value
    plugins: list[str] = field(default_factory=list)
    progress: bool = True
    data_root: str | None = None
    isolate: bool = False  # run methods in worker processes (the CLI's default; see harness/isolation.py)
    timeout: float | None = None  # seconds per method run (isolated only); None: the suite's [run] timeout
    memory_mb: int | None = None  # worker address-space budget (isolated, CPU); None: the suite's setting
    jobs: int = 1  # > 1: a local process pool (harness/executors.py)
    executor: str = "local"  # local | ray
    ray_address: str | None = None  # None: start (or join) a local Ray instance


@dataclass(frozen=True)
class RunSpec:
    """One planned run: a method configuration on one (scenario, seed)."""

    scenario: str
    seed: int
    method: str
    hparams: dict[str, Any]
    config_hash: str
    run_id: str


@dataclass
class RunSummary:
    written: int = 0
    skipped: int = 0
    failed: int = 0
    planned: int = 0
    rows: list[dict] = field(default_factory=list)


def run_id_for(suite: Suite, scenario: str, seed: int, method: str, chash: str) -> str:
    return cache_key(suite=suite.name, version=suite.version, scenario=scenario, seed=seed, method=method,
                     config=chash)[:20]


def select_methods(suite: Suite, requested: list[str], extra: list[str] = ()) -> list[MethodSpec]:
    """The request, else the suite's list, else every registered method; plus ``extra`` (plugins)."""
    registry = all_methods()
    names = list(requested or suite.methods or registry)
    names += [n for n in extra if n not in names]
    specs = []
    for name in names:
        if name not in registry:
            raise KeyError(f"unknown method {name!r}{did_you_mean(name, registry)}")
        specs.append(registry[name])
    return specs


def plan_runs(suite: Suite, options: RunOptions, specs: list[MethodSpec]) -> list[RunSpec]:
    """Every run the options ask for, with resolved hyper-parameters (validated before any training)."""
    scenarios = options.scenarios or list(suite.scenarios)
    seeds = options.seeds or list(suite.seeds)
    for name in scenarios:
        parse_scenario(name)
    unknown = set(options.overrides) - {s.name for s in specs}
    if unknown:
        name = sorted(unknown)[0]
        raise KeyError(f"--set names method {name!r}, which is not selected{did_you_mean(name, [s.name for s in specs])}")
    plan = []
    for spec in specs:
        hp = resolve_hparams(spec, suite.hparams.get(spec.name, {}), options.overrides.get(spec.name, {}),
                             where=f"suite {suite.name} / --set")
        chash = config_hash(spec.name, hp)
        for scenario in scenarios:
            if not spec.supports(parse_scenario(scenario).kind):
                continue
            for seed in seeds:
                plan.append(RunSpec(scenario, seed, spec.name, hp, chash,
                                    run_id_for(suite, scenario, seed, spec.name, chash)))
    return plan


class SeedContext:
    """Lazily built artifacts for one (scenario, seed): split, original, oracle and its metrics."""

    isolation: Isolation | None = None  # set by the caller to run methods (and shadow runs) in workers
    results_root: Path | None = None  # set by the caller; evaluators write side tables under it

    def __init__(self, suite: Suite, data: SuiteData, scenario: str, seed: int, cache: ArtifactCache,
                 device: torch.device, memo: dict):
        self.suite, self.data, self.seed, self.cache, self.device, self.memo = suite, data, seed, cache, device, memo
        self.split: Split = make_split(suite.name, parse_scenario(scenario, data.num_classes), seed,
                                       data.train_y, data.test_y)
        self._original: TrainedModel | None = None
        self._oracle: TrainedModel | None = None
        self._oracle_metrics: dict[str, float] | None = None

    @property
    def original(self) -> TrainedModel:
        if self._original is None:
            self._original = get_original(self.suite, self.data, self.cache, self.seed, self.device)
        return self._original

    @property
    def oracle(self) -> TrainedModel:
        if self._oracle is None:
            self._oracle = get_oracle(self.suite, self.data, self.cache, self.split, self.device)
        return self._oracle

    def eval_context(self, spec: MethodSpec | None, hparams: dict[str, Any]) -> EvalContext:
        ctx = EvalContext(self.suite, self.data, self.split, self.seed, self.device, self.cache,
                          self.original.model, self.oracle.model, spec, hparams, memo=self.memo,
                          results_root=self.results_root)
        if spec is not None:
            # original_key (the shadow original's cache key) lets task.cached store derived artifacts.
            ctx.unlearn = lambda original, forget, retain, seed, original_key=None, _spec=spec, _hp=hparams: \
                _shadow_unlearn(_spec, _hp, original, self.data, self.split, forget, retain, seed, self.suite,
                                self.device, self.isolation, self.cache if original_key else None, original_key)
        return ctx

    def oracle_metrics(self) -> dict[str, float]:
        if self._oracle_metrics is None:
            spec = get_method(ORACLE_METHOD)
            self._oracle_metrics = evaluate_model(self.oracle.model, self.eval_context(spec, {}))
        return self._oracle_metrics


def unlearn(spec: MethodSpec, hparams: dict[str, Any], original: nn.Module, data: SuiteData, split: Split,
            forget: torch.Tensor, retain: torch.Tensor, seed: int, suite: Suite, device: torch.device,
            oracle: nn.Module | None = None, cache: ArtifactCache | None = None,
            original_key: str | None = None, isolation: Isolation | None = None) -> nn.Module:
    """Run a method on (original, forget, retain). The oracle reference returns ``oracle``.

    With ``isolation`` the method runs in a worker process (built-in references stay in-process) and
    faults raise :class:`MethodFault`. With ``cache`` and ``original_key``, ``task.cached`` stores derived
    artifacts (e.g. adversarial sets).
    """
    if spec.name == ORACLE_METHOD:
        if oracle is None:
            raise RuntimeError("the retrain reference needs its oracle model")
        return oracle
    task_seed = stable_seed("unlearn", split.scenario.name, seed)
    if isolation is not None and spec.kind != "reference":
        forget_data = TensorData(data.train_x[forget], data.train_y[forget])
        retain_data = TensorData(data.train_x[retain], data.train_y[retain]) if spec.needs_retain else None
        return isolation.run(spec, hparams, original, suite.model, forget_data, retain_data, data.num_classes,
                             split.scenario.kind, split.scenario.forget_class, device, task_seed,
                             suite.unlearn_augment, cache=cache, original_key=original_key,
                             forget_hash=hash_indices(forget))
    memoize = task_memoizer(cache, original_key, forget) if cache is not None and original_key else None
    task = build_task(spec, original, data.train_x, data.train_y, forget, retain, data.num_classes,
                      split.scenario.kind, split.scenario.forget_class, device, task_seed, suite.unlearn_augment,
                      suite.model, memoize=memoize)
    return call_method(spec, task, hparams)


def _shadow_unlearn(spec: MethodSpec, hparams: dict[str, Any], original: nn.Module, data: SuiteData,
                    split: Split, forget: torch.Tensor, retain: torch.Tensor, seed: int, suite: Suite,
                    device: torch.device, isolation: Isolation | None, cache: ArtifactCache | None = None,
                    original_key: str | None = None) -> nn.Module:
    """An evaluator's run of the method under test on a shadow model; any fault raises MethodFault."""
    try:
        return unlearn(spec, hparams, original, data, split, forget, retain, seed, suite, device,
                       cache=cache, original_key=original_key, isolation=isolation)
    except MethodFault:
        raise
    except InvalidOutput as exc:
        raise MethodFault("invalid", str(exc)) from exc
    except Exception as exc:
        raise MethodFault("failed", _format_exception(exc)) from exc


def evaluate_model(model: nn.Module, ctx: EvalContext) -> dict[str, float]:
    """Run the suite's evaluators that apply to this scenario; an evaluator's failure is logged as NaNs."""
    metrics: dict[str, float] = {}
    for name in ctx.suite.evaluators:
        evaluator = get_evaluator(name)
        if ctx.split.scenario.kind not in evaluator.scenarios:
            continue
        values = evaluator.fn(model, ctx)
        metrics.update({k: float(v) for k, v in values.items()})
    return metrics


def gaps(metrics: dict[str, float], oracle: dict[str, float], suite: Suite) -> dict[str, float]:
    """|metric - oracle| per metric, and ``avg_gap`` over the metrics flagged for it (AMUN §4.4)."""
    out: dict[str, float] = {}
    in_avg = {m.name for name in suite.evaluators for m in get_evaluator(name).metrics if m.in_avg_gap}
    for name, value in metrics.items():
        if name in oracle and math.isfinite(value) and math.isfinite(oracle[name]):
            out[f"gap_{name}"] = abs(value - oracle[name])
    terms = [out[f"gap_{n}"] for n in sorted(in_avg) if f"gap_{n}" in out]
    out["avg_gap"] = sum(terms) / len(terms) if terms else float("nan")
    return out


def metric_metadata(suite: Suite) -> str:
    meta = {}
    for name in suite.evaluators:
        evaluator = EVALUATORS.get(name)
        for m in evaluator.metrics if evaluator else ():
            meta[m.name] = {"direction": m.direction, "in_avg_gap": m.in_avg_gap, "unit": m.unit,
                            "reconstructed": m.reconstructed, "evaluator": name,
                            "per_method": evaluator.per_method}
    return json.dumps(meta, sort_keys=True)


def base_row(suite: Suite, data: SuiteData, run: RunSpec, spec_kind: str, device: torch.device) -> dict[str, Any]:
    return {
        "run_id": run.run_id, "suite": suite.name, "suite_version": suite.version, "scenario": run.scenario,
        "seed": run.seed, "method": run.method, "method_kind": spec_kind, "config_hash": run.config_hash,
        "hparams": json.dumps(run.hparams, sort_keys=True), "dataset_fingerprint": data.fingerprint,
        "model": suite.model, "harness_version": HARNESS_VERSION, "git_sha": git_sha(),
        "packages": package_versions(), "device": str(device), "hardware": hardware(device),
        "metric_meta": metric_metadata(suite), "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "status": "ok", "error": "",
    }


def execute_run(run: RunSpec, ctx: SeedContext) -> dict[str, Any]:
    """Run one method on one (scenario, seed) and return its row (never raises for method faults)."""
    suite, data = ctx.suite, ctx.data
    spec = get_method(run.method)
    row = base_row(suite, data, run, spec.kind, ctx.device)
    row.update(split_hash=ctx.split.hash, original_key=ctx.original.key, oracle_key=ctx.oracle.key,
               oracle_train_s=ctx.oracle.train_seconds)
    start = time.perf_counter()
    try:
        model = unlearn(spec, run.hparams, ctx.original.model, data, ctx.split, ctx.split.forget, ctx.split.retain,
                        run.seed, suite, ctx.device, oracle=ctx.oracle.model, cache=ctx.cache,
                        original_key=ctx.original.key, isolation=ctx.isolation)
        wall = ctx.oracle.train_seconds if spec.name == ORACLE_METHOD else time.perf_counter() - start
        if ctx.isolation is not None and spec.kind != "reference":
            wall = ctx.isolation.last_job_seconds  # the method's time, not the worker's start-up
    except MethodFault as exc:
        return _failed(row, exc.status, str(exc), time.perf_counter() - start)
    except InvalidOutput as exc:
        return _failed(row, "invalid", str(exc), time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - a method's crash becomes a failed row; others go on
        return _failed(row, "failed", _format_exception(exc), time.perf_counter() - start)
    row.update(wall_time_s=wall, time_ratio=wall / max(ctx.oracle.train_seconds, 1e-9))
    if spec.name != ORACLE_METHOD:
        reason = oracle_copy_reason(model, ctx.oracle.model, ctx.original.model)
        if reason:
            return _failed(row, "invalid", reason, wall)
    try:
        metrics = evaluate_model(model, ctx.eval_context(spec, run.hparams))
    except MethodFault as exc:  # a shadow run of the same method (U-LiRA, MIA-NN) failed
        return _failed(row, exc.status, f"in a shadow run for an evaluator: {exc}", time.perf_counter() - start)
    row.update(metrics)
    row.update(gaps(metrics, ctx.oracle_metrics(), suite))
    return row


def _format_exception(exc: BaseException) -> str:
    tail = traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:]
    return "".join(tail).strip()[-2000:]


def _failed(row: dict[str, Any], status: str, error: str, wall: float) -> dict[str, Any]:
    row.update(status=status, error=error, wall_time_s=wall)
    log.warning("run %s %s/%s seed %s: %s: %s", row["run_id"], row["method"], row["scenario"], row["seed"], status,
                error.splitlines()[-1] if error else "")
    return row


def plugin_failure_rows(suite: Suite, data: SuiteData, failures: list[PluginFailure], options: RunOptions,
                        device: torch.device) -> list[dict[str, Any]]:
    rows = []
    for failure in failures:
        for scenario in options.scenarios or suite.scenarios:
            for seed in options.seeds or suite.seeds:
                run = RunSpec(scenario, seed, failure.method_name, {}, "-",
                              run_id_for(suite, scenario, seed, failure.method_name, "plugin-load"))
                row = base_row(suite, data, run, "plugin", device)
                rows.append(_failed(row, "failed", failure.error, 0.0))
    return rows


def run_suite(suite: Suite, options: RunOptions, on_row: Callable[[dict], None] | None = None) -> RunSummary:
    """Run everything the options select; returns counts and the rows written this time."""
    device = resolve_device(options.device)
    plugin_names, plugin_failures = load_plugins(options.plugins)
    specs = select_methods(suite, options.methods, plugin_names)
    plan = plan_runs(suite, options, specs)
    data = suite.load_data(options.data_root)
    store = ResultsStore(options.results_root, suite.name)
    cache = ArtifactCache(options.cache_dir)
    summary = RunSummary(planned=len(plan))
    for row in plugin_failure_rows(suite, data, plugin_failures, options, device):
        if options.force or not store.exists(row["run_id"]):
            store.write(row)
            summary.failed += 1
            summary.rows.append(row)
    pending = [r for r in plan if options.force or not store.exists(r.run_id) or _should_retry(store, r, options)]
    summary.skipped = len(plan) - len(pending)
    # Grouped by (scenario, seed) so each split's original, oracle and oracle metrics are built once.
    pending.sort(key=lambda r: (r.scenario, r.seed))
    progress = _progress_bar(len(pending), options.progress)
    if uses_executor(options):  # process pool / Ray: same runs as the loop below; rows written here
        run_with_executor(suite, options, data, store, cache, pending, summary, progress, on_row)
        pending = []
    memo: dict = {}
    contexts: dict[tuple[str, int], SeedContext] = {}
    isolation = make_isolation(suite, options)
    for run in pending:
        key = (run.scenario, run.seed)
        if key not in contexts:
            contexts.clear()  # one (scenario, seed) at a time keeps memory flat
            contexts[key] = SeedContext(suite, data, run.scenario, run.seed, cache, device, memo)
            contexts[key].isolation = isolation
            contexts[key].results_root = Path(options.results_root)
        progress.set_description(f"{run.scenario} seed {run.seed} {run.method}")
        with store.claim(run.run_id) as mine:
            if not mine or (not options.force and store.exists(run.run_id) and not _should_retry(store, run, options)):
                summary.skipped += 1
                progress.update(1)
                continue
            row = execute_run(run, contexts[key])
            store.write(row)
        summary.rows.append(row)
        summary.written += 1
        summary.failed += row["status"] != "ok"
        if on_row:
            on_row(row)
        progress.update(1)
    progress.close()
    if isolation is not None:
        isolation.close()
    summary.cache_hits, summary.cache_misses = cache.hits, cache.misses  # type: ignore[attr-defined]
    summary.cache_recomputed_corrupt = cache.recomputed_corrupt  # type: ignore[attr-defined]
    return summary


def make_isolation(suite: Suite, options: RunOptions) -> Isolation | None:
    """The worker pool for isolated method runs, or None for in-process runs (``--no-isolation``)."""
    if not options.isolate:
        return None
    timeout = options.timeout if options.timeout is not None else suite.timeout
    memory = options.memory_mb if options.memory_mb is not None else getattr(suite, "memory_mb", None)
    isolation = Isolation(IsolationLimits(timeout_s=timeout, memory_mb=memory))
    isolation.start()
    return isolation


def _should_retry(store: ResultsStore, run: RunSpec, options: RunOptions) -> bool:
    if not options.retry_failed or not store.exists(run.run_id):
        return False
    import pyarrow.parquet as pq

    return pq.read_table(store.path(run.run_id), columns=["status"]).column("status")[0].as_py() != "ok"


class _NoProgress:
    def set_description(self, text: str) -> None: ...
    def update(self, n: int) -> None: ...
    def close(self) -> None: ...


def _progress_bar(total: int, enabled: bool):
    if not enabled or total == 0:
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=total, unit="run", dynamic_ncols=True, leave=True)
