"""Shadow-style training of K models: vmap-batched vs one after another, side by side.

Each model trains on its own random half of the suite's train pool with the suite's recipe (as the
shadow bank does); the table gives seconds and the batched speed-up per architecture and K, and what the
default rule (``harness.training.batched.rule_mode``) picks.

    python bench/ensemble.py [--suite fmnist-quick] [--device cpu] [--k 4,8] [--archs mlp,cnn-small] [--epochs 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import hardware, table

from harness.protocol.architectures import build_model
from harness.protocol.suite import load_suite
from harness.training import batched as ensemble
from harness.training.loop import resolve_device


def timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="fmnist-quick")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--k", default="4,8")
    parser.add_argument("--archs", default="mlp,cnn-small")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per model (the suite's recipe otherwise)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    suite = load_suite(args.suite)
    data = suite.load_data()
    recipe = dataclasses.replace(suite.recipe, epochs=args.epochs)
    n = len(data.train_y) // 2
    print(f"# {suite.name}: K models on {n}-image halves, {args.epochs} epochs, batch {recipe.batch_size}, "
          f"augment {recipe.augment}, device {device}; {time.strftime('%Y-%m-%d %H:%M')}\n# {hardware()}")
    rows = []
    for arch in args.archs.split(","):
        for k in (int(v) for v in args.k.split(",")):
            gen = torch.Generator().manual_seed(k)
            halves = [torch.randperm(len(data.train_y), generator=gen)[:n] for _ in range(k)]
            datasets = [(data.train_x[h], data.train_y[h]) for h in halves]
            make = lambda: [build_model(arch, data.input_shape, data.num_classes, seed=i) for i in range(k)]  # noqa
            ensemble.train_models(make()[:2], [(x[:256], y[:256]) for x, y in datasets[:2]], recipe, [0, 1], device,
                                  mode="batched")  # warm-up (kernels, allocator)
            seq = timed(lambda: ensemble.train_models(make(), datasets, recipe, range(k), device, "sequential"), device)  # noqa: B023
            bat = timed(lambda: ensemble.train_models(make(), datasets, recipe, range(k), device, "batched"), device)  # noqa: B023
            rule = ensemble.rule_mode(make(), device)
            rows.append([arch, k, seq, bat, seq / bat, rule])
    print(table(["arch", "K", "sequential s", "batched s", "batched speed-up", "rule picks"], rows))


if __name__ == "__main__":
    main()
