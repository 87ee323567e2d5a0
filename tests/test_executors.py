"""Executors: a process pool writes the same rows as the in-process loop; the graph and the cache check."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from harness.commands.verify import ENVIRONMENT_COLUMNS
from harness.core.results import read_results
from harness.evaluate.ulira import audit_parts
from harness.pipeline.driver import RunOptions, RunSummary, plan_runs, run_suite, select_methods
from harness.pipeline.executors import (
    ExecutorError,
    LocalExecutor,
    PoolExecutor,
    check_cache_visible,
    job_env,
    make_executor,
    schedule_jobs,
)
from harness.pipeline.graph import Job, JobResult, build_graph
from harness.protocol.suite import load_suite

# Columns that measure time or when a row was written (verify's environment columns): they differ between any
# two runs.
VOLATILE = set(ENVIRONMENT_COLUMNS)


def _volatile(column: str) -> bool:
    return column in VOLATILE or column.endswith(("_seconds", "_time_s"))


def _rows(results: Path, suite: str) -> pd.DataFrame:
    frame = read_results(results, suite)
    return frame.sort_values("run_id").reset_index(drop=True)


def _assert_same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a["run_id"]) == list(b["run_id"])
    assert set(a.columns) == set(b.columns)
    for column in sorted(c for c in a.columns if not _volatile(c)):
        for x, y in zip(a[column], b[column]):
            same = (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)) or x == y
            assert same, f"column {column}: {x!r} != {y!r}"  # exact: metrics equal to the last digit


def _options(tmp: Path, name: str, **kw) -> RunOptions:
    return RunOptions(methods=["finetune", "retrain"], seeds=[0], results_root=tmp / name / "results",
                      cache_dir=tmp / name / "cache", device="cpu", progress=False, **kw)


def small_suite():
    """digits-smoke with cheap evaluators; rmia (2 shadow originals) keeps a ``shadows`` job in the graph."""
    suite = load_suite("digits-smoke")
    return dataclasses.replace(suite, evaluate={"evaluators": ["accuracy", "salun_mia", "rmia"],
                                                "shadow_models": 2})


@pytest.mark.slow
def test_process_pool_writes_the_rows_of_the_sequential_loop(tmp_path):
    suite = small_suite()
    local = run_suite(suite, _options(tmp_path, "local"))
    pool = run_suite(suite, _options(tmp_path, "pool", jobs=2))
    assert pool.executor == "pool" and local.written == pool.written == 4 and pool.failed == 0
    assert [r["run_id"] for r in pool.rows] == [r["run_id"] for r in local.rows]  # plan order, not finish order
    trained = 1 + 2 * suite.oracles + 2  # the original, K oracles per scenario, 2 shadows: each trained once
    assert pool.cache_misses == local.cache_misses == trained
    assert set(pool.stage_seconds) == {"original", "oracle", "shadow-original", "runs", "wall"}
    a, b = _rows(tmp_path / "local" / "results", suite.name), _rows(tmp_path / "pool" / "results", suite.name)
    assert (a["status"] == "ok").all() and not a["tampered"].any() and not b["tampered"].any()
    _assert_same_rows(a, b)
    again = run_suite(suite, _options(tmp_path, "pool", jobs=2))  # everything stored: nothing submitted
    assert again.written == 0 and again.skipped == 4


def test_audit_parts_cover_the_bank_once():
    assert audit_parts(32) == [(0, 8), (8, 16), (16, 24), (24, 32)]
    assert audit_parts(4) == [(0, 4)] and audit_parts(10, 4) == [(0, 4), (4, 8), (8, 10)]


def test_graph_dependencies_and_order():
    suite = load_suite("digits-smoke")
    options = RunOptions(methods=["finetune"], seeds=[0, 1])
    plan = plan_runs(suite, options, select_methods(suite, options.methods))
    jobs = build_graph(plan, suite=suite)
    ids = [j.id for j in jobs]
    # 2 originals, K oracles per (scenario, seed), N shadow originals, N retrained shadows per scenario, the audit
    # runs in parts and one prepare job per (scenario, method configuration), a runs job per (scenario, seed)
    n = suite.evaluate["shadow_models"]
    parts = audit_parts(n)
    assert ids[:2] == ["original/0", "original/1"]
    assert len(ids) == 2 + 4 * suite.oracles + n + 2 * n + 2 * len(parts) + 2 + 4
    assert {j.index for j in jobs if j.kind == "oracle"} == set(range(suite.oracles))
    deps = next(j for j in jobs if j.id == "runs/class-3/0").deps
    assert {"shadow-retrained/class-3/0", "shadow-original/0", "oracle/class-3/0/1"} <= set(deps)
    prepare = next(j for j in jobs if j.kind == "prepare" and j.scenario == "class-3")
    audits = {j.id for j in jobs if j.kind == "audit" and j.scenario == "class-3"}
    assert len(audits) == len(parts) and {j.indices for j in jobs if j.id in audits} == set(parts)
    assert prepare.id in deps and set(prepare.deps) == {f"shadow-original/{i}" for i in range(n)} | audits
    seen: set[str] = set()
    for job in jobs:  # topological: every dependency comes earlier
        assert set(job.deps) <= seen, job.id
        seen.add(job.id)
    runs = [j for j in jobs if j.kind == "runs"]
    assert sorted(r.run_id for j in runs for r in j.runs) == sorted(r.run_id for r in plan)


def test_run_graph_waits_for_dependencies_and_reports_failures(tmp_path):
    order: list[str] = []

    class Recorder(LocalExecutor):
        def submit(self, job: Job) -> Job:
            order.append(job.id)
            self._queue.append(job)
            return job

        def wait(self, handles: list):
            job = self._queue.pop(0)
            return [(job, RuntimeError("no") if job.id == "boom" else JobResult(job.id, job.kind))]

    env = job_env(load_suite("digits-smoke"), RunOptions(), tmp_path)
    jobs = [Job("b", "runs", 0, deps=("a",)), Job("a", "original", 0), Job("c", "runs", 0, deps=("a", "b"))]
    schedule_jobs(Recorder(env), jobs, lambda job, result: None)
    assert order == ["a", "b", "c"]
    order.clear()  # a job vetoed at submission (its output is stored) releases its dependents at once
    schedule_jobs(Recorder(env), jobs, lambda job, result: None, lambda job: None if job.id == "a" else job)
    assert order == ["b", "c"]
    with pytest.raises(RuntimeError, match="job boom failed"):
        schedule_jobs(Recorder(env), [Job("boom", "original", 0), Job("d", "runs", 0, deps=("boom",))],
                  lambda job, result: None)


def test_cache_check_names_the_folder_when_a_worker_cannot_see_it(tmp_path):
    env = job_env(load_suite("digits-smoke"), RunOptions(), tmp_path / "cache")
    check_cache_visible(LocalExecutor(env), env.cache_dir)  # the same folder: fine, and no probe files left
    assert list((tmp_path / "cache" / ".executor-probe").iterdir()) == []

    class ElsewhereWorker(LocalExecutor):  # a worker on a node where this path is a different, empty folder
        def check_cache(self, token_name: str, token: str):
            from harness.pipeline.graph import probe_cache

            return [probe_cache(str(tmp_path / "other-node"), token_name, token)]

    with pytest.raises(ExecutorError, match="shared storage") as info:
        check_cache_visible(ElsewhereWorker(env), env.cache_dir)
    assert env.cache_dir in str(info.value)


def test_options_select_the_executor(tmp_path):
    env = job_env(load_suite("digits-smoke"), RunOptions(), tmp_path)
    assert isinstance(make_executor(RunOptions(), env), LocalExecutor)
    pool = make_executor(RunOptions(jobs=2), env)
    try:
        assert isinstance(pool, PoolExecutor)
    finally:
        pool.close()


def test_cli_flags_reach_run_options(monkeypatch, tmp_path):
    from harness.commands import cli

    seen = {}
    monkeypatch.setattr("harness.pipeline.driver.run_suite", lambda suite, options: seen.setdefault("o", options) and
                        RunSummary())
    cli.main(["run", "--suite", "digits-smoke", "--jobs", "3", "--executor", "ray", "--ray-address", "auto",
              "--results", str(tmp_path)])
    options = seen["o"]
    assert (options.jobs, options.executor, options.ray_address) == (3, "ray", "auto")
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["run", "--jobs", "0"])


def test_every_worker_uses_the_fixed_thread_count(tmp_path):
    """Rows depend on torch's intra-op thread count, so it is an option (1 by default), never inherited."""
    env = job_env(load_suite("digits-smoke"), RunOptions(), tmp_path)
    assert env.threads == 1 and Path(env.cache_dir).is_absolute()
    assert job_env(load_suite("digits-smoke"), RunOptions(threads=3), tmp_path).threads == 3
    before = torch.get_num_threads()
    executor = LocalExecutor(env)
    executor.close()
    assert torch.get_num_threads() == before  # the in-process executor restores the driver's count


def test_pool_workers_are_packed_round_robin_onto_gpus():
    from harness.pipeline.executors import worker_device

    assert [worker_device("cuda", i, 2) for i in range(5)] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]
    assert worker_device("auto", 3, 4) == "cuda:3" and worker_device("auto", 3, 0) == "auto"
    assert worker_device("cuda:1", 0, 4) == "cuda:1" and worker_device("cpu", 5, 8) == "cpu"


def test_each_pool_worker_gets_its_own_index(tmp_path):
    """What GPU packing relies on: index 0 is the driver's own slot, the N - 1 spawned workers take 1..N-1."""
    from harness.pipeline.executors import pool_worker_info

    executor = PoolExecutor(job_env(load_suite("digits-smoke"), RunOptions(device="cpu"), tmp_path), 2)
    try:
        futures = [executor.pool.submit(pool_worker_info) for _ in range(8)]
        seen = {pid: (index, device) for pid, index, device in (f.result() for f in futures)}
    finally:
        executor.close()
    assert sorted(index for index, _ in seen.values()) == list(range(1, len(seen) + 1)) and len(seen) == 1
    assert {device for _, device in seen.values()} == {"cpu"}


def _worker_fingerprint() -> str:
    from harness.pipeline import executors
    from harness.pipeline.graph import worker_data

    return worker_data(executors._POOL_ENV).fingerprint


def test_spawned_workers_read_the_drivers_copy_of_the_data_and_it_goes_at_close(tmp_path):
    """A spawned worker takes the driver's decoded data from the run's own file instead of the dataset files;
    the file is gone once the pool is closed."""
    suite = load_suite("digits-smoke")
    data = dataclasses.replace(suite.load_data(), fingerprint="the-drivers-copy")  # the files would give another
    executor = PoolExecutor(job_env(suite, RunOptions(device="cpu"), tmp_path), 2)
    try:
        executor.share_data(data)
        assert executor.pool.submit(_worker_fingerprint).result() == "the-drivers-copy"
        folder = Path(executor.env.data_file).parent
        assert folder.is_dir()
    finally:
        executor.close()
    assert not folder.exists()


def test_an_unreadable_copy_of_the_data_falls_back_to_the_dataset_files(tmp_path, monkeypatch):
    from harness.pipeline import graph

    suite = load_suite("digits-smoke")
    broken = tmp_path / "suite-data.pt"
    broken.write_bytes(b"not a torch file")
    monkeypatch.setitem(graph._WORKER, "data", {})
    env = dataclasses.replace(job_env(suite, RunOptions(device="cpu"), tmp_path), data_file=str(broken))
    assert graph.worker_data(env).fingerprint == suite.load_data().fingerprint


@pytest.mark.slow
def test_an_isolated_pool_runs_a_plugin_in_the_drivers_sandbox_with_the_same_rows(tmp_path):
    """--jobs 2 with isolation: the spawned worker attaches to the driver's plugin sandbox instead of starting
    one (harness/isolation/server_share.py), and the plugin's rows equal those of the in-process executor."""
    from harness.isolation import server_share

    suite = small_suite()
    plugin = str(Path(__file__).resolve().parent.parent / "examples" / "my_method.py")
    options = lambda name, jobs: RunOptions(methods=["my-method"], seeds=[0, 1], plugins=[plugin], isolate=True,
                                            results_root=tmp_path / name / "results", cache_dir=tmp_path / "cache",
                                            device="cpu", progress=False, jobs=jobs)
    single = run_suite(suite, options("single", 1))
    before = server_share.ATTACHED
    pool = run_suite(suite, options("pool", 2))
    assert pool.executor == "pool" and pool.written == single.written == 4 and pool.failed == 0
    assert len({worker for _, worker, _, _ in pool.timeline}) == 2, pool.timeline  # both slots ran jobs
    assert server_share.ATTACHED > before, "the spawned worker started a sandbox of its own"
    a, b = _rows(tmp_path / "single" / "results", suite.name), _rows(tmp_path / "pool" / "results", suite.name)
    assert (b["sandbox"] == "bwrap").all()
    _assert_same_rows(a, b)
