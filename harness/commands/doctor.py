"""``unlearn-bench doctor``: is this machine ready to run suites, and if not, what to fix.

It checks what a run needs before it trains anything: the suites' datasets under their data roots, the
bubblewrap sandbox that isolates submitted methods, the per-worker cgroups that bound their memory and
processes, the GPUs torch can see, and whether the artifact cache and the results folder can be written. Each
check prints one line, ``ok``, ``warn`` (runs work, with less protection or speed) or ``FIX`` (a run would fail),
with what to do; the exit status is 1 when any check says FIX.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

OK, WARN, FIX = "ok", "warn", "FIX"
LOW_DISK_BYTES = 2 * 1024**3  # a cold fmnist-quick cache is ~100 MB; CIFAR suites need far more


@dataclass(frozen=True)
class Check:
    area: str
    state: str  # OK | WARN | FIX
    message: str

    def line(self) -> str:
        return f"{self.state:4s}  {self.area:8s} {self.message}"


def check_data(suites: list[str], data_root: str | None, required: set[str]) -> list[Check]:
    """Each suite's dataset, once per (dataset, root): FIX for a suite asked for (or the default), else warn."""
    from harness.protocol.datasets import DatasetNotFound, load_dataset
    from harness.protocol.suite import load_suite

    checks, seen = [], {}
    for name in suites:
        suite = load_suite(name)
        key = (suite.dataset, data_root or suite.data_root)
        if key not in seen:
            try:
                arrays = load_dataset(*key)
                seen[key] = None, f"{len(arrays.train_y)} train / {len(arrays.test_y)} test images"
            except DatasetNotFound as exc:
                seen[key] = str(exc), ""
        problem, found = seen[key]
        if problem is None:
            checks.append(Check("data", OK, f"{name}: {suite.dataset}, {found}"))
        else:
            state = FIX if name in required else WARN
            checks.append(Check("data", state, f"{name}: {problem}" + ("" if state == FIX else
                                                                        f" (needed only to run {name})")))
    return checks


def check_sandbox() -> Check:
    from harness.isolation.sandbox import MODE_ENV, bwrap_problem

    wanted = os.environ.get(MODE_ENV, "auto").strip().lower() or "auto"
    if wanted == "none":
        return Check("sandbox", WARN, f"{MODE_ENV}=none: method runs are not sandboxed (unset it to sandbox them)")
    problem = bwrap_problem()
    if problem is None:
        return Check("sandbox", OK, "bubblewrap works: submitted methods run sandboxed (no network, private /tmp)")
    fix = (" Fix: install bubblewrap (apt-get install bubblewrap) and allow unprivileged user namespaces "
           "(sysctl kernel.unprivileged_userns_clone=1; in a container, run it with user namespaces enabled).")
    if wanted == "bwrap":
        return Check("sandbox", FIX, f"{MODE_ENV}=bwrap but {problem}.{fix}")
    return Check("sandbox", WARN, f"method runs will NOT be sandboxed (rows say sandbox=none): {problem}.{fix}")


def check_cgroups() -> Check:
    from harness.isolation import cgroups

    problem = cgroups.problem()
    if problem is None:
        return Check("cgroups", OK, "isolated method workers each get their own cgroup (memory and process limits)")
    return Check("cgroups", WARN, f"no per-worker cgroups ({problem}); workers are bounded by rlimits only. Fix: "
                 "run under a delegated cgroup v2 subtree (systemd-run --user --scope -p Delegate=yes ..., or a "
                 "container with a writable /sys/fs/cgroup)")


def check_gpu() -> Check:
    import torch

    nodes = glob.glob("/dev/nvidia[0-9]*")
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return Check("gpu", OK, f"{torch.cuda.device_count()} visible to torch: {names}")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if nodes:
        why = f"CUDA_VISIBLE_DEVICES={visible!r} hides them; " if visible is not None else ""
        build = "this torch has no CUDA" if torch.version.cuda is None else f"torch built for CUDA {torch.version.cuda}"
        return Check("gpu", WARN, f"{len(nodes)} NVIDIA device(s) in /dev but torch sees none ({why}{build}). Fix: "
                     "install a CUDA build of torch matching the driver (nvidia-smi shows the driver's CUDA version)")
    return Check("gpu", OK, "no GPU: CPU only (fine for fmnist-quick and digits-smoke; the GPU suites need one)")


def check_writable(area: str, folder: Path, flag: str) -> Check:
    """Can this user create ``folder`` and write and remove a file in it? And is there room?"""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-") as handle:
            handle.write(b"ok")
            handle.flush()
    except OSError as exc:
        return Check(area, FIX, f"cannot write to {folder} ({exc.strerror or exc}). Fix: make it writable by "
                     f"this user, or pass {flag} with a folder that is")
    free = shutil.disk_usage(folder).free
    if free < LOW_DISK_BYTES:
        return Check(area, WARN, f"{folder}: only {free / 1024**3:.1f} GiB free. Fix: free space or pass {flag}")
    return Check(area, OK, f"{folder} is writable ({free / 1024**3:.0f} GiB free)")


def run_checks(suite: str | None, data_root: str | None, cache_dir: Path | None, results: Path,
               default_suite: str) -> list[Check]:
    from harness.protocol.suite import suite_files
    from harness.training.cache import default_cache_dir

    suites = [suite] if suite else list(suite_files())
    checks = check_data(suites, data_root, {suite or default_suite})
    checks += [check_sandbox(), check_cgroups(), check_gpu(),
               check_writable("cache", Path(cache_dir) if cache_dir else default_cache_dir(), "--cache-dir"),
               check_writable("results", Path(results), "--results")]
    return checks


def report(checks: list[Check]) -> tuple[str, int]:
    """The lines to print and the exit status (1 when anything needs fixing)."""
    fixes = sum(c.state == FIX for c in checks)
    warns = sum(c.state == WARN for c in checks)
    tail = (f"{fixes} to fix, {warns} warning(s)" if fixes or warns else "everything a run needs is in place")
    return "\n".join([*(c.line() for c in checks), tail]), int(fixes > 0)
