"""Executors: where the jobs of :mod:`harness.pipeline.graph` run -- in this process, a local process pool, or Ray.

The driver (the ``unlearn-bench run`` process) plans the runs, schedules the job graph on an executor as
dependencies finish, and alone writes the results store: workers return rows, never write them (the
in-process executor hands each row to the driver as soon as its run ends, so an interrupted run loses at
most the run in progress). Workers meet only in the artifact cache, so before any job the driver checks that
every worker (every Ray node) can read and write the cache directory, and stops with a clear error when one
cannot.

Determinism: torch's CPU results depend on the intra-op thread count, so every worker, in every mode, uses
the same fixed count (``RunOptions.threads``, 1 by default) and a pool or Ray run writes the same rows
(metrics to the last digit) as the in-process run.

Why one module: the three executors share one small interface (``submit`` / ``wait`` / ``close``) that
``schedule_jobs`` and ``dispatch_plan`` drive; each is short, and the contract is easiest to check side by side.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import queue
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from harness.isolation.server_share import ServerBroker, use_shared_servers
from harness.pipeline.graph import (
    Job,
    JobEnv,
    JobResult,
    adopt_worker_data,
    build_graph,
    close_worker,
    execute_job,
    is_stored,
    prepare_worker,
    probe_cache,
    save_suite_data,
)
from harness.pipeline.options import RunOptions
from harness.pipeline.plan import should_retry
from harness.pipeline.progress import RUN, Progress, job_units
from harness.protocol.suite import SuiteData
from harness.training.shadow_bank import shadow_batching
from harness.training.workspace import Workspace

log = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")
RAY_GPUS_ENV = "UNLEARN_BENCH_RAY_GPUS_PER_JOB"  # fraction of a GPU per job, e.g. 0.25 for small models


class ExecutorError(ValueError):
    """A set-up error (a worker cannot see the cache, Ray is missing, ...); the CLI prints it as such."""


class JobFailed(RuntimeError):
    """A job raised (not a method fault: those become failed rows); carries the job id."""


# ------------------------------------------------------------------------------------------- executors
class LocalExecutor:
    """In-process and sequential (the default): the reference every other executor must match row for row."""

    name = "local"

    def __init__(self, env: JobEnv, on_row: Callable[[dict], None] | None = None):
        self.env = env
        self.on_row = on_row
        self._queue: list[Job] = []
        self._threads = torch.get_num_threads()

    def check_cache(self, token_name: str, token: str) -> list[tuple[str, bool, str]]:
        return [probe_cache(self.env.cache_dir, token_name, token)]

    def submit(self, job: Job) -> Job:
        self._queue.append(job)
        return job

    def wait(self, handles: list) -> list[tuple[Job, JobResult | BaseException]]:
        """Run the oldest submitted job and report it alone, in submission order: the driver then hears of
        each job as it ends (the progress bar moves per model, not per batch of ready jobs)."""
        if not self._queue:
            return []
        job = self._queue.pop(0)
        try:
            return [(job, execute_job(self.env, job, self.on_row))]
        except Exception as exc:  # noqa: BLE001 - reported like the other executors do
            return [(job, exc)]

    def close(self) -> None:
        close_worker()
        torch.set_num_threads(self._threads)  # the driver's own count, changed by prepare_worker


def worker_device(device: str, index: int, gpus: int) -> str:
    """The device of pool worker ``index``: with ``cuda`` (or ``auto`` on a GPU machine) and G GPUs, workers go
    round-robin over the GPUs, so ``--jobs`` larger than G packs several workers onto each GPU (a small model
    leaves most of a GPU idle). An explicit ``cuda:N`` keeps every worker on that GPU."""
    if device in ("cuda", "auto") and gpus > 0:
        return f"cuda:{index % gpus}"
    return device


class PoolExecutor:
    """A local pool of ``workers`` job slots (``--jobs N``): N - 1 spawned worker processes (spawned, so no forked
    OpenMP or CUDA state) and the driver itself, on a thread.

    The driver's slot runs jobs as the in-process executor does, with what the driver already holds: its
    imports, the suite's data, the plugin's fork server. A spawned worker pays seconds for those (torch, the
    harness, the data, a sandbox per plugin: bench/plugin_cost.py), which was most of the cost of adding one
    method to a finished suite. Every slot pulls the next ready job from one queue, in submission order.
    """

    name = "pool"

    def __init__(self, env: JobEnv, workers: int, data: SuiteData | None = None):
        # The driver leaves its decoded copy of the suite's data here for the spawned workers (share_data): they
        # read it in milliseconds instead of decoding the dataset files again (about a second each). A folder of
        # this run's own, so no worker can read another run's (or a changed dataset's) copy.
        self._data_dir = tempfile.mkdtemp(prefix="unlearn-bench-data-")
        env = dataclasses.replace(env, data_file=os.path.join(self._data_dir, "suite-data.pt"))
        self.env = env
        context = multiprocessing.get_context("spawn")
        counter = context.Value("i", 1)  # index 0 is the driver's slot; spawned workers take 1..N-1
        spawned = max(workers - 1, 1)
        # Spawned workers run their methods in the driver's fork servers (a sandbox each costs seconds to start).
        self._broker = ServerBroker(spawned) if env.isolate else None
        ends = self._broker.worker_ends if self._broker is not None else []
        self.pool = cf.ProcessPoolExecutor(max_workers=spawned, mp_context=context,
                                           initializer=_pool_init, initargs=(env, counter, ends))
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = torch.get_num_threads()
        self._abandon = False
        self._closed = False
        gpus = torch.cuda.device_count() if env.device in ("cuda", "auto") else 0
        driver_env = dataclasses.replace(env, device=worker_device(env.device, 0, gpus))
        self.data: SuiteData | None = None  # the driver's copy of the suite's data, read by its slot at its first job
        if data is not None:
            self.share_data(data)
        self._slots = [threading.Thread(target=self._driver_slot, args=(driver_env,), daemon=True,
                                        name="unlearn-bench-driver-slot")]
        self._slots += [threading.Thread(target=self._process_slot, daemon=True, name=f"unlearn-bench-slot-{i}")
                        for i in range(1, workers)]
        for thread in self._slots:
            thread.start()

    def share_data(self, data: SuiteData) -> None:
        """Hand the driver's copy of the suite's data to every slot (before the first job is submitted)."""
        self.data = data
        save_suite_data(data, self.env.data_file)

    def check_cache(self, token_name: str, token: str) -> list[tuple[str, bool, str]]:
        # Spawned workers are this process's children on this machine, with its files and user: the driver's
        # own probe answers for them, so scheduling need not wait for a worker to start (seconds).
        return [probe_cache(self.env.cache_dir, token_name, token)]

    def submit(self, job: Job) -> cf.Future:
        ticket: cf.Future = cf.Future()
        ticket.job = job  # type: ignore[attr-defined]
        self._queue.put(ticket)
        return ticket

    def _next(self) -> cf.Future | None:
        while True:
            ticket = self._queue.get()
            if ticket is None or ticket.set_running_or_notify_cancel():
                return ticket

    def spawn_now(self) -> None:
        """Start a spawned worker now (its start-up takes seconds), e.g. while the driver still plans."""
        self.pool.submit(int)

    def _driver_slot(self, env: JobEnv) -> None:
        adopted = False
        try:
            while (ticket := self._next()) is not None:
                if not adopted and self.data is not None:
                    adopt_worker_data(env, self.data)  # the driver's copy: no second read of the dataset
                    adopted = True
                try:
                    ticket.set_result(execute_job(env, ticket.job))
                except BaseException as exc:  # noqa: BLE001 - reported by wait() like a worker's error
                    ticket.set_exception(exc)
        finally:
            if not self._abandon:
                close_worker()

    def _process_slot(self) -> None:
        while (ticket := self._next()) is not None:
            try:
                ticket.set_result(self.pool.submit(_pool_run, ticket.job).result())
            except BaseException as exc:  # noqa: BLE001 - a worker's error, or a broken pool
                ticket.set_exception(exc)

    def wait(self, handles: list) -> list[tuple[Job, JobResult | BaseException]]:
        done, _ = cf.wait(handles, return_when=cf.FIRST_COMPLETED)
        return [(f.job, f.exception() if f.exception() is not None else f.result()) for f in done]

    def abort(self) -> None:
        """Interrupted (Ctrl-C): do not wait for the driver slot's job; the process is about to exit."""
        self._abandon = True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        while True:  # tickets still queued are cancelled, not run
            try:
                ticket = self._queue.get_nowait()
            except queue.Empty:
                break
            if ticket is not None:
                ticket.cancel()
        for _ in self._slots:
            self._queue.put(None)  # each slot stops at its next pull
        self.pool.shutdown(wait=not self._abandon, cancel_futures=True)
        if not self._abandon:
            for thread in self._slots:
                thread.join()
        if self._broker is not None:
            self._broker.close()
        shutil.rmtree(self._data_dir, ignore_errors=True)
        torch.set_num_threads(self._threads)  # the driver's own count, changed by its slot's prepare_worker


_POOL_ENV: JobEnv | None = None
_POOL_INDEX = -1


def _pool_init(env: JobEnv, counter, broker_ends: list[socket.socket]) -> None:
    global _POOL_ENV, _POOL_INDEX
    with counter.get_lock():
        _POOL_INDEX = counter.value
        counter.value += 1
    for index, end in enumerate(broker_ends, start=1):  # each worker has a pair of its own; a late one has none
        if index == _POOL_INDEX:
            use_shared_servers(end)
        else:
            end.close()
    gpus = torch.cuda.device_count() if env.device in ("cuda", "auto") else 0
    _POOL_ENV = dataclasses.replace(env, device=worker_device(env.device, _POOL_INDEX, gpus))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    prepare_worker(_POOL_ENV)


def pool_worker_info() -> tuple[int, int, str]:
    """(process id, worker index, device) of the pool worker that runs it."""
    assert _POOL_ENV is not None, "pool worker not initialised"
    return os.getpid(), _POOL_INDEX, _POOL_ENV.device


def _pool_run(job: Job) -> JobResult:
    assert _POOL_ENV is not None, "pool worker not initialised"
    return execute_job(_POOL_ENV, job)


class RayExecutor:
    """Ray tasks, one per job; GPU jobs ask for ``num_gpus`` (1 unless ``UNLEARN_BENCH_RAY_GPUS_PER_JOB``)."""

    name = "ray"

    def __init__(self, env: JobEnv, address: str | None = None, gpus_per_job: float | None = None):
        try:
            import ray
        except ImportError as exc:
            raise ExecutorError("--executor ray needs Ray: pip install 'unlearn-bench[ray]'") from exc
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            # Workers import the harness from the installed package, and log only warnings.
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                     log_to_driver=True)
            self.started = True
        elif address:
            log.warning("Ray is already initialised in this process; --ray-address %s is ignored", address)
        self.gpus = float(gpus_per_job if gpus_per_job is not None else os.environ.get(RAY_GPUS_ENV, "1"))
        self.env_ref = ray.put(env)
        self.env = env
        self.remote_run = ray.remote(_ray_run)
        self.jobs: dict[Any, Job] = {}

    def has_gpus(self) -> bool:
        return self.ray.cluster_resources().get("GPU", 0) > 0

    def check_cache(self, token_name: str, token: str) -> list[tuple[str, bool, str]]:
        """One probe per alive node, pinned there: multi-node Ray needs the cache on shared storage."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        probe = self.ray.remote(num_cpus=0)(probe_cache)
        refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
                .remote(self.env.cache_dir, token_name, token)
                for node in self.ray.nodes() if node.get("Alive")]
        return self.ray.get(refs)

    def submit(self, job: Job):
        gpus = self.gpus if job.gpu else 0
        ref = self.remote_run.options(num_cpus=1, num_gpus=gpus, name=job.id).remote(self.env_ref, job)
        self.jobs[ref] = job
        return ref

    def wait(self, handles: list) -> list[tuple[Job, JobResult | BaseException]]:
        ready, _ = self.ray.wait(handles, num_returns=1)
        out = []
        for ref in ready:
            job = self.jobs.pop(ref)
            try:
                out.append((job, self.ray.get(ref)))
            except Exception as exc:  # noqa: BLE001 - RayTaskError wraps the worker's exception
                out.append((job, exc))
        return out

    def close(self) -> None:
        for ref in list(self.jobs):
            with contextlib.suppress(Exception):
                self.ray.cancel(ref)
        if self.started:
            self.ray.shutdown()


def _ray_run(env: JobEnv, job: Job) -> JobResult:
    return execute_job(env, job)


# ------------------------------------------------------------------------------------------- scheduling
def make_executor(options, env: JobEnv, on_row: Callable[[dict], None] | None = None, data: SuiteData | None = None):
    """Ray, a process pool (``--jobs N`` with N > 1; ``data``: the driver's copy of the suite's data, for the
    driver's own slot) or the in-process executor (rows streamed to ``on_row``)."""
    if options.executor == "ray":
        return RayExecutor(env, options.ray_address)
    if options.executor != "local":
        raise ValueError(f"unknown executor {options.executor!r}: expected one of {', '.join(EXECUTORS)}")
    if options.jobs > 1:
        return PoolExecutor(env, options.jobs, data)
    return LocalExecutor(env, on_row)


def check_cache_visible(executor, cache_dir: str) -> None:
    """Write a token into the cache; every worker must read it and write back, or this raises."""
    token_name, token = f"{secrets.token_hex(8)}.token", secrets.token_hex(16)
    folder = Path(cache_dir) / ".executor-probe"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / token_name).write_text(token)
    try:
        answers = executor.check_cache(token_name, token)
    finally:
        for path in folder.glob(f"{token_name}*"):
            with contextlib.suppress(OSError):
                path.unlink()
    bad = [(host, why) for host, ok, why in answers if not ok]
    if bad:
        lines = "; ".join(f"{host}: {why}" for host, why in bad)
        raise ExecutorError(
            f"workers cannot use the cache directory {cache_dir} ({lines}). Workers share models only through "
            "the cache, so on a multi-node Ray cluster put it on shared storage (NFS or similar) mounted at the "
            "same path on every node and pass --cache-dir with that path.")


def schedule_jobs(executor, jobs: list[Job], on_result: Callable[[Job, JobResult], None],
              on_submit: Callable[[Job], Job | None] | None = None) -> None:
    """Submit each job once its dependencies finished; ``on_submit`` may narrow a job or veto it (None)."""
    pending = list(jobs)
    finished: set[str] = set()
    in_flight: dict[Any, Job] = {}
    try:
        while pending or in_flight:
            vetoed = True
            while vetoed:  # a vetoed job (already stored) finishes at once and may release its dependents
                vetoed = False
                for job in [j for j in pending if all(d in finished for d in j.deps)]:
                    pending.remove(job)
                    if on_submit is not None:
                        narrowed = on_submit(job)
                        if narrowed is None:
                            finished.add(job.id)
                            vetoed = True
                            continue
                        job = narrowed
                    in_flight[job.id] = executor.submit(job)
            if not in_flight:
                if pending:
                    raise JobFailed(f"jobs wait on dependencies that never ran: {[j.id for j in pending]}")
                break
            for job, outcome in executor.wait(list(in_flight.values())):
                in_flight.pop(job.id, None)
                if isinstance(outcome, BaseException):
                    raise JobFailed(f"job {job.id} failed: {type(outcome).__name__}: {outcome}") from outcome
                finished.add(job.id)
                on_result(job, outcome)
    except (KeyboardInterrupt, SystemExit):
        if hasattr(executor, "abort"):
            executor.abort()
        raise
    finally:
        executor.close()


def job_env(suite, options: RunOptions, cache_root: Path) -> JobEnv:
    """The options as a worker needs them: every path absolute, the suite a fresh copy."""
    return JobEnv(**{**options.shared(),
                     "cache_dir": str(Path(cache_root).resolve()),
                     "data_root": str(Path(options.data_root).resolve()) if options.data_root else None,
                     "plugins": tuple(str(Path(p).resolve()) for p in options.plugins),
                     "evaluator_plugins": tuple(str(Path(p).resolve()) for p in options.evaluator_plugins)},
                  suite=dataclasses.replace(suite),  # a fresh instance: no cached dataset travels to the workers
                  results_root=str(Path(options.results_root).resolve()), isolation_peers=options.job_processes)


def early_pool(suite, options: RunOptions, cache_root: Path) -> PoolExecutor | None:
    """A local pool started before planning, when there is almost surely work for it (plugin runs): its workers
    then start up while the driver describes the plugin and loads the data, on a core that would sit idle."""
    if options.executor != "local" or options.jobs <= 1 or not options.plugins:
        return None
    pool = PoolExecutor(job_env(suite, options, cache_root), options.jobs)
    pool.spawn_now()
    return pool


def dispatch_plan(ws: Workspace | None, options, store, pending: list, summary,
                 on_row: Callable[[dict], None] | None = None, executor=None) -> None:
    """Run ``pending`` (RunSpecs) on the options' executor (or on ``executor``, started earlier: it is closed
    here); every row is written here, by the driver."""
    if not pending:
        if executor is not None:
            executor.close()
        return
    suite, data, cache = ws.suite, ws.data, ws.cache
    env = job_env(suite, options, cache.root)
    rows_by_id: dict[str, dict] = {}
    run_seconds: list[float | None] = [None]  # a pool's rows: their share of the job's worker time

    def deliver(row: dict) -> None:
        store.write(row)
        rows_by_id[row["run_id"]] = row
        summary.written += 1
        summary.failed += row["status"] != "ok"
        if on_row:
            on_row(row)
        progress.finished(RUN, 1, run_seconds[0], f"{row['scenario']} seed {row['seed']} {row['method']}")

    if executor is None:
        executor = make_executor(options, env, deliver, data)
    elif isinstance(executor, PoolExecutor):
        executor.share_data(data)
    progress = Progress(options.progress, 1 if isinstance(executor, LocalExecutor) else max(options.jobs, 1))
    gpu = str(options.device).startswith("cuda") or (
        options.device == "auto" and (torch.cuda.is_available() or
                                      (isinstance(executor, RayExecutor) and executor.has_gpus())))
    try:
        check_cache_visible(executor, env.cache_dir)
    except BaseException:
        executor.close()
        raise
    claims: dict[str, contextlib.ExitStack] = {}
    stage_seconds: dict[str, float] = {}

    def claim_group(job: Job) -> Job | None:
        """Claim the group's runs (another process may be running some) before it is submitted."""
        if job.kind != "runs":
            if is_stored(job, env, data):
                progress.skip(*job_units(job))
                return None
            return job
        stack = contextlib.ExitStack()
        mine = []
        for run in job.runs:
            got = stack.enter_context(store.claim(run.run_id))
            if got and (options.force or not store.exists(run.run_id) or should_retry(store, run, options)):
                mine.append(run)
            else:
                summary.skipped += 1
                progress.skip(RUN)
        if not mine:
            stack.close()
            return None
        claims[job.id] = stack
        return dataclasses.replace(job, runs=tuple(mine))

    def finish(job: Job, result: JobResult) -> None:
        stage_seconds[job.kind] = stage_seconds.get(job.kind, 0.0) + result.seconds
        summary.timeline.append((job.id, result.worker, result.started - wall_start, result.seconds))
        if job.kind != "runs":
            progress.finished(*job_units(job), result.seconds)
        run_seconds[0] = result.seconds / len(result.rows) if result.rows else None
        cache.hits += result.cache_hits
        cache.misses += result.cache_misses
        cache.recomputed_corrupt += result.cache_corrupt
        try:
            for row in result.rows:
                deliver(row)
        finally:
            stack = claims.pop(job.id, None)
            if stack is not None:
                stack.close()

    start, wall_start = time.perf_counter(), time.time()
    try:
        batch = shadow_batching(suite, data, torch.device("cuda" if gpu else "cpu"))
        jobs = build_graph(pending, gpu, suite, batch)
        progress.plan(jobs)
        schedule_jobs(executor, jobs, finish, claim_group)
    finally:
        for stack in claims.values():
            stack.close()
        progress.close()
    order = {run.run_id: i for i, run in enumerate(pending)}
    summary.rows.extend(sorted(rows_by_id.values(), key=lambda r: order.get(r["run_id"], len(order))))
    summary.stage_seconds = {**stage_seconds, "wall": time.perf_counter() - start}
    summary.executor = executor.name

