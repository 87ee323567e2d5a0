"""Pareto ranking over the two axes (utility, privacy): no entry is ranked above one that dominates it.

Pure functions on arrays, lower is better on every axis. ``a`` dominates ``b`` when ``a <= b`` on every axis and
``a < b`` on at least one. Front 1 holds the entries no other entry dominates; front f + 1 those that only
entries of fronts 1..f dominate (non-dominated sorting). Within a front the tie-break is the *worse* of the two
axes on a common scale (each as a share of the untouched original's distance to retraining), then the other
axis, then the name: a minimax order, itself monotone in both axes, so it could never put a dominated entry
first either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

RULE = ("Pareto fronts over (utility, privacy), lower is better on both; within a front by the worse axis as a "
        "share of the original's (then the other axis)")
SHORT_RULE = "Pareto fronts over (utility, privacy), then the worse axis"
RULE_UTILITY_ONLY = "utility_gap (no attack detects the original here, so there is no privacy axis to trade off)"


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` is no worse than ``b`` on every axis and better on one (lower is better)."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    return bool(np.all(x <= y) and np.any(x < y))


def fronts(points: np.ndarray) -> np.ndarray:
    """Front number (1 = not dominated) of each row of ``points`` (rows = entries, columns = axes, finite)."""
    x = np.asarray(points, float)
    if x.ndim != 2 or not np.isfinite(x).all():
        raise ValueError("fronts needs a finite 2-D array (entries x axes)")
    n = len(x)
    # dominated_by[i, j]: j dominates i
    le = (x[None, :, :] <= x[:, None, :]).all(axis=2)
    lt = (x[None, :, :] < x[:, None, :]).any(axis=2)
    dominated_by = le & lt
    out = np.zeros(n, dtype=int)
    left = np.ones(n, dtype=bool)
    front = 0
    while left.any():
        front += 1
        current = left & ~(dominated_by[:, left].any(axis=1))
        out[current] = front
        left &= ~current
    return out


def rank(points: np.ndarray, scale: Sequence[float] | None = None, names: Sequence[str] | None = None
         ) -> tuple[np.ndarray, np.ndarray]:
    """(front, rank 1..n) of every row: by front, then within a front by the worst of ``points / scale`` (each
    axis divided by its scale; default 1), then by the other axes from worst to best, then by ``names``."""
    x = np.asarray(points, float)
    f = fronts(x)
    s = np.ones(x.shape[1]) if scale is None else np.asarray(scale, float)
    shares = np.sort(x / s, axis=1)[:, ::-1]  # worst axis first
    labels = list(names) if names is not None else [""] * len(x)
    order = sorted(range(len(x)), key=lambda i: (f[i], *shares[i], labels[i], i))
    ranks = np.empty(len(x), dtype=int)
    ranks[order] = np.arange(1, len(x) + 1)
    return f, ranks


def usable_scale(value: float) -> float:
    """A tie-break scale: the original's distance on an axis when it is a positive number, else 1 (the raw
    value), so a missing original never breaks the ranking."""
    return value if value is not None and math.isfinite(value) and value > 0 else 1.0
