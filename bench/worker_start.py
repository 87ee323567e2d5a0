"""What a fresh isolated worker costs before its method does any work, side by side in one run.

Two measurements:

1. **Forked child, first optimizer.** A parent imports torch (and, in the second row, ``torch._dynamo``),
   forks, and the child times building its first ``torch.optim.SGD``: torch imports ``torch._dynamo`` there,
   so a fork server that has not preloaded it hands that import to every worker it forks.
2. **One method run**, ``finetune`` on digits-smoke's first random split: in-process, in a fresh isolated
   worker and in the same worker again (the harness's fork server, :data:`harness.isolation.sandbox.PRELOAD`).

    python bench/worker_start.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from _common import ROOT, hardware, table

CHILD = r"""
import os, sys, time
import torch
from torch import nn
torch.set_num_threads(1)
if sys.argv[1] == "preload":
    import torch._dynamo  # noqa: F401
times = []
for _ in range(int(sys.argv[2])):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        start = time.perf_counter()
        torch.optim.SGD(nn.Linear(8, 8).parameters(), lr=0.1, momentum=0.9)
        os.write(write, repr(time.perf_counter() - start).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    times.append(float(os.read(read, 64)))
print(repr(times))
"""


def forked_first_optimizer(preload: bool, repeats: int) -> list[float]:
    out = subprocess.run([sys.executable, "-c", CHILD, "preload" if preload else "plain", str(repeats)],
                         capture_output=True, text=True, check=True, timeout=600)
    return [float(x) for x in out.stdout.strip().strip("[]").split(",")]


def method_run_seconds(repeats: int) -> dict[str, list[float]]:
    import torch

    import baselines  # noqa: F401 - registers the built-in methods
    from harness.isolation.method_call import MethodRun
    from harness.isolation.workers import Isolation
    from harness.pipeline.row import unlearn
    from harness.protocol.architectures import build_model
    from harness.protocol.hparams import resolve_hparams
    from harness.protocol.methods import get_method
    from harness.protocol.suite import load_suite
    from harness.training.loop import train_model

    torch.set_num_threads(1)
    suite = load_suite("digits-smoke")
    data = suite.load_data()
    original = train_model(build_model(suite.model, data.input_shape, data.num_classes, seed=0), data.train_x,
                           data.train_y, suite.recipe, 0)
    order = torch.randperm(len(data.train_y), generator=torch.Generator().manual_seed(0))
    forget, retain = order[: len(order) // 10], order[len(order) // 10:]
    spec = get_method("finetune")
    hparams = resolve_hparams(spec, {"epochs": 5})

    def run() -> MethodRun:
        return MethodRun.select(spec, hparams, original, suite.model, data.train_x, data.train_y, forget, retain,
                                num_classes=data.num_classes, scenario_kind="random", forget_class=None,
                                device=torch.device("cpu"), seed=1, augment="none")

    def timed(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    out: dict[str, list[float]] = {"in-process": [], "fresh worker": [], "same worker again": []}
    for _ in range(repeats):
        out["in-process"].append(timed(lambda: unlearn(run())))
        with Isolation() as isolation:
            isolation.start()  # the fork server's start (imports) is not part of a run
            out["fresh worker"].append(timed(lambda: unlearn(run(), None, isolation)))
            out["same worker again"].append(timed(lambda: unlearn(run(), None, isolation)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.chdir(ROOT)
    print(hardware())
    plain = forked_first_optimizer(False, args.repeats)
    preloaded = forked_first_optimizer(True, args.repeats)
    print("\n1. forked child, first optimizer (median of", args.repeats, "forks)")
    print(table(["parent imported", "seconds", "ratio"],
          [["torch", f"{statistics.median(plain):.3f}", "1.00"],
           ["torch + torch._dynamo", f"{statistics.median(preloaded):.3f}",
            f"{statistics.median(preloaded) / statistics.median(plain):.3f}"]]))
    runs = method_run_seconds(args.repeats)
    base = statistics.median(runs["in-process"])
    print("\n2. finetune (5 epochs) on digits-smoke, median of", args.repeats)
    print(table(["where", "seconds", "vs in-process"],
          [[k, f"{statistics.median(v):.3f}", f"{statistics.median(v) / base:.2f}x"] for k, v in runs.items()]))


if __name__ == "__main__":
    main()
