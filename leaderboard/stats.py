"""Statistics on per-seed results: t confidence intervals, paired tests, Holm correction, ranks.

Pure functions on numbers (no DataFrames), so each one can be checked against a hand-computed answer.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
ALPHA = 0.05
# An exact two-sided Wilcoxon signed-rank test on n non-zero differences cannot give p below 2 / 2**n,
# so with n <= 5 it can never reject at 0.05; below this many pairs the paired t-test is used instead.
WILCOXON_MIN_N = 6


@dataclass(frozen=True)
class Summary:
    """Mean, sample std and a two-sided t confidence interval over ``n`` values (NaN where undefined)."""

    n: int
    mean: float
    std: float
    lo: float
    hi: float

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2


def summarize(values: Sequence[float], level: float = LEVEL) -> Summary:
    """``mean ± t_{(1+level)/2, n-1} · s / sqrt(n)``; one value gives std and CI NaN; NaNs are dropped."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if n == 1:
        return Summary(1, mean, math.nan, math.nan, math.nan)
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf((1 + level) / 2, n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class PairedTest:
    """A paired comparison of ``a`` and ``b`` (differences ``a - b``) over seeds."""

    n: int  # pairs
    mean_diff: float
    ci_lo: float
    ci_hi: float
    d_z: float  # Cohen's d_z: mean difference / std of the differences
    test: str  # "wilcoxon" | "t" | "identical" | "none" (fewer than 2 pairs)
    statistic: float
    p: float
    wins_a: int  # pairs where a < b when lower_is_better, else a > b
    wins_b: int
    ties: int

    def as_dict(self) -> dict:
        return asdict(self)


def paired_test(a: Sequence[float], b: Sequence[float], lower_is_better: bool = True, level: float = LEVEL,
                wilcoxon_min_n: int = WILCOXON_MIN_N) -> PairedTest:
    """Compare paired samples: Wilcoxon signed-rank with at least ``wilcoxon_min_n`` non-zero differences,
    otherwise the paired t-test. All-zero differences give p = 1 ("identical")."""
    a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"paired samples differ in length: {len(a_arr)} vs {len(b_arr)}")
    keep = np.isfinite(a_arr) & np.isfinite(b_arr)
    d = a_arr[keep] - b_arr[keep]
    n = len(d)
    s = summarize(d, level)
    better = d < 0 if lower_is_better else d > 0
    worse = d > 0 if lower_is_better else d < 0
    wins_a, wins_b = int(better.sum()), int(worse.sum())
    ties = n - wins_a - wins_b
    sd = s.std
    if n < 2:
        d_z = math.nan
    elif sd > 0:
        d_z = s.mean / sd
    else:  # constant differences: infinitely large standardized effect (or none)
        d_z = 0.0 if s.mean == 0 else math.copysign(math.inf, s.mean)
    if n < 2:
        test, statistic, p = "none", math.nan, math.nan
    elif np.all(d == 0):
        test, statistic, p = "identical", 0.0, 1.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # scipy warns on near-constant differences
            if int((d != 0).sum()) >= wilcoxon_min_n:
                result = stats.wilcoxon(d)  # zero differences dropped (Wilcoxon's convention)
                test = "wilcoxon"
            else:
                result = stats.ttest_1samp(d, 0.0)
                test = "t"
        statistic, p = float(result.statistic), float(result.pvalue)
    return PairedTest(n, s.mean, s.lo, s.hi, d_z, test, statistic, p, wins_a, wins_b, ties)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1); NaNs stay NaN, uncounted."""
    p = np.asarray(pvalues, dtype=float)
    valid = np.flatnonzero(np.isfinite(p))
    m = len(valid)
    adjusted = np.full(len(p), math.nan)
    running = 0.0
    for rank, index in enumerate(valid[np.argsort(p[valid], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def rank_values(values: Sequence[float], lower_is_better: bool = True) -> list[float]:
    """Ranks 1..n (ties share their average rank); NaN values get rank NaN."""
    x = np.asarray(values, dtype=float)
    ranks = np.full(len(x), math.nan)
    finite = np.isfinite(x)
    if finite.any():
        key = x[finite] if lower_is_better else -x[finite]
        ranks[finite] = stats.rankdata(key, method="average")
    return ranks.tolist()
