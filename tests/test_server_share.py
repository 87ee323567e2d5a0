"""A pool worker runs its methods in the driver's fork server (harness/isolation/server_share.py): the real
broker, a real spawned process and the real bubblewrap server."""

from __future__ import annotations

import json
import multiprocessing
import signal

import pytest

from harness.isolation import sandbox
from harness.isolation.server_share import ServerBroker, use_shared_servers


def _attached_worker(end, out, foreign_pid: int) -> None:
    """A stand-in for a pool worker: attach, start a method process, try to kill the driver's one, close."""
    use_shared_servers(end)
    server = sandbox.fork_server("builtin", sandbox.PRELOAD, mode="bwrap")
    child = server.spawn("worker", {}, confine=lambda pid: None)
    greeting = json.loads(child.conn.recv_bytes())
    server.kill(foreign_pid)  # not its own child: the server must refuse
    out.put((server.process is None, greeting, child.host_pid is not None))
    sandbox.close_servers()  # the attached client closes: its method process is killed, nothing else
    out.put(child.join(30))


@pytest.fixture
def driver_server():
    if sandbox.bwrap_problem():
        pytest.fail(f"the method sandbox is unavailable: {sandbox.bwrap_problem()}")
    sandbox.close_servers()
    yield sandbox.fork_server("builtin", sandbox.PRELOAD, mode="bwrap")
    sandbox.close_servers()


def test_a_pool_worker_attaches_to_the_drivers_server_and_owns_only_its_children(driver_server):
    mine = driver_server.spawn("worker", {})
    assert json.loads(mine.conn.recv_bytes())["op"] == "ready"
    broker = ServerBroker(1)
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    worker = context.Process(target=_attached_worker, args=(broker.worker_ends[0], out, mine.pid))
    worker.start()
    try:
        attached, greeting, confined = out.get(timeout=120)
        assert attached, "the worker started a fork server of its own"
        assert greeting["op"] == "ready" and confined
        assert out.get(timeout=60) == -signal.SIGKILL  # its method process died with its control socket
        worker.join(60)
        assert worker.exitcode == 0
        assert mine.is_alive(), "an attached client killed (or its close took down) the driver's method process"
        assert driver_server.alive() and list(sandbox._SERVERS) == ["builtin|bwrap"]
        again = driver_server.spawn("worker", {})  # the driver's server still serves
        assert json.loads(again.conn.recv_bytes())["op"] == "ready"
        again.kill()
        assert again.join(30) == -signal.SIGKILL
    finally:
        broker.close()
        mine.kill()
        mine.join(30)


def test_a_worker_without_a_broker_answer_starts_its_own_server(monkeypatch):
    """A broker that cannot help (its socket is closed) makes the worker fall back to a server of its own."""
    broker = ServerBroker(1)
    end = broker.worker_ends[0]
    broker.close()  # closes the driver's side: the request gets no answer
    monkeypatch.setattr(sandbox, "SHARED_SERVERS", None)
    use_shared_servers(end)
    sandbox.close_servers()
    try:
        assert sandbox.SHARED_SERVERS("builtin", [], [], "none") is None
    finally:
        monkeypatch.setattr(sandbox, "SHARED_SERVERS", None)
