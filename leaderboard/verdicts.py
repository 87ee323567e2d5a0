"""Per-entry verdicts against the noise floor: worse, better, equivalent or inconclusive, and why.

The reference is the ``retrain`` floor row, not the best entry: picking the best of the same seeds and then
testing the others against it is a winner's curse (the pick is itself a draw). The floor row is one
independent retrain scored against the other oracles, so its gap is what retraining itself reaches. Per
scenario, for the ranking metric:

* difference test: two-sided, paired by seed (the paired t-test, whose t-interval is the interval shown), or a
  paired bootstrap over shadow models for per-method metrics; Holm-corrected across the scenario's entries.
* equivalence test (TOST): both one-sided tests of ``|difference| < margin``, margin = the floor's own value
  of the metric (a method whose gap is within the floor of the floor's gap cannot be told from retraining);
  Holm-corrected across the scenario's entries, as a family of its own.

A significantly *smaller* gap than the floor's is reported as "better" (it beats an independent retrain, which
deserves a look); otherwise equivalence comes before "worse" (a difference smaller than the floor is not one
that matters, even when the difference test detects it); when neither test rejects, "inconclusive".
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from leaderboard.shadows import ShadowComparison, equivalence_p
from leaderboard.stats import ALPHA, MIN_PAIRS, holm, paired_test, tost_paired

WORSE, BETTER, EQUIVALENT, INCONCLUSIVE = "worse", "better", "equivalent", "inconclusive"
TOO_FEW, NO_OP, FLOOR, NOT_TESTED = "too few seeds", "no-op", "floor", "not tested"
TEST_NAMES = {"t": "paired t", "wilcoxon": "Wilcoxon", "identical": "identical", "none": "too few pairs",
              "bootstrap": "shadow bootstrap"}


@dataclass(frozen=True)
class Verdict:
    state: str  # one of the constants above
    unit: str  # resampling unit: "seed", or "shadow pair" / "shadow" (per-method metrics)
    n: int  # pairs of seeds, or resampled shadow units
    diff: float  # entry - floor (per-method metrics: of the metric's value, signed)
    ci_lo: float
    ci_hi: float
    test: str  # key of TEST_NAMES
    p: float = math.nan
    p_holm: float = math.nan
    p_equiv: float = math.nan
    p_equiv_holm: float = math.nan
    margin: float = math.nan


def decide(p_holm: float, p_equiv_holm: float, favourable: bool, alpha: float = ALPHA) -> str:
    """better (significant, favourable) > equivalent (TOST rejects) > worse (significant) > inconclusive.
    Both p-values are the Holm-adjusted ones."""
    different = math.isfinite(p_holm) and p_holm < alpha
    if different and favourable:
        return BETTER
    if math.isfinite(p_equiv_holm) and p_equiv_holm < alpha:
        return EQUIVALENT
    return WORSE if different else INCONCLUSIVE


def seed_verdicts(pairs: Mapping[Hashable, tuple[Sequence[float], Sequence[float]]], margin: float,
                  lower_is_better: bool = True, alpha: float = ALPHA) -> dict[Hashable, Verdict]:
    """Each entry's per-seed values against the floor's on the same seeds: ``{key: (entry, floor)}``."""
    tests = {key: paired_test(a, b, lower_is_better) for key, (a, b) in pairs.items()}
    equiv = {key: tost_paired(a, b, margin) for key, (a, b) in pairs.items()}
    keys = list(pairs)
    p_holm = dict(zip(keys, holm([tests[k].p for k in keys])))
    e_holm = dict(zip(keys, holm([equiv[k].p for k in keys])))
    out = {}
    for key in keys:
        t, e = tests[key], equiv[key]
        favourable = t.mean_diff < 0 if lower_is_better else t.mean_diff > 0
        state = TOO_FEW if t.n < MIN_PAIRS else decide(p_holm[key], e_holm[key], favourable, alpha)
        out[key] = Verdict(state, "seed", t.n, t.mean_diff, t.ci_lo, t.ci_hi, t.test, t.p, p_holm[key], e.p,
                           e_holm[key], margin)
    return out


def shadow_verdicts(comparisons: Mapping[Hashable, ShadowComparison], margin: float, match_oracle: bool,
                    lower_is_better: bool = True, alpha: float = ALPHA) -> dict[Hashable, Verdict]:
    """Per-method metrics: each entry's value against the floor's value, paired over shadow models.

    ``comparisons`` hold signed differences ``value(entry) - value(floor)``. For a match-oracle metric any
    significant difference is a gap, so "worse"; otherwise the direction decides."""
    keys = list(comparisons)
    p_holm = dict(zip(keys, holm([comparisons[k].p for k in keys])))
    e_holm = dict(zip(keys, holm([equivalence_p(comparisons[k], margin) for k in keys])))
    out = {}
    for key in keys:
        c = comparisons[key]
        favourable = (not match_oracle) and (c.diff < 0 if lower_is_better else c.diff > 0)
        state = f"too few {c.unit}s" if c.n_shadows < MIN_PAIRS else decide(p_holm[key], e_holm[key],
                                                                                     favourable, alpha)
        out[key] = Verdict(state, c.unit, c.n_shadows, c.diff, c.ci_lo, c.ci_hi, "bootstrap", c.p, p_holm[key],
                           equivalence_p(c, margin), e_holm[key], margin)
    return out
