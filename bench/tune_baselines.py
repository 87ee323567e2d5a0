"""Choose per-suite defaults for the baselines by a small, equal-budget search on a validation setting.

Protocol (SalUn authors' rule, baselines spec §3.7, made leak-free):
- every method gets the same budget: one knob (lr, or SSD's alpha) over a 5-point grid, everything else
  at the method's registered defaults (epochs included);
- each configuration runs on validation seeds (default 100, 101: not among the suite's seeds) for every
  scenario of the suite, with their own original and oracle models;
- the suite's test split is never touched: "test" accuracy (and the MIA's non-members) come from a
  class-balanced held-out slice of the dataset's *train* images that are not in the suite's subset;
- the configuration with the smallest mean avg gap to the oracle (mean over seeds and scenarios; accuracy
  metrics plus SalUn MIA when that evaluator exists) wins; NaN/invalid runs count as +inf.

The result is written into ``harness/suites/<suite>.hparams.toml`` between marker lines; everything else in
that file (e.g. the seed methods' own sections) is kept verbatim.

    OMP_NUM_THREADS=1 python bench/tune_baselines.py --suite fmnist-quick --cache-dir /tmp/tune-cache
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.cache import ArtifactCache
from harness.data import load_dataset, stratified_subset
from harness.evaluate import EVALUATORS
from harness.hparams import config_hash, resolve_hparams
from harness.registry import all_methods
from harness.runner import RunSpec, SeedContext, execute_run, run_id_for
from harness.suite import SUITES_DIR, Suite, SuiteData, load_suite
from harness.train import resolve_device

# One knob per method, five values each: the same budget for every method.
GRIDS: dict[str, tuple[str, list[float]]] = {
    "finetune": ("lr", [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]),
    "l1-sparse": ("lr", [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]),
    "random-label": ("lr", [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]),
    "salun": ("lr", [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]),
    "neggrad-plus": ("lr", [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]),
    "gradient-ascent": ("lr", [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]),
    "scrub": ("lr", [5e-4, 1.5e-3, 5e-3, 1.5e-2, 5e-2]),
    "boundary-shrink": ("lr", [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]),
    "bad-teacher": ("lr", [1e-5, 3e-5, 1e-4, 3e-4, 1e-3]),
    "ssd": ("alpha", [3.0, 10.0, 30.0, 100.0, 300.0]),
}
BEGIN = "# --- begin: written by bench/tune_baselines.py (do not edit by hand; rerun it) ---"
END = "# --- end: bench/tune_baselines.py ---"


def validation_data(suite: Suite, holdout: int, data_root: str | None = None) -> SuiteData:
    """The suite's train subset, with a held-out slice of *unused train images* in place of the test set."""
    arrays = load_dataset(suite.dataset, data_root or suite.data_root)
    used = stratified_subset(arrays.train_y, suite.train_subset, suite.subset_seed)
    unused = torch.ones(len(arrays.train_y), dtype=torch.bool)
    unused[used] = False
    pool = torch.nonzero(unused).squeeze(1)
    if len(pool) < holdout:
        raise SystemExit(f"suite {suite.name}: only {len(pool)} train images outside the subset; "
                         "it cannot be tuned leak-free with this script")
    picked = pool[stratified_subset(arrays.train_y[pool], holdout, seed=12345)]
    return SuiteData(arrays.train_x[used], arrays.train_y[used], arrays.train_x[picked], arrays.train_y[picked],
                     arrays.num_classes, f"{arrays.fingerprint}-tune-holdout{holdout}")


def evaluators() -> list[str]:
    return ["accuracy"] + (["salun_mia"] if "salun_mia" in EVALUATORS else [])


def search(suite: Suite, data: SuiteData, methods: list[str], seeds: list[int], cache: ArtifactCache,
           device: torch.device) -> dict[str, dict]:
    registry = all_methods()
    contexts = {(sc, seed): SeedContext(suite, data, sc, seed, cache, device, {})
                for sc in suite.scenarios for seed in seeds}
    report: dict[str, dict] = {}
    for name in methods:
        spec = registry[name]
        knob, grid = GRIDS[name]
        scores = []
        start = time.perf_counter()
        for value in grid:
            hp = resolve_hparams(spec, {knob: value})
            chash = config_hash(name, hp)
            gaps = []
            for (scenario, seed), ctx in contexts.items():
                if not spec.supports(ctx.split.scenario.kind):
                    continue
                run = RunSpec(scenario, seed, name, hp, chash, run_id_for(suite, scenario, seed, name, chash))
                row = execute_run(run, ctx)
                gap = row.get("avg_gap", float("nan")) if row["status"] == "ok" else float("nan")
                gaps.append(gap if isinstance(gap, float) and math.isfinite(gap) else math.inf)
            scores.append(sum(gaps) / len(gaps))
            print(f"  {name:16s} {knob}={value:<8g} mean avg_gap {scores[-1]:.2f}", flush=True)
        best = min(range(len(grid)), key=lambda i: scores[i])
        report[name] = {"knob": knob, "value": grid[best], "score": scores[best], "grid": grid, "scores": scores,
                        "seconds": time.perf_counter() - start}
    return report


def render(suite: Suite, report: dict[str, dict], seeds: list[int], holdout: int, metrics: list[str]) -> str:
    lines = [BEGIN,
             f"# Baseline defaults for suite {suite.name!r}, chosen by bench/tune_baselines.py (see docs/tuning.md):",
             "# one knob per method over a 5-point grid, all other hyper-parameters at their registered defaults;",
             f"# validation seeds {seeds} (not the suite's seeds), scenarios {list(suite.scenarios)};",
             f"# 'test' = {holdout} held-out Fashion-MNIST train images outside the suite's subset (the test split is",
             f"# never used); selection = smallest mean avg_gap to the oracle over {', '.join(metrics)}.",
             "# The other hyper-parameters stay at the method defaults (unlearn-bench methods lists them).", ""]
    for name, r in report.items():
        tried = ", ".join(f"{v:g}:{s:.2f}" if math.isfinite(s) else f"{v:g}:inf" for v, s in zip(r["grid"], r["scores"]))
        lines += [f"[{name}]", f"# {r['knob']} grid (value: validation avg_gap) {tried}",
                  f"{r['knob']} = {r['value']!r}", ""]
    lines.append(END)
    return "\n".join(lines) + "\n"


def merge(existing: str, block: str, tuned: list[str]) -> str:
    """Replace our marker block; drop stray sections of tuned methods; keep everything else verbatim."""
    if BEGIN in existing and END in existing:
        head, rest = existing.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
    else:
        head, tail = existing, ""
    sections = re.split(r"(?m)^(?=\[)", head + tail)
    kept = [s for s in sections if not any(s.startswith(f"[{n}]") for n in tuned)]
    other = "".join(kept).strip("\n")
    return block + ("\n" + other + "\n" if other else "")


def validation_setup(args: argparse.Namespace) -> tuple[Suite, list[int], list[str], list[str], Suite, SuiteData]:
    """Shared by the tuning scripts: the suite, validation seeds (disjoint from the suite's), the methods,
    the evaluators, the suite copy to tune with (no hparams file), and the held-out validation data."""
    suite = load_suite(args.suite)
    seeds = [int(s) for s in args.seeds.split(",")]
    if set(seeds) & set(suite.seeds):
        raise SystemExit(f"validation seeds {seeds} overlap the suite's seeds {list(suite.seeds)}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    metrics = evaluators()
    tune_suite = dataclasses.replace(suite, evaluate={"evaluators": metrics}, hparams={}, seeds=tuple(seeds))
    return suite, seeds, methods, metrics, tune_suite, validation_data(suite, args.holdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="fmnist-quick")
    parser.add_argument("--methods", default=",".join(GRIDS), help="comma-separated baselines to tune")
    parser.add_argument("--seeds", default="100,101", help="validation seeds (must not be the suite's)")
    parser.add_argument("--holdout", type=int, default=1000, help="held-out train images used as 'test'")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=None, help="default: harness/suites/<suite>.hparams.toml")
    parser.add_argument("--dry-run", action="store_true", help="print the block, write nothing")
    args = parser.parse_args(argv)

    suite, seeds, methods, metrics, tune_suite, data = validation_setup(args)
    unknown = [m for m in methods if m not in GRIDS]
    if unknown:
        raise SystemExit(f"no grid for {unknown}; known: {', '.join(GRIDS)}")
    start = time.perf_counter()
    report = search(tune_suite, data, methods, seeds, ArtifactCache(args.cache_dir), resolve_device(args.device))
    print(f"search took {time.perf_counter() - start:.0f}s")
    block = render(suite, report, seeds, args.holdout, metrics)
    if args.dry_run:
        print(block)
        return 0
    out = args.out or SUITES_DIR / f"{suite.name}.hparams.toml"
    out.write_text(merge(out.read_text() if out.is_file() else "", block, methods))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
