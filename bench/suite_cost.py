"""Where a cold suite run spends its time, for this checkout and (optionally) an earlier revision, side by side.

Each side runs the whole suite cold (fresh results and cache folders) with a pool of ``--jobs`` workers, in a
subprocess whose ``harness`` is that side's code, and reports the wall time, the seconds per job kind summed over
workers (training: originals, oracles, shadow models; ``prepare``: each method's audit runs on the shadow bank;
``runs``: scored runs with every evaluator), and how busy the cores were (sampled from /proc/stat), including
the share of the wall time in which at least one core sat idle. The sides run one after the other, so both see
the same machine; the load average is printed with each.

    python bench/suite_cost.py [--suite fmnist-quick] [--before REV] [--jobs auto]

``--before REV`` checks REV out into a temporary git worktree (removed afterwards) and runs it with this venv.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import ROOT, hardware, table

RUNNER = r'''
import json, sys, time
from pathlib import Path
from harness.commands.cli import resolve_jobs
from harness.pipeline.driver import RunOptions, run_suite
from harness.protocol.suite import load_suite
suite_name, results, cache, jobs = sys.argv[1:5]
options = RunOptions(results_root=Path(results), cache_dir=Path(cache), progress=False, isolate=True,
                     jobs=resolve_jobs(jobs if jobs == "auto" else int(jobs), 1), threads=1)
start = time.perf_counter()
summary = run_suite(load_suite(suite_name), options)
print("STAGES " + json.dumps({**summary.stage_seconds, "total": time.perf_counter() - start,
                              "rows": summary.written, "failed": summary.failed}))
'''


def _cpu_times() -> list[tuple[int, int]]:
    """(busy, total) jiffies per core."""
    out = []
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            values = [int(v) for v in line.split()[1:]]
            idle = values[3] + values[4]
            out.append((sum(values) - idle, sum(values)))
    return out


class CoreSampler(threading.Thread):
    """Samples each core's busy share every ``interval`` seconds while a run goes on."""

    def __init__(self, interval: float = 1.0):
        super().__init__(daemon=True)
        self.interval, self.samples, self._halt = interval, [], threading.Event()

    def run(self) -> None:
        last = _cpu_times()
        while not self._halt.wait(self.interval):
            now = _cpu_times()
            self.samples.append([(b1 - b0) / max(t1 - t0, 1) for (b0, t0), (b1, t1) in zip(last, now)])
            last = now

    def stop(self) -> tuple[float, float]:
        """(mean busy share of all cores, share of samples with some core under half busy)."""
        self._halt.set()
        self.join()
        if not self.samples:
            return float("nan"), float("nan")
        mean = sum(sum(s) / len(s) for s in self.samples) / len(self.samples)
        idle = sum(min(s) < 0.5 for s in self.samples) / len(self.samples)
        return mean, idle


def run_side(checkout: Path, suite: str, jobs: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(checkout)}
        load = os.getloadavg()[0]
        sampler = CoreSampler()
        sampler.start()
        proc = subprocess.run([sys.executable, "-c", RUNNER, suite, f"{tmp}/results", f"{tmp}/cache", jobs],
                              cwd=checkout, env=env, capture_output=True, text=True, check=False)
        busy, idle = sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"{checkout}: the suite run failed:\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("STAGES "))
    return {**json.loads(line[len("STAGES "):]), "busy": busy, "idle_share": idle, "load": load}


TRAINING = ("original", "oracle", "shadow-original", "shadow-retrained")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="fmnist-quick")
    parser.add_argument("--before", default="", help="an earlier git revision to run first (optional)")
    parser.add_argument("--jobs", default="auto")
    args = parser.parse_args()
    print(f"# {args.suite}, cold, --jobs {args.jobs}, {time.strftime('%Y-%m-%d %H:%M')}\n# {hardware()}")
    sides: list[tuple[str, dict]] = []
    worktree = None
    try:
        if args.before:
            worktree = Path(tempfile.mkdtemp(prefix="suite-cost-before-"))
            subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.before], cwd=ROOT, check=True,
                           capture_output=True)
            sides.append((f"before ({args.before})", run_side(worktree, args.suite, args.jobs)))
        sides.append(("this checkout", run_side(ROOT, args.suite, args.jobs)))
    finally:
        if worktree is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False,
                           capture_output=True)
    rows = []
    for name, s in sides:
        training = sum(s.get(k, 0.0) for k in TRAINING)
        rows.append([name, s["total"], training, s.get("prepare", 0.0), s.get("runs", 0.0), s["busy"],
                     s["idle_share"], s["rows"], s["load"]])
    print(table(["side", "wall s", "training s", "prepare s", "run groups s", "cores busy", "time with an idle core",
                 "rows", "load at start"], rows))
    if len(sides) == 2:
        print(f"after / before wall: {sides[1][1]['total'] / sides[0][1]['total']:.2f}x")
    print("(job seconds are summed over workers; training = originals, oracles and shadow models)")


if __name__ == "__main__":
    main()
