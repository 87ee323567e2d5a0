"""A local process pool (``--jobs N``) against the sequential in-process loop, both cold, side by side.

    python bench/pool_vs_sequential.py [--suite fmnist-quick] [--jobs 2] [--methods finetune,retrain]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import hardware, run_cli, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="fmnist-quick")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--methods", default="finetune,retrain")
    parser.add_argument("--seeds", default="", help="comma-separated (default: the suite's)")
    args = parser.parse_args()
    print(f"# {args.suite} ({args.methods}; seeds {args.seeds or 'all'}): --jobs {args.jobs} vs sequential, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"# {hardware()}")
    times = {}
    for label, jobs in [("sequential", 1), (f"pool --jobs {args.jobs}", args.jobs)]:
        with tempfile.TemporaryDirectory() as tmp:
            times[label] = run_cli(["run", "--suite", args.suite, "--methods", args.methods, "--results",
                                    str(Path(tmp, "r")), "--cache-dir", str(Path(tmp, "c")), "--no-progress",
                                    "--jobs", str(jobs)] + (["--seeds", args.seeds] if args.seeds else []))
    seq = times["sequential"]
    print(table(["executor", "seconds (cold)", "speed-up vs sequential"], [[k, v, seq / v] for k, v in times.items()]))


if __name__ == "__main__":
    main()
