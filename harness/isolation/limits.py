"""The resource limits of method workers (the policy): what one worker may use, how the machine's memory is shared
among the workers, what a row says about the limits and what a run that hit one says.

**Budget.** A worker's memory limit is the configured ``memory_mb`` capped at its share of the machine,
``(memory - reserve) / workers``: ``memory`` is MemTotal, or the limit of the cgroup enclosing the harness when
that is lower (a container); the ``reserve`` (the driver, the fork servers, the page cache) is
``max(2 GiB, 15%)``; ``workers`` counts every method worker that can be alive at once on this machine (each
process of a pool keeps up to ``max_workers``). So the limits together never exceed the machine.

**Mechanisms.** Where :mod:`harness.isolation.cgroups` works, each worker gets a cgroup: the memory limit counts the
worker, its children and what they write to the sandbox's ``/tmp`` (tmpfs pages are charged to their writer);
the process limit counts processes and threads. Elsewhere the worker sets rlimits on itself: ``RLIMIT_AS``
(its address space beyond its start-up size; per process, so every child gets its own allowance; CPU runs only,
CUDA reserves huge virtual ranges) and ``RLIMIT_NPROC`` (the user's tasks at the worker's start plus the limit;
the kernel does not apply it to root, so root has no process limit there).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from harness.isolation.cgroups import Counters, Layout, enclosing_memory_limit

GIB = 1 << 30
# Tasks (processes and threads) per worker. A built-in method's run on CPU peaks at torch's thread count + 1 (1 task
# at 1 thread, 3 at 2; bench/worker_limits.py, digits-smoke, every built-in method); the default leaves room for
# helper processes, and for a worker left at torch's default of one thread per core on a large machine.
DEFAULT_PROCESSES = 256
RESERVE_MIN_BYTES = 2 * GIB
RESERVE_FRACTION = 0.15
# How a hit rlimit shows in the worker's error (there is no kernel counter for it).
_MEMORY_ERRORS = re.compile(r"MemoryError|can't allocate memory|Cannot allocate memory|std::bad_alloc")
_PROCESS_ERRORS = re.compile(r"BlockingIOError|Resource temporarily unavailable|can't start new thread|EAGAIN")


def default_processes() -> int:
    """The process limit of a worker: :data:`DEFAULT_PROCESSES`, or two per core where that is more."""
    return max(DEFAULT_PROCESSES, 2 * (os.cpu_count() or 1))


def machine_memory_bytes() -> int:
    """MemTotal, or the memory limit of the cgroup the harness runs in when that is lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    enclosing = enclosing_memory_limit()
    return min(total, enclosing) if enclosing else total


def reserve_bytes(total: int) -> int:
    """What the workers' limits leave for the driver and the fork servers."""
    return max(RESERVE_MIN_BYTES, int(total * RESERVE_FRACTION))


def memory_share(memory_mb: int | None, workers: int, total: int | None = None) -> int:
    """A worker's memory limit in bytes: ``memory_mb`` (None: no wish) capped at its share of the machine."""
    total = machine_memory_bytes() if total is None else total
    share = max(total - reserve_bytes(total), 0) // max(workers, 1)
    return share if memory_mb is None else min(memory_mb << 20, share)


def gib(size: int) -> str:
    return f"{size / GIB:.1f}GiB"


@dataclass(frozen=True)
class WorkerLimits:
    """The limits every worker of one :class:`~harness.isolation.Isolation` runs under."""

    mechanism: str  # "cgroup-v1", "cgroup-v2" or "rlimit"
    memory_bytes: int
    processes: int
    tmp_mb: int | None  # the sandbox's private /tmp (one tmpfs per fork server); None without the sandbox
    root: bool = False  # rlimit: RLIMIT_NPROC does not hold for root

    @property
    def cgroup(self) -> bool:
        return self.mechanism.startswith("cgroup")

    def rlimits(self, device: str) -> tuple[int | None, int | None]:
        """(RLIMIT_AS beyond the start-up size, RLIMIT_NPROC beyond the user's tasks) for the worker to set."""
        if self.cgroup:
            return None, None
        return (None if device.startswith("cuda") else self.memory_bytes), (None if self.root else self.processes)

    def label(self, device: str) -> str:
        """The row's ``limits``: the mechanism and each limit in force."""
        tmp = f"tmp={self.tmp_mb / 1024:g}GiB" if self.tmp_mb else "tmp=unlimited"
        if self.cgroup:
            return f"{self.mechanism} memory={gib(self.memory_bytes)} pids={self.processes} {tmp}"
        memory, processes = self.rlimits(device)
        return (f"rlimit as={gib(memory) if memory else 'unlimited(cuda)'} "
                f"nproc={processes if processes else 'unlimited(root)'} {tmp}")

    def explain(self, error: str, hit: Counters | None) -> str | None:
        """The error of a run that hit a limit (``hit``: the cgroup's events during the run), else None."""
        if self.cgroup and hit is not None:
            if hit.oom_kills > 0:
                return (f"memory limit ({self.mechanism}, {gib(self.memory_bytes)}) exceeded: the out-of-memory "
                        f"killer killed {hit.oom_kills} process(es) of the worker" + _then(error))
            if hit.pids_refused > 0:
                return (f"process limit ({self.processes} processes and threads, {self.mechanism}) reached: "
                        f"{hit.pids_refused} fork/clone call(s) refused" + _then(error))
            return None
        if self.mechanism == "rlimit" and _MEMORY_ERRORS.search(error):
            return f"memory limit (RLIMIT_AS, {gib(self.memory_bytes)} beyond start-up) exceeded" + _then(error)
        if self.mechanism == "rlimit" and not self.root and _PROCESS_ERRORS.search(error):
            return f"process limit (RLIMIT_NPROC, {self.processes} beyond the user's tasks) reached" + _then(error)
        return None


def _then(error: str) -> str:
    return f": {error}" if error else ""


def plan(memory_mb: int | None, processes: int, workers: int, where: Layout | None,
         sandboxed: bool, tmp_mb: int) -> WorkerLimits:
    """The limits of each of ``workers`` workers: cgroups at ``where``, else the rlimit fallback."""
    memory = memory_share(memory_mb, workers)
    return WorkerLimits(where.name if where is not None else "rlimit", memory, processes,
                        tmp_mb if sandboxed else None, root=where is None and os.getuid() == 0)
