"""KLoM: the binned KL on distributions with known answers, its direction, the bank's reuse of the suite's
models, option checks, and the evaluator end to end on digits (per-example table, measured retrain floor)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from harness.artifacts import model_key, oracle_key
from harness.evaluate.base import check_evaluation
from harness.evaluate.klom import auto_bins, binned_kl, per_example, summarize
from harness.evaluate.ulira import logit_confidence
from harness.klom_bank import BankSettings, bank_seeds, bank_split, klom_bank
from harness.results import EXAMPLES_DIR
from harness.splits import make_split, parse_scenario


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


def test_per_example_computes_kl_of_unlearned_against_oracles_not_the_reverse():
    """Unlearned margins narrow, oracle margins wide: KL(unlearned || oracle) differs from the swap."""
    rng = np.random.default_rng(6)
    unlearned = {"train": rng.normal(0.0, 1.0, (4000, 3)), "test": rng.normal(0.0, 1.0, (4000, 2))}
    oracle = {"train": rng.normal(0.5, 1.5, (4000, 3)), "test": rng.normal(0.5, 1.5, (4000, 2))}
    sets = {"forget": ("train", np.array([0])), "retain": ("train", np.array([1, 2])),
            "test": ("test", np.array([0, 1]))}
    table = per_example(sets, unlearned, oracle, 40, 1e-9, 100.0)
    assert list(table.columns) == ["set", "example", "klom", "unlearned_median", "oracle_median"]
    forget = table[table["set"] == "forget"].iloc[0]
    assert forget["klom"] == pytest.approx(gaussian_kl(0, 1, 0.5, 1.5), rel=0.1)
    assert abs(forget["klom"] - gaussian_kl(0.5, 1.5, 0, 1)) > 0.1
    assert forget["unlearned_median"] == pytest.approx(0.0, abs=0.1)
    assert forget["oracle_median"] == pytest.approx(0.5, abs=0.15)


def test_summary_reports_median_and_p95_per_set():
    table = pd.DataFrame({"set": ["forget"] * 101 + ["retain"] * 3 + ["test"] * 2,
                          "klom": [*range(101), 1.0, 2.0, 3.0, 5.0, 5.0]})
    got = summarize(table)
    assert got["klom_forget_p50"] == 50 and got["klom_forget_p95"] == 95
    assert got["klom_retain_p50"] == 2.0 and got["klom_test_p95"] == 5.0


# ------------------------------------------------------------------------------------------ the bank
def test_class_bank_is_made_of_the_suites_own_models(digits_suite):
    """Class splits do not depend on the seed: originals, held-out retrains and references are the suite's
    originals and oracles (same cache keys), so the bank trains nothing new."""
    suite = dataclasses.replace(digits_suite, seeds=(0, 1), oracles=3)
    data = suite.load_data()
    bank = klom_bank(suite, data, None, parse_scenario("class-3"), torch.device("cpu"), BankSettings(2, 4))
    pool = torch.arange(len(data.train_y))
    assert bank.original_keys == [model_key(suite, data, "original", pool, s) for s in (0, 1)]
    splits = {s: make_split(suite.name, parse_scenario("class-3"), s, data.train_y, data.test_y) for s in (0, 1)}
    assert bank.held_out_keys == [oracle_key(suite, data, splits[s], 0) for s in (0, 1)]
    assert bank.reference_keys == [oracle_key(suite, data, splits[s], k) for k in (1, 2) for s in (0, 1)]
    assert not set(bank.held_out_keys) & set(bank.reference_keys)


def test_random_bank_shares_one_forget_set_outside_the_suites_splits(digits_suite):
    data = digits_suite.load_data()
    scenario = parse_scenario("random-10")
    split = bank_split(digits_suite, data, scenario)
    assert len(split.forget) == round(len(data.train_y) * 0.1)
    for seed in range(10):
        own = make_split(digits_suite.name, scenario, seed, data.train_y, data.test_y)
        assert not torch.equal(own.forget, split.forget)
    bank = klom_bank(digits_suite, data, None, scenario, torch.device("cpu"), BankSettings(3, 4))
    assert bank.seeds[:2] == [0, 1] and len(set(bank.seeds)) == 3  # the suite's seeds first, then extra ones
    assert len(set(bank.held_out_keys) | set(bank.reference_keys)) == 7


def test_bank_seeds_extend_the_suites_seeds(digits_suite):
    assert bank_seeds(digits_suite, 1) == [0]
    assert bank_seeds(digits_suite, 4)[:2] == [0, 1] and len(set(bank_seeds(digits_suite, 4))) == 4


@pytest.mark.parametrize("table, message", [
    ({"models": 1}, "models must be >= 2"),
    ({"references": True}, "references must be an integer"),
    ({"bins": -1}, "bins must be a non-negative integer"),
    ({"floor": 1.5}, "floor must be a number in"),
    ({"clip": 0}, "clip must be a positive number"),
])
def test_bad_options_are_rejected_before_anything_trains(table, message):
    with pytest.raises(ValueError, match=rf"my-suite.toml \[evaluate.klom\]: {message}"):
        check_evaluation({"evaluators": ["accuracy", "klom"], "klom": table}, "my-suite.toml")


def test_unknown_option_names_the_closest_one():
    with pytest.raises(ValueError, match="did you mean 'models'"):
        check_evaluation({"evaluators": ["klom"], "klom": {"model": 3}}, "my-suite.toml")


# ----------------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_klom_end_to_end_on_digits(tmp_path, digits_suite):
    """Original scores worse than the retrain floor; the floor is measured (> 0); per-example tables sit
    next to U-LiRA's; the per-method value is the same on every seed's row."""
    from harness.runner import RunOptions, run_suite

    evaluate = {"evaluators": ["accuracy", "klom"], "klom": {"models": 3, "references": 4}}
    suite = dataclasses.replace(digits_suite, evaluate=evaluate, scenarios=("random-10", "class-3"))
    options = RunOptions(methods=["original", "retrain"], results_root=tmp_path / "results",
                         cache_dir=tmp_path / "cache", progress=False)
    summary = run_suite(suite, options)
    rows = pd.DataFrame(summary.rows)
    assert (rows["status"] == "ok").all(), rows[["method", "error"]]
    for scenario in ("random-10", "class-3"):
        sub = rows[rows["scenario"] == scenario].set_index(["method", "seed"])
        original, retrain = sub.loc[("original", 0)], sub.loc[("retrain", 0)]
        assert original["klom_forget_p50"] > retrain["klom_forget_p50"] > 0
        assert retrain["klom_n_models"] == 3 and retrain["klom_n_references"] == 4
        assert sub.loc[("original", 1), "klom_forget_p95"] == original["klom_forget_p95"]
        folder = tmp_path / "results" / suite.name / EXAMPLES_DIR
        table = pd.read_parquet(folder / f"klom-{scenario}-original-{original['config_hash']}.parquet")
        assert set(table["set"]) == {"forget", "retain", "test"}
        assert np.median(table.loc[table["set"] == "forget", "klom"]) == pytest.approx(original["klom_forget_p50"])
    # class-3: a model that still knows the class is outside the oracles' range on most forget examples
    cls = rows[(rows["scenario"] == "class-3") & (rows["method"] == "original")].iloc[0]
    assert cls["klom_forget_p50"] > 6.0
    # the method's runs on the bank's originals are cached per (configuration, scenario); retrain has none
    assert len(list((tmp_path / "cache" / "klom-unlearned").glob("*.pt"))) == 2
    # runs made in-process are not reused by an isolated (sandboxed) run: its shadow runs are keyed on the mode
    isolated = dataclasses.replace(options, methods=["original"], isolate=True, results_root=tmp_path / "isolated")
    assert (pd.DataFrame(run_suite(suite, isolated).rows)["status"] == "ok").all()
    assert len(list((tmp_path / "cache" / "klom-unlearned").glob("*.pt"))) == 4
