"""The evaluation protocol's arithmetic with answers known in advance: gaps, headlines, the K-oracle floor."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.protocol.scoring import (
    HEADLINES,
    floor_gaps,
    floor_scale,
    gaps_to_targets,
    headline,
    headlines,
    oracle_targets,
)


def test_gaps_are_absolute_distances_to_the_oracle_mean():
    oracles = [{"forget_acc": 80.0, "test_acc": 90.0}, {"forget_acc": 84.0, "test_acc": 88.0}]
    targets = oracle_targets(oracles)
    assert targets == {"forget_acc": 82.0, "test_acc": 89.0}
    # one metric above its target and one below: a signed gap would give -3 for test_acc
    gaps = gaps_to_targets({"forget_acc": 93.0, "test_acc": 86.0}, targets, ["forget_acc", "test_acc"])
    assert gaps == {"gap_forget_acc": 11.0, "gap_test_acc": 3.0}


def test_gaps_skip_missing_and_non_finite_values():
    gaps = gaps_to_targets({"a": 1.0, "b": math.nan}, {"a": 2.0, "b": 1.0, "c": 3.0}, ["a", "b", "c"])
    assert gaps == {"gap_a": 1.0}


def test_floor_scale_matches_the_variance_argument():
    assert floor_scale(2) == pytest.approx(math.sqrt(3) / 2)
    assert floor_scale(3) == pytest.approx(math.sqrt(8 / 9))
    with pytest.raises(ValueError):
        floor_scale(1)


def test_floor_gaps_are_leave_one_out_and_rescaled():
    oracles = [{"m": 10.0}, {"m": 12.0}, {"m": 17.0}]
    # |10 - 14.5| = 4.5, |12 - 13.5| = 1.5, |17 - 11| = 6 -> mean 4, times sqrt(8/9)
    assert floor_gaps(oracles, ["m"])["gap_m"] == pytest.approx(4.0 * math.sqrt(8 / 9))
    assert floor_gaps(oracles[:1], ["m"]) == {}  # one oracle cannot measure a floor


def test_floor_matches_an_independent_retrain_in_expectation():
    """Simulated oracles and one extra retrain: the rescaled leave-one-out gap estimates its expected gap."""
    rng = np.random.default_rng(0)
    for k in (2, 3, 5):
        values = rng.normal(50, 2, size=(40000, k + 1))
        floor = np.mean([floor_gaps([{"m": v} for v in row[:k]], ["m"])["gap_m"] for row in values[:4000]])
        independent = np.abs(values[:, k] - values[:, :k].mean(1)).mean()
        assert floor == pytest.approx(independent, rel=0.05), k


def test_headline_terms_per_scenario_kind():
    gaps = {"gap_forget_acc": 4.0, "gap_retain_acc": 2.0, "gap_test_acc": 1.0, "gap_salun_mia": 9.0,
            "gap_rmia_ft_auc": 5.0}
    assert headline(gaps, "avg_gap", "random") == pytest.approx((4 + 2 + 1 + 9) / 4)
    assert headline(gaps, "avg_gap", "class") == pytest.approx((4 + 2 + 1 + 5) / 4)
    assert headlines(gaps, "random")["avg_gap_rmia"] == pytest.approx((4 + 2 + 1 + 5) / 4)
    assert "salun_mia" not in HEADLINES["avg_gap"]["class"]


def test_headline_is_missing_when_a_term_is_missing():
    """A headline over fewer terms would silently mean something else."""
    gaps = {"gap_forget_acc": 4.0, "gap_retain_acc": 2.0, "gap_test_acc": 1.0}
    assert math.isnan(headline(gaps, "avg_gap", "random"))
