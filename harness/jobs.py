"""The job graph: the work of a suite as explicit jobs with dependencies, for any executor.

Jobs are ``original`` (train on the full pool, one per seed), ``oracle`` (retrain on the retain split, one
per (scenario, seed)) and ``runs`` (every pending method run on one (scenario, seed): unlearn, then the
evaluators, as :func:`harness.runner.execute_run` does them). Each job is a pure function of its spec and
the :class:`JobEnv`; its output is stored by key -- models in the content-addressed artifact cache, rows
(returned to the driver) in the results store by ``run_id`` -- so a job whose output exists costs a load.

Workers share nothing but the cache folder: a ``runs`` job loads the original and oracle its ``original`` /
``oracle`` jobs put there, which is why every worker must see the same cache directory.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.artifacts import get_oracle, get_original, model_key
from harness.cache import ArtifactCache
from harness.splits import make_split, parse_scenario
from harness.suite import Suite, SuiteData

log = logging.getLogger(__name__)

JOB_KINDS = ("original", "oracle", "shadows", "runs")
# Evaluators that read the shadow bank (harness/shadow.py): all of it, or only the scenario-free originals.
BANK_EVALUATORS = ("ulira", "mia_nn")
REFERENCE_EVALUATORS = ("rmia",)


@dataclass(frozen=True)
class JobEnv:
    """What a worker needs to rebuild the suite's world; small and picklable, paths absolute."""

    suite: Suite
    cache_dir: str
    device: str = "auto"
    data_root: str | None = None
    plugins: tuple[str, ...] = ()
    threads: int = 0  # torch intra-op threads; results depend on it, so workers copy the driver's (0: leave)
    results_root: str = "results"  # evaluators may write side tables under it (shared storage on clusters)
    isolate: bool = False  # as RunOptions: method runs in isolated worker processes, with these limits
    timeout: float | None = None
    memory_mb: int | None = None


@dataclass(frozen=True)
class Job:
    """One node of the graph; ``id`` is unique in the graph, ``deps`` name other jobs' ids."""

    id: str
    kind: str
    seed: int
    scenario: str | None = None
    runs: tuple = ()  # RunSpecs of a ``runs`` job, in plan order
    deps: tuple[str, ...] = ()
    gpu: bool = False  # asks the executor for a GPU (Ray: num_gpus)


@dataclass
class JobResult:
    job_id: str
    kind: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0
    worker: str = ""


def shadow_need(suite: Suite | None, scenario: str) -> str | None:
    """'bank', 'originals' or None: what of the shadow bank this scenario's evaluators read."""
    if suite is None:
        return None
    from harness.evaluate import EVALUATORS

    kind = parse_scenario(scenario).kind
    names = {n for n in suite.evaluators if n in EVALUATORS and kind in EVALUATORS[n].scenarios}
    if names & set(BANK_EVALUATORS):
        return "bank"
    return "originals" if names & set(REFERENCE_EVALUATORS) else None


def build_graph(pending: list, gpu: bool = False, suite: Suite | None = None) -> list[Job]:
    """Jobs for the pending runs, in a topological order (training first, then run groups).

    With ``suite``, scenarios whose evaluators read the shadow bank get a ``shadows`` job, so the bank
    trains alongside originals and oracles instead of inside the first run that needs it.
    """
    groups: dict[tuple[str, int], list] = {}
    for run in pending:
        groups.setdefault((run.scenario, run.seed), []).append(run)
    originals: dict[int, Job] = {}
    oracles: dict[tuple[str, int], Job] = {}
    shadows: dict[str, Job] = {}
    run_jobs: list[Job] = []
    for (scenario, seed), runs in groups.items():
        originals.setdefault(seed, Job(f"original/{seed}", "original", seed, gpu=gpu))
        oracles.setdefault((scenario, seed), Job(f"oracle/{scenario}/{seed}", "oracle", seed, scenario, gpu=gpu))
        deps = (f"original/{seed}", f"oracle/{scenario}/{seed}")
        if shadow_need(suite, scenario):
            shadows.setdefault(scenario, Job(f"shadows/{scenario}", "shadows", 0, scenario, gpu=gpu))
            deps += (f"shadows/{scenario}",)
        run_jobs.append(Job(f"runs/{scenario}/{seed}", "runs", seed, scenario, tuple(runs), deps=deps, gpu=gpu))
    return [*originals.values(), *oracles.values(), *shadows.values(), *run_jobs]


def is_stored(job: Job, env: JobEnv, data: SuiteData) -> bool:
    """Whether a training job's model is already in the cache (the driver then skips the job)."""
    if job.kind in ("runs", "shadows"):
        return False  # a stored bank costs its worker only the loads
    cache = ArtifactCache(env.cache_dir)
    if job.kind == "original":
        return cache.exists("original", model_key(env.suite, data, "original", torch.arange(len(data.train_y)),
                                                  job.seed))
    split = make_split(env.suite.name, parse_scenario(job.scenario, data.num_classes), job.seed, data.train_y,
                       data.test_y)
    return cache.exists("oracle", model_key(env.suite, data, "oracle", split.retain, split.seed))


# ----------------------------------------------------------------------------------------- worker side
_WORKER: dict[str, Any] = {"data": {}, "memo": {}, "plugins": None}


def prepare_worker(env: JobEnv) -> None:
    """Per-process set-up: thread count (results depend on it) and the plugin files (they register methods)."""
    if env.threads and torch.get_num_threads() != env.threads:
        torch.set_num_threads(env.threads)
    if _WORKER["plugins"] != env.plugins:
        from harness.plugins import load_plugins

        load_plugins(list(env.plugins))  # failures were already reported as rows by the driver
        _WORKER["plugins"] = env.plugins


def worker_data(env: JobEnv) -> SuiteData:
    key = (env.suite.name, env.suite.version, env.suite.path, env.data_root)
    if key not in _WORKER["data"]:
        _WORKER["data"].clear()  # one suite per worker at a time keeps memory flat
        _WORKER["data"][key] = env.suite.load_data(env.data_root)
    return _WORKER["data"][key]


def run_job(env: JobEnv, job: Job) -> JobResult:
    """Execute one job in this process and return its result (rows for ``runs`` jobs)."""
    from harness.runner import RunOptions, SeedContext, execute_run, make_isolation
    from harness.train import resolve_device

    prepare_worker(env)
    data = worker_data(env)
    cache = ArtifactCache(env.cache_dir)
    device = resolve_device(env.device)
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    if job.kind == "original":
        get_original(env.suite, data, cache, job.seed, device)
    elif job.kind == "oracle":
        split = make_split(env.suite.name, parse_scenario(job.scenario, data.num_classes), job.seed, data.train_y,
                           data.test_y)
        get_oracle(env.suite, data, cache, split, device)
    elif job.kind == "shadows":
        from harness.shadow import shadow_bank, shadow_count, shadow_originals

        if shadow_need(env.suite, job.scenario) == "bank":
            shadow_bank(env.suite, data, cache, parse_scenario(job.scenario, data.num_classes), device,
                        memo=_WORKER["memo"])
        else:
            shadow_originals(env.suite, data, cache, shadow_count(env.suite), device, _WORKER["memo"])
    elif job.kind == "runs":
        ctx = SeedContext(env.suite, data, job.scenario, job.seed, cache, device, _WORKER["memo"])
        ctx.results_root = Path(env.results_root)
        ctx.isolation = make_isolation(env.suite, RunOptions(isolate=env.isolate, timeout=env.timeout,
                                                             memory_mb=env.memory_mb))
        try:
            rows = [execute_run(run, ctx) for run in job.runs]
        finally:
            if ctx.isolation is not None:
                ctx.isolation.close()
    else:
        raise ValueError(f"unknown job kind {job.kind!r}: expected one of {', '.join(JOB_KINDS)}")
    return JobResult(job.id, job.kind, rows, time.perf_counter() - start, cache.hits, cache.misses,
                     f"{os.uname().nodename}:{os.getpid()}")


def probe_cache(cache_dir: str, token_name: str, token: str) -> tuple[str, bool, str]:
    """Run on a worker: can it read the driver's token in ``cache_dir`` and write its own answer there?"""
    host = os.uname().nodename
    path = Path(cache_dir) / ".executor-probe" / token_name
    try:
        seen = path.read_text()
    except OSError as exc:
        return host, False, f"cannot read {path} ({exc.strerror or exc})"
    if seen != token:
        return host, False, f"{path} holds another token: a different folder is mounted at this path"
    try:
        (path.parent / f"{token_name}.{host}.{os.getpid()}").write_text(token)
    except OSError as exc:
        return host, False, f"cannot write to {path.parent} ({exc.strerror or exc})"
    return host, True, ""
