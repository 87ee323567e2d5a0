"""KLoM: the binned KL and the W1 companion on distributions with known answers, weights, its direction, which
shadow models form each sample, option checks, and the evaluator end to end on digits (per-example and draw
tables, measured retrain floor, no method run of its own)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import wasserstein_distance

from harness.core.results import EXAMPLES_DIR
from harness.evaluate.base import check_evaluation
from harness.evaluate.klom import (
    auto_bins,
    binned_kl,
    bootstrap_draws,
    example_draws,
    set_samples,
    w1_distance,
)
from harness.evaluate.ulira import logit_confidence
from harness.training.shadow_bank import shadow_bank
from harness.training.workspace import Workspace


def gaussian_kl(m1: float, s1: float, m2: float, s2: float) -> float:
    """KL(N(m1, s1^2) || N(m2, s2^2)) in nats."""
    return math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5


def samples(mean: float, std: float, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, std, (1, n))


# ----------------------------------------------------------------------------------------- the binned KL
def test_binned_kl_of_two_gaussians_matches_the_analytic_value_in_both_directions():
    narrow, wide = samples(0.0, 1.0, 200_000, 0), samples(0.5, 1.2, 200_000, 1)
    forward, backward = gaussian_kl(0, 1, 0.5, 1.2), gaussian_kl(0.5, 1.2, 0, 1)  # 0.116 and 0.163
    assert binned_kl(narrow, wide, 30, 1e-9)[0] == pytest.approx(forward, rel=0.06)
    assert binned_kl(wide, narrow, 30, 1e-9)[0] == pytest.approx(backward, rel=0.06)


def test_identical_distributions_give_near_zero_and_identical_samples_exactly_zero():
    a, b = samples(2.0, 3.0, 100_000, 2), samples(2.0, 3.0, 100_000, 3)
    assert 0 <= binned_kl(a, b, 20, 1e-3)[0] < 0.005
    assert binned_kl(a, a.copy(), 20, 1e-3)[0] == pytest.approx(0.0, abs=1e-12)
    constant = np.full((1, 5), 7.0)  # every value equal: one bin, no division by a zero width
    assert binned_kl(constant, constant, 4, 1e-3)[0] == 0.0


def test_disjoint_samples_are_capped_by_the_floor():
    low, high = np.zeros((1, 5)), np.full((1, 10), 50.0)
    value = binned_kl(low, high, 4, 1e-3)[0]
    assert value == pytest.approx(math.log((1 + 1e-3) / 1e-3), rel=1e-6)  # floored, then renormalised
    assert binned_kl(low, high, 4, 1e-5)[0] > value  # a smaller floor gives more evidence per empty bin


def test_values_are_never_negative_and_rows_are_independent():
    rng = np.random.default_rng(4)
    p, q = rng.normal(0, 1, (500, 5)), rng.normal(0, 1, (500, 10))
    values = binned_kl(p, q, 4, 1e-3)
    assert (values >= 0).all()
    assert values[17] == pytest.approx(binned_kl(p[17:18], q[17:18], 4, 1e-3)[0])


def test_small_sample_resolution_orders_shifts():
    """At N = 5 unlearned vs M = 10 oracles (the fmnist-quick bank) larger shifts score higher."""
    rng = np.random.default_rng(5)
    medians = [np.median(binned_kl(rng.normal(shift, 1, (3000, 5)), rng.normal(0, 1, (3000, 10)), auto_bins(5),
                                   1e-3)) for shift in (0, 1, 2, 20)]
    assert medians == sorted(medians) and medians[0] < 0.7 and medians[-1] > 6.8


def test_auto_bins_follow_easydubs_ratio():
    assert auto_bins(100) == 20 and auto_bins(5) == 4 and auto_bins(2) == 3


def test_bad_arguments_are_errors():
    with pytest.raises(ValueError, match="one row per example"):
        binned_kl(np.zeros((2, 3)), np.zeros((3, 3)), 4, 1e-3)
    with pytest.raises(ValueError, match="floor"):
        binned_kl(np.zeros((1, 3)), np.zeros((1, 3)), 4, 0.0)


# ------------------------------------------------------------------------ margins, direction, summaries
def test_margin_is_true_logit_minus_logsumexp_of_the_others():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 3.0]])
    got = logit_confidence(logits, torch.tensor([0, 1])).numpy()  # KLoM's margin is U-LiRA's signal
    assert got[0] == pytest.approx(2.0 - math.log(2.0))
    assert got[1] == pytest.approx(1.0 - math.log(1.0 + math.exp(3.0)), rel=1e-6)


# ------------------------------------------------------------------------ weights and the W1 companion
def test_weights_count_samples_and_zero_weight_leaves_them_out():
    rng = np.random.default_rng(7)
    p, q = rng.normal(0, 1, (50, 6)), rng.normal(0.5, 1, (50, 9))
    doubled = binned_kl(np.tile(p, 2), q, 4, 1e-3)
    assert np.allclose(binned_kl(p, q, 4, 1e-3, wp=np.full(p.shape, 2.0)), doubled)
    keep = np.ones(p.shape)
    keep[:, 4:] = 0
    assert np.allclose(binned_kl(p, q, 4, 1e-3, wp=keep), binned_kl(p[:, :4], q, 4, 1e-3))
    assert np.isnan(binned_kl(p, q, 4, 1e-3, wp=np.zeros(p.shape))).all()  # nothing on one side: undefined


def test_w1_matches_scipy_with_weights_and_grows_with_the_shift():
    rng = np.random.default_rng(8)
    p, q = rng.normal(0, 1, (20, 7)), rng.normal(1, 2, (20, 11))
    wp, wq = rng.integers(0, 3, p.shape).astype(float), rng.integers(1, 3, q.shape).astype(float)
    got = w1_distance(p, q, wp, wq)
    for i in range(3):
        assert got[i] == pytest.approx(wasserstein_distance(p[i], q[i], wp[i], wq[i]), rel=1e-9)
    base = rng.normal(0, 1, (1, 400))
    shifts = [w1_distance(base + s, base)[0] for s in (0.0, 1.0, 5.0, 50.0)]
    assert shifts == pytest.approx([0.0, 1.0, 5.0, 50.0])  # no cap, unlike the floored KL


# ------------------------------------------------------------------------ which models form each sample
def test_samples_come_from_the_right_shadows(digits_suite, session_cache):
    data = digits_suite.load_data()
    ws = Workspace(digits_suite, data, session_cache, torch.device("cpu"))
    bank = shadow_bank(ws, digits_suite.scenario("random-10"))
    sets = set_samples(bank, np.arange(len(data.test_y)))
    forget = sets["forget"]
    for e, x in enumerate(forget.examples[:50]):
        assert set(np.flatnonzero(forget.unlearned[e])) == {i for i, s in enumerate(bank.shadows) if x in s.forget}
        assert set(np.flatnonzero(forget.references[e])) == {i for i, s in enumerate(bank.shadows)
                                                             if x not in s.half}
    for samples in sets.values():  # an unlearned sample and its references never share a model
        assert not (samples.unlearned & samples.references).any()
    pairs = np.arange(len(bank)) // 2
    for name in ("retain", "test"):  # one half of the pairs against the other
        used = sets[name].unlearned.any(0)
        assert not set(pairs[used]) & set(pairs[sets[name].references.any(0)])


def test_bootstrap_resamples_examples_the_same_way_for_every_method():
    assert np.array_equal(example_draws(30, 5), example_draws(30, 5))  # paired across methods
    values = np.arange(101, dtype=float)
    draws = bootstrap_draws({"m": values, "n": values + 1}, 400)
    m = draws.loc[draws["metric"] == "m", "value"].to_numpy()
    n = draws.loc[draws["metric"] == "n", "value"].to_numpy()
    assert np.allclose(n - m, 1.0)  # the same examples in draw k: the paired difference is exact
    lo, hi = np.percentile(m, [2.5, 97.5])
    assert lo < 50 < hi and hi - lo < 30  # around the median of 0..100, with the spread of a median of 101


@pytest.mark.parametrize("table, message", [
    ({"bins": -1}, "bins must be a non-negative integer"),
    ({"floor": 1.5}, "floor must be a number in"),
    ({"clip": 0}, "clip must be a positive number"),
    ({"bootstrap": 1.5}, "bootstrap must be a non-negative integer"),
])
def test_bad_options_are_rejected_before_anything_trains(table, message):
    with pytest.raises(ValueError, match=rf"my-suite.toml \[evaluate.klom\]: {message}"):
        check_evaluation({"evaluators": ["accuracy", "klom"], "klom": table}, "my-suite.toml")


def test_unknown_option_names_the_closest_one():
    with pytest.raises(ValueError, match="did you mean 'bins'"):
        check_evaluation({"evaluators": ["klom"], "klom": {"bin": 3}}, "my-suite.toml")


# ----------------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_klom_end_to_end_on_digits(tmp_path, digits_suite):
    """Original scores worse than the retrain floor; the floor is measured (> 0); per-example and draw tables sit
    next to U-LiRA's; the per-method value is the same on every seed's row; KLoM adds no method run."""
    from harness.pipeline.driver import RunOptions, run_suite

    evaluate = {"evaluators": ["accuracy", "klom"], "shadow_models": 8, "klom": {"bootstrap": 40}}
    suite = dataclasses.replace(digits_suite, evaluate=evaluate, scenarios=("random-10", "class-3"))
    options = RunOptions(methods=["original", "retrain", "finetune"], results_root=tmp_path / "results",
                         cache_dir=tmp_path / "cache", progress=False)
    summary = run_suite(suite, options)
    rows = pd.DataFrame(summary.rows)
    assert (rows["status"] == "ok").all(), rows[["method", "error"]]
    for scenario in ("random-10", "class-3"):
        sub = rows[rows["scenario"] == scenario].set_index(["method", "seed"])
        original, retrain = sub.loc[("original", 0)], sub.loc[("retrain", 0)]
        assert original["margin_w1_forget_p50"] > retrain["margin_w1_forget_p50"] > 0
        assert retrain["klom_forget_p50"] > 0 and retrain["klom_n_models"] == 8
        assert retrain["klom_forget_p50_boot_lo"] <= retrain["klom_forget_p50"] <= retrain["klom_forget_p50_boot_hi"]
        assert sub.loc[("original", 1), "klom_forget_p95"] == original["klom_forget_p95"]
        folder = tmp_path / "results" / suite.name / EXAMPLES_DIR
        table = pd.read_parquet(folder / f"klom-{scenario}-original-{original['config_hash']}.parquet")
        assert set(table["set"]) == {"forget", "retain", "test"}
        assert np.median(table.loc[table["set"] == "forget", "klom"]) == pytest.approx(original["klom_forget_p50"])
        draws = pd.read_parquet(folder / f"klom-draws-{scenario}-original-{original['config_hash']}.parquet")
        assert set(draws["metric"]) == {"klom_forget_p50", "margin_w1_forget_p50"} and draws["draw"].max() == 39
    # class-3: a model that still knows the class is outside the retrains' range on most forget examples
    cls = rows[(rows["scenario"] == "class-3") & (rows["method"] == "original")].iloc[0]
    assert cls["klom_forget_p50"] > 5.0
    # KLoM reads the methods' audit runs (U-LiRA's payload), one per (configuration, scenario); retrain has none
    assert len(list((tmp_path / "cache" / "ulira-unlearned").glob("*.pt"))) == 4
    assert not (tmp_path / "cache" / "klom-unlearned").exists()
    # runs made in-process are not reused by an isolated (sandboxed) run: the audit runs are keyed on the mode
    isolated = dataclasses.replace(options, methods=["finetune"], isolate=True, results_root=tmp_path / "isolated")
    assert (pd.DataFrame(run_suite(suite, isolated).rows)["status"] == "ok").all()
    assert len(list((tmp_path / "cache" / "ulira-unlearned").glob("*.pt"))) == 6
