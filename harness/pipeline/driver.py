"""The runner: run everything a suite (and the command line) asks for, and store one row per run.

``run_suite`` plans the runs (:mod:`harness.pipeline.plan`), records plugins that failed to load as failed rows, and
hands the runs still missing to an executor (:mod:`harness.pipeline.executors`), which runs the suite's job graph
(:mod:`harness.pipeline.graph`: originals, oracles, shadow bank, then each (scenario, seed) group of method runs as
:func:`harness.pipeline.row.produce_row` does them) in this process, in a local process pool, or on Ray. There is one
execution path: the sequential run is the job graph on the in-process executor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from harness.core.registry import EXTENSION_MODULE_PREFIX, load_extension_file
from harness.core.results import ResultsStore
from harness.isolation.plugins import load_plugins
from harness.isolation.sandbox import sandbox_mode
from harness.pipeline.executors import dispatch_plan, early_pool
from harness.pipeline.options import RunOptions
from harness.pipeline.plan import (
    RunSpec,
    pending_runs,
    plan_runs,
    run_id_for,
    select_methods,
    with_references,
)
from harness.pipeline.row import SeedContext, plugin_failure_rows, produce_row, unlearn
from harness.protocol.architectures import MODELS, split_model_spec
from harness.protocol.suite import Suite
from harness.training.cache import ArtifactCache
from harness.training.loop import resolve_device
from harness.training.workspace import Workspace

__all__ = [
    "RunOptions",
    "RunSpec",
    "RunSummary",
    "SeedContext",
    "plan_runs",
    "produce_row",
    "run_id_for",
    "run_suite",
    "select_methods",
    "unlearn",
]


@dataclass
class RunSummary:
    """What a call of :func:`run_suite` did."""

    planned: int = 0
    written: int = 0
    skipped: int = 0  # stored already, or being run by another process
    failed: int = 0  # rows written with a status other than ok
    rows: list[dict] = field(default_factory=list)  # the rows written this time, in plan order
    cache_hits: int = 0
    cache_misses: int = 0
    cache_recomputed_corrupt: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)  # per job kind, summed over workers; "wall"
    executor: str = ""
    # (job id, worker, start in seconds after scheduling began, seconds): where a run's wall time went
    timeline: list[tuple[str, str, float, float]] = field(default_factory=list)


def run_suite(suite: Suite, options: RunOptions, on_row: Callable[[dict], None] | None = None) -> RunSummary:
    """Run everything the options select; returns counts and the rows written this time."""
    for path in options.evaluator_plugins:  # the user's own evaluators, datasets, models (the CLI loaded them)
        load_extension_file(path)
    model = split_model_spec(suite.model)[0]
    if options.isolate and MODELS.origins.get(model, "").startswith(EXTENSION_MODULE_PREFIX):
        raise ValueError(f"model {model!r} comes from a plugin file, which the sandboxed method workers cannot "
                         "import (they rebuild the model by name): register it with an unlearn_bench.models entry "
                         "point, use a timm:/torchvision: name, or run with --no-isolation")
    device = resolve_device(options.device)
    if options.isolate:
        sandbox_mode()  # fails now, not in a job, when UNLEARN_BENCH_SANDBOX=bwrap cannot be honoured
    cache = ArtifactCache(options.cache_dir)
    executor = early_pool(suite, options, cache.root)
    try:
        plugin_names, plugin_failures = load_plugins(options.plugins)
        specs = select_methods(suite, options.methods, plugin_names)
        if options.references:
            specs = with_references(specs)
        plan = plan_runs(suite, options, specs)
        store = ResultsStore(options.results_root, suite.name)
        summary = RunSummary(planned=len(plan))
        # The data is read only when something needs it: a rerun with every row stored decodes no dataset (about
        # a second of a warm `make demo`).
        data = suite.load_data(options.data_root) if plugin_failures else None
        failure_rows = plugin_failure_rows(suite, data, plugin_failures, options.scenarios or list(suite.scenarios),
                                           options.seeds or list(suite.seeds), device) if data is not None else []
        for row in failure_rows:
            if options.force or not store.exists(row["run_id"]):
                store.write(row)
                summary.failed += 1
                summary.rows.append(row)
        pending = pending_runs(plan, store, options)
        summary.skipped = len(plan) - len(pending)
        if pending and data is None:
            data = suite.load_data(options.data_root)
        dispatch_plan(Workspace(suite, data, cache, device) if pending else None, options, store, pending, summary,
                      on_row, executor)
    except BaseException:
        if executor is not None:
            executor.close()
        raise
    summary.cache_hits, summary.cache_misses = cache.hits, cache.misses
    summary.cache_recomputed_corrupt = cache.recomputed_corrupt
    return summary
