"""Where honest methods, independent retrains and perturbed oracle copies land on the functional copy check.

For each (scenario, seed) it trains (or loads) the original and K oracles, runs every built-in method with
the suite's hyper-parameters in this process, and prints ``copy_tv / oracle_pair_tv`` (the ratio that
:data:`harness.pipeline.oracle_copy.COPY_TV_FRACTION` thresholds) for: each method, each oracle against the others
(leave-one-out: what an independent retrain reaches), and oracle 0 with multiplicative weight noise.

    OMP_NUM_THREADS=1 .venv/bin/python bench/copy_tv.py --suite fmnist-quick --seeds 0,1,2 --cache-dir /tmp/c
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import hardware

from harness.pipeline.oracle_copy import functional_copy_check
from harness.pipeline.row import SeedContext, unlearn
from harness.protocol.hparams import resolve_hparams, suite_layer
from harness.protocol.methods import all_methods
from harness.protocol.splits import make_split, parse_scenario
from harness.protocol.suite import load_suite
from harness.training.cache import ArtifactCache
from harness.training.loop import mean_tv, softmax_outputs
from harness.training.reference_models import get_oracle, get_original
from harness.training.workspace import Workspace

NOISE = (1e-3, 1e-2, 5e-2, 2e-1)


def noisy(model: torch.nn.Module, scale: float, seed: int) -> torch.nn.Module:
    """``model`` with every weight multiplied by (1 + scale * N(0, 1))."""
    out = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in out.parameters():
            p.mul_(1 + scale * torch.randn(p.shape, generator=gen))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="fmnist-quick")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--oracles", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("--methods", default="", help="comma-separated (default: every built-in method)")
    args = parser.parse_args()
    print(hardware())
    suite = load_suite(args.suite)
    data = suite.load_data()
    cache = ArtifactCache(args.cache_dir)
    device = torch.device("cpu")
    wanted = [m for m in args.methods.split(",") if m]
    specs = [s for s in all_methods().values() if s.kind in ("baseline", "seed") and (not wanted or s.name in wanted)]
    ratios: dict[str, list[float]] = {}
    for scenario in suite.scenarios:
        kind = parse_scenario(scenario).kind
        for seed in (int(s) for s in args.seeds.split(",")):
            split = make_split(suite.name, parse_scenario(scenario, data.num_classes), seed, data.train_y, data.test_y)
            ws = Workspace(suite, data, cache, device)
            original = get_original(ws, seed)
            oracles = [get_oracle(ws, split, k).model for k in range(args.oracles)]
            outs = [softmax_outputs(o, data.test_x) for o in oracles]
            pairs = [mean_tv(outs[i], outs[j]) for i in range(len(outs)) for j in range(i + 1, len(outs))]
            print(f"{scenario} seed {seed}: oracle pair TV {', '.join(f'{p:.4f}' for p in pairs)}")
            for k in range(len(oracles)):  # an independent retrain against the others
                rest = oracles[:k] + oracles[k + 1:]
                if len(rest) >= 2:
                    ev = functional_copy_check(oracles[k], rest, original.model, data.test_x)
                    ratios.setdefault("retrain (leave-one-out)", []).append(ev.copy_tv / ev.oracle_pair_tv)
            ev = functional_copy_check(original.model, oracles, original.model, data.test_x)  # a no-op method
            ratios.setdefault("original (a no-op)", []).append(ev.copy_tv / ev.oracle_pair_tv)
            for scale in NOISE:
                ev = functional_copy_check(noisy(oracles[0], scale, seed), oracles, original.model, data.test_x)
                ratios.setdefault(f"oracle 0 x (1 + {scale:g} N(0,1))", []).append(ev.copy_tv / ev.oracle_pair_tv)
            for spec in specs:
                if not spec.supports(kind):
                    continue
                hp = resolve_hparams(spec, suite_layer(suite.hparams, spec.name, kind))  # per-kind settings
                context = SeedContext(ws, scenario, seed, {})
                model = unlearn(context.method_run(spec, hp, original.model, split.forget, split.retain, seed,
                                                   original.key), cache)
                ev = functional_copy_check(model, oracles, original.model, data.test_x)
                ratios.setdefault(spec.name, []).append(ev.copy_tv / ev.oracle_pair_tv)
                if ev.reason:
                    print(f"  FLAGGED {spec.name}: {ev.reason}")
    print(f"\n{'model':38s} {'n':>3s} {'min':>7s} {'median':>7s} {'max':>7s}   (copy_tv / oracle_pair_tv)")
    for name, values in ratios.items():
        print(f"{name:38s} {len(values):3d} {min(values):7.3f} {statistics.median(values):7.3f} {max(values):7.3f}")


if __name__ == "__main__":
    main()
