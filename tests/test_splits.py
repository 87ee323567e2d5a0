"""Splits are deterministic, disjoint and follow the scenario's rule."""

from __future__ import annotations

import pytest
import torch

from harness.protocol.splits import make_split, parse_scenario

LABELS = torch.arange(200) % 10
TEST_LABELS = torch.arange(50) % 10


def test_random_split_is_deterministic_and_disjoint():
    a = make_split("s", parse_scenario("random-10"), 0, LABELS, TEST_LABELS)
    b = make_split("s", parse_scenario("random-10"), 0, LABELS, TEST_LABELS)
    assert torch.equal(a.forget, b.forget) and a.hash == b.hash
    assert len(a.forget) == 20
    assert set(a.forget.tolist()).isdisjoint(a.retain.tolist())
    assert sorted(a.forget.tolist() + a.retain.tolist()) == list(range(200))
    assert len(a.test_retain) == 50 and len(a.test_forget) == 0


def test_split_depends_on_seed_and_suite():
    base = make_split("s", parse_scenario("random-10"), 0, LABELS, TEST_LABELS)
    assert base.hash != make_split("s", parse_scenario("random-10"), 1, LABELS, TEST_LABELS).hash
    assert base.hash != make_split("t", parse_scenario("random-10"), 0, LABELS, TEST_LABELS).hash


def test_class_split_takes_every_sample_of_the_class():
    split = make_split("s", parse_scenario("class-3"), 0, LABELS, TEST_LABELS)
    assert set(LABELS[split.forget].tolist()) == {3} and len(split.forget) == 20
    assert 3 not in LABELS[split.retain].tolist()
    assert set(TEST_LABELS[split.test_forget].tolist()) == {3}
    assert 3 not in TEST_LABELS[split.test_retain].tolist()
    assert split.scenario.forget_class == 3


@pytest.mark.parametrize("bad", ["random", "random-0", "random-100", "class-x", "klass-1", "random-10%"])
def test_bad_scenarios_are_rejected(bad):
    with pytest.raises(ValueError, match="scenario"):
        parse_scenario(bad)


def test_class_out_of_range():
    with pytest.raises(ValueError, match="0..9"):
        parse_scenario("class-10", num_classes=10)
