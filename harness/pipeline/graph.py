"""The job graph: the work of a suite as explicit jobs with dependencies, for any executor.

Jobs are ``original`` (train on the full pool, one per seed), ``oracle`` (retrain on the retain split, one
per (scenario, seed) and oracle index k < K; a sequential scenario has K per step, each on the pool without the
requests so far), ``shadows`` (the shadow bank a scenario's evaluators need),
``difficulty`` (a difficulty kind's per-example scores, from the shadow originals, once per suite), ``audit`` (a
part of one method configuration's runs on the shadow bank), ``prepare`` (the per-method evaluators on those
runs) and ``runs`` (every pending method run on one (scenario, seed): unlearn, then the evaluators, as
:func:`harness.pipeline.row.produce_row` does them; a sequential scenario's runs go step by step, each method
on its own previous output, :func:`harness.pipeline.row.produce_sequential_rows`). Each job is a pure function of its spec and
the :class:`JobEnv`; its output is stored by key -- models in the content-addressed artifact cache, rows
(returned to the driver) in the results store by ``run_id`` -- so a job whose output exists costs a load.

Workers share nothing but the cache folder: a ``runs`` job loads the original and oracle its ``original`` /
``oracle`` jobs put there, which is why every worker must see the same cache directory.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from harness.core.files import atomic_write_bytes
from harness.core.registry import load_extension_file
from harness.evaluate import EVALUATORS
from harness.evaluate.ulira import audit_parts, prepare_audit_part
from harness.isolation.plugins import load_plugins
from harness.isolation.workers import Isolation
from harness.pipeline.options import Options
from harness.pipeline.row import SeedContext, make_isolation, produce_row, produce_sequential_rows
from harness.protocol.methods import get_method
from harness.protocol.scoring import ORACLE_METHOD, SEQUENTIAL
from harness.protocol.splits import DIFFICULTY_KINDS, parse_scenario
from harness.protocol.suite import Suite, SuiteData
from harness.training.cache import ArtifactCache
from harness.training.difficulty import difficulty_scores, scenario_split, scores_stored
from harness.training.loop import resolve_device
from harness.training.reference_models import get_oracle, get_original, model_key, oracle_key
from harness.training.shadow_bank import (
    shadow_count,
    shadow_halves,
    shadow_original,
    shadow_seed,
    train_shadow_batch,
    train_shadow_retrained,
)
from harness.training.workspace import Workspace

log = logging.getLogger(__name__)

JOB_KINDS = ("original", "oracle", "shadow-original", "shadow-retrained", "difficulty", "audit", "prepare",
             "runs")


@dataclass(frozen=True, kw_only=True)
class JobEnv(Options):
    """What a worker needs to rebuild the suite's world; small and picklable, paths absolute (``cache_dir`` too).

    ``threads``: torch intra-op threads in every worker; results depend on it, so it is fixed (0: leave it).
    """

    suite: Suite
    results_root: str = "results"  # evaluators may write side tables under it (shared storage on clusters)
    isolation_peers: int = 1  # processes on one machine whose method workers share its memory (0: one per CPU)
    data_file: str = ""  # a local pool's copy of the driver's decoded data (save_suite_data); "": read the files


@dataclass(frozen=True)
class Job:
    """One node of the graph; ``id`` is unique in the graph, ``deps`` name other jobs' ids."""

    id: str
    kind: str
    seed: int
    scenario: str | None = None
    index: int = 0  # which of the K oracles (``oracle``) or of the N shadows (``shadow-*``) the job trains
    indices: tuple[int, ...] = ()  # a batched ``shadow-*`` job: the shadows it trains together
    runs: tuple = ()  # RunSpecs of a ``runs`` job, in plan order
    deps: tuple[str, ...] = ()
    gpu: bool = False  # asks the executor for a GPU (Ray: num_gpus)
    step: int | None = None  # a sequential scenario's ``oracle`` job: the step whose split it retrains on


@dataclass
class JobResult:
    job_id: str
    kind: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0
    worker: str = ""
    cache_corrupt: int = 0  # corrupt artifacts found, removed and recomputed by this job
    started: float = 0.0  # wall-clock start (time.time()), so a bench can draw the jobs' timeline


def scenario_needs(suite: Suite | None, scenario: str) -> set[str]:
    """What of the shadow bank this scenario reads ('shadow-bank', 'shadow-originals'): its evaluators' needs,
    and the shadow originals a difficulty kind's scores come from (harness/training/difficulty.py)."""
    if suite is None:
        return set()
    kind = parse_scenario(scenario).kind
    needs = {need for n in suite.evaluators if EVALUATORS[n].metrics_for(kind) for need in EVALUATORS[n].needs}
    return needs | ({"shadow-originals"} if kind in DIFFICULTY_KINDS else set())


def preparing_evaluators(suite: Suite | None, scenario: str) -> list[str]:
    """Evaluators of this scenario with a per-configuration ``prepare`` step (e.g. U-LiRA's shadow runs)."""
    if suite is None:
        return []
    kind = parse_scenario(scenario).kind
    return [n for n in suite.evaluators if EVALUATORS[n].prepare is not None and EVALUATORS[n].metrics_for(kind)]


def build_graph(pending: list, gpu: bool = False, suite: Suite | None = None,
                batch_shadows: bool = False) -> list[Job]:
    """Jobs for the pending runs, in a topological order: training first, then run groups.

    Each model is its own job (an original per seed, K oracles per (scenario, seed), N shadow originals, N
    retrained shadows per scenario), and so is each method configuration's ``prepare`` step (its runs on the
    shadow bank), so a pool keeps every worker busy; a ``runs`` group starts when all it reads is stored.
    With ``batch_shadows`` (a GPU, by the measured rule of :mod:`harness.training.batched`) the N shadow originals are
    one batched job, and so are each scenario's N retrained shadows.
    """
    groups: dict[tuple[str, int], list] = {}
    for run in pending:
        groups.setdefault((run.scenario, run.seed), []).append(run)
    training: dict[str, Job] = {}
    prepares: dict[str, Job] = {}
    run_jobs: list[Job] = []
    k = suite.oracles if suite is not None else 1
    n_shadows = shadow_count(suite) if suite is not None and any(
        scenario_needs(suite, s) for s, _ in groups) else 0
    shadow_originals_ids = [f"shadow-original/{i}" for i in range(n_shadows)]

    def add(job: Job) -> str:
        training.setdefault(job.id, job)
        return job.id

    for (scenario, seed), runs in groups.items():
        deps = [add(Job(f"original/{seed}", "original", seed, gpu=gpu))]
        needs = scenario_needs(suite, scenario)
        if needs and batch_shadows:
            originals = [add(Job("shadow-original/all", "shadow-original", 0, indices=tuple(range(n_shadows)),
                                 gpu=gpu))]
        elif needs:
            originals = [add(Job(f"shadow-original/{i}", "shadow-original", 0, None, i, gpu=gpu))
                         for i in range(n_shadows)]
        else:
            originals = []
        kind = parse_scenario(scenario).kind
        # a difficulty scenario's split needs its scores, which need the shadow originals: its oracles wait
        scores = [add(Job(f"difficulty/{kind}", "difficulty", 0, scenario, deps=tuple(originals)))] \
            if kind in DIFFICULTY_KINDS else []
        if kind == SEQUENTIAL:  # K oracles per step, each without the union of the requests so far
            last = max(int(r.step) for r in runs)
            deps += [add(Job(f"oracle/{scenario}/{seed}/s{step}/{i}", "oracle", seed, scenario, i, gpu=gpu,
                             step=step)) for step in range(1, last + 1) for i in range(k)]
        else:
            deps += [add(Job(f"oracle/{scenario}/{seed}/{i}", "oracle", seed, scenario, i, deps=tuple(scores),
                             gpu=gpu)) for i in range(k)]
        deps += originals
        if "shadow-bank" in needs and batch_shadows:
            deps.append(add(Job(f"shadow-retrained/{scenario}/all", "shadow-retrained", 0, scenario,
                                indices=tuple(range(n_shadows)), gpu=gpu)))
        elif "shadow-bank" in needs:
            deps += [add(Job(f"shadow-retrained/{scenario}/{i}", "shadow-retrained", 0, scenario, i, gpu=gpu))
                     for i in range(n_shadows)]
        if preparing_evaluators(suite, scenario):
            originals = ["shadow-original/all"] if batch_shadows else shadow_originals_ids
            for run in (r for r in runs if r.method != ORACLE_METHOD):  # retrain's shadows are the bank's own
                job_id = f"prepare/{scenario}/{run.method}/{run.config_hash}"
                audits = []
                if "shadow-bank" in needs and job_id not in prepares:  # the audit runs, in parts
                    for lo, hi in audit_parts(n_shadows):
                        audits.append(Job(f"audit/{scenario}/{run.method}/{run.config_hash}/{lo}", "audit",
                                          run.seed, scenario, indices=(lo, hi), runs=(run,), deps=tuple(originals),
                                          gpu=gpu))
                    for job in audits:
                        prepares[job.id] = job
                prepares.setdefault(job_id, Job(job_id, "prepare", run.seed, scenario, runs=(run,),
                                                deps=tuple(originals) + tuple(j.id for j in audits), gpu=gpu))
                deps.append(job_id)
        run_jobs.append(Job(f"runs/{scenario}/{seed}", "runs", seed, scenario, runs=tuple(runs),
                            deps=tuple(dict.fromkeys(deps)), gpu=gpu))
    order = {kind: i for i, kind in enumerate(JOB_KINDS)}  # originals first: every runs group needs one
    return [*sorted(training.values(), key=lambda j: order[j.kind]), *prepares.values(), *run_jobs]


def is_stored(job: Job, env: JobEnv, data: SuiteData) -> bool:
    """Whether a training job's model is already in the cache (the driver then skips the job)."""
    if job.kind in ("runs", "prepare", "audit"):
        return False  # a prepared configuration costs its worker only loads
    cache = ArtifactCache(env.cache_dir)
    if job.kind == "original":
        return cache.exists("original", model_key(env.suite, data, "original",
                                                  env.suite.original_positions(data, job.seed), job.seed))
    if job.kind == "shadow-original" and not job.indices:
        half = shadow_halves(data.strata, shadow_count(env.suite))[job.index]
        return cache.exists("shadow-original", model_key(env.suite, data, "shadow-original",
                                                         torch.as_tensor(half), shadow_seed(job.index)))
    if job.kind in ("shadow-original", "shadow-retrained"):
        return False  # a batch, or a key that needs the forget set: the job itself loads what is stored
    ws = Workspace(env.suite, data, cache, torch.device("cpu"))
    kind = parse_scenario(job.scenario).kind
    if kind in DIFFICULTY_KINDS and not scores_stored(ws, kind):
        return False  # the split needs the scores: the job computes them (its dependency normally has)
    if job.kind == "difficulty":
        return True
    split = scenario_split(ws, job.scenario, job.seed, step=job.step)
    return cache.exists("oracle", oracle_key(env.suite, data, split, job.index))


# ----------------------------------------------------------------------------------------- worker side
# Per-process state of a worker: the suite's data, the evaluators' memo (shadow bank, U-LiRA results), the
# plugins loaded, and the isolated method workers (kept across jobs, so a method's worker is reused).
_WORKER: dict[str, Any] = {"data": {}, "memo": {}, "plugins": None, "isolation": None}


def prepare_worker(env: JobEnv) -> None:
    """Per-process set-up: thread count (results depend on it) and the plugin files (they register methods)."""
    if env.threads and torch.get_num_threads() != env.threads:
        torch.set_num_threads(env.threads)
    if _WORKER["plugins"] != env.plugins:
        load_plugins(list(env.plugins))  # failures were already reported as rows by the driver
        _WORKER["plugins"] = env.plugins
    for path in (*env.evaluator_plugins, *env.suite.plugins):  # the driver loaded them already: they import
        load_extension_file(path)


def save_suite_data(data: SuiteData, path: str) -> None:
    """The driver's decoded data, for the local pool's workers of this run (:func:`worker_data` reads it)."""
    buffer = io.BytesIO()
    torch.save({f.name: getattr(data, f.name) for f in fields(SuiteData)}, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def _read_suite_data(path: str) -> SuiteData | None:
    """The driver's copy (tensors and plain values only: ``weights_only``), or None when there is none."""
    try:
        return SuiteData(**torch.load(path, map_location="cpu", weights_only=True))
    except (OSError, EOFError, RuntimeError, TypeError, ValueError, pickle.UnpicklingError) as exc:
        if os.path.exists(path):
            log.warning("cannot read the driver's copy of the data (%s): reading the dataset files", exc)
        return None


def worker_data(env: JobEnv) -> SuiteData:
    key = (env.suite.name, env.suite.version, env.suite.path, env.data_root)
    if key not in _WORKER["data"]:
        _WORKER["data"].clear()  # one suite per worker at a time keeps memory flat
        shared = _read_suite_data(env.data_file) if env.data_file else None
        _WORKER["data"][key] = shared if shared is not None else env.suite.load_data(env.data_root)
    return _WORKER["data"][key]


def adopt_worker_data(env: JobEnv, data: SuiteData) -> None:
    """Give this process's job slot data it already holds (the driver's), so :func:`worker_data` does not read the
    dataset again."""
    _WORKER["data"].clear()
    _WORKER["data"][(env.suite.name, env.suite.version, env.suite.path, env.data_root)] = data


def worker_isolation(env: JobEnv) -> Isolation | None:
    """This process's isolated method workers (None: in-process runs); reused across jobs with equal limits."""
    if not env.isolate:
        return None
    key = (env.timeout, env.memory_mb, env.suite.timeout, env.suite.memory_mb, env.isolation_peers)
    held = _WORKER["isolation"]
    if held is not None and held[0] == key:
        return held[1]
    close_worker()
    isolation = make_isolation(env.suite, True, env.timeout, env.memory_mb,
                               env.isolation_peers or os.cpu_count() or 1)
    _WORKER["isolation"] = (key, isolation)
    return isolation


def close_worker() -> None:
    """End of a run in this process: stop its isolated method workers and forget the evaluators' memo (it
    holds shadow banks, and a memoised result would skip the side tables the next run must write)."""
    held, _WORKER["isolation"] = _WORKER["isolation"], None
    _WORKER["memo"].clear()
    if held is not None:
        held[1].close()


def execute_job(env: JobEnv, job: Job, on_row: Callable[[dict], None] | None = None) -> JobResult:
    """Execute one job in this process. Rows of a ``runs`` job go to ``on_row`` as each run finishes (the
    in-process executor writes them at once), else they come back in the result."""
    prepare_worker(env)
    data = worker_data(env)
    cache = ArtifactCache(env.cache_dir)
    ws = Workspace(env.suite, data, cache, resolve_device(env.device))
    start, started = time.perf_counter(), time.time()
    rows: list[dict[str, Any]] = []
    if job.kind == "original":
        get_original(ws, job.seed)
    elif job.kind == "oracle":
        get_oracle(ws, scenario_split(ws, job.scenario, job.seed, _WORKER["memo"], job.step), job.index)
    elif job.kind == "difficulty":
        difficulty_scores(ws, parse_scenario(job.scenario).kind, _WORKER["memo"])
    elif job.kind in ("shadow-original", "shadow-retrained") and job.indices:
        scenario = parse_scenario(job.scenario, data.num_classes) if job.scenario else None
        train_shadow_batch(ws, scenario, list(job.indices))
    elif job.kind == "shadow-original":
        shadow_original(ws, job.index)
    elif job.kind == "shadow-retrained":
        train_shadow_retrained(ws, parse_scenario(job.scenario, data.num_classes), job.index)
    elif job.kind == "audit":
        (run,) = job.runs
        ctx = SeedContext(ws, job.scenario, run.seed, _WORKER["memo"], isolation=worker_isolation(env))
        try:
            prepare_audit_part(ctx.eval_context(get_method(run.method), run.hparams, with_models=False), *job.indices)
        except Exception as exc:  # noqa: BLE001 - the prepare job and the rows report it (they rerun the part)
            log.info("audit runs %s for %s/%s failed (its rows will say why): %s", job.indices, run.method,
                     job.scenario, exc)
    elif job.kind == "prepare":
        (run,) = job.runs
        ctx = SeedContext(ws, job.scenario, run.seed, _WORKER["memo"], isolation=worker_isolation(env))
        ectx = ctx.eval_context(get_method(run.method), run.hparams, with_models=False)
        for name in preparing_evaluators(env.suite, job.scenario):
            try:
                EVALUATORS[name].prepare(ectx)
            except Exception as exc:  # noqa: BLE001 - the runs that need it fail with the same error, as rows
                log.info("prepare %s for %s/%s failed (its rows will say why): %s", name, run.method,
                         job.scenario, exc)
    elif job.kind == "runs":
        emit = on_row if on_row is not None else rows.append
        if parse_scenario(job.scenario).kind == SEQUENTIAL:
            contexts: dict[int, SeedContext] = {}

            def context(step: int) -> SeedContext:
                if step not in contexts:
                    contexts[step] = SeedContext(ws, job.scenario, job.seed, _WORKER["memo"],
                                                 isolation=worker_isolation(env),
                                                 results_root=Path(env.results_root), step=step)
                return contexts[step]

            produce_sequential_rows(list(job.runs), context, emit)
        else:
            ctx = SeedContext(ws, job.scenario, job.seed, _WORKER["memo"], isolation=worker_isolation(env),
                              results_root=Path(env.results_root))
            for run in job.runs:
                emit(produce_row(run, ctx))
    else:
        raise ValueError(f"unknown job kind {job.kind!r}: expected one of {', '.join(JOB_KINDS)}")
    return JobResult(job.id, job.kind, rows, time.perf_counter() - start, cache.hits, cache.misses,
                     f"{os.uname().nodename}:{os.getpid()}", cache.recomputed_corrupt, started)


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
