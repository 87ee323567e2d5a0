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


@dataclass(frozen=True)
class RawTest:
    """One entry's comparison with the floor before any multiplicity correction."""

    unit: str
    n: int
    diff: float
    ci_lo: float
    ci_hi: float
    test: str
    p: float
    p_equiv: float
    favourable: bool  # the difference points in the entry's favour (smaller gap, better value)
    margin: float
    forced: str = ""  # a state that no test decides: too few units, or not tested ("" when the tests decide)


def raw_seed_test(a: Sequence[float], b: Sequence[float], margin: float, lower_is_better: bool = True) -> RawTest:
    """Paired t-test and TOST of per-seed values ``a`` (entry) against ``b`` (floor) on the same seeds."""
    t, e = paired_test(a, b, lower_is_better), tost_paired(a, b, margin)
    favourable = t.mean_diff < 0 if lower_is_better else t.mean_diff > 0
    return RawTest("seed", t.n, t.mean_diff, t.ci_lo, t.ci_hi, t.test, t.p, e.p, favourable, margin,
                   TOO_FEW if t.n < MIN_PAIRS else "")


def raw_shadow_test(c: ShadowComparison, margin: float, match_oracle: bool, lower_is_better: bool = True
                    ) -> RawTest:
    """A paired bootstrap comparison (``value(entry) - value(floor)`` draws) as a raw test. For a match-oracle
    metric any difference is a gap, so it is never favourable."""
    favourable = (not match_oracle) and (c.diff < 0 if lower_is_better else c.diff > 0)
    return RawTest(c.unit, c.n_shadows, c.diff, c.ci_lo, c.ci_hi, "bootstrap", c.p, equivalence_p(c, margin),
                   favourable, margin, f"too few {c.unit}s" if c.n_shadows < MIN_PAIRS else "")


def family_verdicts(raw: Mapping[Hashable, RawTest], equiv_groups: Mapping[Hashable, Hashable] | None = None,
                    alpha: float = ALPHA) -> dict[Hashable, Verdict]:
    """Verdicts of a family of comparisons: the difference p-values Holm-corrected across the whole family,
    the equivalence p-values across each group of ``equiv_groups`` (default: one group, the family)."""
    keys = list(raw)
    p_holm = dict(zip(keys, holm([raw[k].p for k in keys])))
    groups = equiv_groups or {k: 0 for k in keys}
    e_holm: dict[Hashable, float] = {}
    for group in dict.fromkeys(groups[k] for k in keys):
        members = [k for k in keys if groups[k] == group]
        e_holm.update(zip(members, holm([raw[k].p_equiv for k in members])))
    out = {}
    for k in keys:
        r = raw[k]
        state = r.forced or decide(p_holm[k], e_holm[k], r.favourable, alpha)
        out[k] = Verdict(state, r.unit, r.n, r.diff, r.ci_lo, r.ci_hi, r.test, r.p, p_holm[k], r.p_equiv, e_holm[k],
                         r.margin)
    return out


def seed_verdicts(pairs: Mapping[Hashable, tuple[Sequence[float], Sequence[float]]], margin: float,
                  lower_is_better: bool = True, alpha: float = ALPHA) -> dict[Hashable, Verdict]:
    """Each entry's per-seed values against the floor's on the same seeds: ``{key: (entry, floor)}``."""
    return family_verdicts({k: raw_seed_test(a, b, margin, lower_is_better) for k, (a, b) in pairs.items()},
                           alpha=alpha)


def shadow_verdicts(comparisons: Mapping[Hashable, ShadowComparison], margin: float, match_oracle: bool,
                    lower_is_better: bool = True, alpha: float = ALPHA) -> dict[Hashable, Verdict]:
    """Per-method metrics: each entry's value against the floor's value, paired over shadow models.

    ``comparisons`` hold signed differences ``value(entry) - value(floor)``. For a match-oracle metric any
    significant difference is a gap, so "worse"; otherwise the direction decides."""
    return family_verdicts({k: raw_shadow_test(c, margin, match_oracle, lower_is_better)
                            for k, c in comparisons.items()}, alpha=alpha)


# Severity of a verdict when several are combined into one (the privacy axis: the worst attack decides).
SEVERITY = {WORSE: 3, INCONCLUSIVE: 2, NOT_TESTED: 2, EQUIVALENT: 1, BETTER: 0}


def severity(state: str) -> int:
    """worse > inconclusive (also: not tested, too few) > equivalent > better."""
    return SEVERITY.get(state, 2)


def within_floor(state: str) -> bool:
    """The verdicts that say "as close to the oracles as retraining itself": equivalent or better."""
    return state in (EQUIVALENT, BETTER)
