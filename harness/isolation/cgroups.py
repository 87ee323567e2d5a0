"""Control groups for method workers: one cgroup per worker, so that its memory and process limits count every
process and thread it starts, and the kernel measures the CPU time of all of them.

Two layouts are supported (the policy, what the limits are, is :mod:`harness.isolation.limits`):

* **cgroup v2**, the unified hierarchy, where ``cgroup.controllers`` offers ``memory`` and ``pids``: one folder
  per worker with ``memory.max`` (``memory.swap.max`` 0, ``memory.oom.group`` 1: an out-of-memory kill takes
  the whole worker), ``pids.max``; CPU time from ``cpu.stat``. v2 allows processes only in leaf cgroups that
  get their controllers from the parent, so the folders go under the nearest ancestor of the harness's own
  cgroup that can hand ``memory`` and ``pids`` down.
* **cgroup v1**, one hierarchy per controller: a folder per worker in the ``memory`` hierarchy
  (``memory.limit_in_bytes``, and ``memory.memsw.limit_in_bytes`` where swap is accounted), the ``pids``
  hierarchy (``pids.max``) and, where mounted, ``cpuacct`` (``cpuacct.usage``), each under the harness's own
  cgroup of that hierarchy.

Worker folders are ``unlearn-bench/<harness pid>-<n>``, so whatever encloses the harness (a container, a
systemd slice) still bounds them. A folder is removed when its worker stops, after killing whatever is still
in it. :func:`layout` is None, with :func:`problem` saying why, when ``UNLEARN_BENCH_CGROUPS=off`` or the folders
cannot be made here (not root and nothing delegated, a read-only ``/sys/fs/cgroup``, not Linux).

Why one module: the two layouts are one mechanism behind one interface (create, limit, attach, count, kill,
remove); the probing, the leftover clean-up and both layouts' files belong together, the policy does not.
"""

from __future__ import annotations

import atexit
import errno
import itertools
import logging
import os
import re
import signal
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

ENV = "UNLEARN_BENCH_CGROUPS"  # "off" disables worker cgroups (the rlimit fallback); anything else: use them
PARENT = "unlearn-bench"
V2_CONTROLLERS = ("memory", "pids")
V1_REQUIRED = ("memory", "pids")
V1_OPTIONAL = ("cpuacct",)  # without it, CPU time comes from /proc (harness.isolation.workers)
UNLIMITED = 1 << 62  # v1 reports "no limit" as a page-rounded LONG_MAX
STALE_AFTER_S = 60.0  # empty folders of dead harness processes older than this are removed
_WORKER_NAME = re.compile(r"^(\d+)-\d+$")


@dataclass(frozen=True)
class Layout:
    """Where this process's worker cgroups go: the cgroup version and, per controller, the parent folder (v2:
    one folder, under the key ``unified``)."""

    version: int
    parents: dict[str, str] = field(hash=False)

    @property
    def name(self) -> str:
        return f"cgroup-v{self.version}"


@dataclass(frozen=True)
class Counters:
    """Limit events in a worker's cgroup so far: processes the OOM killer killed, forks refused by pids.max."""

    oom_kills: int = 0
    pids_refused: int = 0

    def since(self, before: Counters) -> Counters:
        return Counters(self.oom_kills - before.oom_kills, self.pids_refused - before.pids_refused)


# ----------------------------------------------------------------------------------------- discovery
def _read(folder: str, name: str) -> str:
    with open(os.path.join(folder, name)) as handle:
        return handle.read()


def _write(folder: str, name: str, value: str) -> None:
    with open(os.path.join(folder, name), "w") as handle:
        handle.write(value)


def _keyed(text: str) -> dict[str, int]:
    """A flat-keyed cgroup file (``key value`` per line), numbers only."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def _mounts() -> tuple[dict[str, tuple[str, str]], tuple[str, str] | None]:
    """(v1: controller -> (mount root, mount point), v2: (mount root, mount point) or None) from mountinfo."""
    v1: dict[str, tuple[str, str]] = {}
    v2: tuple[str, str] | None = None
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(fields) < 5 or len(tail) < 3:
                continue
            root, point = fields[3], fields[4]
            if tail[0] == "cgroup2" and (v2 is None or point == "/sys/fs/cgroup"):
                v2 = (root, point)
            elif tail[0] == "cgroup":
                for option in tail[2].split(","):
                    v1.setdefault(option, (root, point))
    return v1, v2


def _own_paths() -> dict[str, str]:
    """This process's cgroup per v1 controller, and under ``unified`` its v2 cgroup."""
    paths: dict[str, str] = {}
    with open("/proc/self/cgroup") as handle:
        for line in handle:
            parts = line.rstrip("\n").split(":", 2)
            if len(parts) == 3:
                for name in parts[1].split(",") if parts[1] else ["unified"]:
                    paths[name] = parts[2]
    return paths


def _folder(mount: tuple[str, str], path: str) -> str:
    """The folder of cgroup ``path`` under a mount of its hierarchy (the mount may show a subtree only)."""
    root, point = mount
    if root != "/" and (path == root or path.startswith(root.rstrip("/") + "/")):
        path = path[len(root):]
    return os.path.normpath(os.path.join(point, path.lstrip("/")))


def _probe() -> tuple[Layout | None, str]:
    if not os.path.isfile("/proc/self/cgroup"):
        return None, "cgroups need Linux"
    v1, v2 = _mounts()
    own = _own_paths()
    reasons = []
    if v2 is not None and "unified" in own:
        found, reason = _probe_v2(_folder(v2, own["unified"]), v2[1])
        if found is not None:
            return found, ""
        reasons.append(reason)
    if all(c in v1 and c in own for c in V1_REQUIRED):
        found, reason = _probe_v1(v1, own)
        if found is not None:
            return found, ""
        reasons.append(reason)
    elif not reasons:
        reasons.append("no cgroup hierarchy with the memory and pids controllers is mounted")
    return None, "; ".join(reasons)


def _usable(candidate: Layout) -> None:
    """Create, limit and remove a worker cgroup: raises OSError where this layout cannot be used."""
    _sweep(candidate)
    WorkerCgroup(candidate, 64 << 20, 16).remove()


def _probe_v1(v1: dict[str, tuple[str, str]], own: dict[str, str]) -> tuple[Layout | None, str]:
    parents = {}
    try:
        for controller in V1_REQUIRED + V1_OPTIONAL:
            if controller in v1 and controller in own:
                folder = os.path.join(_folder(v1[controller], own[controller]), PARENT)
                try:
                    os.makedirs(folder, exist_ok=True)
                except OSError:
                    if controller in V1_REQUIRED:
                        raise
                    continue  # no cpuacct: CPU time comes from /proc instead
                parents[controller] = folder
        found = Layout(1, parents)
        _usable(found)
    except OSError as exc:
        return None, f"cgroup v1 is not writable here ({exc.strerror or exc}: {exc.filename or ''})"
    return found, ""


def _enable(folder: str) -> None:
    """Hand memory and pids down to ``folder``'s children (v2 ``cgroup.subtree_control``)."""
    have = set(_read(folder, "cgroup.subtree_control").split())
    missing = [c for c in V2_CONTROLLERS if c not in have]
    if missing:
        _write(folder, "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))


def _probe_v2(own: str, top: str) -> tuple[Layout | None, str]:
    try:
        offered = set(_read(own, "cgroup.controllers").split())
    except OSError as exc:
        return None, f"cgroup v2: cannot read {own}/cgroup.controllers ({exc.strerror or exc})"
    if not set(V2_CONTROLLERS) <= offered:
        return None, f"cgroup v2 offers {' '.join(sorted(offered)) or 'no controllers'} here, not memory and pids"
    node, last = own, ""
    while True:  # the harness's own cgroup holds processes, so usually an ancestor must be the parent's home
        candidate = os.path.join(node, PARENT)
        made = not os.path.isdir(candidate)
        try:
            _enable(node)
            os.makedirs(candidate, exist_ok=True)
            _enable(candidate)
            found = Layout(2, {"unified": candidate})
            _usable(found)
            return found, ""
        except OSError as exc:
            last = f"cgroup v2 is not writable here ({exc.strerror or exc}: {exc.filename or candidate})"
            if made:
                _rmdir(candidate)
        if os.path.normpath(node) == os.path.normpath(top) or len(node) <= len(top):
            return None, last
        node = os.path.dirname(node)


_LAYOUTS: dict[str, tuple[Layout | None, str]] = {}


def _probed() -> tuple[Layout | None, str]:
    setting = os.environ.get(ENV, "").strip().lower()
    if setting in ("off", "0", "no", "false"):
        return None, f"{ENV}={setting}"
    if setting not in _LAYOUTS:
        _LAYOUTS[setting] = _probe()
        if _LAYOUTS[setting][0] is None:
            log.warning("method workers get no cgroups (rows say limits=rlimit ...): %s", _LAYOUTS[setting][1])
    return _LAYOUTS[setting]


def layout() -> Layout | None:
    """Where worker cgroups go, or None where they cannot be used (:func:`problem` says why); probed once."""
    return _probed()[0]


def problem() -> str | None:
    """Why workers get no cgroups here (None when they do)."""
    return _probed()[1] or None


def enclosing_memory_limit() -> int | None:
    """The memory limit of the cgroup this process runs in (the lowest on its path to the root), if any.

    Reading needs no write access, so the budget sees a container's limit even where cgroups are not usable.
    """
    try:
        v1, v2 = _mounts()
        own = _own_paths()
    except OSError:
        return None
    if "memory" in v1 and "memory" in own:  # a hybrid machine's v2 hierarchy has no memory controller
        folder, top, name = _folder(v1["memory"], own["memory"]), v1["memory"][1], "memory.limit_in_bytes"
    elif v2 is not None and "unified" in own:
        folder, top, name = _folder(v2, own["unified"]), v2[1], "memory.max"
    else:
        return None
    limits = []
    while True:
        try:
            value = _read(folder, name).strip()
            if value.isdigit() and int(value) < UNLIMITED:
                limits.append(int(value))
        except OSError:
            pass
        if len(folder) <= len(top) or folder == os.path.dirname(folder):
            break
        folder = os.path.dirname(folder)
    return min(limits) if limits else None


# ----------------------------------------------------------------------------------------- one worker's cgroup
_COUNTER = itertools.count()
_LIVE: dict[int, WorkerCgroup] = {}  # removed at exit, should the harness not stop its workers


class WorkerCgroup:
    """One worker's cgroup: created with its limits, the worker added by pid, read, killed and removed."""

    def __init__(self, where: Layout, memory_bytes: int, pids_max: int):
        self.layout = where
        self.owner = os.getpid()
        self.removed = False
        created: list[str] = []
        for _ in range(100):  # a name is taken only when a dead process with our pid left a busy folder
            self.name = f"{self.owner}-{next(_COUNTER)}"
            self.folders = {c: os.path.join(parent, self.name) for c, parent in where.parents.items()}
            if not any(os.path.exists(f) for f in self.folders.values()):
                break
        try:
            for folder in dict.fromkeys(self.folders.values()):
                os.mkdir(folder)
                created.append(folder)
            if where.version == 2:
                self._set_v2(memory_bytes, pids_max)
            else:
                self._set_v1(memory_bytes, pids_max)
        except OSError:
            for folder in reversed(created):
                _rmdir(folder)
            raise
        _LIVE[id(self)] = self

    def _folder(self, controller: str) -> str | None:
        return self.folders.get("unified", self.folders.get(controller))

    def _set_v2(self, memory_bytes: int, pids_max: int) -> None:
        folder = self.folders["unified"]
        _write(folder, "memory.max", str(memory_bytes))
        _write(folder, "pids.max", str(pids_max))
        for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):  # not on every kernel
            if os.path.exists(os.path.join(folder, name)):
                _write(folder, name, value)

    def _set_v1(self, memory_bytes: int, pids_max: int) -> None:
        _write(self.folders["memory"], "memory.limit_in_bytes", str(memory_bytes))
        try:  # memory + swap; present only where the kernel accounts swap
            _write(self.folders["memory"], "memory.memsw.limit_in_bytes", str(memory_bytes))
        except OSError:
            pass
        _write(self.folders["pids"], "pids.max", str(pids_max))

    def add(self, pid: int) -> None:
        """Move process ``pid`` (and so everything it starts later) into this cgroup."""
        for folder in dict.fromkeys(self.folders.values()):
            _write(folder, "cgroup.procs", str(pid))

    def pids(self) -> list[int]:
        """The processes in the cgroup now."""
        try:
            return [int(p) for p in _read(self._folder("pids"), "cgroup.procs").split()]
        except OSError:
            return []

    def cpu_seconds(self) -> float | None:
        """CPU time of everything that ran in the cgroup (None: v1 without cpuacct)."""
        try:
            if self.layout.version == 2:
                return _keyed(_read(self.folders["unified"], "cpu.stat"))["usage_usec"] / 1e6
            if "cpuacct" in self.folders:
                return int(_read(self.folders["cpuacct"], "cpuacct.usage")) / 1e9
        except (OSError, KeyError, ValueError):
            pass
        return None

    def counters(self) -> Counters:
        memory_file = "memory.events" if self.layout.version == 2 else "memory.oom_control"
        try:
            oom = _keyed(_read(self._folder("memory"), memory_file)).get("oom_kill", 0)
            refused = _keyed(_read(self._folder("pids"), "pids.events")).get("max", 0)
        except OSError:
            return Counters()
        return Counters(oom, refused)

    def peaks(self) -> tuple[int | None, int | None]:
        """(peak memory in bytes, peak tasks) since the cgroup was made, where the kernel reports them."""
        memory_file = "memory.peak" if self.layout.version == 2 else "memory.max_usage_in_bytes"
        out: list[int | None] = []
        for controller, name in (("memory", memory_file), ("pids", "pids.peak")):
            try:
                out.append(int(_read(self._folder(controller), name)))
            except (OSError, ValueError):
                out.append(None)
        return out[0], out[1]

    def kill(self, timeout_s: float = 5.0) -> None:
        """SIGKILL everything in the cgroup, until it is empty (a fork bomb forks while it is being killed)."""
        folder = self._folder("pids")
        if self.layout.version == 2 and os.path.exists(os.path.join(folder, "cgroup.kill")):
            try:
                _write(folder, "cgroup.kill", "1")
            except OSError:
                pass
        deadline = time.monotonic() + timeout_s
        while (pids := [p for p in self.pids() if p != os.getpid()]) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.01)

    def remove(self) -> None:
        """Kill what is left in the cgroup and remove its folders; safe to call twice."""
        if self.removed or os.getpid() != self.owner:
            return
        self.kill()
        deadline = time.monotonic() + 5.0
        for folder in reversed(list(dict.fromkeys(self.folders.values()))):
            while not _rmdir(folder) and time.monotonic() < deadline:  # EBUSY while killed tasks exit
                self.kill(timeout_s=0.5)
                time.sleep(0.02)
            if os.path.isdir(folder):
                log.warning("could not remove the worker cgroup %s", folder)
        self.removed = True
        _LIVE.pop(id(self), None)


def _rmdir(folder: str) -> bool:
    """Remove an (empty) cgroup folder; True when it is gone."""
    try:
        os.rmdir(folder)
    except FileNotFoundError:
        return True
    except OSError as exc:
        if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY, errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        return False
    return True


def _sweep(where: Layout) -> None:
    """Remove empty worker folders left by harness processes that died without stopping their workers."""
    now = time.time()
    for parent in dict.fromkeys(where.parents.values()):
        for entry in os.scandir(parent):
            match = _WORKER_NAME.match(entry.name)
            if not match or not entry.is_dir() or now - entry.stat().st_mtime < STALE_AFTER_S:
                continue
            try:
                os.kill(int(match.group(1)), 0)
                continue  # its harness process is alive
            except ProcessLookupError:
                _rmdir(entry.path)
            except OSError:
                continue


@atexit.register
def _remove_all() -> None:
    for cgroup in list(_LIVE.values()):
        cgroup.remove()
