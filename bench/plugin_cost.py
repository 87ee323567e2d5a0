"""What one more method costs on a finished suite, and where its time goes, against the cold suite itself.

Runs the suite cold (fresh results and cache folders, a pool of ``--jobs`` workers) and then the same command with
``--plugin examples/my_method.py``: only the new method's runs execute, on every cached original, oracle and shadow
model. Both are measured in this one run, one after the other, with the machine's load printed. For the added
method the table breaks its time down: the job seconds of its audit runs on the shadow bank (``audit``: the
method's runs, in parts; ``prepare``: the per-method evaluators U-LiRA, KLoM and the consistency check's audit side) and of its
scored run groups; inside those, the CPU time of the method's own runs (scored and audit, measured by the harness)
and each evaluator's seconds on the scored runs (the rows' ``evaluator_seconds``); the rest of the wall time is
start-up (interpreter, torch, the plugin's sandbox, model loads) and cores left idle.

    python bench/plugin_cost.py [--suite fmnist-quick] [--jobs auto]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from _common import ROOT, hardware, table
from suite_cost import RUNNER, CoreSampler

PLUGIN_RUNNER = RUNNER.replace("options = RunOptions(", "options = RunOptions(plugins=sys.argv[5:], ")


def timed_run(suite: str, results: Path, cache: Path, jobs: str, plugins: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    load = os.getloadavg()[0]
    sampler = CoreSampler(0.5)
    sampler.start()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PLUGIN_RUNNER, suite, str(results), str(cache), jobs, *plugins],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    busy, idle = sampler.stop()
    # CPU seconds the machine spent while the run went on (/proc/stat): the run's whole process tree, sandboxes
    # included (getrusage misses what sandboxed processes used), plus whatever else ran, so use a quiet machine
    cpu = busy * wall * (os.cpu_count() or 1)
    if proc.returncode != 0:
        raise RuntimeError(f"the suite run failed:\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("STAGES "))
    return {**json.loads(line[len("STAGES "):]), "process_wall": wall, "busy": busy, "idle_share": idle,
            "load": load, "cpu": cpu}


def audit_cpu_seconds(cache: Path, method: str) -> float:
    """CPU seconds of the method's audit runs, from the cached runs of every scenario."""
    total = 0.0
    for meta in (cache / "ulira-unlearned-part").glob("*.json"):  # each audit job's runs
        if json.loads(meta.read_text()).get("parts", {}).get("method") == method:
            payload = torch.load(meta.with_suffix(".pt"), weights_only=False)
            total += float(payload["cpu_seconds"].sum())
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="fmnist-quick")
    parser.add_argument("--jobs", default="auto")
    parser.add_argument("--plugin", default=str(ROOT / "examples" / "my_method.py"))
    parser.add_argument("--check-rows", action="store_true",
                        help="also run the whole suite with the plugin cold (fresh folders) and compare the "
                             "plugin's rows with the added run's on every column but time and environment")
    args = parser.parse_args()
    print(f"# {args.suite}: one added plugin method vs the cold suite, --jobs {args.jobs}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}\n# {hardware()}")
    with tempfile.TemporaryDirectory() as tmp:
        results, cache = Path(tmp, "results"), Path(tmp, "cache")
        suite = timed_run(args.suite, results, cache, args.jobs, [])
        added = timed_run(args.suite, results, cache, args.jobs, [args.plugin])
        rows = pd.read_parquet(results / args.suite)
        plugin_rows = rows[rows["method_kind"] == "plugin"]
        method = str(plugin_rows["method"].iloc[0])
        audit = audit_cpu_seconds(cache, method)
        if args.check_rows:
            both = Path(tmp, "cold-with-plugin")
            timed_run(args.suite, both / "results", both / "cache", args.jobs, [args.plugin])
            cold_rows = pd.read_parquet(both / "results" / args.suite)
            differ = differing_columns(plugin_rows, cold_rows[cold_rows["method_kind"] == "plugin"])
    evaluators: dict[str, float] = {}
    for text in plugin_rows["evaluator_seconds"].dropna():
        for name, seconds in json.loads(text).items():
            evaluators[name] = evaluators.get(name, 0.0) + seconds
    ratio = added["process_wall"] / suite["process_wall"]
    print(table(["step", "wall s", "ratio to the cold suite", "machine CPU s", "CPU ratio", "cores busy",
                 "time with an idle core", "rows", "load at start"],
                [["suite, cold", suite["process_wall"], 1.0, suite["cpu"], 1.0, suite["busy"], suite["idle_share"],
                  suite["rows"], suite["load"]],
                 [f"+ {method} (warm cache)", added["process_wall"], ratio, added["cpu"], added["cpu"] / suite["cpu"],
                  added["busy"], added["idle_share"], added["rows"], added["load"]]]))
    parts = [["audit jobs (the method on the shadow bank, in parts), job s", added.get("audit", 0.0)],
             ["prepare jobs (per-method evaluators on the audit runs), job s", added.get("prepare", 0.0)],
             ["run-group jobs (scored runs + evaluators), job s", added.get("runs", 0.0)],
             ["  the method's audit runs, CPU s", audit],
             ["  the method's scored runs, CPU s", float(plugin_rows["cpu_time_s"].sum())],
             *[[f"  evaluator {name} on the scored runs, s", seconds]
               for name, seconds in sorted(evaluators.items(), key=lambda kv: -kv[1])],
             ["start-up (interpreter, torch, sandbox, loads) and idle cores, wall s",
              added["process_wall"] - (added.get("audit", 0.0) + added.get("prepare", 0.0) + added.get("runs", 0.0)) / max(
                  1, os.cpu_count() or 1)]]
    print(table(["where the added method's time goes", "seconds"], parts))
    print(f"adding one method: {ratio:.3f}x the cold suite ({added['process_wall']:.1f} s vs "
          f"{suite['process_wall']:.1f} s; CPU {added['cpu'] / suite['cpu']:.3f}x)")
    if args.check_rows:
        print(f"rows of {method}: added to the finished suite vs run with the cold suite: "
              + ("identical on every compared column" if not differ else f"DIFFER in {differ}"))


def differing_columns(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """Columns (time and environment ones left out) where two row sets of the same runs differ."""
    from harness.commands.verify import ENVIRONMENT_COLUMNS

    a, b = a.sort_values("run_id").reset_index(drop=True), b.sort_values("run_id").reset_index(drop=True)
    if list(a["run_id"]) != list(b["run_id"]):
        return ["run_id"]
    skip = set(ENVIRONMENT_COLUMNS)
    columns = [c for c in a.columns if c not in skip and not c.endswith(("_seconds", "_time_s"))]
    return [c for c in columns if c not in b or not a[c].equals(b[c])]


if __name__ == "__main__":
    main()
