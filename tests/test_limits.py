"""Resource limits of method workers (harness/isolation/limits.py, harness/isolation/cgroups.py), with the hostile plugins of
tests/plugins_hostile/ run by the real harness on digits-smoke.

A fork bomb and an allocation past the memory limit become failed rows that name the limit, the other methods'
rows do not change, the workers' memory limits together stay within the machine, a worker's cgroup is gone after
the pool closes (with what the plugin left running), and the rlimit fallback says what it holds. Each cgroup
attack has a control: under the fallback the memory split over child processes gets through (RLIMIT_AS is per
process), and as root so does the fork bomb (the kernel does not apply RLIMIT_NPROC to root).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from harness.commands.verify import ENVIRONMENT_COLUMNS
from harness.isolation import cgroups
from harness.isolation.limits import GIB, default_processes, machine_memory_bytes, memory_share, reserve_bytes
from harness.isolation.plugins import load_plugin_file
from harness.isolation.workers import Isolation, IsolationLimits
from harness.pipeline.driver import RunOptions, run_suite
from harness.protocol.methods import get_method

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "tests" / "plugins_hostile"
LIMIT_MB = 1024  # small enough that the hog's 2 GiB (or 3 children x 512 MiB) is over it


@pytest.fixture
def layout() -> cgroups.Layout:
    found = cgroups.layout()
    if found is None:
        pytest.skip(f"worker cgroups are not usable here: {cgroups.problem()}")
    return found


HOGS = {"memory-hog": {"mib": 2048}, "memory-hog-children": {"mib": 512, "children": 3}}


def _plugins(tmp_path: Path) -> tuple[list[Path], str]:
    """The fork bomb, the memory hog, and a copy of the hog that splits its memory over 3 child processes, under
    names unique to the test (a name is registered once per process); returns the files and the suffix."""
    folder, suffix = tmp_path / "plugins", f"-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    bomb, hog = (HOSTILE / "fork_bomb.py").read_text(), (HOSTILE / "memory_hog.py").read_text()
    files = {"fork_bomb.py": bomb.replace('"fork-bomb"', f'"fork-bomb{suffix}"'),
             "memory_hog.py": hog.replace('"memory-hog"', f'"memory-hog{suffix}"'),
             "memory_hog_children.py": hog.replace('"memory-hog"', f'"memory-hog-children{suffix}"')}
    for name, text in files.items():
        (folder / name).write_text(text)
    return [folder / name for name in files], suffix


def _rows(world, results: Path, plugins: tuple[list[Path], str] = ([], "")) -> dict[str, dict]:
    """One digits-smoke run (random-10, seed 0, accuracy only) of the plugins, then finetune; rows by method,
    without the plugins' name suffix."""
    paths, suffix = plugins
    suite = dataclasses.replace(world.suite, evaluate={**world.suite.evaluate, "evaluators": ["accuracy"]})
    overrides = {"finetune": {"epochs": 2}, **({f"{k}{suffix}": v for k, v in HOGS.items()} if paths else {})}
    methods = [f"{m}{suffix}" for m in ("fork-bomb", *HOGS)] if paths else []
    options = RunOptions(methods=[*methods, "finetune"], seeds=[0], scenarios=["random-10"], results_root=results,
                         cache_dir=world.cache.root, isolate=True, progress=False, memory_mb=LIMIT_MB,
                         plugins=[str(p) for p in paths], overrides=overrides)
    rows = run_suite(suite, options).rows
    return {r["method"].removesuffix(suffix) if suffix else r["method"]: r for r in rows}


def _compared(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in ENVIRONMENT_COLUMNS}


# ---------------------------------------------------------------------------------------------- the attacks
@pytest.mark.slow  # 30-60 s on 2 cores (with the load): two runs, three plugin sandboxes
def test_fork_bomb_and_memory_hogs_fail_with_the_limit_and_other_rows_do_not_change(tmp_path, digits_random,
                                                                                  layout):
    rows = _rows(digits_random, tmp_path / "hostile", _plugins(tmp_path))
    label = f"{layout.name} memory=1.0GiB pids={default_processes()} tmp="
    assert all(r["limits"].startswith(label) for r in rows.values()), {m: r["limits"] for m, r in rows.items()}
    bomb, hog, split = rows["fork-bomb"], rows["memory-hog"], rows["memory-hog-children"]
    assert bomb["status"] == "failed", bomb["error"]
    assert bomb["error"].startswith(f"process limit ({default_processes()} processes and threads"), bomb["error"]
    assert "BlockingIOError" in bomb["error"]
    for row in (hog, split):  # split: no child is over the limit, all of them together are
        assert row["status"] == "failed", row["error"]
        assert row["error"].startswith(f"memory limit ({layout.name}, 1.0GiB) exceeded: the out-of-memory killer"), \
            row["error"]
    assert rows["finetune"]["status"] == "ok"
    clean = _rows(digits_random, tmp_path / "clean")
    assert _compared(rows["finetune"]) == _compared(clean["finetune"])


@pytest.mark.slow  # 30-70 s on 2 cores (with the load): three plugin sandboxes
def test_the_rlimit_fallback_stops_what_it_can_and_says_so(tmp_path, digits_random, monkeypatch):
    monkeypatch.setenv(cgroups.ENV, "off")
    rows = _rows(digits_random, tmp_path / "fallback", _plugins(tmp_path))
    root = os.getuid() == 0
    nproc = "unlimited(root)" if root else str(default_processes())
    assert {r["limits"] for r in rows.values()} <= {f"rlimit as=1.0GiB nproc={nproc} tmp={t}"
                                                    for t in ("2GiB", "unlimited")}, rows["finetune"]["limits"]
    hog = rows["memory-hog"]
    assert hog["status"] == "failed" and hog["error"].startswith("memory limit (RLIMIT_AS, 1.0GiB"), hog["error"]
    assert "MemoryError" in hog["error"]
    # The controls: what only a cgroup stops. RLIMIT_AS is per process, so 3 x 512 MiB in children gets through.
    assert rows["memory-hog-children"]["status"] == "ok", rows["memory-hog-children"]["error"]
    bomb = rows["fork-bomb"]
    if root:  # the kernel exempts root from RLIMIT_NPROC: the row says so (nproc=unlimited(root))
        assert bomb["status"] == "ok", bomb["error"]
    else:
        assert bomb["status"] == "failed", bomb["error"]
        assert bomb["error"].startswith(f"process limit (RLIMIT_NPROC, {default_processes()}"), bomb["error"]
    assert rows["finetune"]["status"] == "ok"


# ---------------------------------------------------------------------------------------------- the pieces
def _plugin(tmp_path: Path, body: str) -> str:
    name = f"lim-{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"plugin_{name.replace('-', '_')}.py"
    path.write_text(textwrap.dedent(body).replace("METHOD", name))
    load_plugin_file(path)
    return name


def test_a_worker_cgroup_is_limited_and_removed_with_what_the_plugin_left_running(tmp_path, digits_random, layout):
    name = _plugin(tmp_path, '''
        import subprocess
        from harness import register_method

        @register_method("METHOD", needs_retain=False)
        def leaver(task):
            subprocess.Popen(["sleep", "300"], start_new_session=True)  # out of the worker's process group
            return task.model
    ''')
    with Isolation(IsolationLimits(timeout_s=120, memory_mb=LIMIT_MB, processes=64)) as iso:
        iso.unlearn(digits_random.run(get_method(name)))
        (worker,) = iso._workers.values()
        group = worker.cgroup
        folders = list(group.folders.values())
        assert all(os.path.isdir(f) for f in folders)
        pids = group.pids()
        assert worker.process.host_pid in pids and len(pids) == 2, pids  # the worker and its sleep
        memory_file = "memory.max" if layout.version == 2 else "memory.limit_in_bytes"
        assert int(cgroups._read(group._folder("memory"), memory_file)) == LIMIT_MB << 20
        assert int(cgroups._read(group._folder("pids"), "pids.max")) == 64
    assert not any(os.path.exists(f) for f in folders)
    leftover = next(p for p in pids if p != worker.process.host_pid)
    assert not os.path.exists(f"/proc/{leftover}") or _state(leftover) == "Z", "the plugin's sleep survived"


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_cpu_time_counts_the_workers_children_and_not_its_start(tmp_path, digits_random, layout, monkeypatch):
    """A child that burns CPU unwaited-for: the cgroup sees it, the worker's own clock (the fallback) does not."""
    name = _plugin(tmp_path, '''
        import os, time
        from harness import register_method

        @register_method("METHOD", needs_retain=False)
        def burner(task, *, seconds: float = 0.6):
            if os.fork() == 0:
                end = time.process_time() + seconds
                while time.process_time() < end:
                    pass
                os._exit(0)
            time.sleep(seconds + 0.6)  # the child has ended, but nobody waits for it: not in RUSAGE_CHILDREN
            return task.model
    ''')
    run = digits_random.run(get_method(name))
    with Isolation(IsolationLimits(timeout_s=120)) as iso:
        iso.unlearn(run)
        with_cgroup = iso.last_job_cpu_seconds
    monkeypatch.setenv(cgroups.ENV, "off")
    with Isolation(IsolationLimits(timeout_s=120)) as iso:
        iso.unlearn(run)
        without = iso.last_job_cpu_seconds
        assert iso.worker_limits.mechanism == "rlimit"
    assert 0.5 <= with_cgroup < 5, with_cgroup  # the child's 0.6 s (and not the worker's start-up)
    assert 0 <= without < 0.4, without


def test_the_budget_keeps_the_workers_limits_within_the_machine():
    for total in (4 * GIB, 24 * GIB, 128 * GIB, 2048 * GIB):
        assert reserve_bytes(total) == max(2 * GIB, int(0.15 * total))
        for workers in (1, 2, 4, 16, 64):
            for wish in (None, 512, 16384, 1 << 30):
                share = memory_share(wish, workers, total)
                assert share * workers <= total - reserve_bytes(total)
                assert wish is None or share <= wish << 20
            assert memory_share(None, workers, total) == (total - reserve_bytes(total)) // workers
    assert memory_share(1024, 4, 24 * GIB) == 1 * GIB  # a small wish is kept
    assert memory_share(16384, 4, 24 * GIB) == (24 * GIB - int(3.6 * GIB)) // 4  # 5.1 GiB each, not 16
    # This machine: a pool of 2 processes x 2 workers at the default 16 GiB.
    isolation = Isolation(IsolationLimits(), max_workers=2, peers=2)
    total = machine_memory_bytes()
    assert isolation.worker_limits.memory_bytes * 4 <= total - reserve_bytes(total)
    isolation.close()


def test_the_budget_sees_the_enclosing_cgroups_limit(layout):
    """Run the budget in a process inside a cgroup limited to 3 GiB: that, not MemTotal, is the machine."""
    group = cgroups.WorkerCgroup(layout, 3 * GIB, 64)
    try:
        child = subprocess.Popen(["sh", "-c", f"read go; exec {sys.executable} -c '{_PRINT_TOTAL}'"], cwd=ROOT,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        group.add(child.pid)  # before it reads "go": the Python process starts inside the cgroup
        out, _ = child.communicate("go\n", timeout=60)
    finally:
        group.remove()
    assert int(out) == 3 * GIB


_PRINT_TOTAL = "from harness.isolation.limits import machine_memory_bytes; print(machine_memory_bytes())"


def test_no_cgroups_left_behind_by_the_probe_or_a_dead_harness(layout):
    """Creating and removing a worker cgroup leaves only the shared parent; a dead process's empty one goes."""
    before = {p: set(os.listdir(p)) for p in layout.parents.values()}
    group = cgroups.WorkerCgroup(layout, 64 << 20, 16)
    group.remove()
    assert {p: set(os.listdir(p)) for p in layout.parents.values()} == before
    dead = _dead_pid()
    stale = [os.path.join(p, f"{dead}-0") for p in dict.fromkeys(layout.parents.values())]
    for folder in stale:
        os.mkdir(folder)
        old = time.time() - 2 * cgroups.STALE_AFTER_S
        os.utime(folder, (old, old))
    cgroups._sweep(layout)
    assert not any(os.path.exists(f) for f in stale)


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid
