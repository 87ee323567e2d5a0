"""The seed papers' headline claims, measured on a suite's stored results.

(a) TRW (class unlearning, seed spec §8.5, RECONSTRUCTED): reduction of the gap to the retrained model
    relative to the best other method, separately for U-LiRA and MIA-NN:
    reduction = 1 - gap(TRW) / gap(best other), "best other" = the non-reference method with the smallest
    mean gap on that metric. The paper reports 19% (U-LiRA) and 46% (MIA-NN) on CIFAR-10.
(b) AMUN (random forgetting): avg_gap of AMUN (and its variants) against the best baseline.

95% CIs: MIA-NN and avg_gap vary per seed -> percentile bootstrap over seeds (paired: the same resampled
seeds for both methods). U-LiRA scores a method once through its shadow runs (the same value for every
seed) -> bootstrap over shadows from the per-example tables in ``<results>/<suite>/examples/``.

Usage: python bench/seed_claims.py --suite fmnist-quick --results results [--run --cache-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.results import read_results

REFERENCES = {"original", "retrain"}
BOOT = 2000


def seed_bootstrap(a: pd.Series, b: pd.Series | None, stat, rng: np.random.Generator) -> tuple[float, float]:
    """Percentile 95% CI of ``stat(mean a, mean b)`` resampling the seeds both share."""
    seeds = sorted(set(a.index) & set(b.index)) if b is not None else sorted(a.index)
    if len(seeds) < 2:
        return float("nan"), float("nan")
    draws = []
    for _ in range(BOOT):
        pick = rng.choice(seeds, size=len(seeds), replace=True)
        draws.append(stat(a.loc[pick].mean(), b.loc[pick].mean() if b is not None else None))
    lo, hi = np.nanpercentile(draws, [2.5, 97.5])
    return float(lo), float(hi)


def ulira_accuracy(table: pd.DataFrame) -> float:
    pred = table["score"] > 0
    pos, neg = table["label"] == 1, table["label"] == 0
    return 100.0 * 0.5 * (pred[pos].mean() + (~pred[neg]).mean())


def shadow_bootstrap(tables: dict[str, pd.DataFrame], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """U-LiRA accuracies of each method over the same resampled shadow indices."""
    shadows = sorted(set.intersection(*(set(t["shadow"]) for t in tables.values())))
    groups = {m: dict(tuple(t.groupby("shadow"))) for m, t in tables.items()}
    out: dict[str, list[float]] = {m: [] for m in tables}
    for _ in range(BOOT // 4):
        pick = rng.choice(shadows, size=len(shadows), replace=True)
        for m, g in groups.items():
            out[m].append(ulira_accuracy(pd.concat([g[s] for s in pick])))
    return {m: np.asarray(v) for m, v in out.items()}


def example_table(results: Path, suite: str, scenario: str, method: str, config: str) -> pd.DataFrame | None:
    path = results / suite / "examples" / f"ulira-{scenario}-{method}-{config}.parquet"
    return pd.read_parquet(path) if path.is_file() else None


def per_seed(frame: pd.DataFrame, method: str, column: str) -> pd.Series:
    rows = frame[frame["method"] == method]
    return rows.groupby("seed")[column].mean().dropna()


def trw_claim(frame: pd.DataFrame, results: Path, suite: str, rng: np.random.Generator) -> list[str]:
    lines = [("(a) TRW: reduction of the gap to retrain vs the best other method (class scenarios; paper, "
              "CIFAR-10: U-LiRA 19%, MIA-NN 46%)")]
    scenarios = sorted(s for s in frame["scenario"].unique() if str(s).startswith("class-"))
    if not scenarios:
        return lines + ["  MISSING: no class-scenario rows in these results"]
    for scenario in scenarios:
        rows = frame[frame["scenario"] == scenario]
        if "trw" not in set(rows["method"]):
            lines.append(f"  {scenario}: MISSING: no 'trw' rows (is the method registered and run?)")
            continue
        for metric in ("ulira_acc", "mia_nn"):
            gap = f"gap_{metric}"
            if gap not in rows or rows[gap].isna().all():
                lines.append(f"  {scenario} {metric}: MISSING: metric not evaluated (enable it in the suite)")
                continue
            means = rows[~rows["method"].isin(REFERENCES)].groupby("method")[gap].mean().dropna()
            others = means.drop("trw", errors="ignore")
            if "trw" not in means or others.empty:
                lines.append(f"  {scenario} {metric}: MISSING: no TRW value or no other method to compare")
                continue
            best = str(others.idxmin())
            g_trw, g_best = float(means["trw"]), float(others[best])
            reduction = 1 - g_trw / g_best if g_best > 0 else float("nan")
            if metric == "ulira_acc":
                ci = _ulira_reduction_ci(rows, results, suite, scenario, best, rng)
            else:
                ci = seed_bootstrap(per_seed(rows, "trw", gap), per_seed(rows, best, gap),
                                    lambda t, b: 1 - t / b if b > 0 else np.nan, rng)
            lines.append(f"  {scenario} {metric:9s}: gap(trw) = {g_trw:6.2f}, best other = {best} "
                         f"({g_best:.2f}); reduction = {100 * reduction:+.1f}% "
                         f"[95% CI {100 * ci[0]:+.1f}%, {100 * ci[1]:+.1f}%]")
    return lines


def _ulira_reduction_ci(rows: pd.DataFrame, results: Path, suite: str, scenario: str, best: str,
                        rng: np.random.Generator) -> tuple[float, float]:
    tables, oracle = {}, None
    for method in ("trw", best, "retrain"):
        sel = rows[rows["method"] == method]
        if sel.empty:
            return float("nan"), float("nan")
        table = example_table(results, suite, scenario, method, str(sel["config_hash"].iloc[0]))
        if table is None:
            return float("nan"), float("nan")
        tables[method] = table
    accs = shadow_bootstrap(tables, rng)
    oracle = accs["retrain"]
    gap_t, gap_b = np.abs(accs["trw"] - oracle), np.abs(accs[best] - oracle)
    with np.errstate(divide="ignore", invalid="ignore"):
        red = np.where(gap_b > 0, 1 - gap_t / gap_b, np.nan)
    lo, hi = np.nanpercentile(red, [2.5, 97.5])
    return float(lo), float(hi)


def amun_claim(frame: pd.DataFrame, rng: np.random.Generator) -> list[str]:
    lines = [("(b) AMUN: avg_gap on random forgetting vs the best baseline (lower is better; paper, CIFAR-10 "
              "10% with D_R, MIS: AMUN 0.59 vs best baseline SalUn 1.56)")]
    scenarios = sorted(s for s in frame["scenario"].unique() if str(s).startswith("random-"))
    if not scenarios:
        return lines + ["  MISSING: no random-scenario rows in these results"]
    for scenario in scenarios:
        rows = frame[frame["scenario"] == scenario]
        amuns = sorted(m for m in rows["method"].unique() if str(m).startswith("amun"))
        if not amuns:
            lines.append(f"  {scenario}: MISSING: no 'amun*' rows (is the method registered and run?)")
            continue
        baselines = rows[rows["method_kind"] == "baseline"].groupby("method")["avg_gap"].mean().dropna()
        if baselines.empty:
            lines.append(f"  {scenario}: MISSING: no baseline rows to compare with")
            continue
        best = str(baselines.idxmin())
        b = per_seed(rows, best, "avg_gap")
        lines.append(f"  {scenario}: best baseline {best}: avg_gap {b.mean():.2f} "
                     f"[{_ci_text(seed_bootstrap(b, None, lambda x, _: x, rng))}] (n={len(b)} seeds)")
        for method in amuns:
            a = per_seed(rows, method, "avg_gap")
            diff = seed_bootstrap(a, b, lambda x, y: x - y, rng)
            lines.append(f"    {method:14s} avg_gap {a.mean():.2f} [{_ci_text(seed_bootstrap(a, None, lambda x, _: x, rng))}]"
                         f"; minus {best}: {a.mean() - b.mean():+.2f} [{_ci_text(diff)}]")
    return lines


def _ci_text(ci: tuple[float, float]) -> str:
    return f"95% CI {ci[0]:.2f}, {ci[1]:.2f}" if np.isfinite(ci[0]) else "CI n/a (one seed)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", default="fmnist-quick")
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--run", action="store_true", help="run the suite first (stored runs are skipped)")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = parser.parse_args(argv)
    if args.run:
        import baselines  # noqa: F401
        import methods  # noqa: F401
        from harness.runner import RunOptions, run_suite
        from harness.suite import load_suite

        run_suite(load_suite(args.suite), RunOptions(results_root=args.results, cache_dir=args.cache_dir,
                                                     progress=False))
    frame = read_results(args.results, args.suite)
    if frame.empty:
        print(f"no results for suite {args.suite!r} under {args.results} (use --run)")
        return 1
    failed = frame[frame["status"] != "ok"]
    for (scenario, method), rows in failed.groupby(["scenario", "method"]):
        print(f"NOTE: {len(rows)} {rows['status'].iloc[0]} row(s) of {method} on {scenario} are left out: "
              f"{str(rows['error'].iloc[0]).splitlines()[-1][:160] if rows['error'].iloc[0] else ''}")
    frame = frame[frame["status"] == "ok"]
    rng = np.random.default_rng(args.seed)
    counts = frame.groupby(["scenario", "method"]).size().unstack(0).fillna(0).astype(int)
    print(f"suite {args.suite}: {len(frame)} ok rows; seeds per (method x scenario):")
    print(counts.to_string())
    print()
    print("\n".join(trw_claim(frame, args.results, args.suite, rng)))
    print()
    print("\n".join(amun_claim(frame, rng)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
