"""The consistency check's decision rule: raw p-values stored, the flag from their Holm adjustment, time only when
the ratio and the difference are both large (harness/evaluate/consistency.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.evaluate.consistency import DEFAULTS, decide, prediction_p


def test_rows_store_raw_p_values_and_the_flag_holm_adjusts_them():
    one = decide({"auc": 0.006, "shift": 0.5, "time": 0.5}, 1.0, 0.0, DEFAULTS)
    assert one["consistency_auc_p"] == 0.006  # raw: reproducible whatever the time p was
    assert one["consistency_flag"] == 0.0  # Holm over three: 0.018 > 0.01
    alone = decide({"auc": 0.006, "shift": math.nan, "time": math.nan}, math.nan, math.nan, DEFAULTS)
    assert alone["consistency_flag"] == 1.0  # one finite statistic: no correction
    # step-down: the smallest p times 3 (0.012) already misses alpha, so neither is flagged ...
    assert decide({"auc": 0.004, "shift": 0.006, "time": 0.9}, 1.0, 0.0, DEFAULTS)["consistency_flag"] == 0.0
    # ... while 0.003 x 3 = 0.009 passes (and unadjusted 0.02 would not have counted either way)
    assert decide({"auc": 0.003, "shift": 0.02, "time": 0.9}, 1.0, 0.0, DEFAULTS)["consistency_flag"] == 1.0


def test_time_alone_needs_a_large_ratio_and_difference():
    fast = decide({"auc": 0.9, "shift": 0.9, "time": 1e-6}, 2.0, 5.0, DEFAULTS)
    assert fast["consistency_flag"] == 0.0  # twice as slow: within time_factor = 3
    slow = decide({"auc": 0.9, "shift": 0.9, "time": 1e-6}, 4.0, 5.0, DEFAULTS)
    assert slow["consistency_flag"] == 1.0
    short = decide({"auc": 0.9, "shift": 0.9, "time": 1e-6}, 4.0, 0.5, DEFAULTS)
    assert short["consistency_flag"] == 0.0  # under time_min_seconds: warm-up noise


def test_prediction_p_is_a_two_sided_t_prediction_interval():
    sample = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert prediction_p(3.0, sample) == pytest.approx(1.0)
    far, near = prediction_p(12.0, sample), prediction_p(6.0, sample)
    assert far < 0.01 < near < 0.5
    assert prediction_p(-6.0, sample) == pytest.approx(prediction_p(12.0, sample))
    assert math.isnan(prediction_p(1.0, np.array([1.0, 2.0])))  # too few audit runs to say
