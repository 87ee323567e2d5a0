"""Scores of a membership attack and their uncertainty: pure NumPy, no torch (the leaderboard imports it).

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
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

LEVEL = 0.95


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
