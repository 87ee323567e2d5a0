"""The evaluation protocol's arithmetic: headline scores per scenario kind, and the noise floor of K oracles.

A method is scored against K independently retrained oracles (same retain set, different initialisation
seeds). Its gap on a metric is ``|value - mean of the K oracles' values|``. The ``retrain`` reference row is
not exact by construction: each oracle in turn is scored against the mean of the *other* K - 1 (leave one
out), and the floor is the mean of those K gaps, rescaled to what an independent retrain would score against
the mean of all K (see :func:`floor_scale`). A method whose gap is within that floor is as close to the
oracles as retraining itself gets.

Headlines (AMUN's avg_gap, §4.4, and its RMIA variant) average the gaps of a fixed list of metrics per
scenario kind. Class scenarios replace SalUn's MIA (it only repeats forget accuracy there: a model that
no longer predicts the class is called non-member on all of it) with the RMIA forget-vs-test AUC on the
forget class (train images vs test images of that class), which can vary there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

# Every scenario kind (harness/protocol/splits.py parses them; docs/scenarios.md defines them)
SCENARIO_KINDS = ("random", "class", "memorised", "entangled", "subclass", "sequential")
SEQUENTIAL = "sequential"  # S requests of P % each, one after another (docs/scenarios.md)
_SEQUENTIAL_NAME = re.compile(r"^sequential-(\d+)x")


def sequential_steps(scenario: str) -> int | None:
    """The step count S of a ``sequential-SxP`` scenario name, else None (torch-free, for the leaderboard)."""
    match = _SEQUENTIAL_NAME.match(str(scenario))
    return int(match.group(1)) if match else None


def kind_family(kind: str) -> str:
    """What a method is told and declares support for: 'class' (a label disappears) or 'random' (a set of
    examples is forgotten: random, difficulty and sub-class kinds)."""
    return "class" if kind == "class" else "random"


def hparams_kind(kind: str) -> str:
    """The scenario kind whose hyper-parameters (``[method.<kind>]``, tuned or not) a kind's runs use: its own,
    except sequential scenarios, which use the random kind's (each step forgets a random request; not tuned on
    its own yet, docs/scenarios.md)."""
    return "random" if kind == SEQUENTIAL else kind


ORACLE_METHOD = "retrain"  # the reference row served by the K oracles (harness/pipeline/references.py registers it)
ACCURACY_TERMS = ("forget_acc", "retain_acc", "test_acc")
_RANDOM_AVG = (*ACCURACY_TERMS, "salun_mia")
_RFT = (*ACCURACY_TERMS, "rmia_ft_auc")
# Difficulty kinds forget sets of examples, as random ones do: the same terms. Sub-class forgetting is scored as
# class forgetting is: forget-class train vs test images (RMIA), since the forgotten fine class has test images.
# A sequential step is scored as random forgetting of the union of the requests so far.
HEADLINES: dict[str, dict[str, tuple[str, ...]]] = {
    "avg_gap": {"random": _RANDOM_AVG, "class": _RFT, "memorised": _RANDOM_AVG, "entangled": _RANDOM_AVG,
                "subclass": _RFT, "sequential": _RANDOM_AVG},
    "avg_gap_rmia": {kind: _RFT for kind in SCENARIO_KINDS},
    # The leaderboard's utility axis: the accuracy gaps alone (the privacy axis is judged attack by attack).
    "utility_gap": {kind: ACCURACY_TERMS for kind in SCENARIO_KINDS},
}
HEADLINE_DESCRIPTIONS = {
    "avg_gap": "mean gap to the oracles of forget, retain and test accuracy and a privacy term: SalUn's "
               "MIA-Efficacy on random forgetting (AMUN §4.4), RMIA forget-vs-test AUC on the forget class "
               "for class forgetting (SalUn's MIA cannot vary there)",
    "avg_gap_rmia": "mean gap to the oracles of forget, retain and test accuracy and the online-RMIA "
                    "forget-vs-test AUC (AMUN's main tables)",
    "utility_gap": "mean gap to the oracles of forget, retain and test accuracy: the leaderboard's utility axis",
}


# RUM's trade-off score (ToW): the product over forget, retain and test accuracy of (1 - |gap| / 100).
TOW_TERMS = ACCURACY_TERMS
TOW_DESCRIPTION = ("ToW (RUM, Zhao et al. 2024): product over forget, retain and test accuracy of "
                   "(1 - |accuracy gap to the oracles' mean| / 100); 1 = the oracles' accuracies, higher is better; "
                   "the retrain row's value, from its floor gaps, is what an independent retrain reaches")


def tow(gaps: Mapping[str, float]) -> float:
    """ToW from ``gap_<metric>`` accuracy gaps (percent); NaN if a term is missing."""
    terms = [gaps.get(f"gap_{m}", math.nan) for m in TOW_TERMS]
    if not all(math.isfinite(t) for t in terms):
        return math.nan
    return float(np.prod([1.0 - t / 100.0 for t in terms]))


def headline(gaps: Mapping[str, float], name: str, kind: str) -> float:
    """The headline ``name`` for a scenario ``kind`` from ``gap_<metric>`` values; NaN if a term is missing."""
    terms = [gaps.get(f"gap_{m}", math.nan) for m in HEADLINES[name][kind]]
    return float(np.mean(terms)) if all(math.isfinite(t) for t in terms) else math.nan


def headlines(gaps: Mapping[str, float], kind: str) -> dict[str, float]:
    return {name: headline(gaps, name, kind) for name in HEADLINES}


def floor_scale(k: int) -> float:
    """Factor turning a leave-one-out gap into the expected gap of an independent retrain against K oracles.

    With oracle values ``mu + e_k`` (e_k independent, variance s^2), an independent retrain differs from the
    mean of all K by variance ``s^2 (1 + 1/K)``, one oracle from the mean of the other K - 1 by
    ``s^2 (1 + 1/(K-1))``. Expected absolute differences scale with the standard deviation, so the leave-one-out
    gap is multiplied by ``sqrt((1 + 1/K) / (1 + 1/(K-1))) = sqrt(1 - 1/K^2)`` (0.87 for K = 2, 0.94 for K = 3).
    """
    if k < 2:
        raise ValueError("a noise floor needs at least two oracles")
    return math.sqrt(1.0 - 1.0 / k**2)


def _finite(values: Iterable[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def oracle_targets(per_oracle: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per metric, the mean over the K oracles (what a method should match)."""
    names = {name for metrics in per_oracle for name in metrics}
    out = {}
    for name in sorted(names):
        values = _finite(m.get(name, math.nan) for m in per_oracle)
        out[name] = float(np.mean(values)) if values else math.nan
    return out


def gaps_to_targets(metrics: Mapping[str, float], targets: Mapping[str, float],
                    names: Iterable[str]) -> dict[str, float]:
    """``gap_<m> = |value - target|`` for the named metrics present and finite on both sides."""
    out = {}
    for name in names:
        value, target = metrics.get(name, math.nan), targets.get(name, math.nan)
        if math.isfinite(value) and math.isfinite(target):
            out[f"gap_{name}"] = abs(value - target)
    return out


def floor_gaps(per_oracle: Sequence[Mapping[str, float]], names: Iterable[str]) -> dict[str, float]:
    """The retrain row's gaps: each oracle against the mean of the others, averaged and rescaled.

    Empty with fewer than two oracles (no floor can be measured).
    """
    k = len(per_oracle)
    if k < 2:
        return {}
    out = {}
    for name in names:
        values = [m.get(name, math.nan) for m in per_oracle]
        if not all(math.isfinite(v) for v in values):
            continue
        loo = [abs(values[i] - float(np.mean(values[:i] + values[i + 1:]))) for i in range(k)]
        out[f"gap_{name}"] = float(np.mean(loo)) * floor_scale(k)
    return out
