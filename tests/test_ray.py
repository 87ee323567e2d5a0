"""The Ray executor on a real local Ray cluster writes the rows the in-process loop writes."""

from __future__ import annotations

import pytest
from test_executors import _assert_same_rows, _options, _rows, small_suite

from harness.runner import run_suite

ray = pytest.importorskip("ray")

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        yield
    finally:
        ray.shutdown()


def test_ray_executor_writes_the_rows_of_the_sequential_loop(tmp_path, ray_cluster):
    suite = small_suite()
    local = run_suite(suite, _options(tmp_path, "local"))
    remote = run_suite(suite, _options(tmp_path, "ray", executor="ray"))
    assert remote.executor == "ray" and remote.written == local.written == 4 and remote.failed == 0
    assert ray.is_initialized()  # the executor joined the test's cluster and left it running
    assert set(remote.stage_seconds) == {"original", "oracle", "shadows", "runs", "wall"}
    a, b = _rows(tmp_path / "local" / "results", suite.name), _rows(tmp_path / "ray" / "results", suite.name)
    _assert_same_rows(a, b)
