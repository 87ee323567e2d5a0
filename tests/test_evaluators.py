"""Privacy evaluators: U-LiRA, MIA-NN, RMIA, SalUn MIA, KL/TV, and the shadow bank they share."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.svm import SVC

from harness.core.attack_stats import percentile_interval, shadow_bootstrap
from harness.core.results import EXAMPLES_DIR, read_results
from harness.evaluate import get_evaluator
from harness.evaluate.distribution import kl_tv
from harness.evaluate.rmia import rmia_scores
from harness.evaluate.salun_mia import mia_efficacy
from harness.evaluate.ulira import logit_confidence, ulira_attack
from harness.pipeline.driver import RunOptions, SeedContext, run_suite
from harness.protocol.methods import get_method
from harness.protocol.suite import load_suite
from harness.training.shadow_bank import shadow_bank, shadow_halves
from harness.training.workspace import Workspace

CPU = torch.device("cpu")


def _context(suite, cache, scenario: str, seed: int = 0, memo: dict | None = None) -> SeedContext:
    return SeedContext(Workspace(suite, suite.load_data(), cache, CPU), scenario, seed, {} if memo is None else memo)


def _evaluate(ctx: SeedContext, evaluator: str, method: str, model: torch.nn.Module) -> dict[str, float]:
    spec = get_method(method)
    return get_evaluator(evaluator).fn(model, ctx.eval_context(spec, dict(spec.hparams)))


# ------------------------------------------------------------------------------------------ shadow bank
def test_shadow_halves_are_complementary_pairs_and_shared_across_scenarios(digits_suite, session_cache):
    y = digits_suite.load_data().train_y
    halves = shadow_halves(y, 4)
    counts = lambda h: np.bincount(y.numpy()[h], minlength=10)
    for a, b in ((halves[0], halves[1]), (halves[2], halves[3])):  # an odd class leaves one example out of both
        assert len(np.intersect1d(a, b)) == 0 and len(y) - 10 <= len(a) + len(b) <= len(y)
    for h in halves:  # every half has exactly the same class counts: audit tasks have the scored tasks' sizes
        assert np.array_equal(counts(h), np.bincount(y.numpy(), minlength=10) // 2)
    assert not np.array_equal(halves[0], halves[2])
    memo: dict = {}
    data = digits_suite.load_data()
    ws = Workspace(digits_suite, data, session_cache, CPU)
    rnd = shadow_bank(ws, digits_suite.scenario("random-10"), memo=memo)
    cls = shadow_bank(ws, digits_suite.scenario("class-3"), memo=memo)
    assert [s.original.key for s in rnd.shadows] == [s.original.key for s in cls.shadows]
    for s in cls.shadows:  # class scenario: exactly the class's samples in the half
        assert set(s.forget) == set(s.half[data.train_y.numpy()[s.half] == 3])
    for s in rnd.shadows:  # random scenario: the same forget fraction of the half, inside the half
        assert set(s.forget) <= set(s.half) and abs(len(s.forget) - round(0.1 * len(s.half))) <= 1
    assert (rnd.in_forget.sum(0)[rnd.audit] >= 1).mean() > 0.5  # audited examples are forgotten repeatedly


# ------------------------------------------------------------------------------------------------ U-LiRA
def _synthetic(shift: float, n: int = 16, pool: int = 300, seed: int = 0):
    """Unlearned-shadow signals: trained-on examples are 3 higher, forgotten ones keep a ``shift`` of it."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 2, pool)  # per-example difficulty
    in_half = np.zeros((n, pool), bool)
    for i in range(0, n, 2):  # complementary pairs, as the shadow bank builds them
        perm = rng.permutation(pool)
        in_half[i, perm[: pool // 2]] = True
        in_half[i + 1, perm[pool // 2:]] = True
    in_forget = in_half & (rng.random((n, pool)) < 0.3)
    model = rng.normal(0, 1, (n, 1))  # a per-model offset, as real shadows have
    phi = base + model + rng.normal(0, 0.5, (n, pool)) + 3.0 * (in_half & ~in_forget) + shift * in_forget
    return phi, in_forget, in_half


def _interval(result) -> tuple[float, float]:
    table = result.examples
    draws = shadow_bootstrap(table["score"].to_numpy(), table["label"].to_numpy(), table["pair"].to_numpy(), 400)
    return percentile_interval(draws["accuracy"])


def test_ulira_attack_detects_a_leak_and_not_a_perfect_unlearner():
    leaky = ulira_attack(*_synthetic(shift=1.5))
    assert leaky.accuracy > 62 and leaky.auc > 70
    perfect = ulira_attack(*_synthetic(shift=0.0))
    assert abs(perfect.accuracy - 50) < 3 and abs(perfect.auc - 50) < 4
    assert set(leaky.examples.columns) >= {"shadow", "example", "label", "score", "n_in", "n_out"}


def test_ulira_no_signal_interval_covers_chance():
    """A method that forgets perfectly: its 95% bootstrap interval over shadows contains 50 (almost always)."""
    covered = [lo <= 50 <= hi for lo, hi in (_interval(ulira_attack(*_synthetic(0.0, seed=s))) for s in range(20))]
    assert sum(covered) >= 17, covered


@pytest.mark.parametrize("n", [4, 8])
def test_ulira_no_signal_is_unbiased(n):
    """Matched targets fitted without their shadow pair: no leak averages to 50, at small N too."""
    accuracies = [ulira_attack(*_synthetic(0.0, n=n, pool=2000, seed=s)).accuracy for s in range(10)]
    assert abs(np.mean(accuracies) - 50) < 1.0, accuracies


def test_ulira_shuffled_membership_labels_give_chance():
    signals = _synthetic(shift=1.5)
    shuffled = [ulira_attack(*signals, shuffle_seed=s) for s in range(3)]
    assert abs(np.mean([r.accuracy for r in shuffled]) - 50) < 6
    assert abs(np.mean([r.auc for r in shuffled]) - 50) < 8


def test_logit_confidence_matches_the_definition():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 30.0, 0.0]])
    labels = torch.tensor([0, 2])
    p = torch.softmax(logits.double(), 1)
    expected = torch.log(p[[0, 1], labels]) - torch.log(1 - p[[0, 1], labels])
    assert torch.allclose(logit_confidence(logits, labels).double(), expected, atol=1e-5)


def test_ulira_reference_goes_through_the_attack_on_digits_class(digits_suite, session_cache):
    """Nothing is hard-coded for retrain: its value comes from its own shadows, with an interval."""
    ctx = _context(digits_suite, session_cache, "class-3")
    oracle = _evaluate(ctx, "ulira", "retrain", ctx.oracle.model)
    assert oracle["ulira_acc"] != 50.0 and abs(oracle["ulira_acc"] - 50) < 5
    assert oracle["ulira_acc_boot_lo"] <= oracle["ulira_acc"] <= oracle["ulira_acc_boot_hi"]
    assert abs(oracle["ulira_shuffle_acc"] - 50) < 8 and oracle["ulira_n_shadows"] == 4


@pytest.fixture(scope="module")
def fmnist_cache(tmp_path_factory):
    from harness.training.cache import ArtifactCache

    return ArtifactCache(tmp_path_factory.mktemp("fmnist-cache"))


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["random-10", "class-0"])
def test_ulira_sanity_on_fmnist(fmnist_cache, scenario):
    """Retraining sits at chance within its interval, the original is detected, the shuffle control is at chance."""
    suite = load_suite("fmnist-quick")
    ctx = _context(suite, fmnist_cache, scenario)
    oracle = _evaluate(ctx, "ulira", "retrain", ctx.oracle.model)
    original = _evaluate(ctx, "ulira", "original", ctx.original.model)
    assert abs(oracle["ulira_acc"] - 50) < 4, oracle  # the floor at N = 8: within a few points of chance
    assert original["ulira_acc_boot_lo"] > oracle["ulira_acc_boot_hi"], (original, oracle)
    assert original["ulira_acc"] > 58 and original["ulira_auc"] > 62
    for values in (oracle, original):
        assert abs(values["ulira_shuffle_acc"] - 50) < 4


# ------------------------------------------------------------------------------------------------ MIA-NN
def _mia_nn_pair(suite, cache, scenario: str, variant: str) -> tuple[dict, dict]:
    suite = dataclasses.replace(suite, evaluate={**suite.evaluate, "mia_nn": {"variant": variant}})
    ctx = _context(suite, cache, scenario)
    return (_evaluate(ctx, "mia_nn", "original", ctx.original.model),
            _evaluate(ctx, "mia_nn", "retrain", ctx.oracle.model))


def test_mia_nn_discriminator_separates_original_from_retrained_on_digits(digits_suite, session_cache):
    original, oracle = _mia_nn_pair(digits_suite, session_cache, "class-3", "discriminate")
    assert original["mia_nn"] > 80 and abs(oracle["mia_nn"] - 50) < 20, (original, oracle)
    assert oracle["mia_nn_neighbour"] != 3 and oracle["mia_nn_n_retrained"] == 4


@pytest.mark.slow
def test_mia_nn_member_rate_separates_original_from_retrained_on_fmnist(fmnist_cache):
    """On digits the neighbour class's members and non-members look alike (rate 100 for both models)."""
    original, oracle = _mia_nn_pair(load_suite("fmnist-quick"), fmnist_cache, "class-0", "member-rate")
    assert oracle["mia_nn"] - original["mia_nn"] > 30, (original, oracle)


def test_mia_nn_only_applies_to_class_scenarios():
    assert get_evaluator("mia_nn").scenarios == ("class",)


# ------------------------------------------------------------------------------------------- SalUn MIA
def test_salun_mia_matches_sklearn_on_a_hand_made_case():
    rng = np.random.default_rng(0)
    members = np.clip(rng.normal(0.95, 0.03, 200), 0, 1)
    nonmembers = np.clip(rng.normal(0.6, 0.2, 200), 0, 1)
    target = np.array([0.99, 0.97, 0.2, 0.3, 0.5])
    clf = SVC(C=3, gamma="auto", kernel="rbf").fit(np.r_[members, nonmembers].reshape(-1, 1),
                                                    np.r_[np.ones(200), np.zeros(200)])
    expected = 100 * (clf.predict(target.reshape(-1, 1)) == 0).mean()
    assert mia_efficacy(members, nonmembers, target) == pytest.approx(expected)
    assert mia_efficacy(members, nonmembers, target) == pytest.approx(60.0)  # the 3 low-confidence targets


def test_metrics_declare_where_they_can_vary():
    """SalUn's MIA and RMIA's retain comparisons are constant-like in class scenarios: not computed there."""
    by_kind = {kind: {m.name for name in ("accuracy", "salun_mia", "rmia", "distribution", "mia_nn", "ulira")
                      for m in get_evaluator(name).metrics_for(kind)} for kind in ("random", "class")}
    assert {"salun_mia", "rmia_fr_auc", "rmia_rt_auc"} <= by_kind["random"] - by_kind["class"]
    assert {"test_forget_acc", "tv_forget_test", "mia_nn"} <= by_kind["class"] - by_kind["random"]
    assert {"forget_acc", "rmia_ft_auc", "ulira_acc", "kl_forget"} <= by_kind["random"] & by_kind["class"]


# --------------------------------------------------------------------------------------------- KL / TV
def test_kl_tv_zero_for_identical_models_positive_otherwise(digits_random):
    x = digits_random.data.train_x[digits_random.split.forget]
    kl, tv = kl_tv(digits_random.original, digits_random.original, x)
    assert kl == pytest.approx(0.0, abs=1e-9) and tv == pytest.approx(0.0, abs=1e-9)
    kl, tv = kl_tv(digits_random.original, digits_random.oracle, x)
    assert kl > 0 and 0 < tv <= 1


# ------------------------------------------------------------------------------------------------ RMIA
def test_rmia_sorted_scores_equal_the_pairwise_definition():
    rng = np.random.default_rng(0)
    target, prior = rng.random(300) + 0.01, rng.random(300) + 0.01
    r = target / prior
    brute = np.array([(np.delete(r, i) < r[i] / 2.0).mean() for i in range(len(r))])
    assert np.allclose(rmia_scores(target, prior, 2.0), brute)


# ----------------------------------------------------------------------------------- through the runner
@pytest.mark.slow
def test_runner_writes_privacy_metrics_gaps_floor_and_example_tables(run_dirs):
    suite = load_suite("digits-smoke")
    options = RunOptions(methods=["original", "retrain", "finetune"], seeds=[0], results_root=run_dirs[0],
                         cache_dir=run_dirs[1], device="cpu", progress=False)
    summary = run_suite(suite, options)
    assert summary.failed == 0
    frame = read_results(run_dirs[0], "digits-smoke")
    oracle = frame[frame["method"] == "retrain"]
    for column in ["kl_forget", "rmia_ft_auc", "ulira_acc", "ulira_acc_boot_lo", "ulira_shuffle_acc"]:
        assert frame[column].notna().all(), column
    # the reference row is measured: K = 2 oracles, each against the other, so its floor is not 0
    assert (oracle["oracles"] == 2).all() and (oracle["avg_gap"] > 0).all()
    assert oracle["gap_ulira_acc"].isna().all() and (oracle["kl_forget"] > 0).all()
    assert (oracle["ulira_acc"] != 50.0).all()
    rnd, cls = frame[frame["scenario"] == "random-10"], frame[frame["scenario"] == "class-3"]
    assert cls["mia_nn"].notna().all() and rnd["mia_nn"].isna().all()
    assert rnd["salun_mia"].notna().all() and cls["salun_mia"].isna().all()
    assert cls["rmia_fr_auc"].isna().all() and rnd["rmia_fr_auc"].notna().all()
    original = cls[cls["method"] == "original"].iloc[0]
    assert original["noop"] and original["tv_forget"] > 0.5
    # the headlines: AMUN's four terms per scenario kind
    for row in frame[frame["method"] == "finetune"].to_dict("records"):
        privacy = "salun_mia" if row["scenario"] == "random-10" else "rmia_ft_auc"
        terms = [row[f"gap_{m}"] for m in ["forget_acc", "retain_acc", "test_acc", privacy]]
        assert row["avg_gap"] == pytest.approx(np.mean(terms))
        rmia_terms = [row[f"gap_{m}"] for m in ["forget_acc", "retain_acc", "test_acc", "rmia_ft_auc"]]
        assert row["avg_gap_rmia"] == pytest.approx(np.mean(rmia_terms))
        assert not row["noop"]
    meta = json.loads(frame["metric_meta"].iloc[0])
    assert meta["avg_gap"]["terms"] and meta["ulira_acc"]["per_method"]
    examples = sorted((run_dirs[0] / "digits-smoke" / EXAMPLES_DIR).glob("ulira-*.parquet"))
    assert len(examples) == 6  # 3 methods x 2 scenarios
    table = pd.read_parquet(examples[0])
    assert set(table["label"]) == {0, 1} and table["score"].notna().all()


@pytest.mark.slow
def test_salun_mia_varies_on_fmnist_quick_half_pools(tmp_path):
    """With pool = "half" the retain set (1,125) is smaller than the test set (2,000); an unbalanced SVM called
    every forget example a non-member for every model (100.0 everywhere). Balanced, it separates the original
    from retraining."""
    suite = dataclasses.replace(load_suite("fmnist-quick"), scenarios=("random-10",),
                                evaluate={"evaluators": ["accuracy", "salun_mia"]})
    options = RunOptions(methods=["original", "retrain"], seeds=[0], results_root=tmp_path / "results",
                         cache_dir=tmp_path / "cache", device="cpu", progress=False)
    assert run_suite(suite, options).failed == 0
    frame = read_results(tmp_path / "results", "fmnist-quick").set_index("method")
    original, retrain = frame.loc["original", "salun_mia"], frame.loc["retrain", "salun_mia"]
    assert 0 < original < 100 and 0 < retrain < 100
    assert retrain - original > 3.0, (original, retrain)  # retraining calls more of the forget set non-member
