"""ToW (RUM's trade-off score): the arithmetic, its place in every row's gaps, the retrain row's floor, and its
metric_meta entry."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest

from harness.pipeline.row import gaps, metric_metadata
from harness.protocol.scoring import floor_gaps, tow
from harness.protocol.splits import parse_scenario


def test_tow_is_the_product_of_one_minus_each_accuracy_gap():
    got = tow({"gap_forget_acc": 10.0, "gap_retain_acc": 2.0, "gap_test_acc": 3.0, "gap_salun_mia": 50.0})
    assert got == pytest.approx(0.90 * 0.98 * 0.97)
    assert tow({"gap_forget_acc": 0.0, "gap_retain_acc": 0.0, "gap_test_acc": 0.0}) == 1.0
    assert tow({"gap_forget_acc": 100.0, "gap_retain_acc": 0.0, "gap_test_acc": 0.0}) == 0.0


def test_tow_is_missing_when_an_accuracy_gap_is():
    assert math.isnan(tow({"gap_forget_acc": 1.0, "gap_retain_acc": 1.0}))
    assert math.isnan(tow({"gap_forget_acc": 1.0, "gap_retain_acc": 1.0, "gap_test_acc": math.nan}))


ORACLES = [{"forget_acc": 80.0, "retain_acc": 99.0, "test_acc": 85.0},
           {"forget_acc": 82.0, "retain_acc": 98.0, "test_acc": 86.0},
           {"forget_acc": 84.0, "retain_acc": 99.5, "test_acc": 84.0}]


def _ctx(suite):
    return SimpleNamespace(suite=suite, split=SimpleNamespace(scenario=parse_scenario("random-10")),
                           oracle_metrics=lambda: ORACLES)


def test_every_row_gets_tow_from_its_gaps_and_the_retrain_row_its_floor(digits_suite):
    method = gaps({"forget_acc": 90.0, "retain_acc": 97.0, "test_acc": 85.0}, _ctx(digits_suite), False)
    assert method["tow"] == pytest.approx((1 - 8 / 100) * (1 - (98.833333 - 97) / 100) * (1 - 0 / 100), rel=1e-6)
    floor = gaps({}, _ctx(digits_suite), True)
    expected = floor_gaps(ORACLES, ["forget_acc", "retain_acc", "test_acc"])
    assert floor["tow"] == pytest.approx(math.prod(1 - g / 100 for g in expected.values()))
    assert method["tow"] < floor["tow"] < 1.0  # measured: an independent retrain is not exactly the oracles' mean


def test_tow_is_described_in_metric_meta_as_higher_is_better(digits_suite):
    meta = json.loads(metric_metadata(digits_suite, "class"))
    assert meta["tow"]["direction"] == "higher" and meta["tow"]["evaluator"] == "protocol"
    assert meta["tow"]["from"] == ["gap_forget_acc", "gap_retain_acc", "gap_test_acc"]
    # readers treat entries with "terms" as mean-gap headlines (lower is better): ToW must not look like one
    assert "terms" not in meta["tow"]
