"""Scores of a membership attack and their uncertainty: pure NumPy, no torch (the leaderboard imports it).

Also the per-example Gaussian fits that the shadow-bank attacks (U-LiRA, the unlearned-vs-retrained class
attack) score with.

An attack produces one score per attacked (shadow model, example) pair; ``label`` is 1 where the example
was forgotten by that shadow and 0 where the shadow never saw it. The summary numbers are balanced accuracy
at score 0 (likelihood ratio 1), ROC AUC and TPR at a low FPR, in percent.

Shadow models are the resampling unit: attacked pairs that share a shadow share that model's randomness, so
intervals come from a cluster bootstrap that draws whole clusters with replacement. U-LiRA's clusters are the
complementary *pairs* of shadows (``shadow // 2``): its matched targets and their fits are built per pair, so
pairs are its independent units. With few clusters (4 pairs at N = 8) a percentile bootstrap is optimistic;
intervals widen as N grows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
VARIANCES = ("global", "per-example")


def normal_logpdf(v: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    return -0.5 * (np.log(2 * np.pi * var) + (v - mean) ** 2 / var)


def fit_example_gaussians(values: np.ndarray, examples: np.ndarray, n_examples: int, variance: str = "global",
                          min_count: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-example means (population mean where an example has none), variances and observation counts.

    ``values[j]`` is an observation of example ``examples[j]`` (ids in 0..n_examples-1). ``variance``: "global"
    pools the within-example variance over examples; "per-example" uses an example's own variance where it has
    at least ``min_count`` observations.
    """
    count = np.bincount(examples, minlength=n_examples).astype(float)
    total = np.bincount(examples, weights=values, minlength=n_examples)
    pop_mean = values.mean() if len(values) else 0.0
    mean = np.where(count > 0, total / np.maximum(count, 1), pop_mean)
    resid = values - mean[examples]
    sq = np.bincount(examples, weights=resid**2, minlength=n_examples)
    dof = count.sum() - (count > 0).sum()
    # Pooled within-example variance; the population variance when no example has two observations.
    global_var = sq.sum() / dof if dof > 0 else (values.var() if len(values) > 1 else 1.0)
    global_var = max(float(global_var), 1e-6)
    var = np.full(n_examples, global_var)
    if variance == "per-example":
        own = sq / np.maximum(count - 1, 1)
        var = np.where(count >= min_count, np.maximum(own, 1e-6), global_var)
    elif variance != "global":
        raise ValueError(f"variance must be 'global' or 'per-example', got {variance!r}")
    # An example without observations falls back to the population: its spread includes the between-example one.
    var = np.where(count > 0, var, max(float(values.var()) if len(values) > 1 else global_var, global_var))
    return mean, var, count


@dataclass(frozen=True)
class AttackSummary:
    accuracy: float  # balanced accuracy at score > 0, percent
    auc: float  # percent
    tpr_at_fpr: float  # percent


def summarize_attack(scores: np.ndarray, labels: np.ndarray, fpr: float = 0.01) -> AttackSummary:
    """Balanced accuracy, AUC and TPR at ``fpr`` of scores (higher = 'forgotten') against 0/1 labels."""
    scores, labels = np.asarray(scores, float), np.asarray(labels).astype(bool)
    if not labels.any() or labels.all():
        return AttackSummary(math.nan, math.nan, math.nan)
    pred = scores > 0
    accuracy = 0.5 * (pred[labels].mean() + (~pred[~labels]).mean())
    from sklearn.metrics import roc_auc_score, roc_curve  # here: scikit-learn costs ~1 s to import

    false_pos, true_pos, _ = roc_curve(labels, scores)
    return AttackSummary(100.0 * accuracy, 100.0 * roc_auc_score(labels, scores),
                         100.0 * float(true_pos[false_pos <= fpr].max()))


def _cluster_counts(labels: np.ndarray, pred: np.ndarray, cluster: np.ndarray, k: int) -> np.ndarray:
    """[4, k]: per cluster, true positives, positives, true negatives, negatives."""
    count = lambda mask: np.bincount(cluster[mask], minlength=k).astype(float)
    return np.stack([count(pred & labels), count(labels), count(~pred & ~labels), count(~labels)])


def _pairwise_wins(scores: np.ndarray, labels: np.ndarray, cluster: np.ndarray, k: int) -> np.ndarray:
    """[k, k]: for positives of cluster a and negatives of cluster b, the count of pairs the positive ranks
    above (ties count one half) -- the Mann-Whitney numerator of the AUC, split by cluster."""
    wins = np.zeros((k, k))
    for b in range(k):
        negatives = np.sort(scores[~labels & (cluster == b)])
        if not len(negatives):
            continue
        for a in range(k):
            positives = scores[labels & (cluster == a)]
            below = np.searchsorted(negatives, positives, side="left")
            not_above = np.searchsorted(negatives, positives, side="right")
            wins[a, b] = below.sum() + 0.5 * (not_above - below).sum()
    return wins


def shadow_bootstrap(scores: np.ndarray, labels: np.ndarray, clusters: np.ndarray, n_boot: int = 1000,
                     seed: int = 0, auc: bool = True) -> dict[str, np.ndarray]:
    """Attack accuracy (and AUC) over ``n_boot`` resamples of whole clusters (shadow pairs), with replacement.

    Returns arrays of length ``n_boot`` (percent); a resample without positives or negatives gives NaN.
    The draws depend only on the cluster ids and ``seed``, so two methods evaluated on the same shadow bank
    get the same resamples: their differences form a paired bootstrap. A resample only re-weights clusters,
    so both statistics are computed exactly from per-cluster counts (for the AUC, the Mann-Whitney counts of
    every pair of clusters), without rebuilding the resampled data.
    """
    scores, labels = np.asarray(scores, float), np.asarray(labels).astype(bool)
    ids, cluster = np.unique(np.asarray(clusters), return_inverse=True)
    k = len(ids)
    draws = np.random.default_rng(seed).integers(0, k, size=(n_boot, k))
    weights = np.stack([np.bincount(d, minlength=k) for d in draws]).astype(float)  # [n_boot, k]
    tp, pos, tn, neg = _cluster_counts(labels, scores > 0, cluster, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {"accuracy": 50.0 * (weights @ tp / (weights @ pos) + weights @ tn / (weights @ neg))}
        if auc:
            wins = _pairwise_wins(scores, labels, cluster, k)
            numerator = np.einsum("ba,ac,bc->b", weights, wins, weights)
            out["auc"] = 100.0 * numerator / ((weights @ pos) * (weights @ neg))
    return out


def percentile_interval(draws: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of bootstrap draws (NaN draws ignored; NaN when none are finite)."""
    finite = np.asarray(draws, float)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return math.nan, math.nan
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(finite, [tail, 100.0 - tail])
    return float(lo), float(hi)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values; NaNs stay NaN and are not counted as comparisons.

    The step-down formula of statsmodels' ``multipletests(method="holm")`` (p_(i) · (m − i + 1), running
    maximum, capped at 1), written out because that function calls ``gc.collect()`` on every call: 0.2 s each
    in a process holding the per-example tables (0.3-0.4 s per consistency row), and the two-axis leaderboard
    runs dozens of families. Tests check it against statsmodels."""
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(len(p), math.nan)
    valid = np.flatnonzero(np.isfinite(p))
    if len(valid):
        order = valid[np.argsort(p[valid], kind="stable")]
        steps = p[order] * np.arange(len(order), 0, -1)
        adjusted[order] = np.minimum(1.0, np.maximum.accumulate(steps))
    return adjusted.tolist()
