"""How the U-LiRA estimate's spread shrinks with the number of shadow models N.

Builds one shadow bank of M shadows (default 32) for a suite/scenario, runs each method on all of them
once, then recomputes the U-LiRA accuracy/AUC on random subsets of N shadows (whole complementary pairs,
without replacement) and prints mean and std over the subsets for each N. Subsets overlap when N > M/4,
so the std for the largest N is a lower bound.

Usage: python bench/ulira_spread.py --suite fmnist-quick --scenario random-10 --methods original,finetune
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import baselines  # noqa: F401
import methods  # noqa: F401
from harness.evaluate.ulira import ulira_attack, unlearned_shadow_signals
from harness.pipeline.driver import SeedContext
from harness.protocol.methods import get_method
from harness.protocol.suite import load_suite
from harness.training.cache import ArtifactCache
from harness.training.shadow_bank import shadow_bank
from harness.training.workspace import Workspace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", default="fmnist-quick")
    parser.add_argument("--scenario", default="random-10")
    parser.add_argument("--methods", default="original,finetune")
    parser.add_argument("--bank", type=int, default=32, help="M: shadows in the bank")
    parser.add_argument("--sizes", default="4,8,16")
    parser.add_argument("--subsets", type=int, default=20)
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    base = load_suite(args.suite)
    suite = dataclasses.replace(base, evaluate={**base.evaluate, "shadow_models": args.bank})
    data = suite.load_data()
    ctx = SeedContext(Workspace(suite, data, ArtifactCache(args.cache_dir), torch.device("cpu")), args.scenario,
                      suite.seeds[0], {})
    start = time.perf_counter()
    bank = shadow_bank(ctx.workspace, ctx.split.scenario, memo=ctx.memo)
    print(f"{args.suite} {args.scenario}: bank of {len(bank)} shadows ready in {time.perf_counter() - start:.0f} s")
    rng = np.random.default_rng(0)
    pairs = len(bank) // 2
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{'method':12s} {'N':>3s}  {'acc mean':>8s} {'acc std':>7s}  {'auc mean':>8s} {'auc std':>7s}  subsets")
    for name in args.methods.split(","):
        spec = get_method(name)
        ectx = ctx.eval_context(spec, dict(spec.hparams))
        phi_u, _ = unlearned_shadow_signals(ectx, bank)
        for n in sizes + [len(bank)]:
            draws = 1 if n >= len(bank) else args.subsets
            accs, aucs = [], []
            for _ in range(draws):
                chosen = np.sort(rng.choice(pairs, size=n // 2, replace=False))
                rows = np.concatenate([[2 * p, 2 * p + 1] for p in chosen])
                res = ulira_attack(phi_u[rows], bank.in_forget[rows], bank.in_half[rows])
                accs.append(res.accuracy)
                aucs.append(res.auc)
            print(f"{name:12s} {n:3d}  {np.mean(accs):8.2f} {np.std(accs):7.2f}  {np.mean(aucs):8.2f} "
                  f"{np.std(aucs):7.2f}  {draws}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
