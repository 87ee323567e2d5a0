"""A local process pool (``--jobs N``) against the in-process run, both cold, side by side, and whether they
wrote the same rows (every metric equal to the last digit; timing columns aside).

    python bench/pool_vs_sequential.py [--suite fmnist-quick] [--jobs 2] [--methods all|a,b] [--seeds 0,1]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

from _common import hardware, run_cli, table

from harness.core.results import read_results

VOLATILE = {"created_at", "row_hash", "wall_time_s", "time_ratio", "oracle_train_s", "tampered", "hardware"}


def differing_columns(a_root: Path, b_root: Path, suite: str) -> list[str]:
    """Columns whose values differ between the two runs' rows (matched by run id)."""
    a = read_results(a_root, suite).sort_values("run_id").reset_index(drop=True)
    b = read_results(b_root, suite).sort_values("run_id").reset_index(drop=True)
    if list(a["run_id"]) != list(b["run_id"]):
        return ["run_id"]
    out = []
    for column in sorted(set(a.columns) | set(b.columns)):
        if column in VOLATILE or column.endswith(("_seconds", "_time_s")):
            continue
        if column not in a or column not in b:
            out.append(column)
            continue
        same = all((isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)) or x == y
                   for x, y in zip(a[column], b[column]))
        if not same:
            out.append(column)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="fmnist-quick")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--methods", default="all", help="comma-separated, or all (the suite's list)")
    parser.add_argument("--seeds", default="", help="comma-separated (default: the suite's)")
    args = parser.parse_args()
    print(f"# {args.suite} ({args.methods}; seeds {args.seeds or 'all'}): --jobs {args.jobs} vs in-process, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    print(f"# {hardware()}")
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, jobs in [("in-process", 1), (f"pool --jobs {args.jobs}", args.jobs)]:
            command = ["run", "--suite", args.suite, "--results", str(Path(tmp, label, "r")), "--cache-dir",
                       str(Path(tmp, label, "c")), "--no-progress", "--jobs", str(jobs)]
            command += ["--methods", args.methods] if args.methods != "all" else []
            command += ["--seeds", args.seeds] if args.seeds else []
            times[label] = run_cli(command)
        labels = list(times)
        differ = differing_columns(Path(tmp, labels[0], "r"), Path(tmp, labels[1], "r"), args.suite)
    seq = times[labels[0]]
    print(table(["executor", "seconds (cold)", "ratio to in-process"], [[k, v, v / seq] for k, v in times.items()]))
    print("rows identical (timing columns aside)" if not differ else f"rows DIFFER in: {', '.join(differ)}")


if __name__ == "__main__":
    main()
