"""Pools: with ``pool = "half"`` every task a method receives, scored or audit, has the same sizes and class counts;
``pool = "all"`` keeps the papers' protocol (and its splits) unchanged."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from harness.protocol.splits import make_split, original_pool, parse_scenario, stable_seed, stratified_halves
from harness.protocol.suite import SuiteError, load_suite, parse_suite
from harness.training.reference_models import model_key
from harness.training.shadow_bank import (
    audit_factor_of,
    audit_set,
    forget_within,
    shadow_count,
    shadow_halves,
)


def _counts(y: torch.Tensor, positions) -> np.ndarray:
    return np.bincount(y.numpy()[np.asarray(positions)], minlength=10)


@pytest.mark.parametrize("suite_name", ["digits-smoke", "fmnist-quick"])
@pytest.mark.parametrize("scenario", ["random-10", "class-0"])
def test_scored_and_audit_tasks_have_the_same_sizes_and_class_counts(suite_name, scenario):
    suite = load_suite(suite_name)
    assert suite.pool == "half"
    data = suite.load_data()
    sc = parse_scenario(scenario)
    n = shadow_count(suite)
    halves = shadow_halves(data.train_y, n)
    audit = audit_set(sc, data.train_y, len(data.train_y), audit_factor_of(suite))
    scored = [suite.split(data, sc, seed) for seed in suite.seeds]
    shadows = [(h, forget_within(h, sc, data.train_y, i, audit)) for i, h in enumerate(halves)]
    pool_counts = {tuple(_counts(data.train_y, s.pool)) for s in scored} | {tuple(_counts(data.train_y, h))
                                                                           for h, _ in shadows}
    assert len(pool_counts) == 1  # every pool: exactly count // 2 of every class
    sizes = {(len(s.forget), len(s.retain)) for s in scored} | {(len(f), len(h) - len(f)) for h, f in shadows}
    assert len(sizes) == 1
    if sc.kind == "class":  # a class forget set is the class inside the pool: equal counts too
        assert len({tuple(_counts(data.train_y, s.forget)) for s in scored}
                   | {tuple(_counts(data.train_y, f)) for _, f in shadows}) == 1


def test_pools_differ_by_seed_and_the_rest_of_the_train_set_is_outside():
    suite = load_suite("digits-smoke")
    data = suite.load_data()
    a, b = suite.split(data, "random-10", 0), suite.split(data, "random-10", 1)
    assert not torch.equal(a.pool, b.pool)
    everything = torch.sort(torch.cat([a.forget, a.retain, a.outside])).values
    assert torch.equal(everything, torch.arange(len(data.train_y)))
    assert not set(a.outside.tolist()) & set(a.pool.tolist())
    assert set(a.forget.tolist()) <= set(a.pool.tolist())
    # the original of a seed trains on its pool, whatever the scenario
    assert torch.equal(suite.original_positions(data, 0), a.pool)
    assert torch.equal(suite.split(data, "class-3", 0).pool, a.pool)
    assert model_key(suite, data, "original", a.pool, 0) != model_key(suite, data, "original",
                                                                      torch.arange(len(data.train_y)), 0)


def test_pool_all_keeps_the_whole_train_set_and_the_old_split():
    labels = torch.as_tensor(np.random.default_rng(0).integers(0, 10, 500))
    split = make_split("s", parse_scenario("random-10"), 3, labels, labels[:50])
    rng = np.random.default_rng(stable_seed("s", "random-10", 3))
    assert np.array_equal(split.forget.numpy(), np.sort(rng.permutation(500)[:50]))  # as before pools existed
    assert len(split.outside) == 0 and len(split.pool) == 500
    assert torch.equal(original_pool("s", "all", 3, labels), torch.arange(500))


def test_stratified_halves_are_disjoint_with_equal_class_counts():
    labels = torch.as_tensor(np.repeat(np.arange(3), [7, 8, 9]))
    first, second = stratified_halves(labels, np.random.default_rng(1))
    assert not set(first) & set(second)
    assert list(_counts(labels, first)[:3]) == list(_counts(labels, second)[:3]) == [3, 4, 4]


def test_an_unknown_pool_is_an_error_with_the_fix():
    text = load_suite("digits-smoke").definition.split("\n# ---- hparams file ----")[0]
    with pytest.raises(SuiteError, match=r"pool must be one of all, half, got 'halves'.*did you mean 'half'"):
        parse_suite(text.replace('pool = "half"', 'pool = "halves"'), "my.toml")
    with pytest.raises(SuiteError, match="max_time_ratio must be a positive number"):
        parse_suite(text.replace("[run]", "[run]\nmax_time_ratio = -1"), "my.toml")


def test_a_suite_without_pool_is_the_papers_protocol():
    suite = dataclasses.replace(load_suite("digits-smoke"), pool="all")
    data = suite.load_data()
    assert torch.equal(suite.original_positions(data, 0), torch.arange(len(data.train_y)))
    assert load_suite("cifar10-paper").pool == "all"
