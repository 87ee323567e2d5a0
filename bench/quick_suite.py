"""Cold and warm full ``fmnist-quick`` runs through the real CLI, each in fresh temporary folders.

Cold: empty cache and results (trains originals, oracles, the shadow bank, runs every method).
Warm: the same command again (every row stored: plans, checks, exits). Targets: cold < 5 min, warm < 15 s.

    python bench/quick_suite.py [--suite fmnist-quick] [--jobs 1] [--methods a,b]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import hardware, run_cli, table

TARGETS = {"cold": 300.0, "warm": 15.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="fmnist-quick")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--methods", default="", help="comma-separated (default: the suite's full list)")
    args = parser.parse_args()
    print(f"# {args.suite}: cold vs warm, {time.strftime('%Y-%m-%d %H:%M')}\n# {hardware()}")
    with tempfile.TemporaryDirectory() as tmp:
        base = ["run", "--suite", args.suite, "--results", str(Path(tmp, "results")), "--cache-dir",
                str(Path(tmp, "cache")), "--no-progress", "--jobs", str(args.jobs)]
        base += ["--methods", args.methods] if args.methods else []
        cold = run_cli(base)
        warm = run_cli(base)
    rows = [["cold", cold, TARGETS["cold"], "yes" if cold < TARGETS["cold"] else "NO", 1.0],
            ["warm", warm, TARGETS["warm"], "yes" if warm < TARGETS["warm"] else "NO", warm / cold]]
    print(table(["run", "seconds", "target s", "met", "ratio to cold"], rows))


if __name__ == "__main__":
    main()
