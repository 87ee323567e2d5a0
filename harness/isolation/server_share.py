"""One set of method fork servers per run: a local pool's workers attach to the servers of the process that
started the pool instead of starting their own.

A fork server costs seconds of CPU to start (a sandbox, a Python that imports torch and ``torch._dynamo``), and
on a small machine every spawned pool worker started one per plugin and one for the built-in methods: when one
method was added to a finished suite, the worker's own plugin server was one of the largest fixed costs of the
run (bench/plugin_cost.py). The pool's owner (the driver) holds a :class:`ServerBroker`: each worker gets one
end of a socket pair of its own at spawn time, and asks over it for the server of (box, preload, binds, mode);
the broker starts that server in the driver if it is not running yet and hands back a new control socket to it
(:meth:`harness.isolation.sandbox.ForkServer.attach`). The worker's methods then run in the same sandbox as the
driver's, each still in a process of its own, confined to the worker's cgroup as before; closing a worker takes
down only the processes it spawned.

Only harness processes hold these sockets: a method process closes every control socket when it is forked,
and the broker answers only the pool workers' own socket pairs, made before they were spawned.
"""

from __future__ import annotations

import logging
import select
import socket
import threading

from harness.isolation import sandbox

log = logging.getLogger(__name__)
ATTACHED = 0  # control sockets this process's brokers have handed out (tests and benches read it)


class ServerBroker:
    """The driver's side: a thread that answers the pool workers' requests for fork servers."""

    def __init__(self, workers: int):
        pairs = [socket.socketpair() for _ in range(workers)]
        self._ours = [ours for ours, _ in pairs]
        self.worker_ends = [theirs for _, theirs in pairs]  # pickled to the spawned workers (their fds are dup'ed)
        self._stop_r, self._stop_w = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="unlearn-bench-server-broker")
        self._thread.start()

    def _serve(self) -> None:
        live = list(self._ours)
        while live:
            readable, _, _ = select.select([*live, self._stop_r], [], [])
            if self._stop_r in readable:
                return
            for sock in readable:
                try:
                    request, _ = sandbox._recv_msg(sock)
                except OSError:
                    request = None
                if request is None:  # that worker exited
                    live.remove(sock)
                    sock.close()
                    continue
                self._answer(sock, request)

    @staticmethod
    def _answer(sock: socket.socket, request: dict) -> None:
        control = None
        try:
            server = sandbox.fork_server(str(request["box"]), list(request["preload"]), list(request["extra_ro"]),
                                         mode=str(request["mode"]))
            control = server.attach()
            sandbox._send_msg(sock, {"ok": True}, [control.fileno()])
            global ATTACHED
            ATTACHED += 1
        except Exception as exc:  # noqa: BLE001 - the worker starts a server of its own instead, and says why
            try:
                sandbox._send_msg(sock, {"error": f"{type(exc).__name__}: {exc}"[:2000]})
            except OSError:
                pass
        finally:
            if control is not None:
                control.close()

    def close(self) -> None:
        """Stop answering (the servers stay the driver's); the workers' ends close with the workers."""
        self._stop_w.close()
        self._thread.join(timeout=5)
        for sock in (*self._ours, *self.worker_ends, self._stop_r):
            sock.close()


class SharedServers:
    """A pool worker's side: asks the driver's broker for a control socket to a server."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._lock = threading.Lock()

    def __call__(self, box: str, preload: list[str], extra_ro: list[str], mode: str) -> socket.socket | None:
        with self._lock:
            try:
                sandbox._send_msg(self._sock, {"box": box, "preload": preload, "extra_ro": extra_ro, "mode": mode})
                reply, fds = sandbox._recv_msg(self._sock, max_fds=1)
            except OSError as exc:
                reply, fds = {"error": str(exc)}, []
        if reply is not None and reply.get("ok") and len(fds) == 1:
            return socket.socket(fileno=fds[0])
        for fd in fds:
            socket.socket(fileno=fd).close()
        log.warning("cannot use the pool owner's method sandbox for %s (%s): starting one in this worker",
                    box, (reply or {}).get("error", "no answer"))
        return None


def use_shared_servers(sock: socket.socket) -> None:
    """In a pool worker: get every fork server from the pool's owner through ``sock``."""
    sandbox.SHARED_SERVERS = SharedServers(sock)
