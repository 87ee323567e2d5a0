"""The Ray executor on a real Ray cluster of two nodes (a head and a worker, both on this machine) writes
the rows the in-process executor writes, after checking that every node sees the shared cache."""

from __future__ import annotations

import pytest
from test_executors import _assert_same_rows, _options, _rows, small_suite

from harness.pipeline.driver import RunOptions, run_suite
from harness.pipeline.executors import RayExecutor, check_cache_visible, job_env

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture
def two_node_cluster():
    cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        yield cluster
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


def test_ray_executor_on_two_nodes_writes_the_rows_of_the_in_process_run(tmp_path, two_node_cluster):
    suite = small_suite()
    local = run_suite(suite, _options(tmp_path, "local"))
    remote = run_suite(suite, _options(tmp_path, "ray", executor="ray", ray_address=two_node_cluster.address))
    assert remote.executor == "ray" and remote.written == local.written == 4 and remote.failed == 0
    assert set(remote.stage_seconds) >= {"original", "oracle", "runs", "wall"}
    a, b = _rows(tmp_path / "local" / "results", suite.name), _rows(tmp_path / "ray" / "results", suite.name)
    _assert_same_rows(a, b)


def test_every_ray_node_answers_the_cache_probe(tmp_path, two_node_cluster):
    cache = tmp_path / "cache"
    executor = RayExecutor(job_env(small_suite(), RunOptions(), cache), two_node_cluster.address)
    try:
        folder = cache / ".executor-probe"
        folder.mkdir(parents=True)
        (folder / "t.token").write_text("secret")
        answers = executor.check_cache("t.token", "secret")
        assert len(answers) == 2 and all(ok for _, ok, _ in answers), answers  # one probe pinned to each node
        check_cache_visible(executor, str(cache))  # the driver's own check passes on shared storage
    finally:
        executor.close()
