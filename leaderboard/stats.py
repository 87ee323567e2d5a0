"""Statistics on per-seed results: t intervals, paired tests, equivalence tests, Holm correction, ranks.

Pure functions on numbers (no DataFrames), so each one can be checked against a hand-computed or published
answer. Libraries do the arithmetic wherever one exists (scipy's t and Wilcoxon tests, statsmodels' TOST and
Holm); this module adds what they leave to the caller: NaN handling, degenerate samples (fewer than two
pairs, constant differences) and which test applies.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

from harness.core.attack_stats import holm  # noqa: F401 - the leaderboard's Holm correction, shared with the engine

LEVEL = 0.95
ALPHA = 0.05
# An exact two-sided Wilcoxon signed-rank test on n non-zero differences cannot give p below 2 / 2**n: with
# n <= 5 it can never reject at 0.05, with n = 6 its floor (0.031) cannot pass a Holm correction over two or
# more comparisons. So the paired t-test is the default (its t-interval is the interval shown); the Wilcoxon
# test is used only when asked for (``test="auto"``) and with at least this many non-zero differences.
WILCOXON_MIN_N = 6
MIN_PAIRS = 2  # a paired test needs a variance estimate: at least two pairs
TESTS = ("t", "auto")


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


def _finite(values: Sequence[float]) -> np.ndarray:
    x = np.asarray([math.nan if v is None else v for v in values], dtype=float)
    return x[np.isfinite(x)]


def summarize(values: Sequence[float], level: float = LEVEL) -> Summary:
    """``mean ± t_{(1+level)/2, n-1} · s / sqrt(n)``; one value gives std and CI NaN; NaNs are dropped."""
    x = _finite(values)
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
    """A two-sided paired comparison of ``a`` and ``b`` (differences ``a - b``) over seeds."""

    n: int  # pairs
    mean_diff: float
    ci_lo: float
    ci_hi: float
    d_z: float  # Cohen's d_z: mean difference / std of the differences
    test: str  # "wilcoxon" | "t" | "identical" | "none" (fewer than MIN_PAIRS pairs)
    statistic: float
    p: float
    wins_a: int  # pairs where a < b when lower_is_better, else a > b
    wins_b: int
    ties: int

    def as_dict(self) -> dict:
        return asdict(self)


def _pairs(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"paired samples differ in length: {len(a_arr)} vs {len(b_arr)}")
    keep = np.isfinite(a_arr) & np.isfinite(b_arr)
    return a_arr[keep] - b_arr[keep]


def paired_test(a: Sequence[float], b: Sequence[float], lower_is_better: bool = True, level: float = LEVEL,
                test: str = "t", wilcoxon_min_n: int = WILCOXON_MIN_N) -> PairedTest:
    """Two-sided paired comparison: the paired t-test, or with ``test="auto"`` the Wilcoxon signed-rank test
    once there are ``wilcoxon_min_n`` non-zero differences. All-zero differences give p = 1 ("identical");
    constant non-zero differences give the t-test's limit, p = 0 (callers must not feed it one value copied
    to every seed: see ``leaderboard.shadows`` for per-method metrics)."""
    if test not in TESTS:
        raise ValueError(f"test must be one of {', '.join(TESTS)}, got {test!r}")
    d = _pairs(a, b)
    n = len(d)
    s = summarize(d, level)
    better = d < 0 if lower_is_better else d > 0
    worse = d > 0 if lower_is_better else d < 0
    wins_a, wins_b = int(better.sum()), int(worse.sum())
    ties = n - wins_a - wins_b
    if n < MIN_PAIRS:
        d_z = math.nan
    elif s.std > 0:
        d_z = s.mean / s.std
    else:  # constant differences: infinitely large standardized effect (or none)
        d_z = 0.0 if s.mean == 0 else math.copysign(math.inf, s.mean)
    if n < MIN_PAIRS:
        test, statistic, p = "none", math.nan, math.nan
    elif np.all(d == 0):
        test, statistic, p = "identical", 0.0, 1.0
    elif s.std == 0:
        test, statistic, p = "t", math.copysign(math.inf, s.mean), 0.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # scipy warns on near-constant differences
            if test == "auto" and int((d != 0).sum()) >= wilcoxon_min_n:
                result = stats.wilcoxon(d)  # zero differences dropped (Wilcoxon's convention)
                test = "wilcoxon"
            else:
                result = stats.ttest_1samp(d, 0.0)
                test = "t"
        statistic, p = float(result.statistic), float(result.pvalue)
    return PairedTest(n, s.mean, s.lo, s.hi, d_z, test, statistic, p, wins_a, wins_b, ties)


@dataclass(frozen=True)
class Equivalence:
    """TOST: two one-sided paired t-tests of ``-margin < mean(a - b) < margin``.

    ``p`` is the larger of the two one-sided p-values: equivalence is shown at level alpha when p < alpha,
    which is the same as the (1 - 2 alpha) t-interval of the mean difference lying inside the margins.
    """

    n: int
    mean_diff: float
    margin: float
    p_lower: float  # H0: mean <= -margin
    p_upper: float  # H0: mean >= +margin
    p: float


def tost_paired(a: Sequence[float], b: Sequence[float], margin: float) -> Equivalence:
    """Equivalence of paired samples within ``±margin`` (statsmodels' ``ttost_paired``).

    Fewer than two pairs, or a margin that is not a positive number, give p = NaN (not testable);
    constant differences (zero variance) give p = 0 inside the margins and 1 outside.
    """
    d = _pairs(a, b)
    n = len(d)
    mean = float(d.mean()) if n else math.nan
    if n < MIN_PAIRS or not (math.isfinite(margin) and margin > 0):
        return Equivalence(n, mean, margin, math.nan, math.nan, math.nan)
    if np.ptp(d) == 0:  # no spread: the sample mean is the mean, nothing to test
        lower, upper = float(mean <= -margin), float(mean >= margin)
        return Equivalence(n, mean, margin, lower, upper, max(lower, upper))
    p, (_, p_lower, _), (_, p_upper, _) = ttost_paired(d, np.zeros(n), -margin, margin)
    return Equivalence(n, mean, margin, float(p_lower), float(p_upper), float(p))


def holm_statsmodels(pvalues: Sequence[float]) -> list[float]:
    """The same through statsmodels (the reference the tests compare ``holm`` with)."""
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(len(p), math.nan)
    valid = np.isfinite(p)
    if valid.any():
        adjusted[valid] = multipletests(p[valid], method="holm")[1]
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


def bootstrap_p(draws: np.ndarray, null: float = 0.0) -> float:
    """Two-sided p-value of ``H0: statistic = null`` from bootstrap draws of the statistic (percentile-interval
    inversion): twice the smaller tail share at ``null``, counted with the +1 correction so it is never 0."""
    x = np.asarray(draws, dtype=float)
    x = x[np.isfinite(x)]
    if not len(x):
        return math.nan
    below, above = (x <= null).sum(), (x >= null).sum()
    return float(min(1.0, 2 * (min(below, above) + 1) / (len(x) + 1)))


def bootstrap_equivalence_p(draws: np.ndarray, margin: float) -> float:
    """Bootstrap TOST: the larger of the one-sided tail shares beyond ``-margin`` and ``+margin`` (+1 corrected).
    Below alpha exactly when the (1 - 2 alpha) percentile interval lies inside the margins."""
    x = np.asarray(draws, dtype=float)
    x = x[np.isfinite(x)]
    if not len(x) or not (math.isfinite(margin) and margin > 0):
        return math.nan
    lower, upper = ((x <= -margin).sum() + 1) / (len(x) + 1), ((x >= margin).sum() + 1) / (len(x) + 1)
    return float(max(lower, upper))
