"""What a method worker uses of its limits (harness/isolation/limits.py): peak tasks (processes + threads, what ``pids.max``
counts), peak memory charged to its cgroup, and CPU time against wall time, per built-in method.

Each method runs once with its default hyper-parameters on digits-smoke's first random split, in a fresh worker
(so the cgroup's peaks are that run's), at each torch thread count asked for. Needs worker cgroups
(harness/isolation/cgroups.py); prints why not where they are unavailable.

    python bench/worker_limits.py [--threads 1,2] [--methods finetune,scrub]
"""

from __future__ import annotations

import argparse
import os
import sys

from _common import ROOT, hardware, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="1,2", help="torch intra-op thread counts, comma-separated")
    parser.add_argument("--methods", default="", help="built-in methods (default: all that run on random splits)")
    args = parser.parse_args()
    os.chdir(ROOT)

    import torch

    from harness.isolation import cgroups
    from harness.isolation.method_call import MethodRun
    from harness.isolation.workers import Isolation, IsolationLimits
    from harness.protocol.architectures import build_model
    from harness.protocol.hparams import resolve_hparams
    from harness.protocol.methods import all_methods, ensure_builtins
    from harness.protocol.suite import load_suite
    from harness.training.loop import train_model

    if cgroups.layout() is None:
        sys.exit(f"worker cgroups are not usable here: {cgroups.problem()}")
    print(hardware())
    ensure_builtins()
    suite = load_suite("digits-smoke")
    data = suite.load_data()
    torch.set_num_threads(1)
    original = train_model(build_model(suite.model, data.input_shape, data.num_classes, seed=0), data.train_x,
                           data.train_y, suite.recipe, 0)
    order = torch.randperm(len(data.train_y), generator=torch.Generator().manual_seed(0))
    forget, retain = order[: len(order) // 10], order[len(order) // 10:]
    wanted = [m for m in args.methods.split(",") if m]
    specs = [s for s in all_methods().values() if s.kind != "reference" and "random" in s.scenarios
             and (not wanted or s.name in wanted)]
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)  # the job carries the parent's count to the worker
        for spec in specs:
            run = MethodRun.select(spec, resolve_hparams(spec, {}), original, suite.model, data.train_x,
                                   data.train_y, forget, retain, num_classes=data.num_classes, scenario_kind="random",
                                   forget_class=None, device=torch.device("cpu"), seed=1, augment="none")
            with Isolation(IsolationLimits(timeout_s=600)) as isolation:
                isolation.unlearn(run)
                (worker,) = isolation._workers.values()
                memory, tasks = worker.cgroup.peaks()
                rows.append([spec.name, threads, tasks, f"{(memory or 0) / 2**20:.0f}",
                             f"{isolation.last_job_cpu_seconds:.2f}", f"{isolation.last_job_seconds:.2f}"])
    torch.set_num_threads(1)
    print(f"\n{cgroups.layout().name}; peaks of one run in a fresh worker (the worker itself included)")
    print(table(["method", "threads", "peak tasks", "peak MiB", "CPU s", "wall s"], rows))


if __name__ == "__main__":
    main()
