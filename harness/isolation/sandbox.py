"""The filesystem and network sandbox of method workers, and the fork server that starts them.

A method runs in a worker process forked from a small **fork server** that has already imported torch and
the built-in methods (so a worker starts in tens of milliseconds). With bubblewrap available the fork
server itself runs inside a sandbox, so every worker it forks inherits it:

* read-only: the Python environment (interpreter prefixes, site-packages, ``PYTHONPATH``), the harness
  packages' source folders, the method's own plugin file, the system libraries (``/usr/lib``, ``/lib*``,
  ``/usr/bin``) and a few files of ``/etc`` the dynamic loader and Python read;
* private: an empty ``/tmp`` (a size-limited tmpfs, also the working directory and ``HOME``), ``/dev/shm``,
  a fresh ``/proc`` of its own PID namespace, a minimal ``/dev``;
* nothing else: no home folder, no artifact cache, no results, no dataset files, no network (a network
  namespace with only loopback), no further user namespaces, no capabilities, a cleared environment.

One fork server (one sandbox) serves the built-in methods; every plugin gets a server of its own, so a
plugin's files in ``/tmp`` or its processes never meet another method's runs. The mode is chosen by
``UNLEARN_BENCH_SANDBOX``: ``auto`` (default: bubblewrap when it works here, else none), ``bwrap``
(required: fail when unavailable) or ``none`` (plain fork server, no filesystem or network isolation).
The server and its workers speak to the harness only through inherited socket pairs.

Why one module: the sandbox's layout and the fork server are one mechanism. The server is started inside the
bubblewrap command line built here, its workers inherit that sandbox, and the policy (what is bound, hidden,
kept) can only be checked against the server that runs under it.
"""

from __future__ import annotations

import atexit
import glob
import hashlib
import importlib.util
import json
import logging
import os
import select
import shutil
import signal
import site
import socket
import struct
import subprocess
import sys
import sysconfig
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

log = logging.getLogger(__name__)

MODE_ENV = "UNLEARN_BENCH_SANDBOX"
MODES = ("auto", "bwrap", "none")
# Packages the workers import from this checkout or installation (their folders are bound read-only).
HARNESS_PACKAGES = ("harness", "baselines", "methods")
# System folders with shared libraries and programs; merged-/usr symlinks (/lib -> usr/lib) are recreated.
SYSTEM_DIRS = ("/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/libx32", "/usr/local/lib", "/usr/bin", "/usr/local/bin",
               "/usr/libexec", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin", "/usr/sbin")
# What the dynamic loader, libc and Python read from /etc; nothing here names a user's files.
ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/passwd",
             "/etc/group", "/etc/nsswitch.conf", "/etc/localtime")
# A prefix that is one of these is a whole system tree (it holds e.g. /usr/share/datasets): bind parts only.
SYSTEM_PREFIXES = ("/", "/usr", "/usr/local", "/opt")
# Environment variables a worker keeps (thread counts, GPU selection, determinism, the Python path).
ENV_KEEP_PREFIXES = ("OMP_", "MKL_", "OPENBLAS_", "KMP_", "GOMP_", "CUDA_", "CUBLAS_", "NVIDIA_", "PYTORCH_")
ENV_KEEP = ("PYTHONPATH", "PYTHONHASHSEED", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
SANDBOX_TMP_MB = 2048  # size of the private /tmp (and /dev/shm); it is memory, shared by one server's workers
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
PLUGIN_MOUNT = "/run/unlearn-bench/plugins"  # where plugin files are bound inside the sandbox
STARTUP_TIMEOUT_S = 300  # a cold server imports torch; generous for loaded machines
# Folders that hold harness state; masked with an empty tmpfs should one ever lie inside a bound folder.
STATE_ENV = ("UNLEARN_BENCH_CACHE", "UNLEARN_BENCH_RESULTS", "UNLEARN_BENCH_DATA")


# Modules a fork server imports once, so a worker starts in tens of milliseconds instead of seconds (they
# register the roles a child can run: harness.isolation.workers the method worker, harness.isolation.plugin_proxy
# the describer).
# torch._dynamo: torch imports it (about 900 modules, ~1 s on one core) when the first optimizer is built;
# without it here every fresh worker paid that second on its first run (measured: bench/worker_start.py).
PRELOAD = ["torch", "torch._dynamo", "harness.isolation.workers", "harness.isolation.plugin_proxy",
           "harness.pipeline.references", "baselines", "methods"]


class SandboxError(ValueError):
    """The sandbox or its fork server could not be started (the message says why); the CLI prints it."""


# ------------------------------------------------------------------------------------------ the mode
_PROBED: dict[str, str | None] = {}


def bwrap_problem() -> str | None:
    """Why bubblewrap cannot sandbox here (None when it can); probed once per process."""
    if "bwrap" not in _PROBED:
        _PROBED["bwrap"] = _probe_bwrap()
    return _PROBED["bwrap"]


def _probe_bwrap() -> str | None:
    if not sys.platform.startswith("linux"):
        return f"bubblewrap needs Linux (this is {sys.platform})"
    exe = shutil.which("bwrap")
    if exe is None:
        return "bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    true = shutil.which("true") or "/bin/true"
    probe = [exe, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
             *_system_binds(), "--proc", "/proc", "--dev", "/dev", true]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap failed to run: {exc}"
    if done.returncode != 0:
        return f"bwrap cannot create namespaces here: {done.stderr.strip()[:300] or done.returncode}"
    return None


def sandbox_mode() -> str:
    """``bwrap`` or ``none``, from ``UNLEARN_BENCH_SANDBOX`` and what this machine supports."""
    wanted = os.environ.get(MODE_ENV, "auto").strip().lower() or "auto"
    if wanted not in MODES:
        raise SandboxError(f"{MODE_ENV}={wanted!r}: expected one of {', '.join(MODES)}")
    if wanted == "none":
        return "none"
    problem = bwrap_problem()
    if problem is None:
        return "bwrap"
    if wanted == "bwrap":
        raise SandboxError(f"{MODE_ENV}=bwrap but {problem}")
    if "warned" not in _PROBED:
        _PROBED["warned"] = problem
        log.warning("method runs are NOT sandboxed (rows say sandbox=none): %s", problem)
    return "none"


# ------------------------------------------------------------------------------------------ the layout
def _exists(path: str) -> bool:
    return os.path.lexists(path)


def _system_binds() -> list[str]:
    args: list[str] = []
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


def python_paths() -> list[str]:
    """Folders the worker's interpreter imports from: prefixes, stdlib, site-packages, PYTHONPATH, harness."""
    paths: list[str] = []
    for prefix in {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}:
        if os.path.realpath(prefix) not in SYSTEM_PREFIXES and os.path.abspath(prefix) not in SYSTEM_PREFIXES:
            paths.append(prefix)
    for scheme_path in ("stdlib", "platstdlib", "purelib", "platlib"):
        paths.append(sysconfig.get_paths()[scheme_path])
    paths += site.getsitepackages()
    if site.ENABLE_USER_SITE and site.USER_SITE:
        paths.append(site.USER_SITE)
    paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    for name in HARNESS_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            paths += list(spec.submodule_search_locations)
    executable = os.path.realpath(sys.executable)
    paths += [sys.executable, executable]
    return sorted({os.path.abspath(p) for p in paths if p and _exists(p)})


def hidden_paths() -> list[str]:
    """Harness state that must stay invisible even if it lies inside a bound folder."""
    hidden = [os.environ.get(name, "") for name in STATE_ENV]
    hidden += [os.path.expanduser("~/.cache/unlearn-bench"), "/usr/share/datasets", os.path.abspath("results")]
    return sorted({os.path.abspath(p) for p in hidden if p and os.path.isdir(p)})


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def inside_path(host_path: str) -> str:
    """Where a method's own file (a plugin) appears in the sandbox: outside /tmp, which starts empty."""
    digest = hashlib.sha256(host_path.encode()).hexdigest()[:12]
    return f"{PLUGIN_MOUNT}/{digest}/{os.path.basename(host_path)}"


def bwrap_argv(extra_ro: list[str], gpu: bool) -> list[str]:
    """The bubblewrap command line (up to the program to run); see the module docstring for the policy.

    ``extra_ro`` are a method's own files, bound read-only at :func:`inside_path`.
    """
    exe = shutil.which("bwrap") or "bwrap"
    size = str(SANDBOX_TMP_MB << 20)
    # --die-with-parent: bwrap's init waits for every process of the sandbox, so without it a process a method
    # left behind (setsid, a daemon) keeps the sandbox alive after its server and the harness have exited.
    args = [exe, "--unshare-all", "--unshare-user", "--disable-userns", "--new-session", "--die-with-parent",
            "--cap-drop", "ALL", "--clearenv", "--proc", "/proc", "--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm",
            "--size", size, "--tmpfs", "/tmp", *_system_binds()]
    bound: list[str] = []
    # Symlinked paths are bound at their real location too, so the links resolve inside.
    for path in python_paths():
        for where in dict.fromkeys([path, os.path.realpath(path)]):
            if _exists(where) and not any(_inside(where, b) for b in bound + list(SYSTEM_DIRS)):
                bound.append(where)
    for path in sorted(bound, key=len):
        args += ["--ro-bind", path, path]
    for path in ETC_FILES:
        if _exists(path):
            args += ["--ro-bind", path, path]
    for path in extra_ro:
        args += ["--ro-bind", path, inside_path(path)]
    for path in hidden_paths():
        if any(_inside(path, b) for b in bound) and path not in bound:
            args += ["--tmpfs", path]
    args += ["--chdir", "/tmp"]
    if gpu:  # CUDA needs the device nodes and sysfs (hardware description only, no user files)
        for node in sorted(glob.glob("/dev/nvidia*")) + (["/dev/dri"] if os.path.isdir("/dev/dri") else []):
            args += ["--dev-bind", node, node]
        args += ["--ro-bind", "/sys", "/sys"]
    else:  # torch's cpuinfo reads the CPU topology
        for path in ("/sys/devices/system/cpu", "/sys/devices/system/node"):
            if os.path.isdir(path):
                args += ["--ro-bind", path, path]
    env = {"PATH": SANDBOX_PATH, "HOME": "/tmp", "TMPDIR": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"}
    env.update(_kept_env())
    for key, value in sorted(env.items()):
        args += ["--setenv", key, value]
    return [*args, "--remount-ro", "/"]


def _kept_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in ENV_KEEP or k.startswith(ENV_KEEP_PREFIXES)}


# ------------------------------------------------------------------------------------------ wire format
def _send_msg(sock: socket.socket, message: dict, fds: list[int] = ()) -> None:
    data = json.dumps(message).encode()
    frame = struct.pack("!I", len(data)) + data
    sent = socket.send_fds(sock, [frame], list(fds)) if fds else sock.send(frame)
    if sent < len(frame):
        sock.sendall(frame[sent:])


def _recv_msg(sock: socket.socket, max_fds: int = 0) -> tuple[dict | None, list[int]]:
    """One framed message (None at end of stream) and the descriptors that came with it."""
    data, fds, _, _ = socket.recv_fds(sock, 1 << 16, max(max_fds, 1))
    if not data:
        return None, fds
    while len(data) < 4 or len(data) < 4 + struct.unpack("!I", data[:4])[0]:
        more = sock.recv(1 << 16)
        if not more:
            return None, fds
        data += more
    return json.loads(data[4:]), fds


# ------------------------------------------------------------------------------------------ server side
HELLO, GO = b"?", b"!"  # the spawn handshake: the child's first byte (it carries its credentials), the reply
INSIDE = False  # True in the fork server and its workers: plugins are imported here, never proxied
ROLES: dict[str, Callable[[Connection, dict], None]] = {}  # what a forked child can be asked to run


def serve(control_fd: int, preload: list[str]) -> None:
    """The fork server's loop: fork a child per request, report each child's exit status."""
    global INSIDE
    INSIDE = True
    import importlib

    for module in preload:
        importlib.import_module(module)
    control = socket.socket(fileno=control_fd)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the harness's to handle
    children: dict[int, int] = {}  # pid -> write end of its status pipe
    # Every control socket and the children it asked for. The first is the harness process that started the
    # server; it may attach more (another process of the same harness run: a pool worker), each of which can
    # spawn and kill only its own children, and whose end of stream takes only its own children down.
    clients: dict[socket.socket, set[int]] = {control: set()}
    _send_msg(control, {"op": "ready"})
    while True:
        readable, _, _ = select.select([*clients, wake_r], [], [])
        if wake_r in readable:
            os.read(wake_r, 4096)
            for pid in _reap(children):
                for pids in clients.values():
                    pids.discard(pid)
        for sock in [r for r in readable if r in clients]:
            _answer(sock, sock is control, clients, (wake_r, wake_w), children)


def _answer(sock: socket.socket, primary: bool, clients: dict[socket.socket, set[int]], wake: tuple[int, int],
            children: dict[int, int]) -> None:
    """Serve one request from one control socket."""
    request, fds = _recv_msg(sock, max_fds=1)
    if request is None:  # that client closed its pipe or died: its workers go with it
        doomed = list(children) if primary else list(clients[sock])
        for pid in doomed:
            _kill(pid)
        if primary:  # the harness itself: nobody is left to serve
            os._exit(0)
        clients.pop(sock).clear()
        sock.close()
        return
    op = request.get("op")
    if op == "spawn" and len(fds) == 1:
        pid, status_r = _spawn(request, fds[0], list(clients), wake, children)
        clients[sock].add(pid)
        _send_msg(sock, {"pid": pid}, [status_r])
        os.close(status_r)
    elif op == "kill":
        if request.get("pid") in clients[sock]:
            _kill(request["pid"])
        _send_msg(sock, {"ok": True})
    elif op == "attach" and primary and len(fds) == 1:
        clients[socket.socket(fileno=fds[0])] = set()
        _send_msg(sock, {"ok": True})
    else:
        for fd in fds:
            os.close(fd)
        _send_msg(sock, {"error": f"unknown request {op!r}"})


def _spawn(request: dict, conn_fd: int, controls: list[socket.socket], wake: tuple[int, int],
           children: dict[int, int]) -> tuple[int, int]:
    """Fork the child; returns its pid and the read end of its status pipe (for the harness)."""
    status_r, status_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: nothing of the server's bookkeeping stays open in it
        code = 1
        try:
            os.setpgid(0, 0)  # a kill takes the worker's own children too
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for control in controls:  # no method process can ask the server for anything
                control.close()
            for fd in (*wake, status_r, status_w, *children.values()):
                os.close(fd)
            if request.get("handshake"):  # ForkServer.spawn(confine=...): say who we are, wait until confined
                os.write(conn_fd, HELLO)
                if os.read(conn_fd, 1) != GO:
                    os._exit(1)
            ROLES[request["role"]](Connection(conn_fd), request.get("args", {}))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - reported on stderr; the exit code tells the harness
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(conn_fd)
    children[pid] = status_w
    return pid, status_r


def _kill(pid: int) -> None:
    for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            kill()
            return
        except OSError:
            continue


def _reap(children: dict[int, int]) -> list[int]:
    """Collect exited children, send each one's status to whoever holds its pipe; returns their pids."""
    reaped = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.append(pid)
        fd = children.pop(pid, None)
        if fd is not None:
            try:
                os.write(fd, struct.pack("!i", os.waitstatus_to_exitcode(status)))
            except OSError:
                pass  # the harness stopped listening to this worker
            finally:
                os.close(fd)


# ------------------------------------------------------------------------------------------ harness side
def describe_exit(code: int | None) -> str:
    """A row's error text for a worker that died without answering."""
    if code is None:
        return "the method process stopped answering"
    if code < 0:
        sig = signal.Signals(-code).name
        hint = {"SIGSEGV": "a crash in native code", "SIGKILL": "killed, e.g. by the out-of-memory killer",
                "SIGABRT": "aborted"}.get(sig, "a signal")
        return f"the method process died with {sig} ({hint})"
    return f"the method process exited with code {code} (os._exit or a fatal error inside the method)"


@dataclass
class ChildProcess:
    """A worker forked by a :class:`ForkServer`: its pipe, and its exit status once it has one."""

    conn: Connection
    pid: int  # inside the server's PID namespace: only the server can signal it by number
    status_fd: int
    server: ForkServer
    exitcode: int | None = field(default=None)
    host_pid: int | None = None  # in the harness's PID namespace (known after a handshake, spawn(confine=...))

    def poll(self, timeout: float = 0.0) -> int | None:
        """The exit code (negative: killed by that signal), or None while it runs."""
        if self.exitcode is None and self.status_fd >= 0:
            ready, _, _ = select.select([self.status_fd], [], [], max(timeout, 0.0))
            if ready:
                data = os.read(self.status_fd, 4)
                os.close(self.status_fd)
                self.status_fd = -1
                # No status means the server (and so the whole sandbox) went away.
                self.exitcode = struct.unpack("!i", data)[0] if len(data) == 4 else -signal.SIGKILL
        return self.exitcode

    def is_alive(self) -> bool:
        return self.poll() is None

    def kill(self) -> None:
        if self.is_alive():
            self.server.kill(self.pid)

    def join(self, timeout: float) -> int | None:
        return self.poll(timeout)

    def close(self) -> None:
        self.conn.close()
        if self.status_fd >= 0 and self.poll() is None:
            os.close(self.status_fd)
            self.status_fd = -1


def _peer_pid(sock: socket.socket) -> int:
    """The pid, in this process's PID namespace, of the child that sent the handshake's first byte on ``sock``.

    The kernel attaches the sender's credentials (``SO_PASSCRED``) and translates its pid into the receiver's
    namespace: a worker in the sandbox's PID namespace cannot name another process.
    """
    ready, _, _ = select.select([sock], [], [], STARTUP_TIMEOUT_S)
    if not ready:
        raise SandboxError(f"the method process did not report within {STARTUP_TIMEOUT_S} s")
    data, ancillary, _, _ = sock.recvmsg(1, socket.CMSG_SPACE(struct.calcsize("3i")))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and data == HELLO:
            pid = struct.unpack("3i", payload[: struct.calcsize("3i")])[0]
            if pid > 0:
                return pid
    raise SandboxError("the method process exited before it reported itself")


class ForkServer:
    """A fork server process, in a bubblewrap sandbox (``mode='bwrap'``) or plain (``mode='none'``)."""

    def __init__(self, mode: str, preload: list[str], extra_ro: list[str] = (), gpu: bool = False):
        self.mode = mode
        self.owner = os.getpid()
        self._lock = threading.Lock()
        ours, theirs = socket.socketpair()
        command = [sys.executable, "-B", "-c",
                   f"from harness.isolation.sandbox import serve; serve({theirs.fileno()}, {list(preload)!r})"]
        env = {k: v for k, v in os.environ.items() if k not in STATE_ENV}
        if mode == "bwrap":
            command = [*bwrap_argv(list(extra_ro), gpu), *command]
        try:
            self.process = subprocess.Popen(command, pass_fds=[theirs.fileno()], env=env,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            raise SandboxError(f"cannot start the method sandbox ({mode}): {exc}") from exc
        finally:
            theirs.close()
        self.control = ours
        ready = self._wait_ready()
        if ready is None or ready.get("op") != "ready":
            code = self.process.poll()
            self.close()
            raise SandboxError(f"the method sandbox ({mode}) failed to start (exit code {code}); "
                               "its error is printed above")

    @classmethod
    def attached(cls, control: socket.socket, mode: str) -> ForkServer:
        """A client of a server another process of this run started (:meth:`attach`): it spawns and kills its
        own children there, and closing it takes only those down."""
        client = cls.__new__(cls)
        client.mode, client.owner, client.process = mode, os.getpid(), None
        client._lock, client.control = threading.Lock(), control
        return client

    def attach(self) -> socket.socket:
        """A new control socket to this server for another process (see :meth:`attached`)."""
        ours, theirs = socket.socketpair()
        try:
            self._request({"op": "attach"}, [theirs.fileno()])
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return ours

    def _wait_ready(self) -> dict | None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.control], [], [], 0.5)
            if ready:
                return _recv_msg(self.control)[0]
            if self.process.poll() is not None:
                return None
        return None

    def where(self, host_path: str) -> str:
        """The path under which this server's workers see ``host_path`` (one of its ``extra_ro`` files)."""
        return inside_path(host_path) if self.mode == "bwrap" and host_path else host_path

    def alive(self) -> bool:
        if self.control is None or os.getpid() != self.owner:
            return False
        if self.process is not None:
            return self.process.poll() is None
        try:  # an attached client: the server's end closed (it exited, or its owner closed it) reads as EOF
            ready, _, _ = select.select([self.control], [], [], 0)
            return not ready or self.control.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
        except OSError:
            return False

    def _request(self, message: dict, fds: list[int] = ()) -> tuple[dict, list[int]]:
        with self._lock:
            if self.control is None:
                raise SandboxError("the method sandbox is closed")
            try:
                _send_msg(self.control, message, fds)
                reply, got = _recv_msg(self.control, max_fds=1)
            except OSError as exc:
                raise SandboxError(f"the method sandbox stopped answering: {exc}") from exc
        if reply is None:
            code = self.process.poll() if self.process is not None else "unknown: another process started it"
            raise SandboxError(f"the method sandbox ({self.mode}) exited (code {code})")
        if "error" in reply:
            raise SandboxError(reply["error"])
        return reply, got

    def spawn(self, role: str, args: dict, confine: Callable[[int], None] | None = None) -> ChildProcess:
        """Fork a child that runs ``ROLES[role](conn, args)``; returns the harness's end of its pipe.

        With ``confine``, the child first reports itself and waits: the harness learns its pid in the harness's
        own PID namespace (from the kernel, as the credentials of its first byte, so the child cannot lie about
        it), calls ``confine(pid)`` (e.g. to move it into a cgroup) and only then lets the role start. Should
        ``confine`` raise, the child is killed and never runs the role.
        """
        mine, child_end = socket.socketpair()
        if confine is not None:
            mine.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        request = {"op": "spawn", "role": role, "args": args, "handshake": confine is not None}
        try:
            reply, fds = self._request(request, [child_end.fileno()])
        except BaseException:
            mine.close()
            raise
        finally:
            child_end.close()
        if len(fds) != 1:
            mine.close()
            raise SandboxError("the method sandbox did not return the worker's status pipe")
        child = ChildProcess(Connection(mine.detach()), int(reply["pid"]), fds[0], self)
        if confine is not None:
            try:
                with socket.socket(fileno=os.dup(child.conn.fileno())) as sock:
                    child.host_pid = _peer_pid(sock)
                    confine(child.host_pid)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 0)
                    sock.sendall(GO)
            except BaseException as exc:
                child.kill()
                child.join(5)
                child.close()
                if isinstance(exc, OSError):
                    raise SandboxError(f"cannot confine the method process: {exc}") from exc
                raise
        return child

    def kill(self, pid: int) -> None:
        try:
            self._request({"op": "kill", "pid": pid})
        except SandboxError:
            pass  # the server is gone, and its workers with it

    def close(self) -> None:
        if self.control is not None:
            self.control.close()  # end of stream: the server kills its workers and exits
            self.control = None
        if os.getpid() != self.owner or self.process is None:
            return
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# Each server holds ~300 MB of private memory (torch imported); plugin servers beyond this many are closed,
# least recently used first (a later run of that plugin starts its server again, ~1-2 s).
MAX_PLUGIN_SERVERS = 2
_SERVERS: OrderedDict[str, ForkServer] = OrderedDict()
_SERVERS_LOCK = threading.Lock()
# Set in a process pool's worker (harness.isolation.server_share): asks the process that started the pool for a
# control socket to its server of (box, preload, extra_ro, mode); None when it cannot give one.
SHARED_SERVERS: Callable[[str, list[str], list[str], str], socket.socket | None] | None = None


def fork_server(box: str, preload: list[str], extra_ro: list[str] = (), mode: str | None = None) -> ForkServer:
    """The process's fork server for ``box`` ("builtin", or one per plugin), started on first use (in a pool worker:
    the pool owner's server, attached).

    NVIDIA devices are bound whenever the machine has them, so one server serves CPU and CUDA runs.
    """
    mode = mode or sandbox_mode()
    key = f"{box}|{mode}"
    with _SERVERS_LOCK:
        server = _SERVERS.get(key)
        if server is not None and server.alive():
            _SERVERS.move_to_end(key)
            return server
        if server is not None:
            _SERVERS.pop(key).close()
        if box != "builtin":
            plugins = [k for k in _SERVERS if not k.startswith("builtin|")]
            for old in plugins[: max(0, len(plugins) - MAX_PLUGIN_SERVERS + 1)]:
                _SERVERS.pop(old).close()
        control = SHARED_SERVERS(box, list(preload), list(extra_ro), mode) if SHARED_SERVERS else None
        if control is not None:  # another process's server: no second sandbox and torch import (seconds)
            server = _SERVERS[key] = ForkServer.attached(control, mode)
        else:
            server = _SERVERS[key] = ForkServer(mode, preload, list(extra_ro), gpu_present())
        return server


def close_servers() -> None:
    """Stop every fork server of this process (their workers die with them)."""
    with _SERVERS_LOCK:
        while _SERVERS:
            _, server = _SERVERS.popitem()
            server.close()


atexit.register(close_servers)


def gpu_present() -> bool:
    """NVIDIA device nodes exist: bind them (and /sys) so CUDA works inside the sandbox."""
    return bool(glob.glob("/dev/nvidia*"))


def describe(mode: str) -> str:
    """A one-line description for logs and the docs' 'is it on?' check."""
    if mode == "bwrap":
        return "bubblewrap sandbox (read-only Python environment, private /tmp, no network)"
    return "no sandbox (methods can read every file this user can, and use the network)"

