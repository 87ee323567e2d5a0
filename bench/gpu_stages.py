"""One suite end to end on a GPU, stage by stage: data to the device, originals, oracles, shadow bank,
then the method runs and their evaluation (``run_suite``, as the CLI runs it), each stage timed.

    python bench/gpu_stages.py --suite fmnist-standard --seeds 0 --methods finetune,retrain,original
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import hardware, table

from harness.pipeline.driver import RunOptions, run_suite
from harness.protocol.splits import make_split, parse_scenario
from harness.protocol.suite import load_suite
from harness.training.cache import ArtifactCache
from harness.training.loop import resolve_device
from harness.training.reference_models import get_oracle, get_original
from harness.training.workspace import Workspace


def stage(rows: list, name: str, fn, device: torch.device, count: int = 1):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    rows.append([name, count, seconds, seconds / max(count, 1)])
    print(f"  {name}: {seconds:.1f}s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="fmnist-standard")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--methods", default="finetune,retrain,original")
    parser.add_argument("--shadows", type=int, default=2,
                        help="shadow_models for this bench (fmnist-standard declares 32: ~128 models, far over 8 min)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    suite = load_suite(args.suite)
    if "shadow_models" in suite.evaluate:
        suite = dataclasses.replace(suite, evaluate={**suite.evaluate, "shadow_models": args.shadows})
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"# {suite.name} stages on {device}, seeds {seeds}, methods {args.methods}, "
          f"shadow_models {suite.evaluate.get('shadow_models', '-')}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}\n# {hardware()}", flush=True)
    rows: list = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = ArtifactCache(Path(tmp, "cache"))
        data = stage(rows, "load data", lambda: suite.load_data(), device)
        stage(rows, "train_x to device (once)", lambda: data.train_x.to(device), device)
        ws = Workspace(suite, data, cache, device)
        stage(rows, "originals", lambda: [get_original(ws, s) for s in seeds], device, len(seeds))
        splits = [make_split(suite.name, parse_scenario(sc, data.num_classes), s, data.train_y, data.test_y)
                  for sc in suite.scenarios for s in seeds]
        stage(rows, "oracles", lambda: [get_oracle(ws, sp) for sp in splits], device, len(splits))
        if any(e in suite.evaluators for e in ("ulira", "mia_nn", "rmia")):
            from harness.training.shadow_bank import shadow_bank, shadow_count

            n = shadow_count(suite)
            stage(rows, f"shadow bank ({n} shadows x scenarios)",
                  lambda: [shadow_bank(ws, parse_scenario(sc, data.num_classes)) for sc in suite.scenarios], device,
                  len(suite.scenarios))
        options = RunOptions(methods=args.methods.split(","), seeds=seeds, results_root=Path(tmp, "results"),
                             cache_dir=Path(tmp, "cache"), device=str(device), progress=False, isolate=True)
        summary = stage(rows, "method runs + evaluation (run_suite)", lambda: run_suite(suite, options), device)
        rows[-1][1] = summary.written
    total = sum(r[2] for r in rows)
    print(table(["stage", "count", "seconds", "s each"], rows + [["total", "", total, ""]]))
    if summary.failed:
        print(f"! {summary.failed} runs not ok")


if __name__ == "__main__":
    main()
