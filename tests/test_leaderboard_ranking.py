"""Known answers for the rank statistics: Demšar (2006)'s worked example, hand-computed bootstrap
probabilities, and the TOST / Holm reference values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.weightstats import ttost_paired

from leaderboard.ranking import critical_difference, friedman, p_best, p_best_from_draws
from leaderboard.stats import bootstrap_equivalence_p, bootstrap_p, holm, holm_statsmodels, tost_paired

# Demšar (2006), Table 6: AUC of C4.5 with and without m / cf tuning on 14 UCI data sets (higher is better).
# The published ranks (Table 6's last line: 3.143, 2.000, 2.893, 1.964) break the printed 0.975 = 0.975 tie of
# "voting" in favour of C4.5+cf (the paper ranked unrounded values), so that cell is 0.97501 here.
DEMSAR = pd.DataFrame(
    [[0.763, 0.768, 0.771, 0.798], [0.599, 0.591, 0.590, 0.569], [0.954, 0.971, 0.968, 0.967],
     [0.628, 0.661, 0.654, 0.657], [0.882, 0.888, 0.886, 0.898], [0.936, 0.931, 0.916, 0.931],
     [0.661, 0.668, 0.609, 0.685], [0.583, 0.583, 0.563, 0.625], [0.775, 0.838, 0.866, 0.875],
     [1.000, 1.000, 1.000, 1.000], [0.940, 0.962, 0.965, 0.962], [0.619, 0.666, 0.614, 0.669],
     [0.972, 0.981, 0.97501, 0.975], [0.957, 0.978, 0.946, 0.970]],
    columns=["C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf"])


def test_friedman_reproduces_demsar_worked_example():
    result = friedman(DEMSAR, lower_is_better=False)
    assert result.mean_ranks.round(3).to_dict() == {"C4.5+m+cf": 1.964, "C4.5+m": 2.0, "C4.5+cf": 2.893,
                                                    "C4.5": 3.143}
    # Demšar: chi2_F = 9.28 from the average ranks (no tie correction). scipy corrects for ties: here 4 tied
    # pairs and one all-tied block give sum(t^3 - t) = 3 * 6 + 60 = 78, C = 1 - 78 / (N k (k^2 - 1)) = 1 - 78/840.
    uncorrected = 12 * 14 / (4 * 5) * (sum(r**2 for r in result.mean_ranks) - 4 * 5**2 / 4)
    assert uncorrected == pytest.approx(9.28, abs=0.005)
    assert result.chi2 == pytest.approx(uncorrected / (1 - 78 / 840))
    # Iman-Davenport F on 3 and 39 degrees of freedom (Demšar's F_F, from the same statistic).
    assert result.f == pytest.approx(13 * result.chi2 / (14 * 3 - result.chi2))
    assert result.p == pytest.approx(stats.f.sf(result.f, 3, 39))
    # Nemenyi: q_0.05 = 2.569 for k = 4 (Demšar Table 5a), CD = 2.569 sqrt(4 * 5 / (6 * 14)) = 1.25.
    assert result.cd == pytest.approx(1.25, abs=0.005)
    assert critical_difference(4, 14, 0.10) == pytest.approx(2.291 * math.sqrt(20 / 84), abs=0.002)


def test_nemenyi_matches_demsar_conclusions():
    # Demšar: at alpha = 0.05 no pair differs (C4.5 vs C4.5+m+cf: 3.143 - 1.964 = 1.179 < CD = 1.25); at 0.10
    # (CD = 1.12) C4.5 is significantly worse than C4.5+m and C4.5+m+cf, and no other pair differs.
    p = friedman(DEMSAR, lower_is_better=False).nemenyi
    assert (p.to_numpy()[~np.eye(4, dtype=bool)] > 0.05).all()
    assert 0.05 < p.loc["C4.5", "C4.5+m+cf"] < 0.10 and 0.05 < p.loc["C4.5", "C4.5+m"] < 0.10
    others = [("C4.5", "C4.5+cf"), ("C4.5+m", "C4.5+cf"), ("C4.5+cf", "C4.5+m+cf"), ("C4.5+m", "C4.5+m+cf")]
    assert all(p.loc[a, b] > 0.10 for a, b in others)
    assert np.allclose(p.to_numpy(), p.to_numpy().T)


def test_friedman_direction_and_degenerate_blocks():
    lower = friedman(DEMSAR.rsub(1), lower_is_better=True)  # 1 - AUC: the same ranking, lower first
    assert list(lower.mean_ranks.index) == ["C4.5+m+cf", "C4.5+m", "C4.5+cf", "C4.5"]
    same = friedman(pd.DataFrame([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]], columns=list("abc")))
    assert same.p == 1.0 and (same.mean_ranks == 2.0).all()
    with pytest.raises(ValueError, match="every entry in every block"):
        friedman(pd.DataFrame([[1.0, math.nan, 2.0]], columns=list("abc")))


def test_p_best_exact_small_case():
    # One scenario, 3 seeds: A is best on seeds 0 and 1, B on seed 2. A resample of 3 seeds makes A best unless
    # seed 2 is drawn at least twice: P(A) = (2/3)^3 + 3 (1/3)(2/3)^2 = 20/27.
    long = pd.DataFrame({"scenario": "s", "seed": [0, 0, 1, 1, 2, 2], "entry": ["A", "B"] * 3,
                         "value": [1.0, 2.0, 1.0, 2.0, 2.0, 1.0]})
    probs = p_best(long, lower_is_better=True, n_boot=20000, seed=1)
    assert probs["A"] == pytest.approx(20 / 27, abs=0.01) and probs.sum() == pytest.approx(1.0)
    flipped = p_best(long, lower_is_better=False, n_boot=20000, seed=1)
    assert flipped["B"] == pytest.approx(20 / 27, abs=0.01)


def test_p_best_resamples_within_scenarios():
    # A wins every seed of scenario x, B every seed of y (5 seeds each): every resample keeps 5 blocks per
    # scenario, so both always have mean rank 1.5: each draw is a tie, split evenly. Resampling across
    # scenarios instead would give draws with more x blocks than y blocks.
    rows = [("x", s, "A", 0.0) for s in range(5)] + [("x", s, "B", 1.0) for s in range(5)]
    rows += [("y", s, "A", 1.0) for s in range(5)] + [("y", s, "B", 0.0) for s in range(5)]
    long = pd.DataFrame(rows, columns=["scenario", "seed", "entry", "value"])
    assert p_best(long, n_boot=500).to_dict() == {"A": 0.5, "B": 0.5}


def test_p_best_from_draws_counts_ties_and_skips_nan_draws():
    x = pd.DataFrame({"A": [1.0, 2.0, 1.0, math.nan], "B": [2.0, 1.0, 1.0, 0.0]})
    probs = p_best_from_draws([x])
    assert probs["A"] == pytest.approx((1 + 0 + 0.5) / 3) and probs["B"] == pytest.approx((0 + 1 + 0.5) / 3)


def test_tost_matches_statsmodels_and_hand_computation():
    a = np.array([10.2, 11.1, 9.8, 10.5, 10.9])
    b = np.array([10.0, 10.8, 10.1, 10.4, 10.5])
    result = tost_paired(a, b, margin=1.0)
    p, low, _ = ttost_paired(a, b, -1.0, 1.0)
    assert result.p == pytest.approx(p) and result.p_lower == pytest.approx(low[1])
    d = a - b
    se = d.std(ddof=1) / math.sqrt(5)
    by_hand = max(stats.t.sf((d.mean() + 1.0) / se, 4), stats.t.cdf((d.mean() - 1.0) / se, 4))
    assert result.p == pytest.approx(by_hand)
    assert result.p < 0.05  # the 90% t-interval of the mean difference lies inside (-1, 1)
    lo, hi = stats.t.interval(0.90, 4, loc=d.mean(), scale=se)
    assert -1.0 < lo and hi < 1.0
    assert tost_paired(a, b, margin=0.1).p > 0.05  # a tight margin cannot be shown with this spread


def test_tost_degenerate_inputs():
    assert math.isnan(tost_paired([1.0], [2.0], 1.0).p)  # one pair
    assert math.isnan(tost_paired([1.0, 2.0], [1.0, 2.0], 0.0).p)  # no margin, nothing to test
    assert tost_paired([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], 0.5).p == 0.0  # identical: inside any margin
    assert tost_paired([2.0, 3.0], [1.0, 2.0], 0.5).p == 1.0  # constant difference 1 is outside ±0.5


def test_holm_is_statsmodels_with_nans_left_out():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.02, math.nan, 0.04])  # NaN is not a comparison: m = 2
    assert adjusted[0] == pytest.approx(0.04) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)
    assert holm([0.5, 0.6]) == [1.0, 1.0] and holm([]) == []
    rng = np.random.default_rng(4)
    for _ in range(12):  # the written-out step-down equals statsmodels' multipletests, ties and NaNs included
        p = rng.choice([0.001, 0.01, 0.02, 0.04, math.nan, *rng.uniform(0, 1, 4)], size=rng.integers(1, 12))
        assert holm(p) == pytest.approx(holm_statsmodels(p), nan_ok=True)


def test_bootstrap_p_values():
    draws = np.concatenate([np.full(95, 1.0), np.full(5, -1.0)])
    assert bootstrap_p(draws) == pytest.approx(2 * 6 / 101)  # 5 draws at or below 0, +1 correction
    assert bootstrap_p(np.ones(1000)) == pytest.approx(2 / 1001)  # never exactly 0
    assert bootstrap_p(np.zeros(10)) == 1.0
    assert bootstrap_equivalence_p(np.linspace(-0.5, 0.5, 101), 1.0) == pytest.approx(1 / 102)
    assert bootstrap_equivalence_p(np.linspace(-0.5, 0.5, 101), 0.25) > 0.2
