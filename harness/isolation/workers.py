"""Isolated method runs: a method executes in a worker process that only ever receives what
:class:`~harness.api.task.UnlearningTask` allows.

The parent sends the original's weights and architecture name, the forget data, the retain data (when the
method declares ``needs_retain``), the hyper-parameters, the seed and where to import the method from.
The worker never holds the oracle, the test split, the shadow bank or the cache location. It answers
with the unlearned weights, or a failure; a wall-clock limit, memory and process limits (a cgroup per worker,
else rlimits: :mod:`harness.isolation.limits`) and the process boundary turn hangs, crashes (segfaults, ``os._exit``),
allocation storms and fork bombs into rows.

Workers are forked from a fork server (:mod:`harness.isolation.sandbox`) that has imported torch and the built-in
methods but holds no data; with bubblewrap the server runs in a sandbox that every worker inherits (no
home, cache, results, data files or network; see docs/reliability.md). Built-in methods share one server,
each plugin has its own. Workers are kept per method across runs (a fresh fork costs tens of ms, reusing a
worker a few ms). A worker is replaced after any run that did not end ``ok``. Messages from the worker are
untrusted: JSON headers and tensors loaded with ``torch.load(weights_only=True)``, never pickle, so a
hostile method cannot execute code in the parent. ``task.cached`` artifacts are scoped by the method
family the parent assigns (:func:`harness.isolation.method_call.method_family`), never by what the worker claims.

Why one module: the parent's and the worker's halves of one message protocol (the job, the ``task.cached``
requests, the result) stay side by side, so that a change to a message changes both ends in one place.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import json
import logging
import math
import os
import re
import resource
import signal
import sys
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Self

import torch
from torch import nn

from harness.api.task import TensorData
from harness.isolation import cgroups, sandbox
from harness.isolation.limits import WorkerLimits, default_processes, plan
from harness.isolation.method_call import (
    InvalidOutput,
    MethodRun,
    build_task,
    derived_key,
    method_family,
    plugin_origin,
    validate_output,
)
from harness.isolation.sandbox import PRELOAD, SANDBOX_TMP_MB, ChildProcess, SandboxError, describe_exit
from harness.protocol.methods import MethodSpec
from harness.training.cache import CorruptArtifact

log = logging.getLogger(__name__)

# Environment variables that point at harness state a method must not find.
SCRUBBED_ENV = ("UNLEARN_BENCH_CACHE", "UNLEARN_BENCH_RESULTS")
STARTUP_TIMEOUT_S = 300  # a cold fork server imports torch; generous for loaded machines
MAX_MESSAGE_BYTES = 1 << 31  # a worker cannot make the parent buffer more than this per message
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class MethodFault(RuntimeError):
    """A method run that produced no usable model; ``status`` is ``failed``, ``timeout`` or ``invalid``."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class IsolationLimits:
    """Per-run limits: wall clock, a worker's memory (MiB, with its children; capped at its share of the
    machine, :func:`harness.isolation.limits.memory_share`) and its processes and threads."""

    timeout_s: float = 600.0
    memory_mb: int | None = 16384
    processes: int = field(default_factory=default_processes)


# ----------------------------------------------------------------------------------------- the worker side
def _set_rlimit(kind: int, limit: int) -> None:
    _, hard = resource.getrlimit(kind)
    resource.setrlimit(kind, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))


def _user_tasks() -> int:
    """Tasks (processes and threads) of this real user that /proc shows: what RLIMIT_NPROC counts."""
    uid, count = os.getuid(), 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/status") as handle:
                    status = dict(line.split(":", 1) for line in handle if ":" in line)
                if int(status["Uid"].split()[0]) == uid:
                    count += int(status["Threads"])
            except (OSError, KeyError, ValueError):
                continue  # it exited meanwhile
    return count


def _apply_rlimits(memory_bytes: int | None, processes: int | None) -> None:
    """The fallback where the worker has no cgroup (harness.isolation.limits): limits set on itself, before any method code."""
    if memory_bytes is not None:  # beyond the start-up size (torch's libraries are mapped already)
        with open("/proc/self/statm") as handle:
            baseline = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        _set_rlimit(resource.RLIMIT_AS, baseline + memory_bytes)
    if processes is not None:  # RLIMIT_NPROC counts all of the user's tasks, not this worker's
        _set_rlimit(resource.RLIMIT_NPROC, _user_tasks() + processes)


def _send(conn: Connection, header: dict, blob: bytes | None = None) -> None:
    conn.send_bytes(json.dumps({**header, "blob": blob is not None}).encode())
    if blob is not None:
        conn.send_bytes(blob)


def _to_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _from_bytes(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


_PLUGIN_FILES: set[str] = set()


def _resolve_method(name: str, module: str, path: str) -> MethodSpec:
    """Import the method's module (by name, else the plugin file) in the worker and return its spec."""
    from harness.isolation.plugin_import import import_plugin_file
    from harness.protocol.methods import METHODS, ensure_builtins

    ensure_builtins()
    if name not in METHODS:
        try:
            importlib.import_module(module)
        except ImportError:
            if not path:
                raise
            if path not in _PLUGIN_FILES:
                _PLUGIN_FILES.add(path)
                import_plugin_file(path)
    if name not in METHODS:
        raise RuntimeError(f"method {name!r} is not registered after importing {module} ({path or 'no file'}); "
                           "isolated runs need methods registered at import time")
    return METHODS[name]


def _remote_memoizer(conn: Connection):
    """``task.cached`` in the worker: the parent looks the artifact up and stores what the worker computes."""

    def memoize(name: str, params: dict, compute):
        _send(conn, {"op": "cache_get", "name": name, "params": json.loads(json.dumps(params, default=str))})
        reply = json.loads(conn.recv_bytes())
        if reply.get("hit"):
            return _from_bytes(conn.recv_bytes())
        value = compute()
        try:
            blob = _to_bytes(value)
            _from_bytes(blob)  # the parent loads it the same way
        except Exception as exc:
            raise TypeError(f"task.cached({name!r}) returned an object that is not tensors or plain "
                            f"containers: {exc}") from exc
        if reply.get("store", True):  # the parent has no cache for e.g. shadow runs without keys
            _send(conn, {"op": "cache_put", "name": name}, blob)
        return value

    return memoize


def _run_one(conn: Connection, job: dict) -> None:
    from harness.protocol.architectures import build_model

    hparams = job.pop("hparams")
    try:
        spec = _resolve_method(job["method"], job["module"], job["path"])
        torch.set_num_threads(job["threads"])
        torch.manual_seed(job["seed"])  # methods that use the global RNG stay reproducible per run
        model = build_model(job["model_name"], tuple(job["input_shape"]), job["num_classes"])
        model.load_state_dict(job["original"])
        retain = TensorData(job["retain_x"], job["retain_y"]) if job["retain_x"] is not None else None
        run = MethodRun(spec, hparams, model, job["model_name"], TensorData(job["forget_x"], job["forget_y"]),
                        retain, job["num_classes"], job["scenario_kind"], job["forget_class"],
                        torch.device(job["device"]), job["seed"], job["augment"])
        task = build_task(run, _remote_memoizer(conn), copy_model=False)
        del job, run  # the method sees the task, not the message it came in
        probe = task.forget.x[: min(4, len(task.forget))]
        result = validate_output(spec.fn(task, **hparams), probe, task.num_classes, spec.name)
        state = {k: v.detach().to("cpu") for k, v in result.state_dict().items()}
    except InvalidOutput as exc:
        _send(conn, {"op": "result", "status": "invalid", "error": str(exc)})
        return
    except BaseException as exc:  # noqa: BLE001 - SystemExit and MemoryError from a method are failures too
        tail = traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:]
        _send(conn, {"op": "result", "status": "failed", "error": "".join(tail).strip()[-2000:]})
        return
    _send(conn, {"op": "result", "status": "ok"}, _to_bytes(state))


def worker_main(conn: Connection, memory_bytes: int | None = None, processes: int | None = None) -> None:
    """Entry point of a worker process: run jobs until the parent closes the pipe."""
    for name in SCRUBBED_ENV:
        os.environ.pop(name, None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _apply_rlimits(memory_bytes, processes)
    _send(conn, {"op": "ready"})
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return
        job = torch.load(io.BytesIO(message), map_location="cpu", weights_only=True)
        del message
        _run_one(conn, job)


def _worker_role(conn: Connection, args: dict) -> None:
    worker_main(conn, args.get("rlimit_as"), args.get("rlimit_nproc"))


sandbox.ROLES["worker"] = _worker_role


# ----------------------------------------------------------------------------------------- the parent side
@dataclass(frozen=True)
class MethodSource:
    """Where a worker imports a method from, which fork server runs it, and its ``task.cached`` scope."""

    module: str
    path: str  # a file to load when ``module`` is not importable ("" for packages)
    box: str  # "builtin" for the harness's packages; one server per plugin otherwise
    family: str

    @property
    def binds(self) -> list[str]:
        return [self.path] if self.path and self.box != "builtin" else []


def method_source(spec: MethodSpec) -> MethodSource:
    """Decided by the parent from its registry: a proxied plugin's origin, else the function's module."""
    origin = plugin_origin(spec)
    if origin is not None:
        return MethodSource(origin.module, origin.path, origin.family, method_family(spec))
    module = getattr(spec.fn, "__module__", "") or ""
    path = getattr(sys.modules.get(module), "__file__", None) or ""
    builtin = module.split(".")[0] in sandbox.HARNESS_PACKAGES
    return MethodSource(module, path, "builtin" if builtin else f"module:{module}", method_family(spec))


def _process_cpu_seconds(pid: int) -> float | None:
    """CPU time of a process, its threads and its waited-for children, from /proc (the kernel's count)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime


class _Worker:
    def __init__(self, source: MethodSource, limits: WorkerLimits, layout: cgroups.Layout | None, device: str,
                 mode: str):
        self.cgroup: cgroups.WorkerCgroup | None = None
        try:
            if layout is not None:  # made before the worker exists; it is moved in before it runs any method code
                self.cgroup = cgroups.WorkerCgroup(layout, limits.memory_bytes, limits.processes)
            memory, processes = limits.rlimits(device)
            server = sandbox.fork_server(source.box, PRELOAD, source.binds, mode=mode)
            self.process: ChildProcess = server.spawn("worker", {"rlimit_as": memory, "rlimit_nproc": processes},
                                                      confine=self.cgroup.add if self.cgroup else lambda pid: None)
        except (SandboxError, OSError) as exc:
            if self.cgroup is not None:
                self.cgroup.remove()
            message = str(exc) if isinstance(exc, SandboxError) else f"cannot create the worker's cgroup: {exc}"
            raise MethodFault("failed", message) from exc
        self.conn = self.process.conn
        self.import_path = server.where(source.path) if source.binds else source.path
        # Start-up is not the method's time: wait for the worker before its clock starts.
        if not self.conn.poll(STARTUP_TIMEOUT_S):
            self.stop(kill=True)
            raise MethodFault("failed", f"the method process did not start within {STARTUP_TIMEOUT_S} s")
        try:
            ready = json.loads(self.conn.recv_bytes(1 << 16))
        except (EOFError, OSError, ValueError):
            code = self.exit_code()
            self.stop(kill=True)
            raise MethodFault("failed", f"the method process failed to start: {describe_exit(code)}") from None
        if ready.get("op") != "ready":
            self.stop(kill=True)
            raise MethodFault("failed", "the method process sent an unexpected greeting")

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        self.conn.close()
        if self.process.join(timeout=5) is None:
            self.process.kill()
            self.process.join(timeout=30)
        self.process.close()
        if self.cgroup is not None:  # whatever the worker left running (setsid escapes its process group) dies
            self.cgroup.remove()

    def exit_code(self) -> int | None:
        return self.process.join(timeout=2)

    def cpu_seconds(self) -> float | None:
        """CPU time so far of the worker with all its threads and children (the cgroup), else of the worker."""
        measured = self.cgroup.cpu_seconds() if self.cgroup is not None else None
        if measured is None and self.process.host_pid is not None:
            measured = _process_cpu_seconds(self.process.host_pid)
        return measured

    def counters(self) -> cgroups.Counters | None:
        return self.cgroup.counters() if self.cgroup is not None else None


class Isolation:
    """Runs methods in worker processes; keeps at most ``max_workers`` alive (least recently used out).

    ``sandbox`` is the mode the workers run under: ``bwrap`` or ``none`` (see :mod:`harness.isolation.sandbox`).
    ``peers`` is how many such pools share this machine (a process pool's size): the workers' memory limits
    together stay within the machine's memory (:mod:`harness.isolation.limits`).
    """

    def __init__(self, limits: IsolationLimits = IsolationLimits(), max_workers: int = 2, sandbox_mode: str | None = None,
                 peers: int = 1):
        self.limits = limits
        self.max_workers = max_workers
        self._workers: OrderedDict[tuple, _Worker] = OrderedDict()
        self.sandbox = sandbox_mode or sandbox.sandbox_mode()
        self._layout = cgroups.layout()  # decided once, so every worker of the pool has the limits rows name
        self.worker_limits = plan(limits.memory_mb, limits.processes, max_workers * max(peers, 1), self._layout,
                                  self.sandbox == "bwrap", SANDBOX_TMP_MB)
        self.runs = 0
        self.restarts = 0
        self.last_job_seconds = 0.0  # the last run's time from sending the job to its answer
        self.last_job_cpu_seconds = math.nan  # its CPU time, all the worker's threads and children (NaN: unknown)

    def limits_label(self, device: str) -> str:
        """What a row's ``limits`` says about the runs of this pool on ``device``."""
        return self.worker_limits.label(str(device))

    def start(self) -> None:
        """Start the built-in methods' fork server now (seconds: it imports torch). Optional: a worker's server
        starts on its first run anyway, before that run's clocks start; a process that runs only plugins never
        needs this one (it was ~3 CPU s of every pool worker's start-up when only a plugin was new)."""
        sandbox.fork_server("builtin", PRELOAD, mode=self.sandbox)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        while self._workers:
            _, worker = self._workers.popitem()
            worker.stop()

    def _worker(self, key: tuple, source: MethodSource, device: str) -> _Worker:
        if key in self._workers and not self._workers[key].process.server.alive():
            self._retire(key, kill=True)  # its fork server was closed (harness.isolation.sandbox.MAX_PLUGIN_SERVERS)
        if key in self._workers:
            self._workers.move_to_end(key)
            return self._workers[key]
        while len(self._workers) >= self.max_workers:
            _, old = self._workers.popitem(last=False)
            old.stop()
        worker = _Worker(source, self.worker_limits, self._layout, device, self.sandbox)
        self._workers[key] = worker
        return worker

    def _retire(self, key: tuple, kill: bool) -> None:
        worker = self._workers.pop(key, None)
        if worker is not None:
            worker.stop(kill=kill)
            self.restarts += 1

    def unlearn(self, run: MethodRun, cache=None, timeout_s: float | None = None) -> nn.Module:
        """Run the method in a worker; returns the model or raises :class:`MethodFault`."""
        spec, original, forget, retain, device = run.spec, run.original, run.forget, run.retain, run.device
        model_name, num_classes = run.model_name, run.num_classes
        source = method_source(spec)
        key = (spec.name, source.module, source.path, source.box, str(device))
        worker = self._worker(key, source, str(device))
        job = {
            "method": spec.name, "module": source.module, "path": worker.import_path, "hparams": dict(run.hparams),
            "original": {k: v.detach().to("cpu") for k, v in original.state_dict().items()},
            "model_name": model_name, "input_shape": list(forget.x.shape[1:]), "num_classes": num_classes,
            "forget_x": forget.x.cpu(), "forget_y": forget.y.cpu(),
            "retain_x": retain.x.cpu() if retain is not None and spec.needs_retain else None,
            "retain_y": retain.y.cpu() if retain is not None and spec.needs_retain else None,
            "scenario_kind": run.scenario_kind, "forget_class": run.forget_class, "device": str(device),
            "seed": run.seed, "augment": run.augment, "threads": torch.get_num_threads(),
        }
        message = _to_bytes(job)
        # The CPU clock starts at the job, so neither the worker's start nor an earlier run counts.
        self.last_job_cpu_seconds = math.nan
        cpu_start, events = worker.cpu_seconds(), worker.counters()
        try:
            worker.conn.send_bytes(message)
        except (BrokenPipeError, OSError):  # a worker that died idle: start a fresh one once
            self._retire(key, kill=True)
            worker = self._worker(key, source, str(device))
            cpu_start, events = worker.cpu_seconds(), worker.counters()
            worker.conn.send_bytes(message)
        self.runs += 1
        limit = self.limits.timeout_s if timeout_s is None else timeout_s
        ok = False
        start = time.perf_counter()
        try:
            try:
                state = self._serve(worker, spec.name, limit, cache, run.original_key, run.forget_hash, source.family)
            except MethodFault as fault:
                raise self._limit_fault(worker, events, str(fault)) or fault from None
            self.last_job_seconds = time.perf_counter() - start
            cpu_end = worker.cpu_seconds()
            if cpu_start is not None and cpu_end is not None:
                self.last_job_cpu_seconds = cpu_end - cpu_start
            hit = self._limit_fault(worker, events, f"method {spec.name!r} answered, but hit the limit on the way")
            if hit is not None:  # e.g. a child OOM-killed or forks refused: the result depends on the limit
                raise hit
            model = copy.deepcopy(original).to("cpu")
            try:
                model.load_state_dict(state, strict=True)
            except (RuntimeError, TypeError, ValueError) as exc:
                raise MethodFault("invalid", f"method {spec.name!r} returned a model that is not a "
                                             f"{model_name} of the original's shape: {str(exc)[:500]}") from exc
            model = model.to(device).eval()
            try:
                validate_output(model, forget.x[: min(4, len(forget))].to(device), num_classes, spec.name)
            except InvalidOutput as exc:
                raise MethodFault("invalid", str(exc)) from exc
            ok = True
            return model
        finally:
            if not ok:
                self._retire(key, kill=True)

    def _serve(self, worker: _Worker, method: str, limit: float, cache, original_key: str | None,
               forget_hash: str | None, family: str) -> dict[str, torch.Tensor]:
        """Answer the worker's cache requests until it sends its result, dies, or runs out of time."""
        deadline = time.monotonic() + limit
        locks = contextlib.ExitStack()
        pending_put: tuple[str, str, str] | None = None
        with locks:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not worker.conn.poll(remaining):
                    if time.monotonic() < deadline:
                        continue
                    raise MethodFault("timeout", f"method {method!r} exceeded the wall-clock limit of {limit:g} s")
                try:
                    header = json.loads(worker.conn.recv_bytes(MAX_MESSAGE_BYTES))
                    blob = worker.conn.recv_bytes(MAX_MESSAGE_BYTES) if header.get("blob") else None
                except (EOFError, OSError, ConnectionError):
                    raise MethodFault("failed", describe_exit(worker.exit_code())) from None
                except ValueError as exc:
                    raise MethodFault("failed", f"the method process sent a malformed message ({exc})") from None
                op = header.get("op") if isinstance(header, dict) else None
                if op == "result":
                    status = header.get("status")
                    if status in ("failed", "invalid"):
                        raise MethodFault(status, str(header.get("error", ""))[:4000])
                    if status != "ok" or blob is None:
                        raise MethodFault("failed", "the method process sent a malformed result")
                    return self._decode_state(blob, method)
                if op == "cache_get":
                    pending_put = self._cache_get(worker, header, cache, original_key, forget_hash, family, locks)
                elif op == "cache_put" and pending_put is not None and blob is not None:
                    self._cache_put(cache, pending_put, blob, locks)
                    pending_put = None
                else:
                    raise MethodFault("failed", f"the method process sent an unexpected message {op!r}")

    def _limit_fault(self, worker: _Worker, before: cgroups.Counters | None, error: str) -> MethodFault | None:
        """A ``failed`` fault naming the limit the run hit (its cgroup's events, or the rlimit's error)."""
        now = worker.counters()
        hit = now.since(before) if now is not None and before is not None else None
        message = self.worker_limits.explain(error, hit)
        return MethodFault("failed", message[:4000]) if message else None

    @staticmethod
    def _decode_state(blob: bytes, method: str) -> dict[str, torch.Tensor]:
        try:
            state = _from_bytes(blob)
        except Exception as exc:
            raise MethodFault("invalid", f"method {method!r} returned weights that cannot be read safely: "
                                         f"{str(exc)[:300]}") from exc
        if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                  for k, v in state.items()):
            raise MethodFault("invalid", f"method {method!r} returned something other than a state dict")
        return state

    def _cache_get(self, worker: _Worker, header: dict, cache, original_key, forget_hash, family: str,
                   locks: contextlib.ExitStack) -> tuple[str, str, str] | None:
        name, params = header.get("name"), header.get("params")
        if not (isinstance(name, str) and _SAFE_NAME.match(name) and ".." not in name and isinstance(params, dict)):
            raise MethodFault("failed", f"task.cached: name must match {_SAFE_NAME.pattern}, got {name!r}")
        if cache is None or not original_key or not forget_hash:
            _send(worker.conn, {"hit": False, "store": False})
            return None
        # The family comes from the parent's registry: a plugin cannot read or write another family's artifacts.
        kind, key = f"derived-{name}", derived_key(name, params, original_key, forget_hash, family)
        # Held until the worker stores what it computes, so concurrent runs compute an artifact once.
        locks.enter_context(cache.lock(kind, key))
        try:
            value = cache.load(kind, key)
            cache.hits += 1
            _send(worker.conn, {"hit": True}, _to_bytes(value))
            return None
        except KeyError:
            pass
        except CorruptArtifact as exc:  # recompute, as ArtifactCache.get_or_compute does
            log.warning("corrupt cache artifact, recomputing: %s", exc)
            cache.recomputed_corrupt += 1
            cache.discard(kind, key)
        cache.misses += 1
        _send(worker.conn, {"hit": False})
        return kind, key, family

    @staticmethod
    def _cache_put(cache, target: tuple[str, str, str], blob: bytes, locks: contextlib.ExitStack) -> None:
        kind, key, family = target
        try:
            value = _from_bytes(blob)  # weights_only: tensors and plain containers, nothing executable
        except Exception as exc:
            raise MethodFault("failed", f"task.cached({kind[8:]!r}) returned an object that is not tensors or "
                                        f"plain containers: {str(exc)[:300]}") from exc
        cache.save(kind, key, value, parts={"name": kind[8:], "family": family})
