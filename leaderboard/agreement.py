"""Do the attacks order the methods alike? Kendall's τ between every two attacks, over a scenario's entries.

Each attack's gaps to the floor row (``leaderboard.attacks``) rank the competing entries (the references and
marked entries are left out: the original is extreme on every attack and would make any two attacks look as if
they agreed). τ is Kendall's τ-b (scipy; ties, such as KLoM values at its cap, are allowed for). Its 95% interval
is a percentile bootstrap over *entries* (resample the entries with replacement, the same entries for both
attacks, 2000 draws, seed 0; draws where one attack is constant have no τ and are dropped): the question is how
the agreement depends on which methods happen to be on the board, and the usual asymptotic interval for τ
assumes more entries and no ties. The entries' own measurement noise is not in this interval.

Two attacks **disagree** when τ < 0.5 or the interval includes 0 (``AGREE_TAU``): then a method's position
depends on which attack one trusts, and the page says so above the table.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from leaderboard.stats import LEVEL

AGREE_TAU = 0.5
N_BOOT = 2000
MIN_ENTRIES = 4  # fewer entries give no meaningful rank correlation


@dataclass(frozen=True)
class Agreement:
    a: str
    b: str
    n: int  # entries with a gap on both attacks
    tau: float
    lo: float
    hi: float
    p: float  # scipy's two-sided test of tau = 0
    disagree: bool


def tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's τ-b of the last axis of ``x`` and ``y`` (shape (..., n)), vectorised over the leading axes so
    a bootstrap costs one array operation: Σ sign(Δx)·sign(Δy) / √(Σ sign(Δx)² · Σ sign(Δy)²) over pairs, the
    tie-corrected τ scipy computes (NaN where one input is constant)."""
    sx = np.sign(x[..., :, None] - x[..., None, :])
    sy = np.sign(y[..., :, None] - y[..., None, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sx * sy).sum(axis=(-1, -2)) / np.sqrt((sx**2).sum(axis=(-1, -2)) * (sy**2).sum(axis=(-1, -2)))


def kendall(x: np.ndarray, y: np.ndarray, n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL
            ) -> tuple[float, float, float, float]:
    """(τ-b, bootstrap interval over entries, p) of two paired samples; τ and p from scipy."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    with warnings.catch_warnings():  # a constant input has no tau: scipy warns and returns NaN
        warnings.simplefilter("ignore")
        result = stats.kendalltau(x, y)
    picks = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    draws = tau_b(x[picks], y[picks])
    draws = draws[np.isfinite(draws)]
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(draws, [tail, 100 - tail]) if len(draws) else (math.nan, math.nan)
    return float(result.statistic), float(lo), float(hi), float(result.pvalue)


def disagrees(tau: float, lo: float) -> bool:
    """The rule: τ below AGREE_TAU, or an interval that reaches 0 (no evidence that they agree at all)."""
    return not (math.isfinite(tau) and tau >= AGREE_TAU and math.isfinite(lo) and lo > 0)


def agreement(gaps: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> list[Agreement]:
    """Every pair of columns (attacks) of ``gaps`` (rows = entries), over the entries with both values."""
    out = []
    for a, b in combinations(gaps.columns, 2):
        both = gaps[[a, b]].dropna()
        if len(both) < MIN_ENTRIES:
            out.append(Agreement(str(a), str(b), len(both), math.nan, math.nan, math.nan, math.nan, True))
            continue
        tau, lo, hi, p = kendall(both[a].to_numpy(), both[b].to_numpy(), n_boot, seed)
        out.append(Agreement(str(a), str(b), len(both), tau, lo, hi, p, disagrees(tau, lo)))
    return out


def summary_line(pairs: list[Agreement]) -> str:
    """One line for the top of a scenario when some attacks disagree; '' when all agree."""
    bad = [p for p in pairs if p.disagree]
    if not bad:
        return ""
    parts = [f"{p.a} vs {p.b} τ = {p.tau:.2f} [{p.lo:.2f}, {p.hi:.2f}]" if math.isfinite(p.tau)
             else f"{p.a} vs {p.b} (only {p.n} entries)" for p in bad]
    return ("The attacks disagree on the order of the methods here (" + "; ".join(parts)
            + f"; rule: τ < {AGREE_TAU} or its 95% interval includes 0): a method's place depends on the attack.")
