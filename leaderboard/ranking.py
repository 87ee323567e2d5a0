"""Rankings across blocks without a winner's curse: Friedman, Nemenyi, critical difference, P(best).

A *block* is one (scenario, seed): every competing entry is scored on the same split and original there, so
ranks within a block are comparable (Demšar 2006, JMLR 7:1-30, with data sets replaced by blocks). Nothing here
picks a "best" entry and then tests against it on the same data: the Friedman test asks whether the entries
differ at all, the Nemenyi post-hoc test compares every pair at a family-wise level, and P(best) says how often
each entry would come out on top if the seeds had been drawn again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scikit_posthocs as sp
from scipy import stats

from leaderboard.stats import ALPHA

N_BOOT = 2000


@dataclass(frozen=True)
class Friedman:
    """The Friedman test on a blocks x entries matrix (rank 1 = best in a block)."""

    n_blocks: int
    k: int
    mean_ranks: pd.Series  # per entry, over all blocks, best first
    chi2: float  # tie-corrected Friedman statistic (scipy)
    p_chi2: float
    f: float  # Iman-Davenport F = (N-1) chi2 / (N (k-1) - chi2), Demšar's recommended form
    p: float  # p of F on (k-1, (k-1)(N-1)) degrees of freedom
    cd: float  # Nemenyi critical difference at alpha
    alpha: float
    nemenyi: pd.DataFrame  # pairwise Nemenyi p-values (entries x entries), family-wise


def block_ranks(matrix: pd.DataFrame, lower_is_better: bool = True) -> pd.DataFrame:
    """Ranks within each block (row); ties share their average rank."""
    values = matrix if lower_is_better else -matrix
    return values.rank(axis=1, method="average")


def critical_difference(k: int, n_blocks: int, alpha: float = ALPHA) -> float:
    """Nemenyi critical difference ``q_alpha sqrt(k (k+1) / (6 N))``, q_alpha = studentized range / sqrt 2."""
    if k < 2 or n_blocks < 1:
        return math.nan
    q = float(stats.studentized_range.ppf(1 - alpha, k, np.inf)) / math.sqrt(2)
    return q * math.sqrt(k * (k + 1) / (6 * n_blocks))


def friedman(matrix: pd.DataFrame, lower_is_better: bool = True, alpha: float = ALPHA) -> Friedman:
    """Friedman test with the Iman-Davenport F and the Nemenyi post-hoc test on a complete matrix
    (rows = blocks, columns = entries). Needs at least 2 blocks and 3 entries for the test itself (scipy);
    with fewer the ranks are still returned, with NaN statistics."""
    if matrix.isna().any().any():
        raise ValueError("the Friedman test needs a value for every entry in every block")
    ranks = block_ranks(matrix, lower_is_better)
    mean_ranks = ranks.mean(axis=0).sort_values(kind="stable")
    n, k = matrix.shape
    chi2 = p_chi2 = f = p = math.nan
    nemenyi = pd.DataFrame(math.nan, index=matrix.columns, columns=matrix.columns)
    if n >= 2 and k >= 3:
        with np.errstate(invalid="ignore", divide="ignore"):
            chi2, p_chi2 = (float(v) for v in stats.friedmanchisquare(*ranks.to_numpy().T))
        if math.isfinite(chi2):
            denominator = n * (k - 1) - chi2
            f = (n - 1) * chi2 / denominator if denominator > 0 else math.inf
            p = float(stats.f.sf(f, k - 1, (k - 1) * (n - 1))) if math.isfinite(f) else 0.0
        else:  # every block ranks all entries equally: nothing to tell apart
            chi2, p_chi2, f, p = 0.0, 1.0, 0.0, 1.0
        # scikit-posthocs ranks each block itself; its p-values depend only on |mean rank difference|.
        nemenyi = sp.posthoc_nemenyi_friedman(ranks.to_numpy())
        nemenyi.index = nemenyi.columns = matrix.columns
    return Friedman(n, k, mean_ranks, chi2, p_chi2, f, p, critical_difference(k, n, alpha), alpha, nemenyi)


def p_best(long: pd.DataFrame, lower_is_better: bool = True, n_boot: int = N_BOOT, seed: int = 0) -> pd.Series:
    """Bootstrap probability that each entry has the best (lowest) mean rank over blocks.

    ``long`` has columns scenario, seed, entry, value, complete over entries within each block. Each resample
    draws, within every scenario, as many seeds as it has, with replacement (the same drawn seeds for every
    entry: blocks stay paired); entries sharing the best mean rank split that draw.
    """
    wide = long.pivot_table(index=["scenario", "seed"], columns="entry", values="value", aggfunc="first")
    if wide.empty:
        return pd.Series(dtype=float)
    if wide.isna().any().any():
        raise ValueError("P(best) needs a value for every entry in every block")
    ranks = block_ranks(wide, lower_is_better).to_numpy()
    scenario_of = wide.index.get_level_values("scenario").to_numpy()
    groups = [np.flatnonzero(scenario_of == s) for s in pd.unique(scenario_of)]
    rng = np.random.default_rng(seed)
    wins = np.zeros(ranks.shape[1])
    for _ in range(n_boot):
        picked = np.concatenate([rng.choice(rows, size=len(rows), replace=True) for rows in groups])
        mean = ranks[picked].mean(axis=0)
        best = np.isclose(mean, mean.min(), rtol=0, atol=1e-12)
        wins[best] += 1.0 / best.sum()
    return pd.Series(wins / n_boot, index=wide.columns).sort_values(ascending=False, kind="stable")


def p_best_from_draws(draws: list[pd.DataFrame], lower_is_better: bool = True) -> pd.Series:
    """P(best) from paired bootstrap draws per scenario (rows = draws, columns = entries; the same columns in
    every frame): in each draw, entries are ranked within every scenario and the lowest mean rank wins."""
    if not draws:
        return pd.Series(dtype=float)
    columns = list(draws[0].columns)
    n = min(len(d) for d in draws)
    total = np.zeros((n, len(columns)))
    for frame in draws:
        values = frame[columns].to_numpy(dtype=float)[:n]
        total += pd.DataFrame(values if lower_is_better else -values).rank(axis=1, method="average").to_numpy()
    total = total[np.isfinite(total).all(axis=1)]  # a resample without positives or negatives has no value
    if not len(total):
        return pd.Series(math.nan, index=columns)
    n = len(total)
    best = np.isclose(total, total.min(axis=1, keepdims=True), rtol=0, atol=1e-12)
    wins = (best / best.sum(axis=1, keepdims=True)).sum(axis=0)
    return pd.Series(wins / n, index=columns).sort_values(ascending=False, kind="stable")
